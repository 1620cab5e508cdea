"""The offline roster cache: who a credential hash belongs to, so the kiosk decides without the network.

The server sends :class:`protocol.messages.RosterDelta` pages on every heartbeat; :meth:`Roster.apply_delta`
applies one page in one transaction, together with its cursor, so a crash between "rows applied" and
"cursor saved" cannot happen and the next heartbeat asks for exactly the right changes.

Removals are kept as *revoked* tombstones instead of being deleted: a member tapping a card staff just
revoked deserves "this card was withdrawn, see staff", not "unknown card". A full resync drops every row,
tombstones included.

PIN verifiers (``member_no → pin_verifier``) are optional: the protocol's RosterDelta has no field for
them yet, so :meth:`apply_delta` takes them from a ``pin_verifiers`` attribute or key when the delta has
one, and :meth:`upsert_pins` is there for the sync agent. Names are already masked by the server; an
unmasked name never reaches the kiosk.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from protocol.hashing import CredentialValueError, pin_verifier

logger = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS credentials (
    credential_hash TEXT PRIMARY KEY,
    credential_kind TEXT NOT NULL,
    member_id INTEGER NOT NULL,
    masked_name TEXT NOT NULL,
    unit_name TEXT NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0,
    source TEXT NOT NULL DEFAULT 'server'
);
CREATE INDEX IF NOT EXISTS ix_credentials_member ON credentials (member_id);
CREATE TABLE IF NOT EXISTS pins (
    member_no TEXT PRIMARY KEY,
    member_id INTEGER NOT NULL,
    verifier TEXT NOT NULL,
    masked_name TEXT NOT NULL,
    unit_name TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class RosterMember:
    """What the kiosk knows about the owner of a credential."""

    member_id: int
    masked_name: str
    unit_name: str
    credential_kind: str
    revoked: bool = False
    member_no: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "member_id": self.member_id,
            "masked_name": self.masked_name,
            "unit_name": self.unit_name,
            "credential_kind": self.credential_kind,
            "revoked": self.revoked,
            "member_no": self.member_no,
        }


@dataclass(frozen=True, slots=True)
class PinEntry:
    member_no: str
    member_id: int
    verifier: str
    masked_name: str
    unit_name: str


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _text(value: Any) -> str:
    return str(getattr(value, "value", value))


class Roster:
    """Thread-safe SQLite roster. ``credential_key`` is needed only for :meth:`lookup_pin`."""

    def __init__(self, path: str | os.PathLike[str], *, credential_key: bytes | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.credential_key = credential_key
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- server deltas ---------------------------------------------------------------------------
    def apply_delta(self, delta: Any) -> int:
        """Apply one RosterDelta page (model or dict) and store its cursor, atomically. Returns rows changed."""
        upserts = _get(delta, "upserts") or []
        removals = _get(delta, "removals") or []
        pins = _get(delta, "pin_verifiers")
        changed = 0
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if _get(delta, "full_resync", False):
                    self._db.execute("DELETE FROM credentials")
                    if pins is not None:
                        self._db.execute("DELETE FROM pins")
                rows = [
                    (
                        _get(e, "credential_hash"),
                        _text(_get(e, "credential_kind")),
                        int(_get(e, "member_id")),
                        _get(e, "masked_name"),
                        _get(e, "unit_name"),
                    )
                    for e in upserts
                ]
                self._db.executemany(
                    "INSERT INTO credentials (credential_hash, credential_kind, member_id, masked_name,"
                    " unit_name, revoked, source) VALUES (?, ?, ?, ?, ?, 0, 'server')"
                    " ON CONFLICT (credential_hash) DO UPDATE SET credential_kind = excluded.credential_kind,"
                    " member_id = excluded.member_id, masked_name = excluded.masked_name,"
                    " unit_name = excluded.unit_name, revoked = 0, source = 'server'",
                    rows,
                )
                changed += len(rows)
                for h in removals:
                    changed += self._db.execute(
                        "UPDATE credentials SET revoked = 1 WHERE credential_hash = ?", (h,)
                    ).rowcount
                if pins is not None:
                    changed += self._upsert_pins_locked(pins)
                for key in ("qr_public_keys", "revoked_badges"):
                    value = _get(delta, key)
                    if value is not None:
                        self._set_meta_locked(key, json.dumps(value))
                self._set_meta_locked("cursor", str(_get(delta, "cursor")))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        logger.info(
            "roster delta applied: %d upserts, %d removals, full=%s",
            len(rows), len(removals), bool(_get(delta, "full_resync", False)),
        )  # fmt: skip
        return changed

    def upsert_pins(self, entries: Iterable[PinEntry | Mapping[str, Any]]) -> int:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                n = self._upsert_pins_locked(entries)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return n

    def _upsert_pins_locked(self, entries: Iterable[Any]) -> int:
        rows = [
            (
                _get(e, "member_no"),
                int(_get(e, "member_id")),
                _get(e, "verifier"),
                _get(e, "masked_name"),
                _get(e, "unit_name"),
            )
            for e in entries
        ]
        self._db.executemany(
            "INSERT INTO pins (member_no, member_id, verifier, masked_name, unit_name) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (member_no) DO UPDATE SET member_id = excluded.member_id,"
            " verifier = excluded.verifier, masked_name = excluded.masked_name, unit_name = excluded.unit_name",
            rows,
        )
        return len(rows)

    def add_local_binding(self, credential_hash: str, credential_kind: str, member: RosterMember) -> None:
        """A card bound by staff at this kiosk works at once, before the server confirms it."""
        with self._lock:
            self._db.execute(
                "INSERT INTO credentials (credential_hash, credential_kind, member_id, masked_name, unit_name,"
                " revoked, source) VALUES (?, ?, ?, ?, ?, 0, 'local') ON CONFLICT (credential_hash) DO UPDATE"
                " SET member_id = excluded.member_id, masked_name = excluded.masked_name,"
                " unit_name = excluded.unit_name, revoked = 0, source = 'local'",
                (credential_hash, credential_kind, member.member_id, member.masked_name, member.unit_name),
            )

    def drop_local_binding(self, credential_hash: str) -> bool:
        """Undo :meth:`add_local_binding` when the server refused the binding.

        The local row may have overwritten the server's row for the same card (a card of another member),
        so the cursor is dropped too: the next heartbeat fetches a full roster and restores the truth.
        """
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                cur = self._db.execute(
                    "DELETE FROM credentials WHERE credential_hash = ? AND source = 'local'",
                    (credential_hash,),
                )
                self._db.execute("DELETE FROM meta WHERE key = 'cursor'")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return cur.rowcount > 0

    # -- lookups ---------------------------------------------------------------------------------
    def lookup(self, credential_hash: str) -> RosterMember | None:
        """The member a credential hash belongs to (``revoked`` set for withdrawn ones), or ``None``."""
        with self._lock:
            row = self._db.execute(
                "SELECT member_id, masked_name, unit_name, credential_kind, revoked FROM credentials"
                " WHERE credential_hash = ?",
                (credential_hash,),
            ).fetchone()
        if row is None:
            return None
        return RosterMember(row[0], row[1], row[2], row[3], bool(row[4]))

    def lookup_pin(self, member_no: str, pin: str) -> RosterMember | None:
        """The member when ``pin`` matches the verifier for ``member_no``; ``None`` for any mismatch.

        Unknown member number and wrong PIN look the same to the caller, so the keypad cannot be used to
        find out which member numbers exist. Rate limiting is :mod:`kiosk.pinguard`'s job.
        """
        if self.credential_key is None:
            return None
        with self._lock:
            row = self._db.execute(
                "SELECT member_id, verifier, masked_name, unit_name FROM pins WHERE member_no = ?",
                (member_no,),
            ).fetchone()
        try:
            candidate = pin_verifier(self.credential_key, member_no, pin)
        except CredentialValueError:
            return None
        if row is None:
            return None
        if not hmac.compare_digest(candidate, row[1]):
            return None
        return RosterMember(row[0], row[2], row[3], "pin", False, member_no)

    def member(self, member_id: int) -> RosterMember | None:
        with self._lock:
            row = self._db.execute(
                "SELECT member_id, masked_name, unit_name, 'card', 0 FROM credentials WHERE member_id = ?"
                " UNION ALL SELECT member_id, masked_name, unit_name, 'pin', 0 FROM pins WHERE member_id = ?"
                " LIMIT 1",
                (member_id, member_id),
            ).fetchone()
        return None if row is None else RosterMember(row[0], row[1], row[2], row[3], False)

    def search(self, query: str, limit: int = 20) -> list[RosterMember]:
        """Members for the staff binding screen: by member number, member id, masked name or unit."""
        q = query.strip()
        like = f"%{q}%"
        with self._lock:
            rows = self._db.execute(
                "SELECT member_id, masked_name, unit_name, member_no FROM ("
                " SELECT member_id, masked_name, unit_name, member_no FROM pins"
                " UNION SELECT member_id, masked_name, unit_name, NULL FROM credentials WHERE revoked = 0)"
                " WHERE member_no = ? OR CAST(member_id AS TEXT) = ? OR masked_name LIKE ? OR unit_name LIKE ?"
                " ORDER BY member_id LIMIT ?",
                (q, q, like, like, limit * 3),
            ).fetchall()
        seen: dict[int, RosterMember] = {}
        for member_id, name, unit, member_no in rows:
            if member_id not in seen or (member_no and not seen[member_id].member_no):
                seen[member_id] = RosterMember(member_id, name, unit, "member", False, member_no)
        return list(seen.values())[:limit]

    def size(self) -> int:
        """Active (not revoked) credentials."""
        with self._lock:
            return self._db.execute("SELECT count(*) FROM credentials WHERE revoked = 0").fetchone()[0]

    # -- meta ------------------------------------------------------------------------------------
    @property
    def cursor(self) -> str | None:
        return self.get_meta("cursor")

    def get_meta(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: str) -> None:
        with self._lock:
            self._set_meta_locked(key, value)

    def _set_meta_locked(self, key: str, value: str) -> None:
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )
