"""Bulk ingest of TapEvent batches from one kiosk: dedupe, chain check, one multi-row insert.

The kiosk uploads at least once; the server makes that exactly once by the event id (the primary key):
events already stored are acknowledged as duplicates and not touched. New events are checked against the
kiosk's chain head (``kiosks.last_seq``/``last_hash``) in ``seq`` order, and every problem is *recorded*
rather than bounced — an event is stored with ``chain_ok = false`` and a flag (``gap``,
``prev_hash_mismatch``, ``hash_mismatch``, …) and the kiosk is marked ``chain_broken`` for staff. Bouncing
would leave the kiosk retrying a poisoned batch forever and the taps would never reach anyone; storing
and flagging keeps them visible and provable. Two cases cannot be stored because the history already
holds something else in that place, and both are flagged and *not* acknowledged:

* an already stored event id sent again with a different hash (an edit after upload) — acknowledged as
  a duplicate, because the stored original stays authoritative, but flagged ``hash_mismatch``;
* a new event id whose ``seq`` is already taken by another event of this kiosk (a forked history) —
  flagged ``seq_regression`` and left out of the acknowledgement.

After a break the head re-anchors on the breaking event, so one missing event flags one place instead of
every later batch.

Speed: one SELECT for known ids, one for members, one ``INSERT … ON CONFLICT DO NOTHING`` executemany —
never the ORM unit of work, and not SQLAlchemy's per-value bind processing either: the rows go to the
DB-API driver as parameter tuples converted once (:func:`driver_params`; psycopg 3 pipelines the
executemany). Chain hashes are checked with :func:`chain_hash` (canonical bytes written straight from the
validated model); only an event that does not continue the chain goes through ``verify_chain`` for its
exact flag. Sessions are *not* recomputed here: the affected members are queued (:mod:`server.sessions.queue`) in
this transaction. QR taps go through :func:`server.qr.replay.flag_qr_replays` just before the insert,
because the rows are append-only and the replay flag must be on them when they are written. The kiosk
row is locked first (``FOR NO KEY UPDATE`` on PostgreSQL — it must not conflict with
the ``KEY SHARE`` locks that foreign-key checks of concurrent nonce and event inserts take, or two
requests of one kiosk deadlock; the write lock on SQLite), so two workers handling the same kiosk's
retries run one after the other and see each other's rows.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from protocol.chain import CHAIN_FIELDS, BreakReason, canonical_time, verify_chain
from protocol.messages import BatchAck, ChainFlag, ChainStatus, EventBatch, TapEventIn
from server.models import Kiosk, TapEvent
from server.qr.replay import flag_qr_replays
from server.sessions.queue import enqueue_members

logger = logging.getLogger(__name__)
chain_log = logging.getLogger("baodao.chain")

#: Events whose corrected time lies further ahead of the server clock than this are flagged.
FUTURE_TOLERANCE = timedelta(minutes=5)
#: Directions that belong to an identified member and therefore feed the session engine.
SESSION_DIRECTIONS = frozenset({"in", "out", "duplicate"})


@dataclass
class IngestResult:
    """The acknowledgement to send (after commit); the members queued for session recomputation."""

    ack: BatchAck
    member_ids: set[int] = field(default_factory=set)
    stored: int = 0


def chain_hash(event: TapEventIn, device_time_utc: datetime | None = None) -> str:
    """``protocol.chain.compute_hash(event.prev_hash, event)`` without ``model_dump`` or ``json.dumps``.

    The same canonical bytes (fields of :data:`CHAIN_FIELDS`, ``None`` omitted, enums by value, UUIDs as
    text, ``device_time`` in canonical UTC, sorted compact JSON), written directly in sorted key order:
    dumping the model, and even one ``json.dumps`` per event, was a large part of the ingest time. Every
    text field except ``reason`` is restricted by the validated schema to characters JSON writes as they
    are (hex digits, enum values, ``[A-Za-z0-9_+-/]``, a UUID, the canonical time), so only ``reason``
    goes through the JSON encoder. ``device_time_utc`` may be passed when the caller already has it.
    ``tests/unit/server/test_ingest_hash.py`` checks it against ``compute_hash``.
    """
    utc = device_time_utc if device_time_utc is not None else event.device_time.astimezone(UTC)
    parts = []
    if event.badge_serial is not None:
        parts.append(f'"badge_serial":"{event.badge_serial}",')
    parts.append(
        f'"clock_offset_ms":{event.clock_offset_ms},"credential_hash":"{event.credential_hash}",'
        f'"credential_kind":"{event.credential_kind.value}","device_time":"{_canonical_utc(utc)}",'
        f'"device_tz":"{event.device_tz}","direction":"{event.direction.value}",'
        f'"event_id":"{event.event_id}",'
    )
    if event.member_id is not None:
        parts.append(f'"member_id":{event.member_id},')
    parts.append(f'"prev_hash":"{event.prev_hash}",')
    if event.qr_step is not None:
        parts.append(f'"qr_step":{event.qr_step},')
    if event.reason is not None:
        parts.append(f'"reason":{_json_text(event.reason)},')
    parts.append(f'"seq":{event.seq}')
    if event.trust is not None:
        parts.append(f',"trust":"{event.trust.value}"')
    canonical = "{" + "".join(parts) + "}"
    return hashlib.sha256(bytes.fromhex(event.prev_hash) + canonical.encode()).hexdigest()


_json_text = json.JSONEncoder(ensure_ascii=False).encode
#: The fields :func:`chain_hash` writes; a change to ``CHAIN_FIELDS`` must fail loudly, not hash wrongly.
_HASHED_FIELDS = frozenset(
    [
        "badge_serial",
        "clock_offset_ms",
        "credential_hash",
        "credential_kind",
        "device_time",
        "device_tz",
        "direction",
        "event_id",
        "member_id",
        "prev_hash",
        "qr_step",
        "reason",
        "seq",
        "trust",
    ]
)
if frozenset(CHAIN_FIELDS) != _HASHED_FIELDS:  # pragma: no cover - a guard for the next protocol change
    raise ImportError("server.ingest.chain_hash does not cover protocol.chain.CHAIN_FIELDS")


def _canonical_utc(utc: datetime) -> str:
    """:func:`protocol.chain.canonical_time` of a UTC datetime, without ``strftime``."""
    if utc.year < 1000:  # strftime's %Y does not pad these: keep its exact output
        return canonical_time(utc)
    return (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T{utc.hour:02d}:{utc.minute:02d}:"
        f"{utc.second:02d}.{utc.microsecond:06d}Z"
    )


def _lock_kiosk(db: Session, kiosk_id: int) -> tuple[int, str, bool]:
    if db.get_bind().dialect.name != "postgresql":
        db.execute(text("DELETE FROM used_nonces WHERE 1 = 0"))  # take SQLite's write lock before reading
    row = db.execute(
        select(Kiosk.last_seq, Kiosk.last_hash, Kiosk.chain_broken)
        .where(Kiosk.id == kiosk_id)
        .with_for_update(key_share=True)
    ).one()
    return int(row.last_seq), str(row.last_hash), bool(row.chain_broken)


#: ``tap_events`` columns in table order: the insert's parameter tuples follow it.
COLUMNS: tuple[str, ...] = tuple(c.name for c in TapEvent.__table__.columns)


def sqlite_time(value: datetime) -> str:
    """What SQLAlchemy's ``UTCDateTime`` stores on SQLite (naive UTC text, microseconds always written),
    without going through its per-value bind processors. ``tests/unit/server/test_ingest_hash.py`` checks
    it against them."""
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    text_ = value.replace(tzinfo=None).isoformat(" ")
    return text_ if len(text_) > 19 else text_ + ".000000"  # isoformat drops a zero microsecond


_SQLITE_CONVERTED = ("event_id", "device_time", "effective_time", "received_at", "chain_ok")


def driver_params(dialect: str, rows: Sequence[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """The rows as DB-API parameter tuples in :data:`COLUMNS` order, converted as SQLAlchemy's column types
    would convert them: psycopg adapts UUIDs, aware datetimes and booleans itself; SQLite gets the UUID
    as 32 hex digits, times as :func:`sqlite_time`, booleans as 0/1."""
    if dialect == "postgresql":
        return [tuple(row[c] for c in COLUMNS) for row in rows]
    plain = [c for c in COLUMNS if c not in _SQLITE_CONVERTED]
    order = [*plain, *_SQLITE_CONVERTED]
    back = [order.index(c) for c in COLUMNS]  # positions of COLUMNS in the built tuple
    stamps: dict[datetime, str] = {}  # received_at is one value per batch
    out = []
    for row in rows:
        received = row["received_at"]
        if received not in stamps:
            stamps[received] = sqlite_time(received)
        built = [row[c] for c in plain]
        built += (
            row["event_id"].hex,
            sqlite_time(row["device_time"]),
            sqlite_time(row["effective_time"]),
            stamps[received],
            int(row["chain_ok"]),
        )
        out.append(tuple([built[i] for i in back]))
    return out


def insert_sql(dialect: str, *, on_conflict: bool = True) -> str:
    """The driver-level ``INSERT`` of :data:`COLUMNS` (``ON CONFLICT (event_id) DO NOTHING`` for ingest)."""
    mark = "%s" if dialect == "postgresql" else "?"
    sql = f"INSERT INTO tap_events ({', '.join(COLUMNS)}) VALUES ({', '.join([mark] * len(COLUMNS))})"
    return sql + (" ON CONFLICT (event_id) DO NOTHING" if on_conflict else "")


def _insert_rows(db: Session, rows: Sequence[dict[str, Any]]) -> None:
    """One ``executemany`` through the driver (psycopg 3 pipelines it): SQLAlchemy's per-value bind
    processing of 500 rows × 22 columns cost more than the database's own work."""
    conn = db.connection()
    dialect = conn.dialect.name
    conn.exec_driver_sql(insert_sql(dialect), driver_params(dialect, rows))


