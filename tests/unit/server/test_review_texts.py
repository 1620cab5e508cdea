"""``REVIEW_FLAGS`` is validated at start-up, and every flag and session reason has words for a person."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask

from protocol.flags import DEFAULT_REVIEW_FLAGS, TapFlag
from protocol.sessionrules import CloseReason
from server.config import ConfigError, load_config, review_flags
from server.web.i18n import init_i18n
from server.web.reasons import export_text, merged_flags, session_reason, tap_flags
from tests.conftest import TEST_KEYS


@pytest.fixture
def catalogue_app() -> Iterator[Flask]:
    """The words come from the app's gettext catalogues: an app with only the catalogues attached."""
    app = Flask(__name__)
    init_i18n(app)
    with app.app_context():
        yield app


def test_default_is_the_protocol_default_and_env_is_a_comma_list() -> None:
    assert load_config(dict(TEST_KEYS), environ={})["REVIEW_FLAGS"] == DEFAULT_REVIEW_FLAGS
    config = load_config(dict(TEST_KEYS), environ={"BAODAO_REVIEW_FLAGS": " gap, clock_drift ,"})
    assert config["REVIEW_FLAGS"] == {TapFlag.GAP, TapFlag.CLOCK_DRIFT}
    assert review_flags([]) == frozenset() and review_flags("") == frozenset()
    assert review_flags([TapFlag.QR_REPLAYED, "gap"]) == {TapFlag.QR_REPLAYED, TapFlag.GAP}


def test_unknown_flag_is_refused_with_its_name_in_both_languages() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config({**TEST_KEYS, "REVIEW_FLAGS": ["gap", "chain_gap"]}, environ={})
    text = str(caught.value)
    assert "“chain_gap”不是已知的刷卡标记" in text and "unknown tap flag 'chain_gap'" in text
    assert "clock_drift" in text  # the known values are listed, so the fix is in the message


def test_every_close_reason_has_a_label_and_a_sentence(catalogue_app: Flask) -> None:
    for reason in CloseReason:
        for locale in ("zh_CN", "en"):
            shown = session_reason(reason.value, locale)
            assert shown is not None and shown.known, reason
            assert shown.label and shown.explanation and reason.value not in shown.label
    assert session_reason(None, "zh_CN") is None


def test_unknown_values_are_shown_as_they_are_and_marked(catalogue_app: Flask) -> None:
    reason = session_reason("kiosk_said_something", "zh_CN")
    assert reason is not None and not reason.known and reason.label == "未知原因：kiosk_said_something"
    [flag] = tap_flags("reader_retry", "en")
    assert not flag.known and flag.label == "Unknown flag: reader_retry" and flag.explanation


def test_flags_read_in_stored_order_with_details_and_once_per_session(catalogue_app: Flask) -> None:
    shown = tap_flags("unknown_member:4711,gap", "zh_CN")
    assert [s.label for s in shown] == [f"{TapFlag.UNKNOWN_MEMBER.label_zh}（4711）", TapFlag.GAP.label_zh]
    merged = merged_flags(["gap,future_time", None, "gap"], "en")
    assert [s.code for s in merged] == ["gap", "future_time"]
    assert export_text(merged) == f"{TapFlag.GAP.label_en}；{TapFlag.FUTURE_TIME.label_en}"
    assert export_text([None]) == ""
