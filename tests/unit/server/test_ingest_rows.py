"""The ingest's prepared rows are in the driver's form exactly as SQLAlchemy's column types would write
them (server.ingest_db), and the background recomputer steps aside while uploads arrive but never for
longer than its bound."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine
from sqlalchemy.dialects import sqlite

from protocol.chain import GENESIS_HASH, compute_hash
from protocol.ids import uuid7
from protocol.messages import EventBatch
from server.ingest import IngestSettings, Lookups, prepare
from server.ingest_db import ROW_COLUMNS, codec_for, sqlite_time
from server.models import TapEvent
from server.sessions.queue import Recomputer

_SQLITE = sqlite.dialect()


def _sa_bind(column: str, value: object) -> object:
    """What SQLAlchemy would send to sqlite3 for ``value`` in ``tap_events.column``."""
    processor = TapEvent.__table__.c[column].type.dialect_impl(_SQLITE).bind_processor(_SQLITE)
    return value if processor is None else processor(value)


@settings(max_examples=300, deadline=None)
@given(
    at=st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    tz_minutes=st.integers(-14 * 60, 14 * 60),
)
def test_sqlite_time_is_what_utcdatetime_stores(at, tz_minutes):
    aware = at.replace(tzinfo=timezone(timedelta(minutes=tz_minutes)))
    assert sqlite_time(aware) == _sa_bind("device_time", aware)


@settings(max_examples=100, deadline=None)
@given(
    taps=st.lists(
        st.tuples(
            st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
            st.integers(-14 * 60, 14 * 60),
            st.sampled_from([0, -120, 10**7, -(10**12), 10**12]),
            st.sampled_from([None, 7, 99]),
            st.sampled_from(["in", "unknown"]),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_prepared_sqlite_rows_are_what_sqlalchemy_stores_for_the_native_rows(taps):
    """The same batch prepared for PostgreSQL (native values, as psycopg takes them) and for SQLite: every
    SQLite value is SQLAlchemy's bind processing of the native one."""
    prev, events = GENESIS_HASH, []
    for i, (at, tz_minutes, offset, member_id, direction) in enumerate(taps):
        device_time = at.replace(tzinfo=UTC).astimezone(timezone(timedelta(minutes=tz_minutes)))
        event = {
            "event_id": str(uuid7()), "seq": i + 1, "prev_hash": prev, "credential_kind": "qr",
            "credential_hash": "ef" * 32, "member_id": member_id, "direction": direction, "trust": "low",
            "qr_step": 12, "reason": "原因", "device_time": device_time, "device_tz": "Asia/Shanghai",
            "clock_offset_ms": offset,
        }  # fmt: skip
        event["hash"] = prev = compute_hash(prev, event)
        events.append({**event, "device_time": device_time.isoformat()})
    batch = EventBatch.model_validate_json(json.dumps({"events": events}))
    lookups = Lookups(members={7: (1, 1)}, resolved={("qr", "ef" * 32): 8}, scope=None)
    rows = {}
    for dialect in ("postgresql", "sqlite"):
        now = datetime(2026, 12, 1, 8, tzinfo=UTC)
        settings_ = IngestSettings(drift_bound_ms=120_000, future_tolerance=timedelta(minutes=5))
        rows[dialect] = prepare(batch, lookups, now=now, settings=settings_, codec=codec_for(dialect)).rows
    for native, lite in zip(rows["postgresql"], rows["sqlite"], strict=True):
        assert len(native) == len(ROW_COLUMNS)
        assert lite == tuple(_sa_bind(c, v) for c, v in zip(ROW_COLUMNS, native, strict=True))


@pytest.fixture
def recomputer():
    engine = create_engine("sqlite://")
    yield Recomputer(engine, interval=2.0, quiet=0.5, max_defer=10.0)
    engine.dispose()


def test_recomputer_waits_while_uploads_arrive_but_not_beyond_max_defer(recomputer, monkeypatch):
    monkeypatch.setattr(recomputer, "_last_upload", 100.0)
    assert recomputer.defer_for(now=100.1) == pytest.approx(0.4)  # an upload 0.1 s ago: wait for quiet
    monkeypatch.setattr(recomputer, "_last_upload", 109.9)
    assert recomputer.defer_for(now=110.0) == pytest.approx(0.1)  # still arriving, 9.9 s deferred so far
    monkeypatch.setattr(recomputer, "_last_upload", 110.15)
    assert recomputer.defer_for(now=110.2) == 0.0  # 10.1 s deferred: drain now, uploads or not
    assert recomputer.defer_for(now=110.3) == 0.0  # and stays forced until a drain empties the queue


def test_recomputer_drains_at_once_when_uploads_stopped_or_quiet_is_off(recomputer, monkeypatch):
    monkeypatch.setattr(recomputer, "_last_upload", 100.0)
    assert recomputer.defer_for(now=100.6) == 0.0
    recomputer.quiet = 0
    assert recomputer.defer_for(now=100.01) == 0.0


def test_note_upload_is_seen_by_the_recomputer(recomputer):
    recomputer.note_upload()
    assert recomputer.defer_for() > 0
