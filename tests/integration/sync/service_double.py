"""A kiosk-service double with exactly the members of :class:`kiosk.sync.SyncService`, nothing more.

Why: the sync and heartbeat agents are typed against protocols (:class:`kiosk.sync.SyncService`,
:class:`kiosk.heartbeat.HeartbeatService`); running them against this double proves they need nothing
beyond those members, and these tests do not depend on readers. Its parts are real (SQLite outbox and
roster, the QR verifier); what it is told is put on ``calls``, a queue the test owns, so the double's
public surface stays the protocol's (``test_agent_interface.py`` checks that).
"""

from __future__ import annotations

import datetime as dt
import queue
from collections.abc import Callable, Mapping
from typing import Any

from kiosk.config import KioskConfig
from kiosk.outbox import Outbox
from kiosk.outcome_feed import Subscriber
from kiosk.qr import QrVerifier
from kiosk.roster import Roster
from protocol.messages import Presence

Calls = queue.Queue[tuple[str, Any]]


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class ProtocolOnlyService:
    """Implements :class:`kiosk.sync.SyncService` (and so :class:`kiosk.heartbeat.HeartbeatService`)."""

    def __init__(
        self,
        config: KioskConfig,
        calls: Calls | None = None,
        *,
        clock: Callable[[], dt.datetime] = _utc_now,
    ) -> None:
        state = config.state_dir
        state.mkdir(parents=True, exist_ok=True)
        self.config = config
        self.clock = clock
        self.outbox = Outbox(state / "outbox.sqlite3")
        self.roster = Roster(state / "roster.sqlite3")
        self.qr = QrVerifier.in_state_dir(state)
        self._calls: Calls = calls if calls is not None else queue.Queue()
        self._locked = False

    # -- HeartbeatService ------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        return {
            "readers": [{"reader_id": "sim", "driver": "simulated", "state": "ready", "reads": 3}],
            "locked": self._locked,
            "software_version": "test",
            "uptime_s": 1.0,
        }

    def handle_command(self, name: str, args: dict[str, Any] | None = None) -> tuple[bool, str] | None:
        self._calls.put(("handle_command", (name, args or {})))
        if name == "lock_screen":
            self._locked = True
            return True, "locked"
        if name == "show_message":
            return True, "shown"
        return None

    def apply_config(self, version: int, body: Mapping[str, Any]) -> None:
        self._calls.put(("apply_config", (version, dict(body))))

    def apply_presence(self, presence: Presence) -> None:
        self._calls.put(("apply_presence", presence))

    def reload_enrolment(self) -> None:
        self._calls.put(("reload_enrolment", None))

    # -- SyncService -----------------------------------------------------------------------------
    def set_clock_offset(self, offset_ms: int) -> None:
        self._calls.put(("set_clock_offset", offset_ms))

    def update_sync_status(self, **fields: Any) -> None:
        self._calls.put(("update_sync_status", fields))

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        self._calls.put(("subscribe", callback))

        def unsubscribe() -> None:
            self._calls.put(("unsubscribe", callback))

        return unsubscribe


def close_parts(service: ProtocolOnlyService) -> None:
    """Close the double's databases (a function, so the double's members stay the protocol's)."""
    service.outbox.close()
    service.roster.close()
    service.qr.close()
