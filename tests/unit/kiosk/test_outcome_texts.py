"""The kiosk's outcome texts come from its gettext catalogue, in both languages at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiosk.i18n import KioskCatalogue, catalogue
from kiosk.outcomes import OutcomeKind, format_duration, messages_for


def test_check_out_names_the_duration_in_each_language() -> None:
    assert messages_for(OutcomeKind.OUT, duration_s=3900) == (
        "签退成功，本次服务 1小时5分钟",
        "Checked out after 1 h 5 min",
    )
    assert format_duration(540, "zh") == "9分钟" and format_duration(540, "en") == "9 min"
    assert format_duration(None, "zh") == ""


def test_duplicates_and_lockouts() -> None:
    assert messages_for(OutcomeKind.DUPLICATE, previous="out") == ("已签退", "Already checked out")
    assert messages_for(OutcomeKind.DUPLICATE, previous="in") == ("已签到", "Already checked in")
    zh, en = messages_for(OutcomeKind.PIN_LOCKED, retry_s=61)
    assert "2 分钟" in zh and "2 min" in en


@pytest.mark.parametrize("kind", list(OutcomeKind))
def test_every_outcome_has_chinese_and_english(kind: OutcomeKind) -> None:
    zh, en = messages_for(kind, duration_s=60, previous="in", retry_s=60)
    assert zh and en and zh != en and not zh.startswith("outcome.")


def test_screen_texts_pair_up() -> None:
    screen = catalogue().screen()
    assert screen["zh"].keys() == screen["en"].keys()
    assert screen["zh"]["switch_lang"] == "English" and screen["en"]["switch_lang"] == "中文"


def test_the_catalogue_is_read_from_the_po_files(tmp_path: Path) -> None:
    for locale, text in (("zh_CN", "你好"), ("en", "Hello")):
        folder = tmp_path / locale / "LC_MESSAGES"
        folder.mkdir(parents=True)
        (folder / "messages.po").write_text(f'msgid "screen.hello"\nmsgstr "{text}"\n', encoding="utf-8")
    read = KioskCatalogue(tmp_path)
    assert read.texts("screen.hello") == ("你好", "Hello")
    assert read.screen() == {"zh": {"hello": "你好"}, "en": {"hello": "Hello"}}
    assert read.text("screen.nothing", "en") == "screen.nothing"  # visible, never a crash
