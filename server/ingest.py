"""Ingest of TapEvent batches from one kiosk: one pipeline, *prepare* then *store*, on both databases.

The kiosk uploads at least once; the server makes that exactly once by the event id (the primary key):
events already stored are acknowledged as duplicates and not touched. New events are checked against the
kiosk's chain head (``kiosks.last_seq``/``last_hash``) in ``seq`` order, and every problem is *recorded*
rather than bounced — an event is stored with ``chain_ok = false`` and a flag (``gap``,
``prev_hash_mismatch``, ``hash_mismatch``, …) and the kiosk is marked ``chain_broken`` for staff. Bouncing
would leave the kiosk retrying a poisoned batch forever and the taps would never reach anyone; storing
and flagging keeps them visible and provable. Two cases cannot be stored because the history already
holds something else in that place, and both are flagged and *not* stored:

* an already stored event id sent again with a different hash (an edit after upload) — acknowledged as
  a duplicate, because the stored original stays authoritative, but flagged ``hash_mismatch``;
* a new event id whose ``seq`` is already taken by another event of this kiosk (a forked history) —
  flagged ``seq_regression`` and left out of the acknowledgement.

After a break the head re-anchors on the breaking event, so one missing event flags one place instead of
every later batch.

The pipeline (the upload view, :mod:`server.api.events`, runs it; every flag is a
:class:`protocol.flags.TapFlag`):

1. :func:`look_up` — reads, no lock: which claimed members exist and whether the kiosk's roster carries
   them (:class:`server.roster.RosterScope`, the roster's own definition), and which member a credential
   the kiosk did not know belongs to (the server knows every credential).
2. :func:`prepare` — pure, no database: sorts the batch, checks the chain *inside* it (consecutive
   ``seq``, each ``prev_hash`` the previous ``hash``, every hash right, by :func:`chain_hash`), builds
   every ``tap_events`` row already in the driver's form (:mod:`server.ingest_db`), with its flags, and
   the session queue entries. Runs while another upload holds the database's lock.
3. :func:`store_batch` — inside the caller's write section: locks the kiosk's chain head; a batch that
   continues it is inserted as prepared (the common case: one insert, nothing looked up); anything else
   (a retry of stored events, a gap, an edited or forked history) is decided event by event against the
   stored ids and seqs, still from the prepared rows. QR replay flags (:mod:`server.qr.replay`), the
   session queue and the new head are written in the same transaction.

What the database decides differs only in :mod:`server.ingest_db` (row values, lookups, the head lock)
and, on SQLite, the write section of :mod:`server.sqlite_writes`. Sessions are *not* recomputed here:
the affected members are queued (:mod:`server.sessions.queue`) in this transaction.

Flags besides the chain's: ``clock_offset_out_of_range`` (the offset carries the time out of the datetime
range: the device time is stored as the effective time), ``time_out_of_range`` (outside
:data:`~server.sessions.store.SESSION_TIMES`: kept, not used for sessions), ``future_time`` (the corrected
time lies more than ``FUTURE_TOLERANCE_S`` ahead), ``clock_drift`` (the kiosk's measured offset exceeds
``CLOCK_DRIFT_BOUND_S``), ``clock_jump`` (the offset moved by more than that bound since the kiosk's
previous tap — in the batch, or the chain head's, kept in ``kiosks.last_tap_offset_ms`` across batches),
``unknown_member:ID`` (a member id the server does not know: kept as a flag, not as a member) and
``outside_roster`` (a member the kiosk's roster does not carry, or a credential the kiosk did not know
and the server resolved — stored as ``resolved_member_id``, beside the kiosk's ``member_id``, which the
chain hash covers: the tap is the member's, its session goes to review).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any, Protocol

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from protocol.chain import BreakReason, verify_chain
from protocol.flags import TapFlag, flag_text, join_flags
from protocol.messages import BatchAck, ChainFlag, ChainStatus, EventBatch, TapEventIn
from server.ingest_db import (
    CHAIN_OK_AT,
    ChainHead,
    RowCodec,
    codec_for,
    insert_rows,
    lock_head,
    member_facts,
    stored_hashes,
    taken_seqs,
)
from server.ingest_hash import chain_hash
from server.models import Credential, Kiosk, Member
from server.qr.replay import flag_qr_replays
from server.roster import ROSTER_KINDS, RosterScope, roster_scope
from server.sessions.queue import enqueue_members
from server.sessions.store import SESSION_DIRECTIONS, SESSION_TIMES

logger = logging.getLogger(__name__)
chain_log = logging.getLogger("baodao.chain")

#: Wire credential kind → the stored credential kind the roster sends as it (the roster's own table).
_STORED_KIND = {wire: stored for stored, wire in ROSTER_KINDS.items()}


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


@dataclass(frozen=True, slots=True)
class IngestSettings:
    """The configured bounds ingest flags against (``server/config.py``)."""

    drift_bound_ms: int
    future_tolerance: timedelta

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> IngestSettings:
        return cls(
            drift_bound_ms=int(config["CLOCK_DRIFT_BOUND_S"]) * 1000,
            future_tolerance=timedelta(seconds=int(config["FUTURE_TOLERANCE_S"])),
        )


class BatchCollision(Exception):
    """A batch stored as continuing the chain head met event ids already stored by another kiosk (a
    cloned outbox, a forgery): the caller rolls its transaction back and calls :func:`store_batch` again
    with ``continuing=False``, which handles stored ids as always (acknowledged as duplicates, flagged
    when their hash differs)."""


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
    continued: bool = False  # the batch continued the head and was inserted as prepared

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


def effective_time(event: TapEventIn) -> datetime:
    """The kiosk's estimate of server time for ``event`` (device time + the offset it last measured,
    "server time minus device time", see :mod:`protocol.signing`); the device time when the offset would
    carry it out of the datetime range (flagged ``clock_offset_out_of_range`` by :func:`prepare`)."""
    try:
        return event.device_time + timedelta(milliseconds=event.clock_offset_ms)
    except OverflowError:
        return event.device_time


@dataclass(frozen=True, slots=True)
class Lookups:
    """What :func:`prepare` needs from the database, read by :func:`look_up` before any lock (members
    and credentials are never deleted, and a change committed meanwhile is one a tap a moment earlier
    would not have seen either)."""

    #: Claimed member ids that exist → (community id, unit id).
    members: Mapping[int, tuple[int, int]]
    #: (wire credential kind, credential hash) → member id, for taps the kiosk recorded as unknown.
    resolved: Mapping[tuple[str, str], int]
    #: The kiosk's roster scope; ``None`` when every claimed member reports to the kiosk's community.
    scope: RosterScope | None

    def carries(self, facts: tuple[int, int]) -> bool:
        """Does the kiosk's roster carry a member of ``facts`` (community id, unit id)?"""
        return self.scope is None or self.scope.covers(*facts)


