"""The database-specific half of ingest: ``tap_events`` values as each driver takes them, and the few
statements the store step runs (:mod:`server.ingest` is the pipeline and stays database-neutral).

Why drivers and not SQLAlchemy's bind processing: converting 500 rows × 22 columns value by value cost
more than the database's own work, so rows are built once, during the *prepare* step before any lock,
directly in the form the DB-API driver takes — psycopg adapts UUIDs, aware datetimes and booleans
itself; SQLite gets what SQLAlchemy's column types store there (the UUID as 32 hex digits, times as
naive UTC text with microseconds, booleans as 0/1; ``tests/unit/server/test_ingest_rows.py`` checks that
against SQLAlchemy). A :class:`RowCodec` is that one difference, chosen by :func:`codec_for`; the lookups
and the insert go through the driver too (an array parameter on PostgreSQL, plain placeholders on
SQLite — SQLAlchemy's expanding ``IN`` re-rendered the statement for every request).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import bindparam, select, text
from sqlalchemy.orm import Session

from protocol.chain import canonical_time
from server.models import Kiosk, TapEvent

#: ``tap_events`` columns in table order.
COLUMNS: tuple[str, ...] = tuple(c.name for c in TapEvent.__table__.columns)
#: The kiosk's ids, the same for every row of a batch: written into the statement (:func:`insert_rows`)
#: rather than bound 500 times — binding them was a tenth of SQLite's ``executemany``.
KIOSK_COLUMNS = ("kiosk_id", "centre_id", "community_id")
#: What a prepared row holds, in this order: every column but the kiosk's.
ROW_COLUMNS: tuple[str, ...] = tuple(c for c in COLUMNS if c not in KIOSK_COLUMNS)
CHAIN_OK_AT = ROW_COLUMNS.index("chain_ok")
#: The order server.ingest.prepare writes its row tuples in; a schema change must fail loudly, not misplace values.
_PREPARED_ORDER = (
    "event_id", "seq", "prev_hash", "hash", "credential_kind", "credential_hash", "member_id",
    "resolved_member_id", "direction", "trust", "qr_step", "badge_serial", "reason", "device_time",
    "device_tz", "clock_offset_ms", "effective_time", "received_at", "chain_ok", "flags",
)  # fmt: skip
if ROW_COLUMNS != _PREPARED_ORDER:  # pragma: no cover - a guard for the next schema change
    raise ImportError("server.ingest_db: tap_events columns changed; update server.ingest.prepare")


def fields_text(value: datetime) -> str:
    """``value``'s date and time fields as SQLite text, whatever its zone (``isoformat`` always writes a
    four-digit year, so the date and time are the first 26 characters, or 19 when it leaves out a zero
    microsecond; cutting the offset off was cheaper than ``replace(tzinfo=None)``)."""
    if value.microsecond:
        return value.isoformat(" ")[:26]
    return value.isoformat(" ")[:19] + ".000000"


def sqlite_time(value: datetime) -> str:
    """What SQLAlchemy's ``UTCDateTime`` stores on SQLite for an aware ``value`` (naive UTC text,
    microseconds always written), without its per-value bind processors: the fields shifted by the
    offset (``astimezone(UTC)`` without building a UTC datetime), then :func:`fields_text`."""
    offset = value.utcoffset()
    return fields_text(value - offset if offset else value)


def canonical_utc(utc: datetime) -> str:
    """:func:`protocol.chain.canonical_time` of a datetime whose fields are UTC, without ``strftime``."""
    if utc.year < 1000:  # strftime's %Y does not pad these: keep its exact output
        return canonical_time(utc.replace(tzinfo=UTC))
    return (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T{utc.hour:02d}:{utc.minute:02d}:"
        f"{utc.second:02d}.{utc.microsecond:06d}Z"
    )


class RowCodec(Protocol):
    """How one database's driver takes ``tap_events`` values. Times come out in one representation per
    database that orders like the instants it names (aware datetimes; fixed-width UTC text), so the
    pipeline compares them without converting back."""

    dialect: str
    true: Any
    false: Any

    def event_id(self, value: uuid.UUID) -> Any: ...
    def time(self, value: datetime) -> Any: ...
    def tap_times(self, device_time: datetime, shift: timedelta) -> tuple[Any, Any, str, bool]:
        """``(device time, effective time, canonical device time for the chain hash, out of range)``;
        out of range: the shift would carry the time past the datetime range, the device time is kept."""
        ...


class PostgresRows:
    """psycopg takes UUIDs, aware datetimes and booleans as they are."""

    dialect = "postgresql"
    true = True
    false = False

    def event_id(self, value: uuid.UUID) -> Any:
        return value

    def time(self, value: datetime) -> Any:
        return value

    def tap_times(self, device_time: datetime, shift: timedelta) -> tuple[Any, Any, str, bool]:
        utc = device_time.astimezone(UTC)
        try:
            return utc, utc + shift, canonical_utc(utc), False
        except OverflowError:
            return utc, utc, canonical_utc(utc), True


class SqliteRows:
    """SQLite text as SQLAlchemy's column types write it."""

    dialect = "sqlite"
    true = 1
    false = 0

    def event_id(self, value: uuid.UUID) -> Any:
        return value.hex

    def time(self, value: datetime) -> Any:
        return sqlite_time(value)

    def tap_times(self, device_time: datetime, shift: timedelta) -> tuple[Any, Any, str, bool]:
        zone = device_time.utcoffset()
        utc = device_time - zone if zone else device_time  # the UTC fields (tzinfo cut off by fields_text)
        device_text = fields_text(utc)
        # The same digits as the canonical form; strftime does not pad years below 1000, isoformat does.
        canonical = f"{device_text[:10]}T{device_text[11:]}Z" if device_text >= "1000" else canonical_utc(utc)
        try:
            return device_text, fields_text(utc + shift), canonical, False
        except OverflowError:
            return device_text, device_text, canonical, True


