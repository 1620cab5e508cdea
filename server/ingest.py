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
retries run one after the other and see each other's rows. On SQLite the upload prepares the batch
before taking that lock (:mod:`server.ingest_sqlite`), and a batch that continues the chain head is
inserted as prepared instead of going through the general path below.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import bindparam, select, text, update
from sqlalchemy.orm import Session

from protocol.chain import CHAIN_FIELDS, BreakReason, canonical_time, verify_chain
from protocol.messages import BatchAck, ChainFlag, ChainStatus, EventBatch, TapEventIn
from server.models import Kiosk, TapEvent
from server.qr.replay import flag_qr_replays
from server.sessions.queue import enqueue_members
from server.sessions.store import SESSION_TIMES

if TYPE_CHECKING:
    from server.ingest_sqlite import PreparedBatch

logger = logging.getLogger(__name__)
chain_log = logging.getLogger("baodao.chain")

#: Events whose corrected time lies further ahead of the server clock than this are flagged.
FUTURE_TOLERANCE = timedelta(minutes=5)
#: Directions that belong to an identified member and therefore feed the session engine.
SESSION_DIRECTIONS = frozenset({"in", "out", "duplicate"})


class KioskLike(Protocol):
    """What ingest needs of the uploading kiosk: :class:`server.api.auth.KioskAuth` or the ORM ``Kiosk``."""

    @property
    def id(self) -> int: ...
    @property
    def kiosk_uid(self) -> str: ...
    @property
    def centre_id(self) -> int: ...
    @property
    def community_id(self) -> int: ...


@dataclass
class IngestResult:
    """What a stored batch comes to; :attr:`ack` is built on first use, so a caller holding a lock can
    commit and release it first (on SQLite the whole server waits for that lock)."""

    accepted: list[uuid.UUID]
    duplicates: list[uuid.UUID]
    flags: list[ChainFlag]
    head_seq: int
    server_time: datetime
    member_ids: set[int] = field(default_factory=set)
    stored: int = 0
    prepared_path: bool = False  # stored as prepared before the lock (server.ingest_sqlite)

    @cached_property
    def ack(self) -> BatchAck:
        """The acknowledgement to send once the transaction is committed."""
        if not self.flags:
            status = ChainStatus.OK
        elif all(f.reason is BreakReason.GAP for f in self.flags):
            status = ChainStatus.GAP
        else:
            status = ChainStatus.BROKEN
        return BatchAck(
            accepted=self.accepted,
            duplicates=self.duplicates,
            chain=status,
            flags=self.flags,
            head_seq=self.head_seq,
            server_time=self.server_time,
        )


