"""The kiosk's durable outbox: every tap (and every card binding) waits here until the server acknowledged it.

Why SQLite in WAL mode with ``synchronous=FULL``: a tap is confirmed on screen only after
:meth:`Outbox.append` returned, and ``append`` returns only after the transaction that holds the tap
is committed *and fsynced* — a power cut or a ``kill -9`` one instant later cannot take it back. WAL
lets the sync agent read pending rows while the reader thread appends.

Rules this module enforces (DESIGN.md, "Kiosk ↔ server contract"):

* ``seq`` is 1, 2, 3, … without holes and each row carries ``prev_hash``/``hash`` of the per-kiosk chain
  (:mod:`protocol.chain`). The chain head lives in its own one-row table, updated in the same
  transaction as the insert, so purging old acknowledged rows never loses the head.
* Nothing unsynced is ever deleted or overwritten. :meth:`purge_acked` deletes acknowledged rows only.
* When the outbox is near its capacity or the disk is nearly full, :meth:`stats` raises
  ``capacity_alarm`` (health and heartbeat show it). When it is *completely* full, :meth:`append`
  refuses with :class:`OutboxFull` — the kiosk shows "see staff" — rather than dropping an old tap
  nobody has uploaded yet. Losing a tap silently is worse than refusing one loudly.

Bindings (staff ties a new card to a member at the kiosk) go in a second table, ``bindings``, with
their own uuid7 id and the same at-least-once rule; they are not part of the tap chain because they
are staff decisions, not identifications. Wire form: :meth:`StoredBinding.to_wire`.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from protocol.chain import GENESIS_HASH, canonical_time, compute_hash
from protocol.ids import uuid7

logger = logging.getLogger(__name__)

DEFAULT_CAPACITY = 200_000  # ≈ 80 MB of rows; months of taps at a busy centre with no network
DEFAULT_MIN_FREE_BYTES = 64 * 1024 * 1024
ALARM_FRACTION = 0.9

_SCHEMA = """
CREATE TABLE IF NOT EXISTS taps (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    credential_kind TEXT NOT NULL,
    credential_hash TEXT NOT NULL,
    qr_step INTEGER,
    badge_serial TEXT,
    member_id INTEGER,
    direction TEXT NOT NULL,
    device_time TEXT NOT NULL,
    device_tz TEXT NOT NULL,
    clock_offset_ms INTEGER NOT NULL,
    trust TEXT,
    reason TEXT,
    created_at REAL NOT NULL,
    acked_at REAL
);
CREATE INDEX IF NOT EXISTS ix_taps_unsynced ON taps (seq) WHERE acked_at IS NULL;
CREATE INDEX IF NOT EXISTS ix_taps_member ON taps (member_id, seq);
CREATE TABLE IF NOT EXISTS chain_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS bindings (
    id INTEGER PRIMARY KEY,
    binding_id TEXT NOT NULL UNIQUE,
    credential_kind TEXT NOT NULL,
    credential_hash TEXT NOT NULL,
    member_id INTEGER NOT NULL,
    staff_ref TEXT,
    device_time TEXT NOT NULL,
    device_tz TEXT NOT NULL,
    created_at REAL NOT NULL,
    acked_at REAL
);
"""

_TAP_COLUMNS = (
    "seq, event_id, prev_hash, hash, credential_kind, credential_hash, qr_step, badge_serial, member_id, "
    "direction, device_time, device_tz, clock_offset_ms, trust, reason, created_at, acked_at"
)


class OutboxError(Exception):
    """The outbox could not store a tap (disk error, corrupt file). The tap was NOT recorded."""


class OutboxFull(OutboxError):
    """The outbox holds ``capacity`` unsynced taps; it refuses new ones instead of losing old ones."""

    def __init__(self, depth: int, capacity: int) -> None:
        super().__init__(
            f"outbox full: {depth} unsynced taps (capacity {capacity}); please see staff / "
            f"待上传记录已满({depth}/{capacity}),请联系工作人员"
        )
        self.depth = depth
        self.capacity = capacity


@dataclass(frozen=True, slots=True)
class TapDraft:
    """What the check-in decision produced; the outbox adds identity and chain position."""

    credential_kind: str
    credential_hash: str
    direction: str
    device_time: dt.datetime
    device_tz: str
    clock_offset_ms: int = 0
    member_id: int | None = None
    trust: str | None = None
    reason: str | None = None
    qr_step: int | None = None
    badge_serial: str | None = None


@dataclass(frozen=True, slots=True)
class StoredTap:
    """A committed tap: exactly the fields of ``protocol.messages.TapEventIn`` plus local bookkeeping."""

    seq: int
    event_id: str
    prev_hash: str
    hash: str
    credential_kind: str
    credential_hash: str
    direction: str
    device_time: dt.datetime
    device_tz: str
    clock_offset_ms: int
    member_id: int | None = None
    trust: str | None = None
    reason: str | None = None
    qr_step: int | None = None
    badge_serial: str | None = None
    created_at: float = 0.0
    acked_at: float | None = None

    def chain_fields(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "seq": self.seq,
            "prev_hash": self.prev_hash,
            "credential_kind": self.credential_kind,
            "credential_hash": self.credential_hash,
            "qr_step": self.qr_step,
            "badge_serial": self.badge_serial,
            "member_id": self.member_id,
            "direction": self.direction,
            "device_time": self.device_time,
            "device_tz": self.device_tz,
            "clock_offset_ms": self.clock_offset_ms,
            "trust": self.trust,
            "reason": self.reason,
        }

    def to_wire(self) -> dict[str, Any]:
        """JSON-ready dict that ``TapEventIn.model_validate`` accepts (times as ISO text, UTC)."""
        out = self.chain_fields()
        out["device_time"] = canonical_time(self.device_time)
        out["hash"] = self.hash
        return out


@dataclass(frozen=True, slots=True)
class StoredBinding:
    """A card binding made by staff at the kiosk, waiting for the server."""

    id: int
    binding_id: str
    credential_kind: str
    credential_hash: str
    member_id: int
    staff_ref: str | None
    device_time: dt.datetime
    device_tz: str
    created_at: float
    acked_at: float | None = None

    def to_wire(self) -> dict[str, Any]:
        """Proposed wire form (no protocol message exists yet; see docs/readme-kiosk-core.md)."""
        return {
            "binding_id": self.binding_id,
            "credential_kind": self.credential_kind,
            "credential_hash": self.credential_hash,
            "member_id": self.member_id,
            "staff_ref": self.staff_ref,
            "device_time": canonical_time(self.device_time),
            "device_tz": self.device_tz,
        }


@dataclass(frozen=True, slots=True)
class OutboxStats:
    depth: int
    oldest_unsynced_at: float | None  # Unix time the oldest unsynced tap was stored
    oldest_unsynced_age_s: float | None
    last_seq: int
    head_hash: str
    acked: int
    bindings_pending: int
    capacity: int
    disk_free_bytes: int
    min_free_bytes: int
    capacity_alarm: bool
    alarm_reasons: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        return {
            "depth": self.depth,
            "oldest_unsynced_at": self.oldest_unsynced_at,
            "oldest_unsynced_age_s": self.oldest_unsynced_age_s,
            "last_seq": self.last_seq,
            "head_hash": self.head_hash,
            "acked": self.acked,
            "bindings_pending": self.bindings_pending,
            "capacity": self.capacity,
            "disk_free_bytes": self.disk_free_bytes,
            "min_free_bytes": self.min_free_bytes,
            "capacity_alarm": self.capacity_alarm,
            "alarm_reasons": list(self.alarm_reasons),
        }


def _parse_time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _row_to_tap(row: tuple[Any, ...]) -> StoredTap:
    (seq, event_id, prev, own, kind, chash, qr_step, badge, member, direction, dtime, tz, offset, trust,
     reason, created, acked) = row  # fmt: skip
    return StoredTap(
        seq=seq,
        event_id=event_id,
        prev_hash=prev,
        hash=own,
        credential_kind=kind,
        credential_hash=chash,
        direction=direction,
        device_time=_parse_time(dtime),
        device_tz=tz,
        clock_offset_ms=offset,
        member_id=member,
        trust=trust,
        reason=reason,
        qr_step=qr_step,
        badge_serial=badge,
        created_at=created,
        acked_at=acked,
    )


class Outbox:
    """Thread-safe; one instance per process (SQLite's own locking also protects a second process)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        capacity: int = DEFAULT_CAPACITY,
        min_free_bytes: int = DEFAULT_MIN_FREE_BYTES,
    ) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1 / 容量至少为 1")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.capacity = capacity
        self.min_free_bytes = min_free_bytes
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._db.execute("INSERT OR IGNORE INTO chain_head (id, seq, hash) VALUES (1, 0, ?)", (GENESIS_HASH,))
        self._depth = self._db.execute("SELECT count(*) FROM taps WHERE acked_at IS NULL").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- writing ---------------------------------------------------------------------------------
    def append(self, draft: TapDraft) -> StoredTap:
        """Give ``draft`` an id and the next chain position, commit (fsync), then return it.

        Raises :class:`OutboxFull` at capacity and :class:`OutboxError` when SQLite fails; in both cases
        nothing was stored and the caller must not confirm the tap.
        """
        with self._lock:
            if self._depth >= self.capacity:
                raise OutboxFull(self._depth, self.capacity)
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    head_seq, head_hash = self._db.execute(
                        "SELECT seq, hash FROM chain_head WHERE id = 1"
                    ).fetchone()
                    fields = {
                        "event_id": str(uuid7()),
                        "seq": head_seq + 1,
                        "prev_hash": head_hash,
                        "credential_kind": draft.credential_kind,
                        "credential_hash": draft.credential_hash,
                        "qr_step": draft.qr_step,
                        "badge_serial": draft.badge_serial,
                        "member_id": draft.member_id,
                        "direction": draft.direction,
                        "device_time": draft.device_time,
                        "device_tz": draft.device_tz,
                        "clock_offset_ms": draft.clock_offset_ms,
                        "trust": draft.trust,
                        "reason": draft.reason,
                    }
                    own = compute_hash(head_hash, fields)
                    created = time.time()
                    tap = StoredTap(hash=own, created_at=created, **fields)
                    self._db.execute(
                        f"INSERT INTO taps ({_TAP_COLUMNS}) VALUES ({','.join('?' * 17)})",
                        (
                            tap.seq, tap.event_id, tap.prev_hash, tap.hash, tap.credential_kind,
                            tap.credential_hash, tap.qr_step, tap.badge_serial, tap.member_id,
                            tap.direction, canonical_time(tap.device_time), tap.device_tz,
                            tap.clock_offset_ms, tap.trust, tap.reason, created, None,
                        ),
                    )  # fmt: skip
                    self._db.execute("UPDATE chain_head SET seq = ?, hash = ? WHERE id = 1", (tap.seq, own))
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                logger.error("outbox append failed: %s", exc)
                raise OutboxError(f"could not store tap / 无法保存签到记录: {exc}") from exc
            self._depth += 1
        return tap

    def mark_acked(self, event_ids: Iterable[str]) -> int:
        """Mark taps the server acknowledged (accepted or duplicate). Returns how many changed state."""
        ids = [str(e) for e in event_ids]
        if not ids:
            return 0
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                changed = 0
                for start in range(0, len(ids), 500):
                    chunk = ids[start : start + 500]
                    cur = self._db.execute(
                        f"UPDATE taps SET acked_at = ? WHERE acked_at IS NULL AND event_id IN "
                        f"({','.join('?' * len(chunk))})",
                        (now, *chunk),
                    )
                    changed += cur.rowcount
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._depth -= changed
        return changed

    def purge_acked(self, older_than: float) -> int:
        """Delete acknowledged taps and bindings acked more than ``older_than`` seconds ago.

        Unsynced rows are never touched. Recent acked taps are kept because the check-in decision
        rebuilds per-member state from them after a restart.
        """
        cutoff = time.time() - older_than
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                n = self._db.execute(
                    "DELETE FROM taps WHERE acked_at IS NOT NULL AND acked_at < ?", (cutoff,)
                ).rowcount
                n += self._db.execute(
                    "DELETE FROM bindings WHERE acked_at IS NOT NULL AND acked_at < ?", (cutoff,)
                ).rowcount
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return n

    # -- reading ---------------------------------------------------------------------------------
    def pending(self, limit: int = 500) -> list[StoredTap]:
        """Unsynced taps, oldest first (by ``seq``): the next batch to upload."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_TAP_COLUMNS} FROM taps WHERE acked_at IS NULL ORDER BY seq LIMIT ?", (limit,)
            ).fetchall()
        return [_row_to_tap(r) for r in rows]

    def all_taps(self, since_seq: int = 0) -> list[StoredTap]:
        """Every stored tap with ``seq > since_seq`` (acked or not), by seq — for checks and tools."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_TAP_COLUMNS} FROM taps WHERE seq > ? ORDER BY seq", (since_seq,)
            ).fetchall()
        return [_row_to_tap(r) for r in rows]

    def last_toggles(self, since: dt.datetime) -> list[StoredTap]:
        """Per member, the latest IN or OUT tap stored at or after ``since`` — the check-in state."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_TAP_COLUMNS} FROM taps WHERE seq IN ("
                " SELECT max(seq) FROM taps WHERE member_id IS NOT NULL AND direction IN ('in', 'out')"
                " AND device_time >= ? GROUP BY member_id) ORDER BY seq",
                (canonical_time(since),),
            ).fetchall()
        return [_row_to_tap(r) for r in rows]

    def count_since(self, since: dt.datetime, directions: tuple[str, ...] = ("in",)) -> int:
        """How many taps with these directions were stored since ``since`` (today's check-in count)."""
        with self._lock:
            return self._db.execute(
                f"SELECT count(*) FROM taps WHERE device_time >= ? AND direction IN "
                f"({','.join('?' * len(directions))})",
                (canonical_time(since), *directions),
            ).fetchone()[0]

    def head(self) -> tuple[int, str]:
        with self._lock:
            return self._db.execute("SELECT seq, hash FROM chain_head WHERE id = 1").fetchone()

    # -- bindings --------------------------------------------------------------------------------
    def append_binding(
        self,
        *,
        credential_kind: str,
        credential_hash: str,
        member_id: int,
        device_time: dt.datetime,
        device_tz: str,
        staff_ref: str | None = None,
    ) -> StoredBinding:
        """Commit a card binding before staff are told it is saved (same durability as taps)."""
        binding_id = str(uuid7())
        created = time.time()
        with self._lock:
            try:
                cur = self._db.execute(
                    "INSERT INTO bindings (binding_id, credential_kind, credential_hash, member_id, staff_ref,"
                    " device_time, device_tz, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (binding_id, credential_kind, credential_hash, member_id, staff_ref,
                     canonical_time(device_time), device_tz, created),
                )  # fmt: skip
            except sqlite3.Error as exc:
                raise OutboxError(f"could not store binding / 无法保存绑定: {exc}") from exc
        return StoredBinding(
            cur.lastrowid or 0, binding_id, credential_kind, credential_hash, member_id, staff_ref,
            device_time.astimezone(dt.UTC), device_tz, created,
        )  # fmt: skip

    def pending_bindings(self, limit: int = 100) -> list[StoredBinding]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, binding_id, credential_kind, credential_hash, member_id, staff_ref, device_time,"
                " device_tz, created_at, acked_at FROM bindings WHERE acked_at IS NULL ORDER BY id LIMIT ?",
                (limit,),
            ).fetchall()
        return [StoredBinding(*r[:6], _parse_time(r[6]), *r[7:]) for r in rows]

    def mark_bindings_acked(self, binding_ids: Iterable[str]) -> int:
        ids = [str(b) for b in binding_ids]
        if not ids:
            return 0
        with self._lock:
            cur = self._db.execute(
                f"UPDATE bindings SET acked_at = ? WHERE acked_at IS NULL AND binding_id IN "
                f"({','.join('?' * len(ids))})",
                (time.time(), *ids),
            )
            return cur.rowcount

    # -- health ----------------------------------------------------------------------------------
    def stats(self) -> OutboxStats:
        with self._lock:
            depth, oldest = self._db.execute(
                "SELECT count(*), min(created_at) FROM taps WHERE acked_at IS NULL"
            ).fetchone()
            acked = self._db.execute("SELECT count(*) FROM taps WHERE acked_at IS NOT NULL").fetchone()[0]
            bindings = self._db.execute("SELECT count(*) FROM bindings WHERE acked_at IS NULL").fetchone()[0]
            head_seq, head_hash = self._db.execute("SELECT seq, hash FROM chain_head WHERE id = 1").fetchone()
            self._depth = depth
        free = disk_free_bytes(self.path.parent)
        reasons = []
        if depth >= ALARM_FRACTION * self.capacity:
            reasons.append("outbox_near_capacity")
        if free < self.min_free_bytes:
            reasons.append("disk_low")
        return OutboxStats(
            depth=depth,
            oldest_unsynced_at=oldest,
            oldest_unsynced_age_s=None if oldest is None else max(0.0, time.time() - oldest),
            last_seq=head_seq,
            head_hash=head_hash,
            acked=acked,
            bindings_pending=bindings,
            capacity=self.capacity,
            disk_free_bytes=free,
            min_free_bytes=self.min_free_bytes,
            capacity_alarm=bool(reasons),
            alarm_reasons=tuple(reasons),
        )


def disk_free_bytes(path: str | os.PathLike[str]) -> int:
    """Bytes available to this (unprivileged) process on the file system holding ``path``."""
    return shutil.disk_usage(path).free
