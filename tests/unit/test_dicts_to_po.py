"""scripts/dicts_to_po.py moves strings a branch added the old way into the catalogues and deletes them."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "dicts_to_po.py"


def _script():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("dicts_to_po", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _po(root: Path, package: str, locale: str) -> dict[str, str]:
    path = root / package / "translations" / locale / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as handle:
        return {str(m.id): str(m.string) for m in read_po(handle, locale=locale) if m.id}


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    web = tmp_path / "server" / "web"
    web.mkdir(parents=True)
    (web / "agree.py").write_text(
        "from .i18n import register_messages, t\n\n"
        'register_messages(\n    {\n        "agree.title": ("协议", "Agreement"),\n'
        '        "nav.sessions": ("服务记录", "Sessions"),\n    }\n)\n\n\n'
        'def title() -> str:\n    return t("agree.title")\n',
        encoding="utf-8",
    )
    (tmp_path / "kiosk").mkdir()
    (tmp_path / "kiosk" / "qr.py").write_text(
        'MESSAGES: dict[str, tuple[str, str]] = {"qr_new": ("新的", "New")}\nX = 1\n', encoding="utf-8"
    )
    for locale, text in (("zh_CN", "服务记录"), ("en", "Sessions")):
        folder = tmp_path / "server" / "translations" / locale / "LC_MESSAGES"
        folder.mkdir(parents=True)
        (folder / "messages.po").write_text(f'msgid "nav.sessions"\nmsgstr "{text}"\n', encoding="utf-8")
    return tmp_path


def test_dry_run_changes_nothing(tree: Path) -> None:
    before = (tree / "server" / "web" / "agree.py").read_text(encoding="utf-8")
    assert _script().main(["--root", str(tree)]) == 0
    assert (tree / "server" / "web" / "agree.py").read_text(encoding="utf-8") == before
    assert "agree.title" not in _po(tree, "server", "zh_CN")


def test_write_moves_the_entries_and_deletes_the_dicts(tree: Path) -> None:
    assert _script().main(["--root", str(tree), "--write"]) == 0
    assert _po(tree, "server", "zh_CN") == {"nav.sessions": "服务记录", "agree.title": "协议"}
    assert _po(tree, "server", "en")["agree.title"] == "Agreement"
    assert _po(tree, "kiosk", "zh_CN") == {"qr.qr_new": "新的"}  # the prefix kiosk/qr.py's lookups add
    source = (tree / "server" / "web" / "agree.py").read_text(encoding="utf-8")
    assert "register_messages" not in source and "from .i18n import t\n" in source
    compile(source, "agree.py", "exec")
    assert (tree / "kiosk" / "qr.py").read_text(encoding="utf-8") == "X = 1\n"


def test_a_key_with_other_texts_stops_it(tree: Path) -> None:
    path = tree / "server" / "web" / "agree.py"
    path.write_text(path.read_text(encoding="utf-8").replace('"服务记录"', '"服务"'), encoding="utf-8")
    with pytest.raises(SystemExit, match=r"nav\.sessions"):
        _script().main(["--root", str(tree), "--write"])