def chain_hash(
    event: TapEventIn, canonical_device_time: str | None = None, event_id_hex: str | None = None
) -> str:
    """``protocol.chain.compute_hash(event.prev_hash, event)`` without ``model_dump`` or ``json.dumps``.

    The same canonical bytes (fields of :data:`CHAIN_FIELDS`, ``None`` omitted, enums by value, UUIDs as
    text, ``device_time`` in canonical UTC, sorted compact JSON), written directly in sorted key order:
    dumping the model, and even one ``json.dumps`` per event, was a large part of the ingest time. Every
    text field except ``reason`` is restricted by the validated schema to characters JSON writes as they
    are (hex digits, enum values, ``[A-Za-z0-9_+-/]``, a UUID, the canonical time), so only ``reason``
    goes through the JSON encoder. The enums are ``StrEnum``: formatting one writes its value (without
    ``Enum.value``, a slow descriptor). ``canonical_device_time`` and ``event_id_hex`` (``UUID.hex``: the
    dashed text is cut from it, cheaper than ``str(UUID)``) may be passed when the caller already has
    them. ``tests/unit/server/test_ingest_hash.py`` checks it against ``compute_hash``.
    """
    if canonical_device_time is None:
        canonical_device_time = _canonical_utc(event.device_time.astimezone(UTC))
    h = event.event_id.hex if event_id_hex is None else event_id_hex
    parts = []
    if event.badge_serial is not None:
        parts.append(f'"badge_serial":"{event.badge_serial}",')
    parts.append(
        f'"clock_offset_ms":{event.clock_offset_ms},"credential_hash":"{event.credential_hash}",'
        f'"credential_kind":"{event.credential_kind}","device_time":"{canonical_device_time}",'
        f'"device_tz":"{event.device_tz}","direction":"{event.direction}",'
        f'"event_id":"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}",'
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
        parts.append(f',"trust":"{event.trust}"')
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


_kiosks = Kiosk.__table__
_LOCK_KIOSK = (
    select(_kiosks.c.last_seq, _kiosks.c.last_hash, _kiosks.c.chain_broken)
    .where(_kiosks.c.id == bindparam("kiosk_id"))
    .with_for_update(key_share=True)
)


def _lock_kiosk(db: Session, kiosk_id: int) -> tuple[int, str, bool]:
    if db.get_bind().dialect.name != "postgresql":
        db.execute(text("DELETE FROM used_nonces WHERE 1 = 0"))  # take SQLite's write lock before reading
    row = db.connection().execute(_LOCK_KIOSK, {"kiosk_id": kiosk_id}).one()
    return int(row.last_seq), str(row.last_hash), bool(row.chain_broken)


#: ``tap_events`` columns in table order: the insert's parameter tuples follow it.
COLUMNS: tuple[str, ...] = tuple(c.name for c in TapEvent.__table__.columns)


def sqlite_time(value: datetime) -> str:
    """What SQLAlchemy's ``UTCDateTime`` stores on SQLite (naive UTC text, microseconds always written),
    without going through its per-value bind processors. ``tests/unit/server/test_ingest_fastpath.py``
    checks it against them. Shifting the fields by the offset is ``astimezone(UTC)`` without building a
    UTC datetime (pydantic's UTC is its own tzinfo, so an identity test against ``UTC`` never matched);
    the offset ``isoformat`` then appends is cut off rather than removed with ``replace(tzinfo=None)``,
    which cost as much as the formatting. ``isoformat`` always writes a four-digit year, so the date
    and time are the first 26 characters, or 19 when it leaves out a zero microsecond."""
    offset = value.utcoffset()
    return fields_text(value - offset if offset else value)


def fields_text(value: datetime) -> str:
    """``value``'s date and time fields as SQLite text, whatever its zone (see :func:`sqlite_time`, which
    shifts the fields to UTC first; :mod:`server.ingest_sqlite` has them shifted already)."""
    if value.microsecond:
        return value.isoformat(" ")[:26]
    return value.isoformat(" ")[:19] + ".000000"


_EVENT_ID, _DEVICE_TIME, _EFFECTIVE, _RECEIVED, _CHAIN_OK = (
    COLUMNS.index(c) for c in ("event_id", "device_time", "effective_time", "received_at", "chain_ok")
)
if (_EVENT_ID, _DEVICE_TIME, _EFFECTIVE, _RECEIVED, _CHAIN_OK) != (0, 15, 18, 19, 20):  # pragma: no cover
    raise ImportError("server.ingest: tap_events column order changed; update _sqlite_params")


def _sqlite_params(
    natives: Sequence[tuple[Any, ...]], texts: Mapping[uuid.UUID, tuple[str, str, str]] | None = None
) -> list[tuple[Any, ...]]:
    """Native row tuples (see :func:`_native`) converted as SQLAlchemy's column types convert them on
    SQLite: the UUID as 32 hex digits, times as :func:`sqlite_time`, the boolean as 0/1. ``texts`` (from
    :func:`prepare`) holds the id and time conversions already done outside the write lock."""
    stamps: dict[datetime, str] = {}  # received_at is one value per batch
    out = []
    for t in natives:
        received = t[19]
        if received not in stamps:
            stamps[received] = sqlite_time(received)
        received_text = stamps[received]
        pre = texts.get(t[0]) if texts is not None else None
        if pre is None:
            pre = (t[0].hex, sqlite_time(t[15]), sqlite_time(t[18]))
        out.append(
            (pre[0], *t[1:15], pre[1], t[16], t[17], pre[2], received_text, int(t[20]), t[21])
        )  # fmt: skip
    return out


def driver_params(dialect: str, rows: Sequence[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """The rows as DB-API parameter tuples in :data:`COLUMNS` order, converted as SQLAlchemy's column types
    would convert them: psycopg adapts UUIDs, aware datetimes and booleans itself; SQLite gets the UUID
    as 32 hex digits, times as :func:`sqlite_time`, booleans as 0/1."""
    natives = [tuple(row[c] for c in COLUMNS) for row in rows]
    return natives if dialect == "postgresql" else _sqlite_params(natives)


def insert_sql(dialect: str, *, on_conflict: bool = True) -> str:
    """The driver-level ``INSERT`` of :data:`COLUMNS` (``ON CONFLICT (event_id) DO NOTHING`` for ingest)."""
    mark = "%s" if dialect == "postgresql" else "?"
    sql = f"INSERT INTO tap_events ({', '.join(COLUMNS)}) VALUES ({', '.join([mark] * len(COLUMNS))})"
    return sql + (" ON CONFLICT (event_id) DO NOTHING" if on_conflict else "")


def _insert_rows(
    db: Session, natives: list[tuple[Any, ...]], texts: Mapping[uuid.UUID, tuple[str, str, str]] | None
) -> None:
    """One ``executemany`` through the driver (psycopg 3 pipelines it): SQLAlchemy's per-value bind
    processing of 500 rows × 22 columns cost more than the database's own work."""
    conn = db.connection()
    dialect = conn.dialect.name
    conn.exec_driver_sql(
        insert_sql(dialect), natives if dialect == "postgresql" else _sqlite_params(natives, texts)
    )


def _existing(db: Session, sql_pg: str, sql_lite: str, values: list[Any]) -> list[tuple[Any, ...]]:
    """Rows of a ``… IN (values)`` lookup through the driver: one array parameter on PostgreSQL, plain
    placeholders on SQLite (500 of them is within its limit) — SQLAlchemy's expanding ``IN`` re-rendered
    the statement for every request. On SQLite the DB-API cursor is used as it is: these statements
    return plain values, and SQLAlchemy's result objects around 500 rows cost more than the query."""
    conn = db.connection()
    if conn.dialect.name == "postgresql":
        return [tuple(r) for r in conn.exec_driver_sql(sql_pg, (values,))]
    dbapi = conn.connection.driver_connection
    assert dbapi is not None
    return dbapi.execute(sql_lite.format(", ".join("?" * len(values))), values).fetchall()


def _flag(event: TapEventIn, reason: BreakReason, expected: object, got: object) -> ChainFlag:
    return ChainFlag(
        event_id=event.event_id,
        seq=event.seq,
        reason=reason,
        expected=str(expected)[:200],
        got=str(got)[:200],
    )


def effective_time(event: TapEventIn) -> tuple[datetime, bool]:
    """The kiosk's estimate of server time for ``event`` and ``False``; or, when the offset would carry
    it out of the datetime range (a clock near year 9998 with a large offset), the device time and
    ``True`` — stored and flagged, never an error that would make the kiosk re-send the batch forever."""
    # The offset is "server time minus device time" as the kiosk last measured it (protocol.signing:
    # "device time + measured offset" is the kiosk's estimate of server time).
    try:
        return event.device_time + timedelta(milliseconds=event.clock_offset_ms), False
    except OverflowError:
        return event.device_time, True


def _native(
    event: TapEventIn,
    kiosk: KioskLike,
    now: datetime,
    chain_ok: bool,
    flags: list[str],
    member_id: int | None,
    unknown_member: bool = False,
) -> tuple[Any, ...]:
    """The ``tap_events`` row of ``event`` as a tuple in :data:`COLUMNS` order with Python values (what
    psycopg takes as it is; :func:`_sqlite_params` converts for SQLite). Appends to ``flags``, in this
    order: ``clock_offset_out_of_range`` (the offset would carry the time out of the datetime range: the
    device time is stored as the effective time), ``time_out_of_range`` (outside
    :data:`~server.sessions.store.SESSION_TIMES`: kept, not used for sessions), ``future_time`` (the
    corrected time lies too far ahead), then ``unknown_member:ID`` when asked. A tuple, not a dict:
    building and re-reading 500 dicts of 22 keys per batch was measurable."""
    effective, out_of_range = effective_time(event)
    if out_of_range:
        flags.append("clock_offset_out_of_range")
    if not SESSION_TIMES[0] <= effective < SESSION_TIMES[1]:
        flags.append("time_out_of_range")
    if effective - now > FUTURE_TOLERANCE:
        flags.append("future_time")
    if unknown_member:  # a member id the server does not know is kept as a flag, not as a member
        flags.append(f"unknown_member:{event.member_id}")
    return (
        event.event_id,
        kiosk.id,
        kiosk.centre_id,
        kiosk.community_id,
        event.seq,
        event.prev_hash,
        event.hash,
        str(event.credential_kind),  # StrEnum: str() is the value, without Enum's slow .value
        event.credential_hash,
        member_id,
        str(event.direction),
        None if event.trust is None else str(event.trust),
        event.qr_step,
        event.badge_serial,
        event.reason,
        event.device_time,
        event.device_tz,
        event.clock_offset_ms,
        effective,
        now,
        chain_ok,
        ",".join(flags)[:200] or None,
    )


def _row(
    event: TapEventIn, kiosk: KioskLike, now: datetime, chain_ok: bool, flags: list[str]
) -> dict[str, Any]:
    """:func:`_native` as a column → value dict (what :func:`flag_qr_replays` and the bench take)."""
    return dict(zip(COLUMNS, _native(event, kiosk, now, chain_ok, flags, event.member_id), strict=True))


def stored_hashes(db: Session, ids: list[Any]) -> dict[uuid.UUID, str]:
    """Event id → stored hash of those of ``ids`` already stored (UUIDs on PostgreSQL, hex on SQLite)."""
    return {
        event_id if isinstance(event_id, uuid.UUID) else uuid.UUID(event_id): hash_
        for event_id, hash_ in _existing(
            db,
            "SELECT event_id, hash FROM tap_events WHERE event_id = ANY(%s)",
            "SELECT event_id, hash FROM tap_events WHERE event_id IN ({})",
            ids,
        )
    }


def member_rows(db: Session, member_ids: list[int]) -> list[tuple[Any, ...]]:
    """``(id,)`` of those of ``member_ids`` that exist."""
    return _existing(
        db, "SELECT id FROM members WHERE id = ANY(%s)", "SELECT id FROM members WHERE id IN ({})", member_ids
    )


def ingest_batch(
    db: Session,
    kiosk: KioskLike,
    batch: EventBatch,
    *,
    now: datetime,
    prepared: PreparedBatch | None = None,
) -> IngestResult:
    """Store a batch inside the caller's transaction; the caller commits, then sends ``result.ack``.

    ``prepared`` (SQLite, from :func:`server.ingest_sqlite.prepare`) holds the batch's rows, hashes and
    times made before the transaction took the database's write lock; a batch that continues the
    kiosk's chain is then inserted as prepared, anything else takes the general path below.
    """
    head_seq, head_hash, was_broken = _lock_kiosk(db, kiosk.id)
    if prepared is not None and prepared.insert_continuing(db, kiosk, head_seq, head_hash):
        last = prepared.events[-1]
        return _finish(
            db,
            kiosk,
            IngestResult(
                [e.event_id for e in prepared.events],
                [],
                [],
                last.seq,
                now,
                stored=len(prepared.rows),
                prepared_path=True,
            ),
            head_hash=last.hash,
            chain_broken=was_broken,
            since=prepared.since_texts,
        )
    hashes = None if prepared is None else prepared.hashes
    events = sorted(batch.events, key=lambda e: e.seq)
    if db.get_bind().dialect.name == "postgresql":
        ids: list[Any] = [e.event_id for e in events]
    else:
        ids = [e.event_id.hex for e in events]
    stored_hash = stored_hashes(db, ids)
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
    known = {int(r[0]) for r in member_rows(db, sorted(claimed))} if claimed else set()

    natives: list[tuple[Any, ...]] = []
    qr_rows: dict[int, dict[str, Any]] = {}  # position in natives → the row as a dict, for flag_qr_replays
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
        member_id = event.member_id
        unknown = member_id is not None and member_id not in known
        native = _native(event, kiosk, now, chain_ok, event_flags, None if unknown else member_id, unknown)
        at = native[_EFFECTIVE]
        if (
            not unknown
            and member_id is not None
            and event.direction in SESSION_DIRECTIONS
            and SESSION_TIMES[0] <= at < SESSION_TIMES[1]
            and (member_id not in since or at < since[member_id])
        ):
            since[member_id] = at
        if event.credential_kind == "qr":  # only QR taps can be replays (server.qr.replay)
            qr_rows[len(natives)] = dict(zip(COLUMNS, native, strict=True))
        natives.append(native)
        accepted.append(event.event_id)

    if natives:
        if qr_rows:  # flags must be on the rows before the append-only insert
            flag_qr_replays(db, kiosk.id, list(qr_rows.values()))
            for position, row in qr_rows.items():
                natives[position] = tuple(row[c] for c in COLUMNS)
        _insert_rows(db, natives, None if prepared is None else prepared.sqlite_texts)
    if flags:
        chain_log.warning(
            "chain problems from kiosk %s: %s",
            kiosk.kiosk_uid,
            "; ".join(f"seq {f.seq} {f.reason}" for f in flags[:10]),
        )
    return _finish(
        db,
        kiosk,
        IngestResult(accepted, duplicates, flags, head_seq, now, stored=len(natives)),
        head_hash=head_hash,
        chain_broken=was_broken or bool(flags),
        since=since,
    )


def _finish(
    db: Session,
    kiosk: KioskLike,
    result: IngestResult,
    *,
    head_hash: str,
    chain_broken: bool,
    since: Mapping[int, datetime] | Mapping[int, str],
) -> IngestResult:
    """The writes every stored batch ends with: queue its members for session recomputation (same
    transaction as the taps, so a committed tap always has current sessions or a queue row) and move the
    kiosk's chain head."""
    if since:
        enqueue_members(db, since, now=result.server_time)
    db.connection().execute(  # Core, not an ORM-enabled UPDATE: nothing here needs the identity map
        update(_kiosks)
        .where(_kiosks.c.id == kiosk.id)
        .values(
            last_seq=result.head_seq,
            last_hash=head_hash,
            chain_broken=chain_broken,
            last_seen_at=result.server_time,
        )
    )
    result.member_ids = set(since)
    return result
