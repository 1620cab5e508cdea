"""The gettext catalogues are complete: every message id the code and templates use is in both languages,
the Chinese has no empty, fuzzy or half-width-punctuated entries, and placeholders agree.

The used ids are found by the same extraction ``pybabel extract -F babel.cfg`` runs (Babel's Python and
Jinja extractors, keywords ``t``/``texts``/``text``); ids built at run time (``t('status.' ~ s)``) are
checked by their prefix and, where the values are known here, one by one.
"""

from __future__ import annotations

import ast
import fnmatch
import re
import string
import tomllib
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from protocol.flags import TapFlag

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("server", "kiosk")
LOCALES = ("zh_CN", "en")
KEYWORDS = {"t": None, "texts": None, "text": None}
MESSAGE_ID = re.compile(r"^[a-z_]+(\.[a-z0-9_]+)+$")
#: ``t('prefix.' ~ value)`` in templates, ``t(f"prefix.{value}")`` in Python.
DYNAMIC = re.compile(r"""\bt\(\s*(?:'([a-z_.]+\.)'\s*~|"([a-z_.]+\.)"\s*~|f["']([a-z_.]+\.)\{)""")
FILE_NAME = re.compile(r"\.(html|py|css|js|id)$")
CJK = re.compile(r"[\u3400-\u9fff]")
#: Half-width marks that belong in Chinese text as ，；：（）？ — a colon between ASCII letters or digits
#: (a time, a card UID like 04:A2) is not punctuation.
HALF_WIDTH = re.compile(r"[,;?()]|(?<![0-9A-Za-z]):|:(?![0-9A-Za-z])")


def catalogue(package: str, locale: str) -> Catalog:
    path = ROOT / package / "translations" / locale / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as handle:
        return read_po(handle, locale=locale)


def used_ids(package: str) -> set[str]:
    with (ROOT / "babel.cfg").open(encoding="utf-8") as handle:
        method_map, options_map = parse_mapping_cfg(handle)
    ours = [(pattern, method) for pattern, method in method_map if pattern.startswith(f"{package}/")]
    found = extract_from_dir(str(ROOT), ours, options_map, keywords=KEYWORDS, comment_tags=())
    return {
        message for _, _, message, _, _ in found if isinstance(message, str) and MESSAGE_ID.match(message)
    }


def messages(catalog: Catalog) -> dict[str, str]:
    return {str(m.id): str(m.string) for m in catalog if m.id}


def fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


@pytest.mark.parametrize("package", PACKAGES)
def test_both_catalogues_have_the_same_complete_entries(package: str) -> None:
    zh, en = (catalogue(package, locale) for locale in LOCALES)
    assert not zh.fuzzy and not en.fuzzy
    for catalog in (zh, en):
        fuzzy = sorted(str(m.id) for m in catalog if m.id and m.fuzzy)
        empty = sorted(str(m.id) for m in catalog if m.id and not str(m.string).strip())
        assert fuzzy == [] and empty == [], catalog.locale
    zh_texts, en_texts = messages(zh), messages(en)
    assert zh_texts.keys() == en_texts.keys()
    wrong = {
        key: (zh_texts[key], en_texts[key])
        for key in zh_texts
        if fields(zh_texts[key]) != fields(en_texts[key])
    }
    assert wrong == {}, "placeholders differ between the languages"


@pytest.mark.parametrize("package", PACKAGES)
def test_chinese_uses_full_width_punctuation(package: str) -> None:
    bad = {
        key: text
        for key, text in messages(catalogue(package, "zh_CN")).items()
        if CJK.search(text) and HALF_WIDTH.search(text)
    }
    assert bad == {}


def test_the_check_finds_half_width_punctuation() -> None:
    assert HALF_WIDTH.search("签退成功,本次服务")
    assert HALF_WIDTH.search("密码(PIN)")
    assert not HALF_WIDTH.search("例如 04:A2:3B，系统只保存摘要。")


def screen_ids() -> set[str]:
    """The kiosk page's labels: ``data-i18n="name"`` in the page, ``t("name")``/``row("name", …)``/
    ``I18N.zh.name`` in its script — each is the catalogue's ``screen.<name>``."""
    ui = ROOT / "kiosk" / "ui"
    names = set(
        re.findall(r'data-i18n="([a-z_]+)"', (ui / "templates" / "kiosk.html").read_text(encoding="utf-8"))
    )
    script = (ui / "static" / "kiosk.js").read_text(encoding="utf-8")
    names |= set(re.findall(r'\b(?:t|row)\("([a-z_]+)"', script))
    names |= set(re.findall(r"\bI18N\.(?:zh|en)\.([a-z_]+)", script))
    return {f"screen.{name}" for name in names}


