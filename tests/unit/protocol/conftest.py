"""Factories shared by the protocol tests."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from protocol.chain import GENESIS_HASH, compute_hash
from protocol.hashing import credential_hash
from protocol.ids import uuid7
from protocol.messages import TapEventIn

CREDENTIAL_KEY = bytes(range(32))
SHANGHAI = dt.timezone(dt.timedelta(hours=8))


def make_event_fields(seq: int, prev_hash: str, **overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "event_id": uuid7(),
        "seq": seq,
        "prev_hash": prev_hash,
        "credential_kind": "card",
        "credential_hash": credential_hash(CREDENTIAL_KEY, "card", f"04A23B{seq % 256:02X}"),
        "member_id": 1000 + seq,
        "direction": "in" if seq % 2 else "out",
        "device_time": dt.datetime(2024, 5, 1, 8, 30, tzinfo=SHANGHAI) + dt.timedelta(seconds=seq),
        "device_tz": "Asia/Shanghai",
        "clock_offset_ms": -120,
    }
    fields.update(overrides)
    return fields


def make_chain(n: int, prev_hash: str = GENESIS_HASH, start_seq: int = 1) -> list[TapEventIn]:
    """``n`` correctly chained events, built the way a kiosk builds them."""
    events = []
    for seq in range(start_seq, start_seq + n):
        fields = make_event_fields(seq, prev_hash)
        prev_hash = compute_hash(prev_hash, fields)
        events.append(TapEventIn(**fields, hash=prev_hash))
    return events


@pytest.fixture
def chain10() -> list[TapEventIn]:
    return make_chain(10)
