"""Rate limiting for PIN entry at the kiosk keypad, persisted so a restart does not reset it.

A PIN has only 10**4–10**8 values, so guessing must be slow at the keypad itself. Two counters:

* per member number: after ``max_failures`` wrong PINs in a row that member number is locked for
  ``lockout``; each further lockout doubles, up to ``max_lockout`` (a person who forgot their PIN is
  sent to staff; a guesser gets nowhere);
* per kiosk: after ``kiosk_max_failures`` failures across all member numbers within ``lockout`` the
  whole keypad locks for ``lockout`` — that stops walking through member numbers with one common PIN.

A success clears the member's counter. State lives in SQLite (``synchronous=FULL``) and is written before
the verdict is returned, so pulling the plug after a wrong PIN does not give the guesser a free try.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)
audit = logging.getLogger("kiosk.audit.pin")

KIOSK_KEY = "*kiosk*"


@dataclass(frozen=True, slots=True)
class PinPolicy:
    max_failures: int = 5
    lockout_s: float = 300.0
    max_lockout_s: float = 3600.0
    kiosk_max_failures: int = 20


@dataclass(frozen=True, slots=True)
class GuardState:
    locked: bool
    retry_after_s: float = 0.0
    failures: int = 0


class PinGuard:
    def __init__(
        self,
        path: str | os.PathLike[str],
        policy: PinPolicy | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.policy = policy or PinPolicy()
        self._clock = clock
        self._lock = threading.Lock()
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS pin_failures (key TEXT PRIMARY KEY, failures INTEGER NOT NULL,"
            " lockouts INTEGER NOT NULL, first_failure REAL NOT NULL, locked_until REAL NOT NULL)"
        )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _row(self, key: str) -> tuple[int, int, float, float]:
        row = self._db.execute(
            "SELECT failures, lockouts, first_failure, locked_until FROM pin_failures WHERE key = ?", (key,)
        ).fetchone()
        return (0, 0, 0.0, 0.0) if row is None else row

    def check(self, member_no: str) -> GuardState:
        """Whether a PIN for ``member_no`` may be tried now (kiosk-wide lock first)."""
        now = self._clock()
        with self._lock:
            for key in (KIOSK_KEY, member_no):
                failures, _lockouts, _first, until = self._row(key)
                if until > now:
                    return GuardState(True, until - now, failures)
            return GuardState(False, 0.0, self._row(member_no)[0])

    def record_failure(self, member_no: str) -> GuardState:
        """Count a wrong PIN; returns the state after it (locked when this failure tripped a lockout)."""
        now = self._clock()
        p = self.policy
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                failures, lockouts, first, until = self._row(member_no)
                failures += 1
                if failures >= p.max_failures:
                    duration = min(p.lockout_s * (2**lockouts), p.max_lockout_s)
                    until, lockouts, failures = now + duration, lockouts + 1, 0
                    audit.warning("PIN lockout for member number %s: %.0f s", member_no, duration)
                self._put(member_no, failures, lockouts, first or now, until)
                k_failures, k_lockouts, k_first, k_until = self._row(KIOSK_KEY)
                if now - k_first > p.lockout_s:
                    k_failures, k_first = 0, now
                k_failures += 1
                if k_failures >= p.kiosk_max_failures:
                    k_until, k_lockouts, k_failures = now + p.lockout_s, k_lockouts + 1, 0
                    audit.warning("PIN keypad locked kiosk-wide for %.0f s", p.lockout_s)
                self._put(KIOSK_KEY, k_failures, k_lockouts, k_first, k_until)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            locked_until = max(until, k_until)
        return GuardState(locked_until > now, max(0.0, locked_until - now), failures)

    def record_success(self, member_no: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM pin_failures WHERE key = ?", (member_no,))

    def _put(self, key: str, failures: int, lockouts: int, first: float, until: float) -> None:
        self._db.execute(
            "INSERT INTO pin_failures (key, failures, lockouts, first_failure, locked_until)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET failures = excluded.failures,"
            " lockouts = excluded.lockouts, first_failure = excluded.first_failure,"
            " locked_until = excluded.locked_until",
            (key, failures, lockouts, first, until),
        )