def outcome_ids() -> set[str]:
    """``messages_for`` looks up ``outcome.<kind>`` (a duplicate: ``_in``/``_out``)."""
    from kiosk.outcomes import OutcomeKind

    ids = {f"outcome.{kind.value}" for kind in OutcomeKind if kind is not OutcomeKind.DUPLICATE}
    return ids | {
        "outcome.duplicate_in",
        "outcome.duplicate_out",
        "outcome.duration_hm",
        "outcome.duration_m",
    }


def kiosk_error_ids() -> set[str]:
    """The screen's JSON helpers answer ``_error(status, code)`` with the catalogue's ``error.<code>``."""
    views = (ROOT / "kiosk" / "ui" / "views.py").read_text(encoding="utf-8")
    return {f"error.{code}" for code in re.findall(r'_error\(\d+, "([a-z_]+)"\)', views)}


@pytest.mark.parametrize(("package", "at_least"), [("server", 250), ("kiosk", 60)])
def test_every_used_id_is_in_the_catalogue(package: str, at_least: int) -> None:
    used = used_ids(package)
    if package == "kiosk":
        assert len(used) >= 4 and len(screen_ids()) >= 40
        assert len(kiosk_error_ids()) >= 3
        used |= screen_ids() | outcome_ids() | kiosk_error_ids()
    assert len(used) >= at_least  # the extraction found the calls (an empty scan would pass vacuously)
    known = messages(catalogue(package, "zh_CN")).keys()
    # Babel's Python extractor joins all string literals among a call's arguments, so
    # t("a.x" if c else "a.y") comes out as "a.xca.y"; those literals are checked one by one below.
    joined = {m for m in used - known if any(m.startswith(k) and len(m) > len(k) for k in known)}
    assert sorted(used - known - joined) == []


def literal_ids(folders: tuple[str, ...], prefixes: set[str]) -> set[str]:
    """Every string literal of the web layer that looks like one of our message ids, wherever it is used
    (a conditional ``t("a.x" if c else "a.y")``, a table of keys) — what the keyword extraction skips."""
    found = set()
    for folder in folders:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    found.add(node.value)
        for path in (ROOT / folder).rglob("*.html"):
            found |= set(
                re.findall(r"""['"]([a-z_]+(?:\.[a-z0-9_]+)+)['"]""", path.read_text(encoding="utf-8"))
            )
    return {
        text
        for text in found
        if MESSAGE_ID.match(text) and text.split(".")[0] in prefixes and not FILE_NAME.search(text)
    }


def test_every_literal_id_of_the_web_layer_is_in_the_catalogue() -> None:
    known = messages(catalogue("server", "zh_CN")).keys()
    literal = literal_ids(("server/web", "server/qr"), {key.split(".")[0] for key in known})
    assert {"review.bad_start", "span.tick_confirm"} <= literal
    assert sorted(literal - known) == []


def test_ids_built_at_run_time_have_their_texts() -> None:
    from server.models.users import ROLES
    from server.web import NAV_ITEMS

    known = messages(catalogue("server", "zh_CN")).keys()
    prefixes = set()
    for path in [*(ROOT / "server").rglob("*.html"), *(ROOT / "server").rglob("*.py")]:
        for match in DYNAMIC.finditer(path.read_text(encoding="utf-8")):
            prefixes.add(next(group for group in match.groups() if group))
    assert {"status.", "role.", "reason."} <= prefixes
    assert sorted(p for p in prefixes if not any(k.startswith(p) for k in known)) == []
    assert sorted({key for _, key, _ in NAV_ITEMS} - known) == []
    assert sorted({f"role.{role}" for role in ROLES} - known) == []


def test_every_tap_flag_has_both_languages() -> None:
    """Flag texts stay protocol data (protocol/flags.py, one definition the kiosk and the server share)."""
    for flag in TapFlag:
        texts = (flag.label_zh, flag.explain_zh, flag.label_en, flag.explain_en)
        assert all(text.strip() for text in texts), flag
        assert CJK.search(flag.label_zh) and not HALF_WIDTH.search(flag.label_zh + flag.explain_zh), flag
        assert flag.label_en != flag.label_zh and flag.explain_en != flag.explain_zh, flag


@pytest.mark.parametrize("package", PACKAGES)
def test_the_catalogues_are_package_data(package: str) -> None:
    """An installed (non-editable) server or kiosk must carry its .po files: nothing else holds the texts."""
    with (ROOT / "pyproject.toml").open("rb") as handle:
        patterns = tomllib.load(handle)["tool"]["setuptools"]["package-data"].get(package, [])
    files = sorted((ROOT / package / "translations").rglob("*.po"))
    assert len(files) == len(LOCALES)
    for path in files:
        relative = path.relative_to(ROOT / package).as_posix()
        assert any(fnmatch.fnmatch(relative, pattern) for pattern in patterns), relative
