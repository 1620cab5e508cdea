"""KioskService: readers → normalise → credential hash → check-in decision → outbox → screen.

One object owns the kiosk's moving parts and is the only thing the local web app and the sync agent
talk to. Reads arrive on reader threads; :meth:`KioskService.on_read` decides, commits to the outbox
and only then publishes the :class:`~kiosk.outcomes.TapOutcome` — so the screen can never confirm a tap
that is not on disk. Decide-append-update runs under one lock (two readers cannot both check the same
member in); subscribers are called after the lock is released, and a new subscriber gets the current
state at once (pyscard's observer pattern, CONVENTIONS.md).

Why one process (hardware manager, outbox, sync agent, web app): a tap goes reader thread → SQLite →
SSE queue without crossing a process boundary, which keeps the read-to-screen latency to a few ms, and
systemd supervises the single process (restart on failure). The outbox is the durable hand-off, so a
crash loses nothing that was confirmed.

This module wires the parts, owns their lifecycle and answers ``state()`` / ``health()``; the work is
done by the parts it composes, one responsibility each. Each part receives the one
:class:`~kiosk.context.KioskContext` the service builds (lock, clock, outbox, roster, member states, PIN
guard, QR verifier, readers, feed, and the ``live`` settings a pushed config replaces) and takes from it
what it needs; a part that hands work to another part gets that part by name:

* :mod:`kiosk.outcome_feed` — outcome numbering, subscribers, waiters;
* :mod:`kiosk.reads` — reader value / signed QR code / PIN → credential hash and member;
* :mod:`kiosk.recording` — decide → outbox → member state → outcome, and today's count;
* :mod:`kiosk.staff` — maintenance mode and card binding;
* :mod:`kiosk.remote` — remote commands (lock, message, restart readers) and the pushed config.

The sync agent (:mod:`kiosk.sync`) sees this service only through :class:`kiosk.sync.SyncService`.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from hardware.base import CredentialRead
from kiosk.checkin import MemberStates
from kiosk.config import Enrolment, KioskConfig, credential_key_for, load_enrolment
from kiosk.context import KioskContext, LiveSettings
from kiosk.outbox import Outbox
from kiosk.outcome_feed import OutcomeFeed, Subscriber
from kiosk.outcomes import TapOutcome
from kiosk.pinguard import PinGuard, PinPolicy
from kiosk.qr import QrVerifier
from kiosk.readers import ReaderSet
from kiosk.reads import ReadHandler
from kiosk.recording import TapRecorder
from kiosk.remote import ConfigPush, RemoteControl
from kiosk.roster import Roster
from kiosk.staff import StaffMode, staff_hashes_for
from kiosk.sync import SyncAgent
from protocol.messages import Presence

logger = logging.getLogger(__name__)

HOUSEKEEPING_PERIOD_S = 3600.0


def software_version() -> str:
    try:
        return importlib.metadata.version("baodao")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0.0.0"


class SimulationError(Exception):
    """``simulate_read`` without simulation mode or without a simulator for that kind."""


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class KioskService:
    def __init__(
        self,
        config: KioskConfig,
        *,
        clock: Callable[[], dt.datetime] = _utc_now,
        start_sync: bool = True,
    ) -> None:
        self.clock = clock
        self._start_sync = start_sync
        state_dir = config.state_dir
        state_dir.mkdir(parents=True, exist_ok=True)
        self.enrolment = load_enrolment(state_dir)
        self.credential_key, self.key_source = credential_key_for(config, self.enrolment)
        self.outbox = Outbox(
            state_dir / "outbox.sqlite3", capacity=config.capacity, min_free_bytes=config.min_free_bytes
        )
        self.roster = Roster(state_dir / "roster.sqlite3", credential_key=self.credential_key)
        self.pin_guard = PinGuard(
            state_dir / "pin-guard.sqlite3",
            PinPolicy(max_failures=config.pin_max_failures, lockout_s=config.pin_lockout_s),
        )
        self.qr = QrVerifier.in_state_dir(state_dir)
        self.readers = ReaderSet(config, self.on_read)
        self.members = MemberStates()
        self.feed = OutcomeFeed(clock, self.state)
        self._started_mono = time.monotonic()
        self.sync_agent: SyncAgent | None = None
        self.sync_status: dict[str, Any] = {
            "online": False,
            "last_sync": None,
            "enrolled": self.enrolment is not None,
        }
        self._housekeeping_stop = threading.Event()
        self._housekeeping: threading.Thread | None = None
        # the parts: one shared context; what a pushed config replaces lives in ``context.live``
        self.context = KioskContext(
            lock=threading.RLock(),
            clock=clock,
            credential_key=self.credential_key,
            live=LiveSettings(config=config, staff_hashes=staff_hashes_for(config, self.credential_key)),
            outbox=self.outbox,
            roster=self.roster,
            members=self.members,
            pin_guard=self.pin_guard,
            qr=self.qr,
            readers=self.readers,
            feed=self.feed,
        )
        self._lock = self.context.lock
        self.staff = StaffMode(self.context)
        self.remote = RemoteControl(self.context)
        self.config_push = ConfigPush(self.context, install=self._install_config)
        self.recorder = TapRecorder(self.context, remote=self.remote)
        self.reads = ReadHandler(self.context, staff=self.staff, recorder=self.recorder)
        self.config_push.restore(config.state_dir)
        self._rebuild_state()

    @property
    def config(self) -> KioskConfig:
        """The config the kiosk runs now: the file's, with the last pushed config applied on top."""
        return self.context.live.config

    @property
    def clock_offset_ms(self) -> int:
        """The sync agent's last measured offset (server minus device), stamped on every new event."""
        return self.context.live.clock_offset_ms

    # -- lifecycle -------------------------------------------------------------------------------
    def _rebuild_state(self) -> None:
        """Per-member check-in state from the outbox's recent IN/OUT taps (survives restarts)."""
        horizon = self.clock() - self.config.rules.max_length - dt.timedelta(days=1)
        toggles = self.outbox.last_toggles(horizon)
        n = self.members.rebuild(
            (
                (t.member_id, t.direction, t.device_time + dt.timedelta(milliseconds=t.clock_offset_ms))
                for t in toggles
                if t.member_id
            ),
            self.config.rules,
        )
        logger.info("member state rebuilt from outbox: %d members, %d open", n, self.members.open_count())

    def start(self) -> None:
        self.readers.start()
        self._housekeeping_stop.clear()
        self._housekeeping = threading.Thread(target=self._housekeep, name="kiosk-housekeeping", daemon=True)
        self._housekeeping.start()
        if self._start_sync and self.enrolment is not None:
            self._start_sync_agent(self.enrolment)
        logger.info("kiosk service started (simulate=%s, key from %s)", self.config.simulate, self.key_source)

    def _start_sync_agent(self, enrolment: Enrolment) -> None:
        """Upload and heartbeat threads (:mod:`kiosk.sync`); a failure to start keeps taps in the outbox."""
        try:
            self.sync_agent = SyncAgent(self, enrolment)
            self.sync_agent.start()
        except Exception:
            logger.exception("sync agent failed to start; taps stay in the outbox")
            self.sync_agent = None

    def _housekeep(self) -> None:
        """Purge long-acknowledged rows now and then; never unsynced ones (Outbox.purge_acked)."""
        while not self._housekeeping_stop.wait(HOUSEKEEPING_PERIOD_S):
            try:
                n = self.outbox.purge_acked(self.config.purge_acked_after_s)
                if n:
                    logger.info("purged %d acknowledged outbox rows", n)
            except Exception:
                logger.exception("outbox purge failed")

    def stop(self) -> None:
        self._housekeeping_stop.set()
        if self.sync_agent is not None:
            try:
                self.sync_agent.stop()
            except Exception:
                logger.exception("sync agent stop failed")
        self.readers.stop()
        if self._housekeeping is not None:
            self._housekeeping.join(5)
        self.outbox.close()
        self.roster.close()
        self.pin_guard.close()
        self.qr.close()

    # -- observers (kiosk.outcome_feed) ----------------------------------------------------------
    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(kind, payload)`` for every ``"tap"`` outcome and ``"state"`` change.

        The current state is delivered at once. Returns a function that unsubscribes.
        """
        return self.feed.subscribe(callback)

    def wait_outcome(self, after_n: int, timeout: float, reader_id: str | None = None) -> TapOutcome | None:
        """The first outcome numbered above ``after_n`` (for ``reader_id`` when given), waiting up to ``timeout``."""
        return self.feed.wait_outcome(after_n, timeout, reader_id)

    @property
    def outcome_counter(self) -> int:
        return self.feed.counter

    def last_outcome(self) -> TapOutcome | None:
        return self.feed.last_outcome()

    def recent_outcomes(self) -> list[TapOutcome]:
        return self.feed.recent_outcomes()

    # -- reads and PIN (kiosk.reads) -------------------------------------------------------------
    def on_read(self, read: CredentialRead) -> TapOutcome:
        """Handle one read from any reader. Never raises: every failure becomes an outcome on screen."""
        outcome = self.reads.on_read(read)
        if read.read_id is not None:  # a simulated read whose sender waits for this very outcome
            self.feed.settle(read.read_id, outcome)
        return outcome

    def enter_pin(self, member_no: str, pin: str) -> TapOutcome:
        """Keypad check-in (member number + PIN), offline against the roster, rate-limited. Never raises."""
        return self.reads.enter_pin(member_no, pin)

    # -- staff: maintenance and card binding (kiosk.staff) ---------------------------------------
    def enter_maintenance(self) -> None:
        self.staff.set_mode("maintenance")

    def exit_maintenance(self) -> None:
        self.staff.set_mode("idle")

    def start_binding(self) -> None:
        """Binding mode (staff only): the next read is captured instead of checked in."""
        self.staff.start_binding()

    def search_members(self, query: str, limit: int = 20) -> list[dict[str, Any]]:
        return self.staff.search_members(query, limit)

    def confirm_binding(self, member_id: int, staff_ref: str | None = None) -> TapOutcome:
        """Bind the captured card to ``member_id``: committed to the outbox, usable at once locally."""
        return self.staff.confirm_binding(member_id, staff_ref)

    # -- remote commands and pushed config (kiosk.remote) ----------------------------------------
    def lock(self, text_zh: str | None = None, text_en: str | None = None) -> None:
        self.remote.lock(text_zh, text_en)

    def unlock(self) -> None:
        self.remote.unlock()

    def show_message(self, text: str, text_en: str | None = None, seconds: float = 30.0) -> None:
        self.remote.show_message(text, text_en, seconds)

    def handle_command(self, name: str, args: dict[str, Any] | None = None) -> tuple[bool, str] | None:
        """Apply a remote command this service owns; ``None`` for ones it does not (sync agent's)."""
        return self.remote.handle_command(name, args)

    def apply_config(self, version: int, body: Mapping[str, Any]) -> None:
        """Apply a config pushed by the server (the heartbeat agent calls this); raise if it is invalid.

        Applied on top of the config file, persisted before it takes effect (:class:`kiosk.remote.ConfigPush`).
        """
        self.config_push.apply(version, body, self.config.state_dir)

    def _install_config(self, new_config: KioskConfig) -> None:
        """Swap in a pushed config and what derives from it (``ConfigPush`` holds the lock)."""
        live = self.context.live
        live.config = new_config
        live.staff_hashes = staff_hashes_for(new_config, self.credential_key)
        self.pin_guard.policy = PinPolicy(
            max_failures=new_config.pin_max_failures, lockout_s=new_config.pin_lockout_s
        )
        self.recorder.reset_today()  # the day boundary may have moved with the time zone

    @property
    def applied_config_version(self) -> int:
        return self.config_push.version

    @property
    def config_needs_restart(self) -> list[str]:
        return self.config_push.needs_restart

    # -- sync agent hooks ------------------------------------------------------------------------
    def reload_enrolment(self) -> None:
        """Re-read ``enrolment.json`` after the secret was rotated (the credential key does not change)."""
        enrolment = load_enrolment(self.config.state_dir)
        if enrolment is not None:
            self.enrolment = enrolment

    def apply_presence(self, presence: Presence) -> None:
        """The heartbeat's presence, under the lock the check-in decision holds (kiosk.checkin)."""
        with self._lock:
            self.members.apply_presence_message(presence)

    def set_clock_offset(self, offset_ms: int) -> None:
        """Set by the sync agent after each exchange; stamped on every new event."""
        with self._lock:
            self.context.live.clock_offset_ms = int(offset_ms)

    def update_sync_status(self, **fields: Any) -> None:
        """The sync agent reports online/offline, last sync time etc.; the idle screen shows it."""
        self.sync_status.update(fields)
        self.feed.publish_state()

    # -- simulation ------------------------------------------------------------------------------
    def simulate_read(
        self, kind: str, value: str, reader_id: str | None = None, read_id: str | None = None
    ) -> str:
        """Inject a read into a simulated reader (the same path a real read takes). Returns its reader id.

        With ``read_id``, :meth:`wait_read` then answers with this read's own outcome.
        """
        if not self.config.simulate:
            raise SimulationError("simulation mode is off / 未开启模拟模式")
        reader = self.readers.simulator_for(kind, reader_id)
        if reader is None:
            raise SimulationError(f"no simulated reader for {kind!r} / 没有可用的模拟读卡器")
        if read_id is not None:
            self.feed.expect(read_id)
        reader.inject(kind, value, read_id=read_id)
        return reader.reader_id

    def wait_read(self, read_id: str, timeout: float) -> TapOutcome | None:
        """The outcome of the simulated read ``read_id``, waiting up to ``timeout``."""
        return self.feed.wait_read(read_id, timeout)

    # -- state and health ------------------------------------------------------------------------
    def today_count(self) -> int:
        return self.recorder.today_count()

    def state(self) -> dict[str, Any]:
        """What the screen needs now (no personal data): the UI renders idle/maintenance/locked from it."""
        with self._lock:
            self.staff.active()
            message = self.remote.current_message()
            if message is None:
                message = self.config_push.message
            centre = (self.enrolment.centre if self.enrolment else {}) or {}
            lock_text = self.remote.lock_text
            return {
                "centre_name": self.config_push.centre_name or centre.get("name", self.config.centre_name),
                "centre_code": self.config.centre_code,
                "timezone": self.config.timezone,
                "language": self.config.language,
                "mode": self.staff.mode,
                "binding_captured": self.staff.binding_captured,
                "locked": self.remote.locked,
                "lock_text": list(lock_text) if lock_text else None,
                "message": None if message is None else {k: message[k] for k in ("text", "text_en")},
                "today_count": self.today_count(),
                "outbox_depth": self.outbox.stats().depth,
                "online": bool(self.sync_status.get("online")),
                "last_sync": self.sync_status.get("last_sync"),
                "simulate": self.config.simulate,
                "config_version": self.applied_config_version,
                "server_time": self.clock().isoformat(),
            }

    def health(self) -> dict[str, Any]:
        stats = self.outbox.stats()
        readers = self.readers.health()
        reader_ok = all(r["state"] == "ready" for r in readers)
        status = "ok" if reader_ok and not stats.capacity_alarm else "degraded"
        return {
            "status": status,
            "outbox": stats.as_dict(),
            "readers": readers,
            "roster_size": self.roster.size(),
            "roster_cursor": self.roster.cursor,
            "locked": self.remote.locked,
            "mode": self.staff.mode,
            "clock_offset_ms": self.clock_offset_ms,
            "enrolled": self.enrolment is not None,
            "kiosk_id": self.enrolment.kiosk_id if self.enrolment else None,
            "credential_key_source": self.key_source,
            "open_sessions": self.members.open_count(),
            "sync": dict(self.sync_status),
            "applied_config_version": self.applied_config_version,
            "config_needs_restart": list(self.config_needs_restart),
            "qr": self.reads.qr_health(),
            "software_version": software_version(),
            "uptime_s": round(time.monotonic() - self._started_mono, 1),
        }
