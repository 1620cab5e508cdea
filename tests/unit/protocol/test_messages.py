from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from protocol.ids import is_uuid7, uuid7
from protocol.messages import (
    BatchAck,
    Command,
    CommandResult,
    EnrolRequest,
    EnrolResponse,
    ErrorResponse,
    EventBatch,
    HealthReport,
    HeartbeatRequest,
    HeartbeatResponse,
    Message,
    RosterDelta,
    TapEventIn,
)
from protocol.schemas import openapi_components
from tests.unit.protocol.conftest import make_chain

NOW = dt.datetime(2024, 5, 1, 8, 0, tzinfo=dt.UTC)


def event_json(**changes: object) -> dict:
    body = json.loads(make_chain(1)[0].to_json_bytes())
    body.update(changes)
    return body


def health(**changes: object) -> dict:
    body = {
        "readers": [{"reader_id": "pcsc-0", "driver": "pcsc", "state": "ready", "reads": 3}],
        "camera": {"state": "ready", "fps": 9.5, "last_frame_age_s": 0.1},
        "outbox_depth": 12,
        "oldest_unsynced_age_s": 3.5,
        "clock_offset_ms": -40,
        "disk_free_bytes": 10**9,
        "software_version": "0.1.0",
        "config_version": 3,
        "applied_config_version": 3,
    }
    body.update(changes)
    return body


@settings(max_examples=300, deadline=None)
@given(
    base=st.integers(0, 2**128 - 1), version=st.integers(0, 15), variant=st.integers(0, 15)
)  # fmt: skip
def test_event_id_check_agrees_with_is_uuid7(base: int, version: int, variant: int) -> None:
    """pydantic-core checks ``EventId``; it must accept exactly what ``is_uuid7`` accepts (version 7 *and*
    the RFC 9562 variant), over every version and variant nibble."""
    value = uuid.UUID(int=(base & ~(0xF << 76) & ~(0xF << 60)) | (version << 76) | (variant << 60))
    body = BatchAck(accepted=[], duplicates=[], chain="ok", head_seq=0, server_time=NOW).model_dump()
    body["accepted"] = [str(value)]
    try:
        BatchAck.model_validate_json(json.dumps(body, default=str))
        accepted = True
    except ValidationError:
        accepted = False
    assert accepted == is_uuid7(value)


def test_event_round_trip_through_json() -> None:
    event = make_chain(1)[0]
    assert TapEventIn.model_validate_json(event.to_json_bytes()) == event


@pytest.mark.parametrize(
    "changes",
    [
        {"seq": 0},
        {"seq": "1"},  # strict: no coercion from text
        {"prev_hash": "A" * 64},  # upper-case hex is not the canonical form
        {"hash": "0" * 63},
        {"event_id": str(uuid.uuid4())},  # not time-ordered
        {"credential_kind": "fingerprint"},
        {"direction": "sideways"},
        {"device_time": "2024-05-01T08:00:00"},  # naive
        {"device_tz": "Asia/Shanghai; DROP TABLE"},
        {"clock_offset_ms": 1.5},
        {"clock_offset_ms": 10**13},
        {"reason": "x" * 201},
        {"member_id": 0},
        {"qr_step": 5},  # only for QR events
        {"credential_kind": "qr", "qr_step": 5, "badge_serial": "B1"},
        {"badge_serial": "b-1"},
        {"extra_field": 1},
        {"trust": "medium"},
    ],
)
def test_event_rejects_malformed(changes: dict) -> None:
    with pytest.raises(ValidationError):
        TapEventIn.model_validate_json(json.dumps(event_json(**changes)))


def test_event_accepts_qr_fields_for_qr() -> None:
    event = TapEventIn.model_validate_json(
        json.dumps(event_json(credential_kind="qr", qr_step=57_000_000, trust="high"))
    )
    assert event.qr_step == 57_000_000


def test_hash_mismatch_is_not_a_validation_error() -> None:
    """An edited event must reach the server to be flagged, not bounce forever."""
    event = TapEventIn.model_validate_json(json.dumps(event_json(member_id=4242)))
    assert not event.hash_ok()


