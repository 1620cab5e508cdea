"""The ingest's fast chain hash is byte-for-byte the protocol's ``compute_hash``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.chain import GENESIS_HASH, compute_hash
from protocol.ids import uuid7
from protocol.messages import TapEventIn
from server.ingest_hash import chain_hash

optional_text = st.one_of(st.none(), st.text(min_size=1, max_size=20).filter(lambda s: "\x00" not in s))


@settings(max_examples=200, deadline=None)
@given(
    kind=st.sampled_from(["card", "qr_phone", "qr_badge", "pin"]),
    member=st.one_of(st.none(), st.integers(1, 10**6)),
    direction=st.sampled_from(["in", "out", "duplicate", "unknown", "rejected"]),
    trust=st.sampled_from([None, "high", "low"]),
    reason=optional_text,
    offset=st.integers(-(10**9), 10**9),
    micros=st.integers(0, 10**12),
    tz_hours=st.integers(-12, 14),
)
def test_chain_hash_matches_compute_hash(kind, member, direction, trust, reason, offset, micros, tz_hours):
    at = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)
    wire = {
        "event_id": str(uuid7()),
        "seq": 3,
        "prev_hash": "ab" * 32,
        "credential_kind": "qr" if kind.startswith("qr") else kind,
        "credential_hash": "cd" * 32,
        "member_id": member,
        "direction": direction,
        "device_time": at.astimezone(timezone(timedelta(hours=tz_hours))).isoformat(),
        "device_tz": "Asia/Shanghai",
        "clock_offset_ms": offset,
        "trust": trust,
        "reason": reason,
        "qr_step": 12345 if kind == "qr_phone" else None,
        "badge_serial": "B7K2M9Q4" if kind == "qr_badge" else None,
        "hash": GENESIS_HASH,
    }
    event = TapEventIn.model_validate_json(json.dumps(wire))
    assert chain_hash(event) == compute_hash(event.prev_hash, event)