def _existing(db: Session, sql_pg: str, sql_lite: str, values: list[Any]) -> list[tuple[Any, ...]]:
    """Rows of a ``… IN (values)`` lookup through the driver: one array parameter on PostgreSQL, plain
    placeholders on SQLite (500 of them is within its limit) — SQLAlchemy's expanding ``IN`` re-rendered
    the statement for every request."""
    conn = db.connection()
    if conn.dialect.name == "postgresql":
        return [tuple(r) for r in conn.exec_driver_sql(sql_pg, (values,))]
    return [
        tuple(r) for r in conn.exec_driver_sql(sql_lite.format(", ".join("?" * len(values))), tuple(values))
    ]


def _flag(event: TapEventIn, reason: BreakReason, expected: object, got: object) -> ChainFlag:
    return ChainFlag(
        event_id=event.event_id,
        seq=event.seq,
        reason=reason,
        expected=str(expected)[:200],
        got=str(got)[:200],
    )


def _row(event: TapEventIn, kiosk: Kiosk, now: datetime, chain_ok: bool, flags: list[str]) -> dict[str, Any]:
    # The offset is "server time minus device time" as the kiosk last measured it (protocol.signing:
    # "device time + measured offset" is the kiosk's estimate of server time).
    effective = event.device_time + timedelta(milliseconds=event.clock_offset_ms)
    if effective - now > FUTURE_TOLERANCE:
        flags.append("future_time")
    return {
        "event_id": event.event_id,
        "kiosk_id": kiosk.id,
        "centre_id": kiosk.centre_id,
        "community_id": kiosk.community_id,
        "seq": event.seq,
        "prev_hash": event.prev_hash,
        "hash": event.hash,
        "credential_kind": str(event.credential_kind),
        "credential_hash": event.credential_hash,
        "member_id": event.member_id,
        "direction": str(event.direction),
        "trust": None if event.trust is None else str(event.trust),
        "qr_step": event.qr_step,
        "badge_serial": event.badge_serial,
        "reason": event.reason,
        "device_time": event.device_time,
        "device_tz": event.device_tz,
        "clock_offset_ms": event.clock_offset_ms,
        "effective_time": effective,
        "received_at": now,
        "chain_ok": chain_ok,
        "flags": ",".join(flags)[:200] or None,
    }