def test_batch_limits_and_duplicate_ids() -> None:
    events = make_chain(3)
    assert len(EventBatch(events=events).events) == 3
    with pytest.raises(ValidationError):
        EventBatch(events=[])
    with pytest.raises(ValidationError):
        EventBatch(events=[events[0], events[0]])
    with pytest.raises(ValidationError):
        EventBatch(events=events * 167)  # 501


def test_full_batch_fits_the_body_limit() -> None:
    from protocol.messages import MAX_BATCH_EVENTS, MAX_BODY_BYTES

    body = EventBatch(events=make_chain(MAX_BATCH_EVENTS)).to_json_bytes()
    assert len(body) < MAX_BODY_BYTES


def test_health_and_heartbeat() -> None:
    request = HeartbeatRequest.model_validate_json(
        json.dumps({"device_time": NOW.isoformat(), "health": health(), "roster_cursor": None})
    )
    assert request.health.readers[0].state == "ready"
    for bad in [
        health(outbox_depth=-1),
        health(readers=[{"reader_id": "r", "driver": "d", "state": "ready"}] * 17),
        health(oldest_unsynced_age_s=float("inf")),
        health(software_version=""),
        health(camera={"state": "ready", "fps": 1e9}),
    ]:
        with pytest.raises(ValidationError):
            HealthReport.model_validate_json(json.dumps(bad, allow_nan=True))


def test_heartbeat_response_with_roster_and_commands() -> None:
    body = {
        "server_time": NOW.isoformat(),
        "desired_config_version": 4,
        "config": {"debounce_s": 60, "ui": {"language": "zh"}},
        "roster": {
            "cursor": "c-17",
            "upserts": [
                {
                    "credential_hash": "a" * 64,
                    "credential_kind": "card",
                    "member_id": 5,
                    "masked_name": "张*明",
                    "unit_name": "区税务局机关党委",
                }
            ],
            "removals": ["b" * 64],
            "qr_public_keys": {"k1": "A" * 43},
            "revoked_badges": ["B00017"],
        },
        "commands": [
            {
                "command_id": str(uuid7()),
                "name": "show_message",
                "args": {"text": "今天下午闭馆", "seconds": 30},
                "issued_at": NOW.isoformat(),
            }
        ],
    }
    response = HeartbeatResponse.model_validate_json(json.dumps(body))
    assert response.roster.upserts[0].masked_name == "张*明"
    assert HeartbeatResponse.model_validate_json(response.to_json_bytes()) == response


@pytest.mark.parametrize(
    "bad",
    [
        {"name": "format_disk"},
        {"name": "show_message", "args": {}},
        {"name": "show_message", "args": {"text": "x" * 201}},
        {"name": "reload_config", "args": {f"k{i}": i for i in range(17)}},
        {"name": "reload_config", "args": {"blob": "x" * 5000}},
    ],
)
def test_command_rejects(bad: dict) -> None:
    with pytest.raises(ValidationError):
        Command.model_validate_json(
            json.dumps({"command_id": str(uuid7()), "issued_at": NOW.isoformat(), **bad})
        )


def test_oversized_config_and_roster_rejected() -> None:
    with pytest.raises(ValidationError):
        HeartbeatResponse.model_validate_json(
            json.dumps(
                {
                    "server_time": NOW.isoformat(),
                    "desired_config_version": 1,
                    "config": {"x": "y" * 70_000},
                    "roster": {"cursor": "c"},
                }
            )
        )
    with pytest.raises(ValidationError):
        RosterDelta.model_validate_json(json.dumps({"cursor": "c", "removals": ["a" * 64] * 5001}))
    with pytest.raises(ValidationError):
        RosterDelta.model_validate_json(json.dumps({"cursor": "c", "qr_public_keys": {"k1": "short"}}))


def test_enrolment_and_errors() -> None:
    EnrolRequest.model_validate_json(
        json.dumps({"token": "t" * 32, "device_name": "一号机", "software_version": "0.1"})
    )
    with pytest.raises(ValidationError):
        EnrolRequest.model_validate_json(
            json.dumps({"token": "short", "device_name": "x", "software_version": "0.1"})
        )
    response = EnrolResponse.model_validate_json(
        json.dumps(
            {
                "kiosk_id": "k-1",
                "kiosk_secret": "ab" * 32,
                "credential_key": "cd" * 32,
                "centre": {
                    "centre_id": 1,
                    "name": "新华党群服务中心",
                    "community_id": 2,
                    "community_name": "新华社区",
                },
                "server_time": NOW.isoformat(),
            }
        )
    )
    assert response.centre.timezone == "Asia/Shanghai" and bytes.fromhex(response.kiosk_secret)
    error = ErrorResponse(code="clock_skew", message="clock off", message_zh="时钟偏差", server_time=NOW)
    assert json.loads(error.to_json_bytes())["server_time"].startswith("2024-05-01T08:00:00")
    with pytest.raises(ValidationError):
        ErrorResponse(code="Bad Code", message="m", message_zh="m")


