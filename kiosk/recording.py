"""TapRecorder: decide → commit to the outbox → update member state → the outcome for the screen.

Why a module of its own: this is the kiosk's one durable path, shared by every credential (card, ID card,
QR code, PIN) once it is known whom a read names. Decide-append-update runs under the service's lock so
two readers cannot both check the same member in, and the outcome is built only from what
``Outbox.append`` returned — the screen can never confirm a tap that is not on disk. A genuine signed QR
code that the verifier refused is still recorded (as ``rejected`` with its reason) but changes nobody's
state. The "taps today" count shown on the idle screen lives here too, because only this path adds taps.
"""

from __future__ import annotations

import datetime as dt
import logging
import time

from kiosk.checkin import Decision, Verdict, decide
from kiosk.context import KioskContext
from kiosk.outbox import OutboxError, StoredTap, TapDraft
from kiosk.outcomes import OutcomeKind, TapOutcome, messages_for
from kiosk.qr import QrCheck
from kiosk.remote import RemoteControl
from kiosk.roster import RosterMember

logger = logging.getLogger(__name__)
audit = logging.getLogger("kiosk.audit")


class TapRecorder:
    """Records a resolved read; the config and clock offset are read live from ``context.live``, the
    screen lock from ``remote`` (a locked kiosk records the tap but checks nobody in)."""

    def __init__(self, context: KioskContext, *, remote: RemoteControl) -> None:
        self._ctx = context
        self._lock = context.lock
        self._outbox = context.outbox
        self._members = context.members
        self._feed = context.feed
        self._clock = context.clock
        self._remote = remote
        self._today: tuple[dt.date, int] | None = None

    def record(
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
            config = self._ctx.live.config
            now = self._clock()
            offset_ms = self._ctx.live.clock_offset_ms
            # the server's engine runs on device time + measured offset; decide on the same clock
            server_now = now + dt.timedelta(milliseconds=offset_ms)
            member_id = member.member_id if member else None
            verdict = None
            if not refused:
                verdict = decide(
                    member_id=member_id,
                    revoked=bool(member and member.revoked),
                    locked=self._remote.locked,
                    state=self._members.get(member_id, config.rules),
                    rules=config.rules,
                    now=server_now,
                    centre_names=self._members.centre_names,
                )
            draft = TapDraft(
                credential_kind=kind,
                credential_hash=chash,
                direction="rejected" if verdict is None else verdict.decision.wire_direction,
                device_time=now,
                device_tz=config.timezone,
                clock_offset_ms=offset_ms,
                # a signed code names its member even when this kiosk's roster does not (for staff)
                member_id=member_id if member_id is not None or qr is None else qr.member_id,
                trust=trust,
                reason=qr_fields.get("reason") if verdict is None else verdict.reason,
                qr_step=qr_fields.get("qr_step"),
                badge_serial=qr_fields.get("badge_serial"),
            )
            try:
                stored = self._outbox.append(draft)
            except OutboxError as exc:
                audit.error("tap NOT recorded (%s): %s", kind, exc)
                return self._feed.new_outcome(
                    OutcomeKind.ERROR, reader_id=reader_id, credential_kind=kind, detail=str(exc)[:200]
                )
            if verdict is not None:
                self._members.record(member_id, server_now, verdict)
                if verdict.decision is Decision.IN:
                    self._bump_today(now)
        latency = None if read_mono is None else (time.monotonic() - read_mono) * 1000
        if verdict is None:
            assert qr is not None
            return self._feed.new_outcome(
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
        return self._outcome_for(verdict, stored, member, reader_id, latency)

    def _outcome_for(
        self,
        verdict: Verdict,
        stored: StoredTap,
        member: RosterMember | None,
        reader_id: str | None,
        latency_ms: float | None,
    ) -> TapOutcome:
        kind = OutcomeKind(verdict.decision.value)
        if verdict.elsewhere is not None:
            kind = OutcomeKind.IN_ELSEWHERE
        elif verdict.review:
            kind = OutcomeKind.OUT_REVIEW
        return self._feed.new_outcome(
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
            **(
                {}
                if verdict.elsewhere is None
                else {"messages": messages_for(kind, elsewhere=verdict.elsewhere)}
            ),
        )

    # -- today's count ---------------------------------------------------------------------------
    def _bump_today(self, now: dt.datetime) -> None:
        day = now.astimezone(self._ctx.live.config.tz).date()
        if self._today is not None and self._today[0] == day:
            self._today = (day, self._today[1] + 1)
        else:
            self._today = None  # recount from the outbox on the next read

    def reset_today(self) -> None:
        """Recount on the next read (a pushed config may have moved the day boundary with the time zone)."""
        self._today = None

    def today_count(self) -> int:
        now = self._clock()
        day = now.astimezone(self._ctx.live.config.tz).date()
        with self._lock:
            if self._today is None or self._today[0] != day:
                midnight = dt.datetime.combine(day, dt.time(0), tzinfo=self._ctx.live.config.tz)
                self._today = (day, self._outbox.count_since(midnight))
            return self._today[1]
