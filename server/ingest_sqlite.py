"""SQLite ingest: everything an upload can do *before* it takes the database's one write lock.

SQLite lets one transaction write at a time, so the server's upload rate on SQLite is set by how long
each upload holds the write lock (its write section, :func:`server.api.events._sqlite_upload_lock`).
Measured with ``python -m bench.ingest`` (two gunicorn workers, batches of 500): the lock was held 98 %
of the time and the insert was only 40 % of that — the rest was per-event Python (hashing, time
formatting, building rows), statements the lock does not need, and WAL checkpoints.

:func:`prepare` does all of that outside the lock, while another worker holds it: it checks the chain
*inside* the batch (consecutive ``seq``, each ``prev_hash`` the previous ``hash``, every hash right),
formats every row exactly as SQLAlchemy's column types store them on SQLite, looks up which claimed
members exist (members are never deleted, so the answer cannot go stale) and works out the session
queue entries. Inside the lock, :meth:`PreparedBatch.insert_continuing` checks the one thing that needs
the lock — that the batch continues the kiosk's chain head — and inserts the prepared rows (an id
stored by another kiosk shows in the insert's row count and sends the batch down the general path). Anything else (a retry of stored events, a gap, an edited or forked history) goes
through the general path of :func:`server.ingest.ingest_batch`, which still uses the hashes and times
computed here. ``tests/integration/server/test_ingest_prepared.py`` proves both paths store the same
rows, flags, queue entries and acknowledgement.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from sqlalchemy.orm import Session

from protocol.chain import canonical_time
from protocol.messages import EventBatch, TapEventIn
from server.ingest import (
    COLUMNS,
    FUTURE_TOLERANCE,
    SESSION_DIRECTIONS,
    KioskLike,
    chain_hash,
    effective_time,
    fields_text,
    member_rows,
    sqlite_time,
)
from server.qr.replay import flag_qr_replays
from server.sessions.store import SESSION_TIMES

#: Columns the prepared rows carry, in order; the kiosk's three ids are written into the statement.
_KIOSK_COLUMNS = ("kiosk_id", "centre_id", "community_id")
_ROW_COLUMNS = tuple(c for c in COLUMNS if c not in _KIOSK_COLUMNS and c != "chain_ok")
#: The order :func:`prepare` writes its row tuples in; a schema change must fail loudly, not misplace values.
_EXPECTED_ROW_COLUMNS = (
    "event_id", "seq", "prev_hash", "hash", "credential_kind", "credential_hash", "member_id", "direction",
    "trust", "qr_step", "badge_serial", "reason", "device_time", "device_tz", "clock_offset_ms",
    "effective_time", "received_at", "flags",
)  # fmt: skip
if _ROW_COLUMNS != _EXPECTED_ROW_COLUMNS:  # pragma: no cover - a guard for the next schema change
    raise ImportError("server.ingest_sqlite: tap_events columns changed; update prepare()")
_FLAGS = _ROW_COLUMNS.index("flags")


def _canonical_from_sqlite(device_time: datetime, text: str) -> str:
    """:func:`protocol.chain.canonical_time` of ``device_time`` from its :func:`sqlite_time` ``text`` (the
    same digits: ``YYYY-MM-DD HH:MM:SS.ffffff`` → ``YYYY-MM-DDTHH:MM:SS.ffffffZ``)."""
    if text < "1000":  # strftime's %Y does not pad these years, isoformat does: keep the canonical form exact
        return canonical_time(device_time)
    return f"{text[:10]}T{text[11:]}Z"


def _insert_sql(kiosk: KioskLike) -> str:
    """The insert of prepared rows for one kiosk: its ids are integers from the database, written into
    the statement so the 500 row tuples need not be rebuilt inside the write lock to carry them."""
    ids = {
        "kiosk_id": int(kiosk.id),
        "centre_id": int(kiosk.centre_id),
        "community_id": int(kiosk.community_id),
    }
    values = [str(ids[c]) if c in ids else "1" if c == "chain_ok" else "?" for c in COLUMNS]
    return (
        f"INSERT INTO tap_events ({', '.join(COLUMNS)}) VALUES ({', '.join(values)}) "
        "ON CONFLICT (event_id) DO NOTHING"
    )


class PreparedBatchCollision(Exception):
    """A prepared batch met event ids already stored by another kiosk (a cloned outbox, a forgery): the
    caller rolls its transaction back and stores the batch through the general path, which handles stored
    ids as always (acknowledged as duplicates, flagged when their hash differs)."""


@dataclass
class PreparedBatch:
    """One batch made ready for the write lock (see the module docstring). ``events`` are in ``seq``
    order; ``event_hashes``, ``event_texts`` (hex id, device time, effective time) and ``rows`` (with
    ``chain_ok`` true) follow it."""

    events: list[TapEventIn]
    event_hashes: list[str]
    event_texts: list[tuple[str, str, str]]
    rows: list[tuple[Any, ...]]
    continuous: bool
    since_texts: dict[int, str]
    qr_positions: list[int] = field(default_factory=list)

    @cached_property
    def hashes(self) -> dict[uuid.UUID, str]:
        """Event id → chain hash, for the general path."""
        return {e.event_id: h for e, h in zip(self.events, self.event_hashes, strict=True)}

    @cached_property
    def sqlite_texts(self) -> dict[uuid.UUID, tuple[str, str, str]]:
        """Event id → (hex id, device time, effective time) as SQLite stores them, for the general path."""
        return {e.event_id: t for e, t in zip(self.events, self.event_texts, strict=True)}

    def insert_continuing(self, db: Session, kiosk: KioskLike, head_seq: int, head_hash: str) -> bool:
        """Insert the whole batch when it continues the chain head ``head_seq``/``head_hash`` (read under
        the write lock); ``False`` (nothing written) sends the caller to the general path.

        The batch's ids are not looked up first: following the head, none of them can be stored unless
        another kiosk sent the same ids. The insert skips ids already stored and, when its row count
        shows it skipped any, raises :class:`PreparedBatchCollision` for the caller to roll back.
        """
        first = self.events[0]
        if not self.continuous or first.seq != head_seq + 1 or first.prev_hash != head_hash:
            return False
        rows = self.rows
        if self.qr_positions:  # replay flags must be on the rows before the append-only insert
            rows = list(rows)
            self._flag_qr(db, kiosk, rows)
        inserted = db.connection().exec_driver_sql(_insert_sql(kiosk), rows).rowcount
        if inserted != len(rows):
            raise PreparedBatchCollision(f"{len(rows) - inserted} of {len(rows)} event ids already stored")
        return True

    def _flag_qr(self, db: Session, kiosk: KioskLike, rows: list[tuple[Any, ...]]) -> None:
        dicts = []
        for position in self.qr_positions:
            event, row = self.events[position], rows[position]
            effective, _ = effective_time(event)
            dicts.append(
                {
                    "event_id": event.event_id,
                    "credential_kind": "qr",
                    "credential_hash": event.credential_hash,
                    "qr_step": event.qr_step,
                    "badge_serial": event.badge_serial,
                    "device_time": event.device_time,
                    "effective_time": effective,
                    "flags": row[_FLAGS],
                }
            )
        flag_qr_replays(db, kiosk.id, dicts)
        for position, flagged in zip(self.qr_positions, dicts, strict=True):
            rows[position] = (*rows[position][:_FLAGS], flagged["flags"])


def known_members(db: Session, batch: EventBatch) -> set[int]:
    """The member ids ``batch`` claims that exist — read before the write lock (members are never
    deleted, only deactivated, so the answer holds until the insert)."""
    claimed = sorted({e.member_id for e in batch.events if e.member_id is not None})
    if not claimed:
        return set()
    return {int(r[0]) for r in member_rows(db, claimed)}


def prepare(batch: EventBatch, *, now: datetime, known_members: Collection[int]) -> PreparedBatch:
    """:class:`PreparedBatch` for ``batch``; ``now`` is the receive time stamped on the rows,
    ``known_members`` the claimed member ids that exist (event ids are unique in a valid batch).

    Times are handled as the text SQLite stores (:func:`server.ingest.fields_text` of fields shifted to
    UTC once per event: three :func:`~server.ingest.sqlite_time` calls per event were a fifth of this
    function): fixed-width UTC text orders like the instants it names, so the future-time check and each
    member's earliest tap compare text.
    """
    events = sorted(batch.events, key=lambda e: e.seq)
    received = sqlite_time(now)
    future_text = sqlite_time(now + FUTURE_TOLERANCE)
    session_from, session_until = (sqlite_time(at) for at in SESSION_TIMES)
    offsets: dict[int, timedelta] = {}  # a kiosk's clock offset changes rarely: one timedelta per value
    hashes: list[str] = []
    texts: list[tuple[str, str, str]] = []
    rows: list[tuple[Any, ...]] = []
    since: dict[int, str] = {}
    qr_positions: list[int] = []
    continuous = True
    prev: TapEventIn | None = None
    for position, event in enumerate(events):
        device_time = event.device_time
        zone = device_time.utcoffset()
        utc = device_time - zone if zone else device_time  # same fields as in UTC (tzinfo cut off below)
        shift = offsets.get(event.clock_offset_ms)
        if shift is None:
            shift = offsets[event.clock_offset_ms] = timedelta(milliseconds=event.clock_offset_ms)
        flags = []  # in the order server.ingest._native writes them
        try:
            effective = utc + shift
        except OverflowError:  # the offset carries the time out of range: keep the device time
            effective = utc
            flags.append("clock_offset_out_of_range")
        device_text = fields_text(utc)
        effective_text = fields_text(effective)
        hex_id = event.event_id.hex
        hash_ = chain_hash(event, _canonical_from_sqlite(device_time, device_text), hex_id)
        hashes.append(hash_)
        texts.append((hex_id, device_text, effective_text))
        if continuous and (
            hash_ != event.hash
            or (prev is not None and (event.seq != prev.seq + 1 or event.prev_hash != prev.hash))
        ):
            continuous = False
        prev = event
        for_sessions = session_from <= effective_text < session_until
        if not for_sessions:
            flags.append("time_out_of_range")
        if effective_text > future_text:
            flags.append("future_time")
        member_id = event.member_id
        if member_id is not None and member_id not in known_members:
            flags.append(f"unknown_member:{member_id}")  # kept as a flag, not as a member
            member_id = None
        elif (
            for_sessions
            and member_id is not None
            and event.direction in SESSION_DIRECTIONS
            and (member_id not in since or effective_text < since[member_id])
        ):
            since[member_id] = effective_text
        kind = str(event.credential_kind)  # StrEnum: str() is the value, without Enum's slow .value
        if kind == "qr":
            qr_positions.append(position)
        rows.append(
            (
                hex_id, event.seq, event.prev_hash, event.hash, kind, event.credential_hash, member_id,
                str(event.direction), None if event.trust is None else str(event.trust), event.qr_step,
                event.badge_serial, event.reason, device_text, event.device_tz, event.clock_offset_ms,
                effective_text, received, ",".join(flags)[:200] or None,
            )
        )  # fmt: skip
    return PreparedBatch(
        events=events,
        event_hashes=hashes,
        event_texts=texts,
        rows=rows,
        continuous=continuous,
        since_texts=since,
        qr_positions=qr_positions,
    )