_CODECS: dict[str, RowCodec] = {"postgresql": PostgresRows(), "sqlite": SqliteRows()}


def codec_for(dialect: str) -> RowCodec:
    """The :class:`RowCodec` of a SQLAlchemy dialect name."""
    return _CODECS[dialect]


def insert_sql(dialect: str, *, on_conflict: bool = True) -> str:
    """The driver-level ``INSERT`` of every column (``ON CONFLICT (event_id) DO NOTHING`` for ingest)."""
    mark = "%s" if dialect == "postgresql" else "?"
    sql = f"INSERT INTO tap_events ({', '.join(COLUMNS)}) VALUES ({', '.join([mark] * len(COLUMNS))})"
    return sql + (" ON CONFLICT (event_id) DO NOTHING" if on_conflict else "")


def insert_rows(db: Session, kiosk_ids: tuple[int, int, int], rows: Sequence[tuple[Any, ...]]) -> int:
    """One ``executemany`` of prepared rows (:data:`ROW_COLUMNS`) through the driver (psycopg 3 pipelines
    it), the kiosk's ``(id, centre id, community id)`` written into the statement (integers from the
    database); how many rows were inserted (ids already stored are skipped, not errors)."""
    conn = db.connection()
    mark = "%s" if conn.dialect.name == "postgresql" else "?"
    fixed = dict(zip(KIOSK_COLUMNS, (str(int(i)) for i in kiosk_ids), strict=True))
    values = ", ".join(fixed.get(c, mark) for c in COLUMNS)
    sql = f"INSERT INTO tap_events ({', '.join(COLUMNS)}) VALUES ({values}) ON CONFLICT (event_id) DO NOTHING"
    return int(conn.exec_driver_sql(sql, list(rows)).rowcount)