def look_up(db: Session, kiosk: KioskLike, batch: EventBatch) -> Lookups:
    """The :class:`Lookups` of ``batch`` at ``kiosk`` (reads only)."""
    claimed = sorted({e.member_id for e in batch.events if e.member_id is not None})
    members = member_facts(db, claimed) if claimed else {}
    wanted = {
        (str(e.credential_kind), e.credential_hash)
        for e in batch.events
        if e.member_id is None and e.direction == "unknown" and str(e.credential_kind) in _STORED_KIND
    }
    resolved: dict[tuple[str, str], int] = {}
    if wanted:
        rows = db.execute(
            select(Credential.kind, Credential.value_hash, Credential.member_id)
            .join(Member, Member.id == Credential.member_id)
            .where(
                Credential.status == "active",
                Member.status == "active",
                Credential.kind.in_({_STORED_KIND[kind] for kind, _ in wanted}),
                Credential.value_hash.in_({hash_ for _, hash_ in wanted}),
            )
        )
        for kind, value_hash, member_id in rows:
            key = (ROSTER_KINDS[kind], value_hash)
            if key in wanted:
                resolved[key] = int(member_id)
    scope = None
    if any(community != kiosk.community_id for community, _ in members.values()):
        scope = roster_scope(db, kiosk.community_id)
    return Lookups(members, resolved, scope)


@dataclass
class PreparedBatch:
    """One batch made ready for its store step (see :func:`prepare`); every list follows ``events``
    (``seq`` order). ``rows`` are ``tap_events`` rows in the driver's form (:data:`server.ingest_db.
    ROW_COLUMNS`: the kiosk's ids go into the statement), as stored when the batch continues the chain
    head (``chain_ok`` true, the flags of ``flags``)."""

    events: list[TapEventIn]
    rows: list[tuple[Any, ...]]
    #: Each event's flags except those only the store step can decide: its chain break, a QR replay,
    #: and a clock jump of the first event against the chain head's offset.
    flags: list[list[str]]
    hash_ok: list[bool]
    #: (member id, effective time) for the session queue, or ``None``; and the earliest per member.
    sessions: list[tuple[int, Any] | None]
    since: dict[int, Any]
    continuous: bool  # consecutive seqs, each linking to the previous, every hash right
    qr_positions: list[int]
    codec: RowCodec
    drift_bound_ms: int


