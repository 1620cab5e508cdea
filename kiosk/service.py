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
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import importlib.metadata
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from hardware.base import CredentialKind as HwKind
from hardware.base import CredentialRead
from kiosk.checkin import Decision, MemberState, MemberStates, Verdict, decide, next_state
from kiosk.config import (
    KioskConfig,
    apply_live_config,
    credential_key_for,
    load_applied_config,
    load_enrolment,
    save_applied_config,
)
from kiosk.outbox import Outbox, OutboxError, StoredTap, TapDraft
from kiosk.outcomes import OutcomeKind, TapOutcome, colour_for, messages_for
from kiosk.pinguard import PinGuard, PinPolicy
from kiosk.qr import QrCheck, QrVerifier, is_signed_token
from kiosk.readers import ReaderSet
from kiosk.roster import Roster, RosterMember
from protocol.hashing import CredentialValueError, credential_hash

logger = logging.getLogger(__name__)
audit = logging.getLogger("kiosk.audit")

Subscriber = Callable[[str, dict[str, Any]], None]
STAFF_MEMBER_NO = "0"
MAINTENANCE_IDLE_S = 600.0
HOUSEKEEPING_PERIOD_S = 3600.0
#: ``QrCheck.code`` values for text that is not a genuine server-signed token (nobody to attribute it to).
QR_UNAUTHENTICATED = frozenset({"qr_malformed", "qr_unknown_key", "qr_forged"})


def software_version() -> str:
    try:
        return importlib.metadata.version("baodao")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0.0.0"


def pin_credential_hash(credential_key: bytes, member_no: str) -> str:
    """The ``credential_hash`` of a PIN tap: keyed hash of the member number (never of the PIN)."""
    return hmac.new(credential_key, f"pin:{member_no}".encode(), hashlib.sha256).hexdigest()


class SimulationError(Exception):
    """``simulate_read`` without simulation mode or without a simulator for that kind."""


