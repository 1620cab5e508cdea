from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.chain import GENESIS_HASH, BreakReason, canonical_bytes, compute_hash, verify_chain
from protocol.messages import TapEventIn
from tests.unit.protocol.conftest import make_chain, make_event_fields


def as_dicts(events: list[TapEventIn]) -> list[dict]:
    return [e.model_dump() for e in events]


def test_intact_chain_verifies_and_reports_head(chain10: list[TapEventIn]) -> None:
    result = verify_chain(chain10)
    assert result.ok and result.verified == 10
    assert result.head_seq == 10 and result.head_hash == chain10[-1].hash


def test_chain_survives_the_wire(chain10: list[TapEventIn]) -> None:
    """What the kiosk hashed is what the server recomputes after JSON parsing."""
    parsed = [TapEventIn.model_validate_json(e.to_json_bytes()) for e in chain10]
    assert verify_chain(parsed).ok
    assert all(e.hash_ok() for e in parsed)


def test_continues_from_a_stored_head(chain10: list[TapEventIn]) -> None:
    result = verify_chain(chain10[4:], start_prev_hash=chain10[3].hash, start_seq=5)
    assert result.ok and result.head_seq == 10


def test_canonical_form_is_documented_shape() -> None:
    fields = make_event_fields(
        1, GENESIS_HASH, reason=None, device_time=dt.datetime(2024, 5, 1, 8, 30, tzinfo=dt.UTC)
    )
    text = canonical_bytes(fields).decode()
    body = json.loads(text)
    assert list(body) == sorted(body) and " " not in text  # sorted keys, compact
    assert "reason" not in body and "hash" not in body  # None omitted; own hash not covered
    assert body["device_time"] == "2024-05-01T08:30:00.000000Z"


def test_device_time_offset_does_not_change_hash() -> None:
    utc = make_event_fields(1, GENESIS_HASH, device_time=dt.datetime(2024, 5, 1, 0, 30, tzinfo=dt.UTC))
    cst = dict(utc, device_time=dt.datetime(2024, 5, 1, 8, 30, tzinfo=dt.timezone(dt.timedelta(hours=8))))
    assert compute_hash(GENESIS_HASH, utc) == compute_hash(GENESIS_HASH, cst)


def test_non_ascii_is_utf8_not_escaped() -> None:
    fields = make_event_fields(1, GENESIS_HASH, reason="二维码已过期")
    assert "二维码已过期".encode() in canonical_bytes(fields)


FIELD_EDITS = {
    "member_id": 999_999,
    "direction": "out",
    "credential_hash": "f" * 64,
    "device_time": dt.datetime(2030, 1, 1, tzinfo=dt.UTC),
    "clock_offset_ms": 0,
    "device_tz": "UTC",
    "reason": "edited",
}


@pytest.mark.parametrize(("field", "value"), FIELD_EDITS.items())
def test_edit_of_any_field_is_detected(chain10: list[TapEventIn], field: str, value: object) -> None:
    events = as_dicts(chain10)
    events[4][field] = value
    result = verify_chain(events)
    assert not result.ok
    assert result.first_break.index == 4 and result.first_break.reason is BreakReason.HASH_MISMATCH
    assert result.verified == 4 and result.head_seq == 4


def test_edit_with_rehash_breaks_the_next_link(chain10: list[TapEventIn]) -> None:
    """A forger who recomputes the edited event's hash still breaks its successor's prev_hash."""
    events = as_dicts(chain10)
    events[4]["member_id"] = 7
    events[4]["hash"] = compute_hash(events[4]["prev_hash"], events[4])
    brk = verify_chain(events).first_break
    assert brk.index == 5 and brk.reason is BreakReason.PREV_HASH_MISMATCH


def test_deletion_is_a_gap(chain10: list[TapEventIn]) -> None:
    brk = verify_chain(chain10[:3] + chain10[4:]).first_break
    assert brk.reason is BreakReason.GAP and brk.expected == "4" and brk.got == "5" and brk.index == 3


def test_reorder_is_detected(chain10: list[TapEventIn]) -> None:
    events = list(chain10)
    events[2], events[3] = events[3], events[2]
    brk = verify_chain(events).first_break
    assert brk.index == 2 and brk.reason is BreakReason.GAP


def test_repeat_is_a_regression(chain10: list[TapEventIn]) -> None:
    brk = verify_chain([*chain10[:5], chain10[4]]).first_break
    assert brk.reason is BreakReason.SEQ_REGRESSION and brk.index == 5


def test_resequenced_history_is_detected(chain10: list[TapEventIn]) -> None:
    """Deleting an event and renumbering the rest hides the gap but not the broken link."""
    events = as_dicts(chain10[:3] + chain10[4:])
    for i, e in enumerate(events[3:], start=4):
        e["seq"] = i
    brk = verify_chain(events).first_break
    assert brk.index == 3 and brk.reason is BreakReason.PREV_HASH_MISMATCH


def test_wrong_start_is_detected(chain10: list[TapEventIn]) -> None:
    assert (
        verify_chain(chain10, start_prev_hash="1" * 64).first_break.reason is BreakReason.PREV_HASH_MISMATCH
    )
    assert verify_chain(chain10, start_seq=2).first_break.reason is BreakReason.SEQ_REGRESSION


@pytest.mark.parametrize(
    "bad",
    [
        {"seq": "1"},
        {"hash": None},
        {"prev_hash": 5},
        {"device_time": dt.datetime(2024, 1, 1)},  # naive
        {"clock_offset_ms": 1.5},
        {"prev_hash": "zz" * 32},
    ],
)
def test_malformed_events_are_reported_not_raised(bad: dict) -> None:
    event = make_event_fields(1, GENESIS_HASH)
    event["hash"] = "0" * 64
    event.update(bad)
    brk = verify_chain([event]).first_break
    assert brk is not None and brk.reason in (BreakReason.MALFORMED, BreakReason.PREV_HASH_MISMATCH)


def test_non_mapping_is_malformed() -> None:
    assert verify_chain([42]).first_break.reason is BreakReason.MALFORMED


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_any_single_tamper_is_detected(data: st.DataObject) -> None:
    events = as_dicts(make_chain(6))
    index = data.draw(st.integers(0, 5))
    action = data.draw(st.sampled_from(["delete", "swap", "edit", "duplicate"]))
    if action == "delete":
        del events[index]
        if index == 5:  # dropping the tail is only visible against the server's head — check that
            assert verify_chain(events).head_seq == 5
            return
    elif action == "swap":
        other = data.draw(st.integers(0, 5).filter(lambda j: j != index))
        events[index], events[other] = events[other], events[index]
    elif action == "edit":
        events[index]["member_id"] = data.draw(
            st.integers(1, 10**6).filter(lambda m: m != events[index]["member_id"])
        )
    else:
        events.insert(index, dict(events[index]))
    assert not verify_chain(events).ok
