"""ReadHandler: from a reader's value, a signed QR code or a keyed-in PIN to *whom it names*.

Why a module of its own: every way a member identifies themself ends in the same question — which
credential hash, which roster member, how much trust — before the one recording path
(:class:`kiosk.recording.TapRecorder`) takes over. This module answers it and nothing else:

* a reader value is hashed with the kiosk's credential key; a staff credential toggles maintenance
  mode, and in binding mode the read is captured for staff instead of checked in;
* a ``BD1:`` QR code is verified offline (:class:`kiosk.qr.QrVerifier`) against the kiosk's best estimate
  of true time; a genuine code is recorded even when refused, a code that is not genuine names nobody
  and is only counted for ``/healthz``;
* a PIN is checked against the roster's verifiers behind :class:`kiosk.pinguard.PinGuard`'s lockout, and
  is recorded under a keyed hash of the member number — never anything derived from the PIN.

``on_read`` and ``enter_pin`` never raise: every failure becomes an outcome on the screen.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
from collections import Counter
from typing import Any

from hardware.base import CredentialKind as HwKind
from hardware.base import CredentialRead
from kiosk.context import KioskContext
from kiosk.outcomes import OutcomeKind, TapOutcome
from kiosk.qr import is_signed_token
from kiosk.recording import TapRecorder
from kiosk.staff import StaffMode
from protocol.hashing import CredentialValueError, credential_hash

logger = logging.getLogger(__name__)
audit = logging.getLogger("kiosk.audit")

#: The member number that, with the staff PIN, toggles maintenance mode from the keypad.
STAFF_MEMBER_NO = "0"
#: ``QrCheck.code`` values for text that is not a genuine server-signed token (nobody to attribute it to).
QR_UNAUTHENTICATED = frozenset({"qr_malformed", "qr_unknown_key", "qr_forged"})


def pin_credential_hash(credential_key: bytes, member_no: str) -> str:
    """The ``credential_hash`` of a PIN tap: keyed hash of the member number (never of the PIN)."""
    return hmac.new(credential_key, f"pin:{member_no}".encode(), hashlib.sha256).hexdigest()


class ReadHandler:
    """Resolves reads, QR codes and PIN entries; the config, staff hashes and offset are read live from
    ``context.live``. A resolved read goes to ``staff`` (staff credential, binding capture) or ``recorder``."""

    def __init__(self, context: KioskContext, *, staff: StaffMode, recorder: TapRecorder) -> None:
        self._ctx = context
        self._lock = context.lock
        self._credential_key = context.credential_key
        self._roster = context.roster
        self._qr = context.qr
        self._pin_guard = context.pin_guard
        self._feed = context.feed
        self._staff = staff
        self._recorder = recorder
        self.qr_counts: Counter[str] = Counter()

    # -- reader values ---------------------------------------------------------------------------
    def on_read(self, read: CredentialRead) -> TapOutcome:
        """Handle one read from any reader. Never raises: every failure becomes an outcome on screen."""
        try:
            return self._feed.emit(self._handle_read(read))
        except Exception as exc:
            logger.exception("read from %s could not be handled", read.reader_id)
            return self._feed.emit(
                self._feed.new_outcome(OutcomeKind.ERROR, reader_id=read.reader_id, detail=str(exc)[:200])
            )

    def _handle_read(self, read: CredentialRead) -> TapOutcome:
        kind = read.kind.value if isinstance(read.kind, HwKind) else str(read.kind)
        if kind == "qr" and is_signed_token(read.value):
            return self._handle_signed_qr(read)
        try:
            chash = credential_hash(self._credential_key, kind, read.value)
        except (CredentialValueError, ValueError) as exc:
            logger.warning("reader %s delivered a value that is not a credential: %s", read.reader_id, exc)
            return self._feed.new_outcome(OutcomeKind.INVALID, reader_id=read.reader_id, credential_kind=kind)
        if chash in self._ctx.live.staff_hashes:
            return self._staff.toggle(read.reader_id, kind)
        captured = self._staff.capture_if_binding(read.reader_id, kind, chash)
        if captured is not None:
            return captured
        member = self._roster.lookup(chash)
        trust = "high" if kind in ("card", "id_card") else None
        return self._recorder.record(kind, chash, member, trust, read.reader_id, read.monotonic)

    # -- signed QR codes -------------------------------------------------------------------------
    def _handle_signed_qr(self, read: CredentialRead) -> TapOutcome:
        """A ``BD1:`` code: verified offline (signature, step, revocation, single use at this kiosk).

        A genuine code is recorded even when refused (expired, replayed, revoked: staff see who tried);
        a code that is not genuine names nobody, so nothing is recorded and only health counts it.
        """
        # the kiosk's best estimate of true time
        now = self._ctx.clock() + dt.timedelta(milliseconds=self._ctx.live.clock_offset_ms)
        check = self._qr.verify_scanned(read.value, now=now)
        with self._lock:
            self.qr_counts[check.code] += 1
        if not check.genuine or check.credential_value is None or check.member_id is None:
            logger.info("QR code from %s refused, nothing recorded: %s", read.reader_id, check.code)
            return self._feed.new_outcome(
                OutcomeKind.INVALID,
                reader_id=read.reader_id,
                credential_kind="qr",
                detail=check.code,
                messages=(check.message_zh, check.message_en),
            )
        chash = credential_hash(self._credential_key, "qr", check.credential_value)
        if check.badge_serial is None:  # phone codes are not in the roster; the member is
            member = self._roster.member(check.member_id)
        else:  # a badge is a roster credential like a card (revoked badges become tombstones)
            member = self._roster.lookup(chash)
        return self._recorder.record(
            "qr", chash, member, check.trust, read.reader_id, read.monotonic, qr=check
        )

    def qr_health(self) -> dict[str, Any]:
        """Loaded key ids and scan counts by verifier code; ``unauthenticated`` counts non-genuine text."""
        with self._lock:
            counts = dict(self.qr_counts)
        return {
            "key_ids": self._qr.key_ids(),
            "scans": counts,
            "unauthenticated": sum(n for code, n in counts.items() if code in QR_UNAUTHENTICATED),
        }

    # -- PIN -------------------------------------------------------------------------------------
    def enter_pin(self, member_no: str, pin: str) -> TapOutcome:
        """Keypad check-in (member number + PIN), offline against the roster, rate-limited. Never raises."""
        try:
            return self._feed.emit(self._handle_pin(member_no.strip(), pin.strip()))
        except Exception as exc:
            logger.exception("PIN entry could not be handled")
            return self._feed.emit(
                self._feed.new_outcome(OutcomeKind.ERROR, credential_kind="pin", detail=str(exc)[:200])
            )

    def _handle_pin(self, member_no: str, pin: str) -> TapOutcome:
        guard_key = "staff" if member_no == STAFF_MEMBER_NO else member_no
        state = self._pin_guard.check(guard_key)
        if state.locked:
            return self._feed.new_outcome(
                OutcomeKind.PIN_LOCKED, credential_kind="pin", retry_s=state.retry_after_s
            )
        if member_no == STAFF_MEMBER_NO:
            staff_pin = self._ctx.live.config.staff_pin
            if staff_pin and hmac.compare_digest(pin.encode(), staff_pin.encode()):
                self._pin_guard.record_success(guard_key)
                return self._staff.toggle(None, "pin")
            member = None
        else:
            member = self._roster.lookup_pin(member_no, pin)
        if member is None:
            after = self._pin_guard.record_failure(guard_key)
            audit.info("wrong PIN for member number %s", member_no)
            if after.locked:
                return self._feed.new_outcome(
                    OutcomeKind.PIN_LOCKED, credential_kind="pin", retry_s=after.retry_after_s
                )
            return self._feed.new_outcome(OutcomeKind.PIN_WRONG, credential_kind="pin")
        self._pin_guard.record_success(guard_key)
        chash = pin_credential_hash(self._credential_key, member_no)
        return self._recorder.record("pin", chash, member, "low", None, None)