class KioskService:
    def __init__(
        self,
        config: KioskConfig,
        *,
        clock: Callable[[], dt.datetime] | None = None,
        start_sync: bool = True,
    ) -> None:
        self.config = config
        self._base_config = config  # the file's config; a pushed config is applied on top of it
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))
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
        self.staff_hashes = self._staff_hashes_for(config)
        self.qr = QrVerifier.in_state_dir(state_dir)
        self.qr_counts: Counter[str] = Counter()
        self.applied_config_version = 0
        self.config_needs_restart: list[str] = []
        self._config_message: dict[str, str] | None = None
        self._config_centre_name: str | None = None
        self.readers = ReaderSet(config, self.on_read)
        self.members = MemberStates()
        self._lock = threading.RLock()
        self._subs_lock = threading.Lock()
        self._subscribers: list[Subscriber] = []
        self._outcome_cond = threading.Condition()
        self._last_outcomes: list[TapOutcome] = []
        self._delivered: list[TapOutcome] = []
        self._n = 0
        self._started_mono = time.monotonic()
        self.clock_offset_ms = 0
        self.sync_agent: Any = None
        self.sync_status: dict[str, Any] = {
            "online": False,
            "last_sync": None,
            "enrolled": self.enrolment is not None,
        }
        self._locked = False
        self._lock_text: tuple[str, str] | None = None
        self._message: dict[str, Any] | None = None
        self._mode = "idle"  # idle | maintenance | binding
        self._mode_until = 0.0
        self._binding_credential: tuple[str, str] | None = None  # (kind, hash)
        self._today: tuple[dt.date, int] | None = None
        self._housekeeping_stop = threading.Event()
        self._housekeeping: threading.Thread | None = None
        self._restore_applied_config()
        self._rebuild_state()

    def _staff_hashes_for(self, config: KioskConfig) -> set[str]:
        return set(config.staff_card_hashes) | {
            credential_hash(self.credential_key, "card", uid) for uid in config.staff_cards
        }

    # -- lifecycle -------------------------------------------------------------------------------
    def _rebuild_state(self) -> None:
        """Per-member check-in state from the outbox's recent IN/OUT taps (survives restarts)."""
        horizon = self._clock() - self.config.rules.max_length - dt.timedelta(days=1)
        toggles = self.outbox.last_toggles(horizon)
        n = self.members.rebuild((t.member_id, t.direction, t.device_time) for t in toggles if t.member_id)
        logger.info("member state rebuilt from outbox: %d members, %d open", n, self.members.open_count())

    def start(self) -> None:
        self.readers.start()
        self._housekeeping_stop.clear()
        self._housekeeping = threading.Thread(target=self._housekeep, name="kiosk-housekeeping", daemon=True)
        self._housekeeping.start()
        if self._start_sync and self.enrolment is not None:
            self._start_sync_agent()
        logger.info("kiosk service started (simulate=%s, key from %s)", self.config.simulate, self.key_source)

    def _start_sync_agent(self) -> None:
        """The sync agent lives in ``kiosk.sync`` (another engineer's module); import it lazily."""
        try:
            sync = importlib.import_module("kiosk.sync")
        except ImportError:
            logger.warning("kiosk.sync not available; running without upload / 未安装同步模块,暂不上传")
            return
        try:
            self.sync_agent = sync.SyncAgent(self, self.enrolment)
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

    # -- observers -------------------------------------------------------------------------------
    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(kind, payload)`` for every ``"tap"`` outcome and ``"state"`` change.

        The current state is delivered at once. Returns a function that unsubscribes.
        """
        with self._subs_lock:
            self._subscribers.append(callback)
        self._call(callback, "state", self.state())

        def unsubscribe() -> None:
            with self._subs_lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    @staticmethod
    def _call(callback: Subscriber, kind: str, payload: dict[str, Any]) -> None:
        try:
            callback(kind, payload)
        except Exception:
            logger.exception("kiosk subscriber failed")

    def _publish(self, kind: str, payload: dict[str, Any]) -> None:
        with self._subs_lock:
            subscribers = list(self._subscribers)
        for callback in subscribers:
            self._call(callback, kind, payload)

    def _emit(self, outcome: TapOutcome) -> TapOutcome:
        with self._outcome_cond:
            self._last_outcomes = [*self._last_outcomes[-49:], outcome]
        self._publish("tap", outcome.as_dict())
        with self._outcome_cond:  # waiters hear of it only after subscribers (the SSE queues) have it
            self._delivered = [*self._delivered[-49:], outcome]
            self._outcome_cond.notify_all()
        return outcome

    def _new_outcome(self, kind: OutcomeKind, **fields: Any) -> TapOutcome:
        with self._outcome_cond:
            self._n += 1
            n = self._n
        zh, en = messages_for(
            kind,
            duration_s=fields.get("duration_s"),
            previous=fields.pop("previous", None),
            retry_s=fields.pop("retry_s", 0.0),
        )
        override = fields.pop("messages", None)
        if override is not None:  # e.g. the QR verifier's precise reason ("expired", "already used")
            zh, en = override
        return TapOutcome(
            n=n, kind=kind, colour=colour_for(kind), message_zh=zh, message_en=en, at=self._clock(), **fields
        )

    def wait_outcome(self, after_n: int, timeout: float, reader_id: str | None = None) -> TapOutcome | None:
        """The first outcome numbered above ``after_n`` (for ``reader_id`` when given), waiting up to ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._outcome_cond:
            while True:
                for o in self._delivered:
                    if o.n > after_n and (reader_id is None or o.reader_id == reader_id):
                        return o
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._outcome_cond.wait(remaining)

    @property
    def outcome_counter(self) -> int:
        with self._outcome_cond:
            return self._n

    # -- reads -----------------------------------------------------------------------------------
    def on_read(self, read: CredentialRead) -> TapOutcome:
        """Handle one read from any reader. Never raises: every failure becomes an outcome on screen."""
        try:
            return self._emit(self._handle_read(read))
        except Exception as exc:
            logger.exception("read from %s could not be handled", read.reader_id)
            return self._emit(
                self._new_outcome(OutcomeKind.ERROR, reader_id=read.reader_id, detail=str(exc)[:200])
            )

    def _handle_read(self, read: CredentialRead) -> TapOutcome:
        kind = read.kind.value if isinstance(read.kind, HwKind) else str(read.kind)
        if kind == "qr" and is_signed_token(read.value):
            return self._handle_signed_qr(read)
        try:
            chash = credential_hash(self.credential_key, kind, read.value)
        except (CredentialValueError, ValueError) as exc:
            logger.warning("reader %s delivered a value that is not a credential: %s", read.reader_id, exc)
            return self._new_outcome(OutcomeKind.INVALID, reader_id=read.reader_id, credential_kind=kind)
        if chash in self.staff_hashes:
            return self._staff_toggle(read.reader_id, kind)
        with self._lock:
            if self._mode == "binding" and self._mode_active():
                return self._capture_binding(read.reader_id, kind, chash)
        member = self.roster.lookup(chash)
        trust = "high" if kind in ("card", "id_card") else None
        return self._record(kind, chash, member, trust, read.reader_id, read.monotonic)

    def _handle_signed_qr(self, read: CredentialRead) -> TapOutcome:
        """A ``BD1:`` code: verified offline (signature, step, revocation, single use at this kiosk).

        A genuine code is recorded even when refused (expired, replayed, revoked: staff see who tried);
        a code that is not genuine names nobody, so nothing is recorded and only health counts it.
        """
        now = self._clock() + dt.timedelta(milliseconds=self.clock_offset_ms)  # best estimate of true time
        check = self.qr.verify_scanned(read.value, now=now)
        with self._lock:
            self.qr_counts[check.code] += 1
        if not check.genuine or check.credential_value is None or check.member_id is None:
            logger.info("QR code from %s refused, nothing recorded: %s", read.reader_id, check.code)
            return self._new_outcome(
                OutcomeKind.INVALID,
                reader_id=read.reader_id,
                credential_kind="qr",
                detail=check.code,
                messages=(check.message_zh, check.message_en),
            )
        chash = credential_hash(self.credential_key, "qr", check.credential_value)
        if check.badge_serial is None:  # phone codes are not in the roster; the member is
            member = self.roster.member(check.member_id)
        else:  # a badge is a roster credential like a card (revoked badges become tombstones)
            member = self.roster.lookup(chash)
        return self._record("qr", chash, member, check.trust, read.reader_id, read.monotonic, qr=check)

    def _record(
        self,
        kind: str,
        chash: str,
        member: RosterMember | None,
        trust: str | None,
        reader_id: str | None,
        read_mono: float | None,
        *,
        qr: QrCheck | None = None,
    ) -> TapOutcome:
        """Decide, commit, update state — under the lock, so two reads of one member serialise.

        ``qr`` (a genuine signed code) adds its step/serial; when it was refused the tap is recorded as
        ``rejected`` with the verifier's reason and changes nobody's check-in state.
        """
        refused = qr is not None and not qr.accepted
        qr_fields = qr.draft_fields() if qr is not None else {}
        with self._lock:
            now = self._clock()
            member_id = member.member_id if member else None
            state = self.members.get(member_id)
            verdict = None
            if not refused:
                verdict = decide(
                    member_id=member_id,
                    revoked=bool(member and member.revoked),
                    locked=self._locked,
                    state=state,
                    rules=self.config.rules,
                    now=now,
                )
            draft = TapDraft(
                credential_kind=kind,
                credential_hash=chash,
                direction="rejected" if verdict is None else verdict.decision.wire_direction,
                device_time=now,
                device_tz=self.config.timezone,
                clock_offset_ms=self.clock_offset_ms,
                # a signed code names its member even when this kiosk's roster does not (for staff)
                member_id=member_id if member_id is not None or qr is None else qr.member_id,
                trust=trust,
                reason=qr_fields.get("reason") if verdict is None else verdict.reason,
                qr_step=qr_fields.get("qr_step"),
                badge_serial=qr_fields.get("badge_serial"),
            )
            try:
                stored = self.outbox.append(draft)
            except OutboxError as exc:
                audit.error("tap NOT recorded (%s): %s", kind, exc)
                return self._new_outcome(
                    OutcomeKind.ERROR, reader_id=reader_id, credential_kind=kind, detail=str(exc)[:200]
                )
            if verdict is not None:
                self.members.update(member_id, next_state(state, verdict, now))
                if verdict.decision is Decision.IN:
                    self._bump_today(now)
        latency = None if read_mono is None else (time.monotonic() - read_mono) * 1000
        if verdict is None:
            assert qr is not None
            return self._new_outcome(
                OutcomeKind.QR_REFUSED,
                reader_id=reader_id,
                credential_kind=kind,
                member_id=member_id,
                masked_name=member.masked_name if member else None,
                unit_name=member.unit_name if member else None,
                event_id=stored.event_id,
                seq=stored.seq,
                recorded=True,
                latency_ms=latency,
                detail=qr.code,
                messages=(qr.message_zh, qr.message_en),
            )
        return self._outcome_for(verdict, stored, member, state, reader_id, latency)

    def _outcome_for(
        self,
        verdict: Verdict,
        stored: StoredTap,
        member: RosterMember | None,
        state: MemberState | None,
        reader_id: str | None,
        latency_ms: float | None,
    ) -> TapOutcome:
        kind = OutcomeKind(verdict.decision.value)
        return self._new_outcome(
            kind,
            reader_id=reader_id,
            credential_kind=stored.credential_kind,
            member_id=member.member_id if member else None,
            masked_name=member.masked_name if member else None,
            unit_name=member.unit_name if member else None,
            duration_s=None if verdict.duration is None else verdict.duration.total_seconds(),
            event_id=stored.event_id,
            seq=stored.seq,
            recorded=True,
            latency_ms=latency_ms,
            previous=verdict.previous.value if verdict.previous else None,
        )

    # -- PIN -------------------------------------------------------------------------------------
    def enter_pin(self, member_no: str, pin: str) -> TapOutcome:
        """Keypad check-in (member number + PIN), offline against the roster, rate-limited. Never raises."""
        try:
            return self._emit(self._handle_pin(member_no.strip(), pin.strip()))
        except Exception as exc:
            logger.exception("PIN entry could not be handled")
            return self._emit(
                self._new_outcome(OutcomeKind.ERROR, credential_kind="pin", detail=str(exc)[:200])
            )

    def _handle_pin(self, member_no: str, pin: str) -> TapOutcome:
        guard_key = "staff" if member_no == STAFF_MEMBER_NO else member_no
        state = self.pin_guard.check(guard_key)
        if state.locked:
            return self._new_outcome(
                OutcomeKind.PIN_LOCKED, credential_kind="pin", retry_s=state.retry_after_s
            )
        if member_no == STAFF_MEMBER_NO:
            if self.config.staff_pin and hmac.compare_digest(pin.encode(), self.config.staff_pin.encode()):
                self.pin_guard.record_success(guard_key)
                return self._staff_toggle(None, "pin")
            member = None
        else:
            member = self.roster.lookup_pin(member_no, pin)
        if member is None:
            after = self.pin_guard.record_failure(guard_key)
            audit.info("wrong PIN for member number %s", member_no)
            if after.locked:
                return self._new_outcome(
                    OutcomeKind.PIN_LOCKED, credential_kind="pin", retry_s=after.retry_after_s
                )
            return self._new_outcome(OutcomeKind.PIN_WRONG, credential_kind="pin")
        self.pin_guard.record_success(guard_key)
        chash = pin_credential_hash(self.credential_key, member_no)
        return self._record("pin", chash, member, "low", None, None)

    # -- staff: maintenance and card binding -----------------------------------------------------
    def _mode_active(self) -> bool:
        if self._mode != "idle" and time.monotonic() > self._mode_until:
            logger.info("maintenance mode timed out")
            self._mode, self._binding_credential = "idle", None
        return self._mode != "idle"

    def _set_mode(self, mode: str) -> None:
        with self._lock:
            self._mode = mode
            self._mode_until = time.monotonic() + MAINTENANCE_IDLE_S
            if mode != "binding":
                self._binding_credential = None
        self._publish("state", self.state())

    def _staff_toggle(self, reader_id: str | None, kind: str) -> TapOutcome:
        with self._lock:
            entering = not self._mode_active()
        audit.info("staff %s maintenance mode via %s", "opened" if entering else "closed", kind)
        self._set_mode("maintenance" if entering else "idle")
        return self._new_outcome(
            OutcomeKind.STAFF,
            reader_id=reader_id,
            credential_kind=kind,
            detail="enter" if entering else "exit",
        )

    def enter_maintenance(self) -> None:
        self._set_mode("maintenance")

    def exit_maintenance(self) -> None:
        self._set_mode("idle")

    def start_binding(self) -> None:
        """Binding mode (staff only): the next read is captured instead of checked in."""
        with self._lock:
            if not self._mode_active():
                raise PermissionError("binding needs maintenance mode / 绑定卡片需先进入维护模式")
        self._set_mode("binding")

    def _capture_binding(self, reader_id: str, kind: str, chash: str) -> TapOutcome:
        self._binding_credential = (kind, chash)
        self._mode_until = time.monotonic() + MAINTENANCE_IDLE_S
        current = self.roster.lookup(chash)
        return self._new_outcome(
            OutcomeKind.BINDING_CAPTURED,
            reader_id=reader_id,
            credential_kind=kind,
            member_id=current.member_id if current and not current.revoked else None,
            masked_name=current.masked_name if current and not current.revoked else None,
            detail="already_bound" if current and not current.revoked else None,
        )

    def search_members(self, query: str, limit: int = 20) -> list[dict[str, Any]]:
        return [m.as_dict() for m in self.roster.search(query, limit)]

    def confirm_binding(self, member_id: int, staff_ref: str | None = None) -> TapOutcome:
        """Bind the captured card to ``member_id``: committed to the outbox, usable at once locally."""
        with self._lock:
            if self._mode != "binding" or self._binding_credential is None:
                raise PermissionError("no card captured for binding / 尚未读取待绑定的卡")
            member = self.roster.member(member_id)
            if member is None:
                raise LookupError(f"member {member_id} not in roster / 名册中没有该党员")
            kind, chash = self._binding_credential
            binding = self.outbox.append_binding(
                credential_kind=kind,
                credential_hash=chash,
                member_id=member_id,
                device_time=self._clock(),
                device_tz=self.config.timezone,
                staff_ref=staff_ref,
            )
            self.roster.add_local_binding(chash, kind, member)
            self._binding_credential = None
        audit.info("card bound to member %s (binding %s)", member_id, binding.binding_id)
        self._set_mode("maintenance")
        return self._emit(
            self._new_outcome(
                OutcomeKind.BOUND,
                credential_kind=kind,
                member_id=member_id,
                masked_name=member.masked_name,
                unit_name=member.unit_name,
                event_id=binding.binding_id,
                recorded=True,
            )
        )

    # -- remote commands -------------------------------------------------------------------------
    def lock(self, text_zh: str | None = None, text_en: str | None = None) -> None:
        with self._lock:
            self._locked = True
            self._lock_text = (text_zh or "终端暂停使用", text_en or "This kiosk is locked")
        audit.warning("kiosk locked")
        self._publish("state", self.state())

    def unlock(self) -> None:
        with self._lock:
            self._locked, self._lock_text = False, None
        audit.warning("kiosk unlocked")
        self._publish("state", self.state())

    def show_message(self, text: str, text_en: str | None = None, seconds: float = 30.0) -> None:
        with self._lock:
            self._message = {"text": text, "text_en": text_en or "", "until": time.time() + seconds}
        self._publish("state", self.state())

    def handle_command(self, name: str, args: dict[str, Any] | None = None) -> tuple[bool, str] | None:
        """Apply a remote command this service owns; ``None`` for ones it does not (sync agent's)."""
        args = args or {}
        name = str(getattr(name, "value", name))
        if name == "lock_screen":
            self.lock(args.get("text"), args.get("text_en"))
            return True, "locked"
        if name == "unlock_screen":
            self.unlock()
            return True, "unlocked"
        if name == "show_message":
            self.show_message(str(args.get("text", "")), args.get("text_en"), float(args.get("seconds", 30)))
            return True, "shown"
        if name == "restart_readers":
            self.readers.restart()
            self._publish("state", self.state())
            return True, f"{len(self.readers.readers)} readers restarted"
        return None

    # -- pushed config ---------------------------------------------------------------------------
    def apply_config(self, version: int, body: Mapping[str, Any]) -> None:
        """Apply a config pushed by the server (the heartbeat agent calls this); raise if it is invalid.

        What can change without a restart changes now: rules, language, centre name, staff settings, PIN
        policy and a standing message. Keys that need a restart (readers, ports, server URL) are kept in
        ``config_needs_restart`` for health instead of half-applied. The body is applied on top of the
        config file, not of the previous push, so removing a key from the next push reverts it. It is
        persisted before it takes effect, so a restart comes back with the same settings — the version
        the heartbeat reports as applied is the one this kiosk runs.
        """
        version = int(version)
        new_config, needs_restart = apply_live_config(self._base_config, body)
        message = _standing_message(body.get("message"))
        save_applied_config(self.config.state_dir, version, body)
        self._install_config(version, body, new_config, needs_restart, message)
        audit.info("config version %d applied (restart needed for: %s)", version, needs_restart or "nothing")
        self._publish("state", self.state())

    def _install_config(
        self,
        version: int,
        body: Mapping[str, Any],
        new_config: KioskConfig,
        needs_restart: list[str],
        message: dict[str, str] | None,
    ) -> None:
        centre = body.get("centre")
        with self._lock:
            self.config = new_config
            self.staff_hashes = self._staff_hashes_for(new_config)
            self.pin_guard.policy = PinPolicy(
                max_failures=new_config.pin_max_failures, lockout_s=new_config.pin_lockout_s
            )
            self.applied_config_version = version
            self.config_needs_restart = needs_restart
            self._config_message = message
            named = isinstance(centre, Mapping) and "name" in centre
            self._config_centre_name = new_config.centre_name if named else None
            self._today = None  # the day boundary may have moved with the time zone

    def _restore_applied_config(self) -> None:
        """Re-apply the last pushed config at start (the heartbeat will not send it again)."""
        stored = load_applied_config(self.config.state_dir)
        if stored is None:
            return
        version, body = stored
        try:
            new_config, needs_restart = apply_live_config(self._base_config, body)
            message = _standing_message(body.get("message"))
        except (ValueError, TypeError) as exc:
            logger.error("stored config %d no longer applies (%s); running the file's config", version, exc)
            return
        self._install_config(version, body, new_config, needs_restart, message)
        logger.info("restored pushed config version %d", version)

    def reload_enrolment(self) -> None:
        """Re-read ``enrolment.json`` after the secret was rotated (the credential key does not change)."""
        enrolment = load_enrolment(self.config.state_dir)
        if enrolment is not None:
            self.enrolment = enrolment

    def set_clock_offset(self, offset_ms: int) -> None:
        """Set by the sync agent after each exchange; stamped on every new event."""
        self.clock_offset_ms = int(offset_ms)

    def update_sync_status(self, **fields: Any) -> None:
        """The sync agent reports online/offline, last sync time etc.; the idle screen shows it."""
        self.sync_status.update(fields)
        self._publish("state", self.state())

    # -- simulation ------------------------------------------------------------------------------
    def simulate_read(self, kind: str, value: str, reader_id: str | None = None) -> str:
        """Inject a read into a simulated reader (the same path a real read takes). Returns its reader id."""
        if not self.config.simulate:
            raise SimulationError("simulation mode is off / 未开启模拟模式")
        reader = self.readers.simulator_for(kind, reader_id)
        if reader is None:
            raise SimulationError(f"no simulated reader for {kind!r} / 没有可用的模拟读卡器")
        reader.inject(kind, value)  # type: ignore[attr-defined]
        return reader.reader_id

    # -- state and health ------------------------------------------------------------------------
    def _bump_today(self, now: dt.datetime) -> None:
        day = now.astimezone(self.config.tz).date()
        if self._today is not None and self._today[0] == day:
            self._today = (day, self._today[1] + 1)
        else:
            self._today = None  # recount from the outbox on the next read

    def today_count(self) -> int:
        now = self._clock()
        day = now.astimezone(self.config.tz).date()
        with self._lock:
            if self._today is None or self._today[0] != day:
                midnight = dt.datetime.combine(day, dt.time(0), tzinfo=self.config.tz)
                self._today = (day, self.outbox.count_since(midnight))
            return self._today[1]

    def state(self) -> dict[str, Any]:
        """What the screen needs now (no personal data): the UI renders idle/maintenance/locked from it."""
        with self._lock:
            self._mode_active()
            message = self._message
            if message is not None and message["until"] < time.time():
                self._message = message = None
            if message is None:
                message = self._config_message
            centre = (self.enrolment.centre if self.enrolment else {}) or {}
            return {
                "centre_name": self._config_centre_name or centre.get("name", self.config.centre_name),
                "centre_code": self.config.centre_code,
                "timezone": self.config.timezone,
                "language": self.config.language,
                "mode": self._mode,
                "binding_captured": self._binding_credential is not None,
                "locked": self._locked,
                "lock_text": list(self._lock_text) if self._lock_text else None,
                "message": None if message is None else {k: message[k] for k in ("text", "text_en")},
                "today_count": self.today_count(),
                "outbox_depth": self.outbox.stats().depth,
                "online": bool(self.sync_status.get("online")),
                "last_sync": self.sync_status.get("last_sync"),
                "simulate": self.config.simulate,
                "config_version": self.applied_config_version,
                "server_time": self._clock().isoformat(),
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
            "locked": self._locked,
            "mode": self._mode,
            "clock_offset_ms": self.clock_offset_ms,
            "enrolled": self.enrolment is not None,
            "kiosk_id": self.enrolment.kiosk_id if self.enrolment else None,
            "credential_key_source": self.key_source,
            "open_sessions": self.members.open_count(),
            "sync": dict(self.sync_status),
            "applied_config_version": self.applied_config_version,
            "config_needs_restart": list(self.config_needs_restart),
            "qr": self._qr_health(),
            "software_version": software_version(),
            "uptime_s": round(time.monotonic() - self._started_mono, 1),
        }

    def _qr_health(self) -> dict[str, Any]:
        with self._lock:
            counts = dict(self.qr_counts)
        return {
            "key_ids": self.qr.key_ids(),
            "scans": counts,
            "unauthenticated": sum(n for code, n in counts.items() if code in QR_UNAUTHENTICATED),
        }

    def last_outcome(self) -> TapOutcome | None:
        with self._outcome_cond:
            return self._last_outcomes[-1] if self._last_outcomes else None

    def recent_outcomes(self) -> list[TapOutcome]:
        with self._outcome_cond:
            return list(self._last_outcomes)


def _standing_message(value: Any) -> dict[str, str] | None:
    """``message`` of a pushed config: a text, or ``{"text", "text_en"}``; shown until the next push."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = {"text": value}
    if not isinstance(value, Mapping) or not isinstance(value.get("text"), str) or not value["text"].strip():
        raise ValueError("message must be a text or {text, text_en} / message 应为文字或 {text, text_en}")
    text_en = value.get("text_en") or ""
    if not isinstance(text_en, str):
        raise ValueError("message.text_en must be a text / message.text_en 应为文字")
    return {"text": value["text"][:200], "text_en": text_en[:200]}


__all__ = ["KioskService", "SimulationError", "TapOutcome", "pin_credential_hash"]
