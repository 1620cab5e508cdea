"""The store step's shortcut (a batch continuing the chain head is inserted as prepared, nothing looked
up) stores exactly what deciding every event against the stored ids and seqs stores.

Both are the one pipeline of :mod:`server.ingest` (the same prepared rows, flags and queue entries); the
shortcut only skips the lookups. Each example ingests the same batches twice — continuing into one
SQLite file, event by event into another — and compares every stored row (taps, chain heads, session
queue, QR uses) and the acknowledgements. The HTTP tests (``api/test_events.py``) run both on SQLite and
PostgreSQL.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from protocol.chain import GENESIS_HASH, compute_hash
from protocol.ids import uuid7
from protocol.messages import EventBatch
from server.db import make_engine
from server.ingest import BatchCollision, IngestResult, IngestSettings, look_up, prepare, store_batch
from server.ingest_db import codec_for
from server.models import Community, Credential, Kiosk, Member, ServiceCentre, Unit

NOW = datetime(2026, 11, 28, 2, 0, tzinfo=UTC)
MEMBERS = (1, 2, 3)
OUTSIDE = 4  # a member of another community: outside the kiosks' roster
UNKNOWN_MEMBER = 999_999
KIOSKS = ("ka", "kb")
SETTINGS = IngestSettings(drift_bound_ms=120_000, future_tolerance=timedelta(minutes=5))
_HEX = "0123456789abcdef"


def _seed(url: str) -> None:
    """Two kiosks of one centre, three members of its community and one of another, with the same ids in
    every database; the card ``1…1`` is member 2's and the badge ``2…2`` the outside member's (an
    ``unknown`` tap of either is resolved by the server)."""
    engine = sa.create_engine(url)
    with Session(engine) as db, db.begin():
        db.add_all([Community(id=1, code="C1", name="社区"), Community(id=2, code="C2", name="别的社区")])
        db.flush()
        db.add_all(
            [ServiceCentre(id=1, code="SC1", name="中心", community_id=1), Unit(id=1, code="U1", name="单位")]
        )
        db.flush()
        db.add_all(
            Member(id=m, member_no=f"M{m}", name=f"成员{m}", unit_id=1, community_id=1) for m in MEMBERS
        )
        db.add(Member(id=OUTSIDE, member_no="M4", name="外来", unit_id=1, community_id=2))
        db.flush()
        db.add_all(
            [
                Credential(member_id=2, kind="card", value_hash="1" * 64),
                Credential(member_id=OUTSIDE, kind="badge_qr", value_hash="2" * 64),
            ]
        )
        db.add_all(
            Kiosk(id=i + 1, kiosk_uid=uid, centre_id=1, community_id=1, name=uid, secret="ab" * 32)
            for i, uid in enumerate(KIOSKS)
        )
    engine.dispose()


@contextmanager
def _twin_databases(template: Path) -> Iterator[tuple[str, str]]:
    with tempfile.TemporaryDirectory(prefix="ingest-pipeline-") as tmp:
        urls = []
        for name in ("continuing", "deciding"):
            path = Path(tmp) / f"{name}.sqlite3"
            shutil.copyfile(template, path)
            urls.append(f"sqlite:///{path}")
            _seed(urls[-1])
        yield urls[0], urls[1]


def _ingest(url: str, kiosk_uid: str, body: dict[str, Any], *, continuing: bool) -> tuple[IngestResult, str]:
    """One upload's transaction, as ``server.api.events`` runs it (without HTTP and signing); also which
    way the batch was stored: ``continued``, ``decided`` or ``collided`` (then decided)."""
    batch = EventBatch.model_validate_json(json.dumps(body))  # as it arrives: strict messages take JSON
    engine = make_engine(url)
    try:
        with Session(engine) as db:
            kiosk = db.scalars(sa.select(Kiosk).where(Kiosk.kiosk_uid == kiosk_uid)).one()
            ready = _prepare(db, kiosk, batch)
            try:
                result = store_batch(db, kiosk, ready, now=NOW, continuing=continuing)
                route = "continued" if result.continued else "decided"
            except BatchCollision:
                db.rollback()
                result = store_batch(db, kiosk, ready, now=NOW, continuing=False)
                route = "collided"
            db.commit()
            return result, route
    finally:
        engine.dispose()


def _prepare(db: Session, kiosk: Kiosk, batch: EventBatch) -> Any:
    codec = codec_for(db.get_bind().dialect.name)
    return prepare(batch, look_up(db, kiosk, batch), now=NOW, settings=SETTINGS, codec=codec)


def _stored(url: str) -> dict[str, list[tuple[Any, ...]]]:
    engine = sa.create_engine(url)
    queries = {
        "taps": "SELECT * FROM tap_events ORDER BY kiosk_id, seq",
        "kiosks": "SELECT id, last_seq, last_hash, chain_broken, last_seen_at, last_tap_offset_ms FROM kiosks "
        "ORDER BY id",
        "queue": "SELECT member_id, since, enqueued_at FROM session_recompute_queue ORDER BY member_id",
        "qr": "SELECT fingerprint, kind, kiosk_id, event_id, qr_step, seen_at, replay_of FROM qr_token_uses "
        "ORDER BY kiosk_id, event_id",
    }
    with engine.connect() as conn:
        out = {name: [tuple(r) for r in conn.exec_driver_sql(sql)] for name, sql in queries.items()}
    engine.dispose()
    return out


# --- event generation -------------------------------------------------------------------------------

_zones = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
_times = st.one_of(
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2035, 1, 1)),
    st.datetimes(min_value=datetime(2026, 11, 28, 1), max_value=datetime(2026, 11, 28, 3)),  # around NOW
    st.sampled_from([datetime(2, 1, 2), datetime(1970, 1, 1), datetime(9998, 12, 30)]),  # clocks gone wild
).flatmap(lambda t: st.sampled_from([t, t.replace(microsecond=0)]))

_credential = st.one_of(
    st.tuples(st.sampled_from(["card", "id_card", "pin"]), st.none(), st.none()),
    st.tuples(st.just("qr"), st.integers(0, 50), st.none()),  # phone code: a small step range repeats
    st.tuples(st.just("qr"), st.none(), st.sampled_from(["B1", "B2"])),  # badges
)


@st.composite
def _event_fields(draw: st.DrawFn) -> dict[str, Any]:
    kind, step, serial = draw(_credential)
    fields: dict[str, Any] = {
        "credential_kind": kind,
        "credential_hash": draw(
            st.sampled_from(["1" * 64, "2" * 64, "".join(draw(st.permutations(_HEX))) * 4])
        ),
        "member_id": draw(st.sampled_from([None, *MEMBERS, OUTSIDE, UNKNOWN_MEMBER])),
        "direction": draw(st.sampled_from(["in", "out", "duplicate", "unknown", "rejected"])),
        "device_time": draw(_times).replace(tzinfo=draw(_zones)),
        "device_tz": "Asia/Shanghai",
        "clock_offset_ms": draw(
            st.sampled_from([0, 120, -5 * 3600 * 1000, 10**12, -(10**12), draw(st.integers(-(10**9), 10**9))])
        ),
        "trust": draw(st.sampled_from([None, "high", "low"])),
        "reason": draw(st.none() | st.text(max_size=30)),
    }
    if step is not None:
        fields["qr_step"] = step
    if serial is not None:
        fields["badge_serial"] = serial
    return fields


def _chain(fields: list[dict[str, Any]], start_seq: int, prev: str) -> tuple[list[dict[str, Any]], str]:
    out = []
    for i, f in enumerate(fields):
        event = {"event_id": str(uuid7()), "seq": start_seq + i, "prev_hash": prev, **f}
        event["hash"] = prev = compute_hash(prev, event)
        out.append({**event, "device_time": f["device_time"].isoformat()})
    return out, prev


# --- tests ------------------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    batches=st.lists(
        st.tuples(st.sampled_from(KIOSKS), st.lists(_event_fields(), min_size=1, max_size=12)),
        min_size=1,
        max_size=4,
    )
)
def test_continuing_batches_store_what_deciding_each_event_stores(
    sqlite_template: Path, batches: list[Any]
) -> None:
    heads = {uid: (1, GENESIS_HASH) for uid in KIOSKS}
    with _twin_databases(sqlite_template) as (continuing_url, deciding_url):
        for uid, fields in batches:
            seq, prev = heads[uid]
            events, last = _chain(fields, seq, prev)
            heads[uid] = (seq + len(events), last)
            body = {"events": events}
            fast, route = _ingest(continuing_url, uid, body, continuing=True)
            slow, _ = _ingest(deciding_url, uid, body, continuing=False)
            assert route == "continued", "a batch continuing its kiosk's chain is inserted as prepared"
            assert fast.ack.to_json_bytes() == slow.ack.to_json_bytes()
            assert fast.member_ids == slow.member_ids
        assert _stored(continuing_url) == _stored(deciding_url)


def test_a_batch_that_does_not_continue_the_chain_is_decided_event_by_event(sqlite_template: Path) -> None:
    fields = [{**_plain_fields(i), "member_id": 1} for i in range(6)]
    events, _ = _chain(fields, 1, GENESIS_HASH)
    with _twin_databases(sqlite_template) as (continuing_url, deciding_url):
        routes = []
        for body in (
            {"events": events[:2]},
            {"events": events[3:]},
            {"events": events[:4]},
        ):  # gap, then retry
            fast, route = _ingest(continuing_url, "ka", body, continuing=True)
            slow, _ = _ingest(deciding_url, "ka", body, continuing=False)
            assert fast.ack.to_json_bytes() == slow.ack.to_json_bytes()
            routes.append(route)
        assert routes == ["continued", "decided", "decided"]
        stored = _stored(continuing_url)
        assert stored == _stored(deciding_url)
        assert [row[4] for row in stored["taps"]] == [1, 2, 3, 4, 5, 6]


def test_ids_another_kiosk_already_sent_are_rolled_back_and_decided_event_by_event(
    sqlite_template: Path,
) -> None:
    fields = [{**_plain_fields(i), "member_id": 2} for i in range(3)]
    events, _ = _chain(fields, 1, GENESIS_HASH)
    with _twin_databases(sqlite_template) as (continuing_url, deciding_url):
        for url in (continuing_url, deciding_url):
            _ingest(url, "ka", {"events": events}, continuing=False)
        engine = make_engine(continuing_url)
        with Session(engine) as db:  # the continuing insert itself refuses, and leaves nothing behind
            batch = EventBatch.model_validate_json(json.dumps({"events": events}))
            kiosk = db.scalars(sa.select(Kiosk).where(Kiosk.kiosk_uid == "kb")).one()
            ready = _prepare(db, kiosk, batch)
            with pytest.raises(BatchCollision, match="3 of 3 event ids already stored"):
                store_batch(db, kiosk, ready, now=NOW)
            db.rollback()
        engine.dispose()
        cloned, route = _ingest(continuing_url, "kb", {"events": events}, continuing=True)  # a cloned outbox
        reference, _ = _ingest(deciding_url, "kb", {"events": events}, continuing=False)
        assert route == "collided"
        assert cloned.ack.to_json_bytes() == reference.ack.to_json_bytes()
        assert len(cloned.ack.duplicates) == 3 and cloned.ack.accepted == []
        assert _stored(continuing_url) == _stored(deciding_url)


def _plain_fields(i: int) -> dict[str, Any]:
    return {
        "credential_kind": "card",
        "credential_hash": "3" * 64,
        "direction": "in" if i % 2 == 0 else "out",
        "device_time": NOW - timedelta(hours=3) + timedelta(minutes=10 * i),
        "device_tz": "Asia/Shanghai",
        "clock_offset_ms": 250,
    }


def test_uploads_checkpoint_the_wal_after_their_write_section(sqlite_template: Path) -> None:
    """Uploads turn SQLite's automatic checkpoint off for their write section and copy the WAL into the
    database file themselves, after it, every ``SQLITE_CHECKPOINT_EVERY_EVENTS`` events
    (server.sqlite_writes)."""
    from server import create_app
    from tests.conftest import TEST_KEYS
    from tests.factories import signed_headers

    with tempfile.TemporaryDirectory(prefix="ingest-checkpoint-") as tmp:
        path = Path(tmp) / "baodao.sqlite3"
        shutil.copyfile(sqlite_template, path)
        _seed(f"sqlite:///{path}")
        app = create_app(
            {
                "DATABASE_URL": f"sqlite:///{path}",
                "TESTING": True,
                "SQLITE_CHECKPOINT_EVERY_EVENTS": 5,
                **TEST_KEYS,
            }
        )
        engine = app.extensions["baodao_db"].engine
        with Session(engine) as db:
            kiosk = db.scalars(sa.select(Kiosk).where(Kiosk.kiosk_uid == "ka")).one()
            db.expunge(kiosk)
        events, _ = _chain([{**_plain_fields(i), "member_id": 1} for i in range(6)], 1, GENESIS_HASH)
        client = app.test_client()

        def upload(batch: list[dict[str, Any]]) -> None:
            raw = json.dumps({"events": batch}).encode()
            response = client.post(
                "/api/v1/kiosk/events",
                data=raw,
                headers=signed_headers(kiosk, "POST", "/api/v1/kiosk/events", raw),
            )
            assert response.status_code == 200, response.get_data(as_text=True)

        def taps_in_database_file() -> int:  # immutable: the main file alone, whatever the WAL holds
            with closing(sqlite3.connect(f"file:{path}?immutable=1", uri=True)) as conn:
                return int(conn.execute("SELECT count(*) FROM tap_events").fetchone()[0])

        upload(events[:3])
        assert taps_in_database_file() == 0  # committed to the WAL only
        upload(events[3:])
        assert taps_in_database_file() == 6  # 6 ≥ 5 events stored: checkpointed after the write section
        with engine.connect() as conn:  # the pooled connection has SQLite's automatic checkpoint back
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one() == 1000
        engine.dispose()


def test_the_shortcut_and_its_collision_check_work_on_both_databases(db_url: str) -> None:
    """On both drivers the insert's row count tells a continuing batch from one whose ids another kiosk
    stored (psycopg's executemany sums the rows; a wrong count would send every batch the long way)."""
    _seed(db_url)
    events, _ = _chain([{**_plain_fields(i), "member_id": 1} for i in range(3)], 1, GENESIS_HASH)
    first, route = _ingest(db_url, "ka", {"events": events}, continuing=True)
    assert route == "continued" and first.stored == 3 and first.ack.chain == "ok"
    cloned, route = _ingest(db_url, "kb", {"events": events}, continuing=True)
    assert route == "collided" and cloned.stored == 0 and len(cloned.ack.duplicates) == 3