def prepare(
    batch: EventBatch,
    lookups: Lookups,
    *,
    now: datetime,
    settings: IngestSettings,
    codec: RowCodec,
) -> PreparedBatch:
    """:class:`PreparedBatch` of ``batch``: pure, no database. ``now`` is the receive time stamped on the
    rows; ``codec`` the database's row form (:func:`server.ingest_db.codec_for`). Times are compared in
    the codec's form (aware datetimes, or SQLite's fixed-width UTC text), which orders like the instants.
    """
    events = sorted(batch.events, key=lambda e: e.seq)
    received = codec.time(now)
    future = codec.time(now + settings.future_tolerance)
    session_from, session_until = (codec.time(at) for at in SESSION_TIMES)
    bound = settings.drift_bound_ms
    true = codec.true
    shifts: dict[int, timedelta] = {}  # a kiosk's clock offset changes rarely: one timedelta per value
    rows: list[tuple[Any, ...]] = []
    all_flags: list[list[str]] = []
    hash_ok: list[bool] = []
    sessions: list[tuple[int, Any] | None] = []
    since: dict[int, Any] = {}
    qr_positions: list[int] = []
    continuous = True
    prev: TapEventIn | None = None
    for position, event in enumerate(events):
        offset = event.clock_offset_ms
        shift = shifts.get(offset)
        if shift is None:
            shift = shifts[offset] = timedelta(milliseconds=offset)
        device, effective, canonical, out_of_range = codec.tap_times(event.device_time, shift)
        event_id = event.event_id
        ok = chain_hash(event, canonical, event_id.hex) == event.hash
        hash_ok.append(ok)
        if continuous and (
            not ok or (prev is not None and (event.seq != prev.seq + 1 or event.prev_hash != prev.hash))
        ):
            continuous = False
        flags: list[str] = []
        if out_of_range:
            flags.append(TapFlag.CLOCK_OFFSET_OUT_OF_RANGE)
        for_sessions = session_from <= effective < session_until
        if not for_sessions:
            flags.append(TapFlag.TIME_OUT_OF_RANGE)
        if effective > future:
            flags.append(TapFlag.FUTURE_TIME)
        if abs(offset) > bound:
            flags.append(TapFlag.CLOCK_DRIFT)
        if prev is not None and abs(offset - prev.clock_offset_ms) > bound:
            flags.append(TapFlag.CLOCK_JUMP)
        member_id = event.member_id
        resolved = None
        if member_id is not None:
            facts = lookups.members.get(member_id)
            if facts is None:  # kept as a flag, not as a member
                flags.append(flag_text(TapFlag.UNKNOWN_MEMBER, member_id))
                member_id = None
            elif not lookups.carries(facts):  # credited to the member, never silently: reviewed
                flags.append(TapFlag.OUTSIDE_ROSTER)
        elif event.direction == "unknown" and lookups.resolved:
            # The member's tap, in a column of its own: the kiosk's fields stay as recorded (and hashed).
            resolved = lookups.resolved.get((str(event.credential_kind), event.credential_hash))
            if resolved is not None:
                flags.append(TapFlag.OUTSIDE_ROSTER)
        credited = resolved if member_id is None else member_id
        entry = None
        if for_sessions and credited is not None and event.direction in SESSION_DIRECTIONS:
            entry = (credited, effective)
            if credited not in since or effective < since[credited]:
                since[credited] = effective
        sessions.append(entry)
        kind = str(event.credential_kind)  # StrEnum: str() is the value, without Enum's slow .value
        if kind == "qr":
            qr_positions.append(position)
        all_flags.append(flags)
        rows.append(
            (
                codec.event_id(event_id), event.seq, event.prev_hash, event.hash, kind,
                event.credential_hash, member_id, resolved, str(event.direction),
                None if event.trust is None else str(event.trust), event.qr_step, event.badge_serial,
                event.reason, device, event.device_tz, offset, effective, received, true,
                join_flags(flags) if flags else None,
            )
        )  # fmt: skip
        prev = event
    return PreparedBatch(
        events, rows, all_flags, hash_ok, sessions, since, continuous, qr_positions, codec, bound
    )


