"""Move strings still kept in Python dicts into the gettext catalogues, and delete the dicts.

The catalogues (``server/translations/<locale>/LC_MESSAGES/messages.po`` and the kiosk's under
``kiosk/translations/``) are the one source of every string a person reads. Branches written before that
may still add strings the old way: a ``register_messages({key: (Chinese, English), ...})`` call in a
server module, or entries in a ``MESSAGES = {key: (Chinese, English)}`` dict (``server/web/messages.py``,
``kiosk/qr.py``). After merging such a branch run::

    .venv/bin/python scripts/dicts_to_po.py            # show what would move
    .venv/bin/python scripts/dicts_to_po.py --write    # move it: append to both .po files, delete the dicts

Each entry becomes one message id in the catalogue of its package (server or kiosk) with its Chinese text
in ``zh_CN`` and its English text in ``en``; ``kiosk/qr.py``'s keys get the ``qr.`` prefix its lookups
use. A key already in the catalogue with the same texts is dropped silently; with different texts the
script stops and names it (a person decides which text is right). ``register_messages`` calls are
removed from the source, as are ``MESSAGES = {...}`` assignments; a module left with a dangling import or
use is named in the output so you can finish by hand. Run the catalogue test afterwards
(``pytest tests/unit/test_catalogues.py``): it also checks the Chinese punctuation.
"""

from __future__ import annotations

import argparse
import ast
import logging
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po, write_po

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
LOCALES = ("zh_CN", "en")
#: Key prefixes a module's lookups add to its dict's keys.
PREFIXES = {"kiosk/qr.py": "qr."}
SCANNED = ("server", "kiosk")


@dataclass(frozen=True)
class Found:
    """One dict (a ``register_messages`` call or a ``MESSAGES`` assignment) in one file."""

    path: Path
    first_line: int
    last_line: int
    entries: dict[str, tuple[str, str]]


def catalogue_path(package: str, locale: str, root: Path = ROOT) -> Path:
    return root / package / "translations" / locale / "LC_MESSAGES" / "messages.po"


def _pairs(node: ast.AST) -> dict[str, tuple[str, str]] | None:
    try:
        value = ast.literal_eval(node)
    except ValueError:
        return None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, tuple) and len(v) == 2 for k, v in value.items()
    ):
        return None
    return {k: (str(v[0]), str(v[1])) for k, v in value.items()}


def find_dicts(path: Path) -> list[Found]:
    """The top-level ``register_messages({...})`` calls and ``MESSAGES = {...}`` dicts of one module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for stmt in tree.body:
        target: ast.AST | None = None
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
            func = stmt.value.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name == "register_messages" and stmt.value.args:
                target = stmt.value.args[0]
        elif isinstance(stmt, ast.AnnAssign | ast.Assign):
            targets = [stmt.target] if isinstance(stmt, ast.AnnAssign) else stmt.targets
            if any(isinstance(t, ast.Name) and t.id == "MESSAGES" for t in targets):
                target = stmt.value
        if target is None:
            continue
        entries = _pairs(target)
        if entries is None:
            logger.warning(
                "%s:%d: a dict that is not key → (Chinese, English); move it by hand", path, stmt.lineno
            )
            continue
        found.append(Found(path, stmt.lineno, stmt.end_lineno or stmt.lineno, entries))
    return found


def load(path: Path, locale: str) -> Catalog:
    if path.exists():
        with path.open("rb") as handle:
            return read_po(handle, locale=locale)
    catalog = Catalog(locale=locale, project="baodao")
    return catalog


def save(catalog: Catalog, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        write_po(handle, catalog, width=0, omit_header=False)


def merge(catalogs: dict[str, Catalog], key: str, texts: tuple[str, str]) -> bool:
    """Add ``key`` to both catalogues; False when it is there already with the same texts."""
    existing = [catalogs[loc].get(key) for loc in LOCALES]
    if all(m is not None for m in existing):
        if tuple(m.string for m in existing) == texts:  # type: ignore[union-attr]
            return False
        raise SystemExit(
            f"{key!r} is in the catalogue with other texts: {[m.string for m in existing]} vs {texts}"
        )  # type: ignore[union-attr]
    for locale, text in zip(LOCALES, texts, strict=True):
        catalogs[locale].add(key, text)
    return True


def _cut(found: list[Found], root: Path) -> None:
    """Delete the statements; drop ``register_messages`` from ``from .i18n import`` lines."""
    by_file: dict[Path, list[Found]] = {}
    for item in found:
        by_file.setdefault(item.path, []).append(item)
    for path, items in by_file.items():
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        for item in sorted(items, key=lambda f: f.first_line, reverse=True):
            del lines[item.first_line - 1 : item.last_line]
        text = "".join(lines)
        text = re.sub(
            r"(from \S*i18n import [^\n]*?)\bregister_messages, |, register_messages\b", r"\1", text
        )
        path.write_text(text, encoding="utf-8")
        rel = path.relative_to(root)
        left = [word for word in ("register_messages", "MESSAGES") if re.search(rf"\b{word}\b", text)]
        print(
            f"{rel}: removed {len(items)} dict(s)"
            + (f"; still mentions {', '.join(left)} — finish by hand" if left else "")
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="change the catalogues and the sources")
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    root: Path = args.root
    moved = 0
    for package in SCANNED:
        catalogs = {loc: load(catalogue_path(package, loc, root), loc) for loc in LOCALES}
        found = [f for path in sorted((root / package).rglob("*.py")) for f in find_dicts(path)]
        for item in found:
            prefix = PREFIXES.get(item.path.relative_to(root).as_posix(), "")
            for key, texts in item.entries.items():
                if merge(catalogs, prefix + key, texts):
                    moved += 1
                    print(f"{item.path.relative_to(root)}:{item.first_line}: {prefix + key}")
        if args.write and found:
            for locale, catalog in catalogs.items():
                save(catalog, catalogue_path(package, locale, root))
            _cut(found, root)
    print(f"{moved} new message(s){'' if args.write else ' (dry run: add --write)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
