"""The ingest's driver-level fast path writes exactly what SQLAlchemy's column types would write, and the
background recomputer steps aside while uploads arrive but never for longer than its bound."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine
from sqlalchemy.dialects import sqlite

from server.ingest import COLUMNS, driver_params, sqlite_time
from server.models import TapEvent
from server.sessions import queue
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


def test_driver_params_match_sqlalchemy_bind_processing_on_sqlite():
    now = datetime.now(UTC)
    row = {
        "event_id": uuid.uuid4(), "kiosk_id": 3, "centre_id": 2, "community_id": 1, "seq": 7,
        "prev_hash": "ab" * 32, "hash": "cd" * 32, "credential_kind": "qr", "credential_hash": "ef" * 32,
        "member_id": None, "direction": "in", "trust": "low", "qr_step": 12, "badge_serial": None,
        "reason": "原因", "device_time": now.astimezone(timezone(timedelta(hours=8))), "device_tz": "Asia/Shanghai",
        "clock_offset_ms": -120, "effective_time": now - timedelta(milliseconds=120), "received_at": now,
        "chain_ok": False, "flags": "gap",
    }  # fmt: skip
    assert set(COLUMNS) == set(row)
    (params,) = driver_params("sqlite", [row])
    assert params == tuple(_sa_bind(c, row[c]) for c in COLUMNS)
    (pg,) = driver_params("postgresql", [row])
    assert pg == tuple(row[c] for c in COLUMNS)


@pytest.fixture
def recomputer():
    engine = create_engine("sqlite://")
    yield Recomputer(engine, quiet=0.5, max_defer=10.0)
    engine.dispose()


def test_recomputer_waits_while_uploads_arrive_but_not_beyond_max_defer(recomputer, monkeypatch):
    monkeypatch.setattr(queue, "_last_upload", 100.0)
    assert recomputer.defer_for(now=100.1) == pytest.approx(0.4)  # an upload 0.1 s ago: wait for quiet
    monkeypatch.setattr(queue, "_last_upload", 109.9)
    assert recomputer.defer_for(now=110.0) == pytest.approx(0.1)  # still arriving, 9.9 s deferred so far
    monkeypatch.setattr(queue, "_last_upload", 110.15)
    assert recomputer.defer_for(now=110.2) == 0.0  # 10.1 s deferred: drain now, uploads or not
    assert recomputer.defer_for(now=110.3) == 0.0  # and stays forced until a drain empties the queue


def test_recomputer_drains_at_once_when_uploads_stopped_or_quiet_is_off(recomputer, monkeypatch):
    monkeypatch.setattr(queue, "_last_upload", 100.0)
    assert recomputer.defer_for(now=100.6) == 0.0
    recomputer.quiet = 0
    assert recomputer.defer_for(now=100.01) == 0.0


def test_note_upload_is_seen_by_the_recomputer(recomputer):
    queue.note_upload()
    assert recomputer.defer_for() > 0