def _flag(event: TapEventIn, reason: BreakReason, expected: object, got: object) -> ChainFlag:
    return ChainFlag(
        event_id=event.event_id,
        seq=event.seq,
        reason=reason,
        expected=str(expected)[:200],
        got=str(got)[:200],
    )


def store_batch(
    db: Session, kiosk: KioskLike, prepared: PreparedBatch, *, now: datetime, continuing: bool = True
) -> IngestResult:
    """The store step, inside the caller's transaction (and, on SQLite, its write section); the caller
    commits, then sends ``result.ack``.

    ``continuing``: a batch that continues the chain head is inserted without looking its ids up —
    following the head, none of them can be stored unless another kiosk sent the same ids; the insert
    skips those and :class:`BatchCollision` is raised for the caller to roll back and call again with
    ``continuing=False``, which decides every event against the stored ids and seqs.
    """
    head = lock_head(db, kiosk.id)
    events = prepared.events
    first = events[0]
    before: dict[int, str] = {}  # position → its chain flag (first in the stored text)
    after: dict[int, list[str]] = {}  # position → flags after the prepared ones (jump, QR replay)
    broken: set[int] = set()  # positions stored with chain_ok false
    if _jumped(first.clock_offset_ms, head.offset_ms, prepared.drift_bound_ms):
        after[0] = [TapFlag.CLOCK_JUMP]
    fast = continuing and prepared.continuous and first.seq == head.seq + 1 and first.prev_hash == head.hash
    if fast:
        positions: Sequence[int] = range(len(events))
        duplicates: list[uuid.UUID] = []
        flags: list[ChainFlag] = []
        last = events[-1]
        new_head = (last.seq, last.hash, last.clock_offset_ms)
        since: Mapping[int, Any] = prepared.since
    else:
        positions, duplicates, flags, new_head = _decide(db, kiosk, prepared, head, before, broken)
        if not positions or positions[0] != 0:  # the first event was not stored: nothing to flag
            after.pop(0, None)
        since = _earliest(prepared, positions)
    accepted = [events[p].event_id for p in positions]
    if prepared.qr_positions:  # replay flags must be on the rows before the append-only insert
        stored_now = positions if isinstance(positions, range) else set(positions)
        qr = [p for p in prepared.qr_positions if p in stored_now]
        _flag_qr_replays(db, kiosk, prepared, qr, after)
    rows = _rows(prepared, positions, before, after, broken)
    if rows:
        inserted = insert_rows(db, (kiosk.id, kiosk.centre_id, kiosk.community_id), rows)
        if fast and inserted != len(rows):
            raise BatchCollision(f"{len(rows) - inserted} of {len(rows)} event ids already stored")
    if flags:
        chain_log.warning(
            "chain problems from kiosk %s: %s",
            kiosk.kiosk_uid,
            "; ".join(f"seq {f.seq} {f.reason}" for f in flags[:10]),
        )
    if since:
        enqueue_members(db, since, now=now)
    head_seq, head_hash, head_offset = new_head
    db.connection().execute(  # Core, not an ORM-enabled UPDATE: nothing here needs the identity map
        update(_kiosks)
        .where(_kiosks.c.id == kiosk.id)
        .values(
            last_seq=head_seq,
            last_hash=head_hash,
            last_tap_offset_ms=head_offset,
            chain_broken=head.broken or bool(flags),
            last_seen_at=now,
        )
    )
    return IngestResult(
        accepted, duplicates, flags, head_seq, now, set(since), stored=len(rows), continued=fast
    )


_kiosks = Kiosk.__table__


def _jumped(offset_ms: int, previous_ms: int | None, bound_ms: int) -> bool:
    return previous_ms is not None and abs(offset_ms - previous_ms) > bound_ms


