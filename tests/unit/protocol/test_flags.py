"""The tap-flag vocabulary: every flag explained in both languages, chain breaks included, round-trips."""

from __future__ import annotations

import pytest

from protocol.chain import BreakReason
from protocol.flags import DEFAULT_REVIEW_FLAGS, TapFlag, flag_text, join_flags, parse_flags


@pytest.mark.parametrize("flag", list(TapFlag))
def test_every_flag_is_explained_in_chinese_and_english(flag):
    assert flag.label_zh and flag.explain_zh and flag.label_en and flag.explain_en
    assert flag.explain_zh.endswith("。"), "Chinese sentences end with a full-width stop"
    assert not any(c in flag.explain_zh for c in ",;:?()"), "Chinese text uses full-width punctuation"
    assert flag.label("zh_CN") == flag.label_zh and flag.label("en") == flag.label_en


def test_every_chain_break_reason_is_a_flag():
    assert {r.value for r in BreakReason} <= {f.value for f in TapFlag}


def test_stored_text_round_trips_and_keeps_unknown_values():
    stored = join_flags([flag_text(TapFlag.GAP), flag_text(TapFlag.UNKNOWN_MEMBER, 4711), "legacy_x"])
    assert stored == "gap,unknown_member:4711,legacy_x"
    entries = parse_flags(stored)
    assert [(e.flag, e.detail) for e in entries] == [
        (TapFlag.GAP, None),
        (TapFlag.UNKNOWN_MEMBER, "4711"),
        (None, None),
    ]
    assert entries[2].raw == "legacy_x"
    assert join_flags([]) is None and parse_flags(None) == []


def test_default_review_flags_leave_out_taps_without_a_session():
    assert TapFlag.CLOCK_DRIFT in DEFAULT_REVIEW_FLAGS and TapFlag.GAP in DEFAULT_REVIEW_FLAGS
    assert TapFlag.TIME_OUT_OF_RANGE not in DEFAULT_REVIEW_FLAGS