def full_row(kiosk_ids: tuple[int, int, int], row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A prepared row with the kiosk's ids put back, in :data:`COLUMNS` order (for :func:`insert_sql`)."""
    return (row[0], *kiosk_ids, *row[1:])


def lookup(db: Session, sql_pg: str, sql_lite: str, values: list[Any]) -> list[tuple[Any, ...]]:
    """Rows of a ``… IN (values)`` lookup through the driver: one array parameter on PostgreSQL, plain
    placeholders on SQLite (500 of them is within its limit). On SQLite the DB-API cursor is used as it
    is: these statements return plain values, and SQLAlchemy's result objects around 500 rows cost more
    than the query."""
    conn = db.connection()
    if conn.dialect.name == "postgresql":
        return [tuple(r) for r in conn.exec_driver_sql(sql_pg, (values,))]
    dbapi = conn.connection.driver_connection
    assert dbapi is not None
    return dbapi.execute(sql_lite.format(", ".join("?" * len(values))), values).fetchall()


def stored_hashes(db: Session, ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
    """Event id → stored hash of those of ``ids`` already stored."""
    codec = codec_for(db.get_bind().dialect.name)
    return {
        event_id if isinstance(event_id, uuid.UUID) else uuid.UUID(event_id): hash_
        for event_id, hash_ in lookup(
            db,
            "SELECT event_id, hash FROM tap_events WHERE event_id = ANY(%s)",
            "SELECT event_id, hash FROM tap_events WHERE event_id IN ({})",
            [codec.event_id(i) for i in ids],
        )
    }


def member_facts(db: Session, member_ids: list[int]) -> dict[int, tuple[int, int]]:
    """Member id → (community id, unit id) of those of ``member_ids`` that exist."""
    rows = lookup(
        db,
        "SELECT id, community_id, unit_id FROM members WHERE id = ANY(%s)",
        "SELECT id, community_id, unit_id FROM members WHERE id IN ({})",
        member_ids,
    )
    return {int(m): (int(c), int(u)) for m, c, u in rows}


def taken_seqs(db: Session, kiosk_id: int, seqs: list[int]) -> set[int]:
    """Those of ``seqs`` another stored event of this kiosk already holds."""
    return set(db.scalars(select(TapEvent.seq).where(TapEvent.kiosk_id == kiosk_id, TapEvent.seq.in_(seqs))))


@dataclass(frozen=True, slots=True)
class ChainHead:
    """The kiosk's chain head as read under its lock."""

    seq: int
    hash: str
    broken: bool
    offset_ms: int | None  # the head tap's clock offset (None before the first tap)


_kiosks = Kiosk.__table__
_LOCK_HEAD = (
    select(_kiosks.c.last_seq, _kiosks.c.last_hash, _kiosks.c.chain_broken, _kiosks.c.last_tap_offset_ms)
    .where(_kiosks.c.id == bindparam("kiosk_id"))
    .with_for_update(key_share=True)
)


def lock_head(db: Session, kiosk_id: int) -> ChainHead:
    """Lock the kiosk row and read its chain head, so two workers handling one kiosk's retries run one
    after the other and see each other's rows. ``FOR NO KEY UPDATE`` on PostgreSQL: it must not
    conflict with the ``KEY SHARE`` locks that foreign-key checks of concurrent nonce and event inserts
    take, or two requests of one kiosk deadlock. On SQLite the upload holds the database's write lock
    already (its nonce insert); a write statement takes it in any other caller."""
    if db.get_bind().dialect.name != "postgresql":
        db.execute(text("DELETE FROM used_nonces WHERE 1 = 0"))
    row = db.connection().execute(_LOCK_HEAD, {"kiosk_id": kiosk_id}).one()
    offset = row.last_tap_offset_ms
    return ChainHead(int(row.last_seq), str(row.last_hash), bool(row.chain_broken), offset)


__all__ = [
    "CHAIN_OK_AT",
    "COLUMNS",
    "KIOSK_COLUMNS",
    "ROW_COLUMNS",
    "ChainHead",
    "RowCodec",
    "codec_for",
    "fields_text",
    "full_row",
    "insert_rows",
    "insert_sql",
    "lock_head",
    "member_facts",
    "sqlite_time",
    "stored_hashes",
    "taken_seqs",
]