def test_ack_and_result() -> None:
    ack = BatchAck(
        accepted=[uuid7()],
        duplicates=[],
        chain="gap",
        head_seq=5,
        server_time=NOW,
        flags=[{"event_id": None, "seq": 7, "reason": "gap", "expected": "6", "got": "7"}],
    )
    assert BatchAck.model_validate_json(ack.to_json_bytes()) == ack
    CommandResult(command_id=uuid7(), name="lock_screen", ok=True, completed_at=NOW)


def test_every_string_is_bounded() -> None:
    """No message accepts an unbounded string: every string schema has maxLength, pattern or enum."""
    components = openapi_components()

    def walk(node: object, where: str) -> None:
        if isinstance(node, dict):
            if node.get("type") == "string" and "format" not in node:
                assert "maxLength" in node or "enum" in node, where
            for key, value in node.items():
                walk(value, f"{where}.{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}[{i}]")

    walk(components, "components")


def test_openapi_components_are_self_contained() -> None:
    components = openapi_components()
    expected = {m.__name__ for m in Message.__subclasses__()} - {"Message"}
    assert {
        "TapEventIn",
        "EventBatch",
        "BatchAck",
        "HeartbeatRequest",
        "HeartbeatResponse",
        "ErrorResponse",
    } <= set(components)
    assert expected <= set(components)
    refs = set()

    def collect(node: object) -> None:
        if isinstance(node, dict):
            if "$ref" in node:
                refs.add(node["$ref"])
            for v in node.values():
                collect(v)
        elif isinstance(node, list):
            for v in node:
                collect(v)

    collect(components)
    assert refs and all(
        r.startswith("#/components/schemas/") and r.rsplit("/", 1)[1] in components for r in refs
    )
    json.dumps(components)  # serialisable as is


@settings(max_examples=150)
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_garbage_only_raises_validation_error(raw: bytes) -> None:
    for model in (TapEventIn, EventBatch, HeartbeatRequest, EnrolRequest):
        with pytest.raises(ValidationError):
            model.model_validate_json(raw)


def test_roster_presence_round_trip_and_limits() -> None:
    """Presence (protocol 2) rides the roster delta; a delta without it (an older server) still parses."""
    open_at = NOW - dt.timedelta(minutes=9)
    roster = {
        "cursor": "c-18",
        "presence": {
            "centre_id": 3,
            "as_of": NOW.isoformat(),
            "members": [
                {
                    "member_id": 5,
                    "last_tap_at": open_at.isoformat(),
                    "open": {
                        "centre_id": 4,
                        "centre_name": "西街党群服务中心",
                        "started_at": open_at.isoformat(),
                        "until": (open_at + dt.timedelta(hours=12)).isoformat(),
                        "until_reason": "max_length",
                    },
                },
                {"member_id": 6, "last_tap_at": open_at.isoformat(), "last_toggle_here": open_at.isoformat()},
            ],
        },
    }
    delta = RosterDelta.model_validate_json(json.dumps(roster))
    assert delta.presence is not None and delta.presence.members[0].open is not None
    assert delta.presence.members[0].open.until_reason == "max_length"
    assert RosterDelta.model_validate_json(delta.to_json_bytes()) == delta
    assert RosterDelta.model_validate_json(json.dumps({"cursor": "c-18"})).presence is None
    bad = json.loads(json.dumps(roster))
    bad["presence"]["members"][0]["open"]["until_reason"] = "open_elsewhere_maybe"
    with pytest.raises(ValidationError):
        RosterDelta.model_validate_json(json.dumps(bad))
    with pytest.raises(ValidationError):  # closed, like every message
        RosterDelta.model_validate_json(
            json.dumps({**roster, "presence": {**roster["presence"], "extra": 1}})
        )
