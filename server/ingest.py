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

Speed: one SELECT for known ids, one for members, one multi-row ``INSERT … ON CONFLICT DO NOTHING``
(executemany; SQLAlchemy batches it into multi-VALUES statements on PostgreSQL) — never the ORM unit of
work. Chain hashes are checked with :func:`chain_hash` (canonical bytes straight from the validated
model); only an event that does not continue the chain goes through ``verify_chain`` for its exact flag.
Sessions are *not* recomputed here: the affected members are queued (:mod:`server.sessions.queue`) in
this transaction. QR taps go through :func:`server.qr.replay.flag_qr_replays` just before the insert,
because the rows are append-only and the replay flag must be on them when they are written. The kiosk
row is locked first (``FOR NO KEY UPDATE`` on PostgreSQL — it must not conflict with
the ``KEY SHARE`` locks that foreign-key checks of concurrent nonce and event inserts take, or two
requests of one kiosk deadlock; the write lock on SQLite), so two workers handling the same kiosk's
retries run one after the other and see each other's rows.
"""

from __future__ import annotations

import enum
import hashlib
import json
import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from protocol.chain import CHAIN_FIELDS, BreakReason, canonical_time, verify_chain
from protocol.messages import BatchAck, ChainFlag, ChainStatus, EventBatch, TapEventIn
from server.models import Kiosk, Member, TapEvent
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


def chain_hash(event: TapEventIn) -> str:
    """``protocol.chain.compute_hash(event.prev_hash, event)`` without ``model_dump``.

    The same canonical rules (fields of :data:`CHAIN_FIELDS`, ``None`` omitted, enums by value, UUIDs as
    text, ``device_time`` in canonical UTC, sorted compact JSON) read straight from the validated model's
    attributes: dumping the whole model per event was a large part of the ingest time.
    ``tests/unit/server/test_ingest_hash.py`` checks it against ``compute_hash``.
    """
    body: dict[str, Any] = {}
    for name in CHAIN_FIELDS:
        value = getattr(event, name)
        if value is None:
            continue
        if isinstance(value, enum.Enum):
            value = value.value
        elif isinstance(value, datetime):
            value = canonical_time(value)
        elif isinstance(value, uuid.UUID):
            value = str(value)
        body[name] = value
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return hashlib.sha256(bytes.fromhex(event.prev_hash) + canonical).hexdigest()


def _lock_kiosk(db: Session, kiosk_id: int) -> tuple[int, str, bool]:
    if db.get_bind().dialect.name != "postgresql":
        db.execute(text("DELETE FROM used_nonces WHERE 1 = 0"))  # take SQLite's write lock before reading
    row = db.execute(
        select(Kiosk.last_seq, Kiosk.last_hash, Kiosk.chain_broken)
        .where(Kiosk.id == kiosk_id)
        .with_for_update(key_share=True)
    ).one()
    return int(row.last_seq), str(row.last_hash), bool(row.chain_broken)


def _insert(db: Session) -> Any:
    table = TapEvent.__table__
    if db.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=["event_id"])
    return sqlite.insert(table).on_conflict_do_nothing(index_elements=["event_id"])


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


def ingest_batch(db: Session, kiosk: Kiosk, batch: EventBatch, *, now: datetime) -> IngestResult:
    """Store a batch inside the caller's transaction; the caller commits, then sends ``result.ack``."""
    head_seq, head_hash, was_broken = _lock_kiosk(db, kiosk.id)
    events = sorted(batch.events, key=lambda e: e.seq)
    stored_hash = dict(
        db.execute(
            select(TapEvent.event_id, TapEvent.hash).where(
                TapEvent.event_id.in_([e.event_id for e in events])
            )
        )
        .tuples()
        .all()
    )
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
    known = set(db.scalars(select(Member.id).where(Member.id.in_(claimed))).all()) if claimed else set()

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
            event.seq == head_seq + 1 and event.prev_hash == head_hash and chain_hash(event) == event.hash
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
        db.execute(_insert(db), rows)
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