def chain_hashes(batch: EventBatch) -> dict[uuid.UUID, str]:
    """Every event's :func:`chain_hash`, computed before any lock is taken (see :func:`ingest_batch`)."""
    return {e.event_id: chain_hash(e) for e in batch.events}


def ingest_batch(
    db: Session,
    kiosk: Kiosk,
    batch: EventBatch,
    *,
    now: datetime,
    hashes: dict[uuid.UUID, str] | None = None,
) -> IngestResult:
    """Store a batch inside the caller's transaction; the caller commits, then sends ``result.ack``.

    ``hashes`` (from :func:`chain_hashes`) lets the caller do the hashing before the transaction holds
    locks — on SQLite the one database write lock is held from the nonce insert to the commit.
    """
    head_seq, head_hash, was_broken = _lock_kiosk(db, kiosk.id)
    events = sorted(batch.events, key=lambda e: e.seq)
    stored_hash: dict[uuid.UUID, str] = {}
    if db.get_bind().dialect.name == "postgresql":
        ids: list[Any] = [e.event_id for e in events]
    else:
        ids = [e.event_id.hex for e in events]
    for event_id, hash_ in _existing(
        db,
        "SELECT event_id, hash FROM tap_events WHERE event_id = ANY(%s)",
        "SELECT event_id, hash FROM tap_events WHERE event_id IN ({})",
        ids,
    ):
        stored_hash[event_id if isinstance(event_id, uuid.UUID) else uuid.UUID(event_id)] = hash_
    flags: list[ChainFlag] = []
    duplicates: list[uuid.UUID] = []
    fresh: list[TapEventIn] = []
    for event in events:
        if event.event_id in stored_hash:
            duplicates.append(event.event_id)
            if stored_hash[event.event_id] != event.hash:
                flags.append(_flag(event, BreakReason.HASH_MISMATCH, stored_hash[event.event_id], event.hash))
        else:
            fresh.append(event)

    taken: set[int] = set()
    low = [e.seq for e in fresh if e.seq <= head_seq]
    if low:
        taken = set(
            db.scalars(select(TapEvent.seq).where(TapEvent.kiosk_id == kiosk.id, TapEvent.seq.in_(low))).all()
        )
    claimed = {e.member_id for e in fresh if e.member_id is not None}
    known: set[int] = set()
    if claimed:
        known = {
            int(r[0])
            for r in _existing(
                db,
                "SELECT id FROM members WHERE id = ANY(%s)",
                "SELECT id FROM members WHERE id IN ({})",
                sorted(claimed),
            )
        }

    rows: list[dict[str, Any]] = []
    accepted: list[uuid.UUID] = []
    since: dict[int, datetime] = {}
    for event in fresh:
        if event.seq in taken:
            flags.append(_flag(event, BreakReason.SEQ_REGRESSION, f"> {head_seq}", event.seq))
            chain_log.warning("kiosk %s sent another event for taken seq %d", kiosk.kiosk_uid, event.seq)
            continue
        event_flags: list[str] = []
        chain_ok = (
            event.seq == head_seq + 1
            and event.prev_hash == head_hash
            and (hashes[event.event_id] if hashes is not None else chain_hash(event)) == event.hash
        )
        if chain_ok:  # the common case, checked without building a ChainResult
            head_seq, head_hash = event.seq, event.hash
        else:
            result = verify_chain([event], start_prev_hash=head_hash, start_seq=head_seq + 1)
            if result.first_break is not None:
                brk = result.first_break
                flags.append(_flag(event, brk.reason, brk.expected, brk.got))
                event_flags.append(str(brk.reason))
                if event.seq > head_seq:  # re-anchor so one break is flagged once
                    head_seq, head_hash = event.seq, event.hash
            else:
                head_seq, head_hash = result.head_seq, result.head_hash
            chain_ok = result.ok
        row = _row(event, kiosk, now, chain_ok, event_flags)
        if event.member_id is not None and event.member_id not in known:
            row["member_id"] = None
            row["flags"] = ",".join(filter(None, [row["flags"], f"unknown_member:{event.member_id}"]))[:200]
        elif event.member_id is not None and row["direction"] in SESSION_DIRECTIONS:
            at = row["effective_time"]
            if event.member_id not in since or at < since[event.member_id]:
                since[event.member_id] = at
        rows.append(row)
        accepted.append(event.event_id)

    if rows:
        flag_qr_replays(db, kiosk.id, rows)  # flags must be on the rows before the append-only insert
        _insert_rows(db, rows)
        # Same transaction as the taps: a committed tap always has current sessions or a queue row.
        enqueue_members(db, since, now=now)
    broken = bool(flags)
    db.execute(
        update(Kiosk)
        .where(Kiosk.id == kiosk.id)
        .values(last_seq=head_seq, last_hash=head_hash, chain_broken=was_broken or broken, last_seen_at=now)
    )
    if flags:
        chain_log.warning(
            "chain problems from kiosk %s: %s",
            kiosk.kiosk_uid,
            "; ".join(f"seq {f.seq} {f.reason}" for f in flags[:10]),
        )
    if not flags:
        status = ChainStatus.OK
    elif all(f.reason is BreakReason.GAP for f in flags):
        status = ChainStatus.GAP
    else:
        status = ChainStatus.BROKEN
    ack = BatchAck(
        accepted=accepted,
        duplicates=duplicates,
        chain=status,
        flags=flags,
        head_seq=head_seq,
        server_time=now,
    )
    return IngestResult(ack=ack, member_ids=set(since), stored=len(rows))