def _decide(
    db: Session,
    kiosk: KioskLike,
    prepared: PreparedBatch,
    head: ChainHead,
    before: dict[int, str],
    broken: set[int],
) -> tuple[list[int], list[uuid.UUID], list[ChainFlag], tuple[int, str, int | None]]:
    """Every event against the stored ids and seqs and the chain head: (positions to store, duplicates,
    chain flags, new head). Fills ``before`` with the chain flag of a stored event and ``broken`` with
    those stored with ``chain_ok`` false."""
    events = prepared.events
    stored = stored_hashes(db, [e.event_id for e in events])
    low = [e.seq for e in events if e.event_id not in stored and e.seq <= head.seq]
    taken = taken_seqs(db, kiosk.id, low) if low else set()
    head_seq, head_hash, head_offset = head.seq, head.hash, head.offset_ms
    positions: list[int] = []
    duplicates: list[uuid.UUID] = []
    flags: list[ChainFlag] = []
    for position, event in enumerate(events):
        if event.event_id in stored:
            duplicates.append(event.event_id)
            if stored[event.event_id] != event.hash:
                flags.append(_flag(event, BreakReason.HASH_MISMATCH, stored[event.event_id], event.hash))
            continue
        if event.seq in taken:
            flags.append(_flag(event, BreakReason.SEQ_REGRESSION, f"> {head_seq}", event.seq))
            chain_log.warning("kiosk %s sent another event for taken seq %d", kiosk.kiosk_uid, event.seq)
            continue
        positions.append(position)
        if event.seq == head_seq + 1 and event.prev_hash == head_hash and prepared.hash_ok[position]:
            head_seq, head_hash, head_offset = event.seq, event.hash, event.clock_offset_ms
            continue
        result = verify_chain([event], start_prev_hash=head_hash, start_seq=head_seq + 1)
        brk = result.first_break
        if brk is None:
            head_seq, head_hash, head_offset = result.head_seq, result.head_hash, event.clock_offset_ms
            continue
        flags.append(_flag(event, brk.reason, brk.expected, brk.got))
        before[position] = TapFlag(brk.reason.value)  # a chain break is a tap flag: its session is reviewed
        broken.add(position)
        if event.seq > head_seq:  # re-anchor so one break is flagged once
            head_seq, head_hash, head_offset = event.seq, event.hash, event.clock_offset_ms
    return positions, duplicates, flags, (head_seq, head_hash, head_offset)


def _earliest(prepared: PreparedBatch, positions: Sequence[int]) -> dict[int, Any]:
    """Member id → earliest effective time of the stored positions' session taps (the queue's since)."""
    since: dict[int, Any] = {}
    for position in positions:
        entry = prepared.sessions[position]
        if entry is not None and (entry[0] not in since or entry[1] < since[entry[0]]):
            since[entry[0]] = entry[1]
    return since


def _flag_qr_replays(
    db: Session, kiosk: KioskLike, prepared: PreparedBatch, positions: list[int], after: dict[int, list[str]]
) -> None:
    if not positions:
        return
    taps = []
    for position in positions:
        event = prepared.events[position]
        taps.append(
            {
                "event_id": event.event_id,
                "credential_kind": "qr",
                "credential_hash": event.credential_hash,
                "qr_step": event.qr_step,
                "badge_serial": event.badge_serial,
                "device_time": event.device_time,
                "effective_time": effective_time(event),
                "flags": None,
            }
        )
    flag_qr_replays(db, kiosk.id, taps)
    for position, tap in zip(positions, taps, strict=True):
        if tap["flags"]:
            after.setdefault(position, []).append(tap["flags"])


def _rows(
    prepared: PreparedBatch,
    positions: Sequence[int],
    before: Mapping[int, str],
    after: Mapping[int, list[str]],
    broken: set[int],
) -> list[tuple[Any, ...]]:
    """The rows to insert: the prepared ones, rebuilt only where the store step added a flag."""
    rows = prepared.rows
    if isinstance(positions, range) and not before and not after:
        return rows
    false = prepared.codec.false
    out = []
    for position in positions:
        row = rows[position]
        if position in before or position in after:
            chain_ok = false if position in broken else row[CHAIN_OK_AT]
            text = join_flags([before.get(position, ""), *prepared.flags[position], *after.get(position, ())])
            row = (*row[:CHAIN_OK_AT], chain_ok, text)
        out.append(row)
    return out


def ingest_batch(
    db: Session,
    kiosk: KioskLike,
    batch: EventBatch,
    *,
    now: datetime,
    settings: IngestSettings,
) -> IngestResult:
    """The whole pipeline in the caller's transaction, for callers without a lock of their own to keep
    short (scripts, tests): :func:`look_up`, :func:`prepare`, then :func:`store_batch` deciding every
    event against the stored ids (a :class:`BatchCollision` would need a rollback the caller owns)."""
    prepared = prepare(
        batch,
        look_up(db, kiosk, batch),
        now=now,
        settings=settings,
        codec=codec_for(db.get_bind().dialect.name),
    )
    return store_batch(db, kiosk, prepared, now=now, continuing=False)


__all__ = [
    "BatchCollision",
    "IngestResult",
    "IngestSettings",
    "KioskLike",
    "Lookups",
    "PreparedBatch",
    "effective_time",
    "ingest_batch",
    "look_up",
    "prepare",
    "store_batch",
]
