"""What the screen shows after a read: :class:`TapOutcome`, with its colour and bilingual text.

The texts are the kiosk catalogue's ``outcome.<kind>`` messages (:mod:`kiosk.i18n`).

The touch UI renders these as they arrive on the event stream; they carry no personal data beyond the
masked name and the unit, the same things the member's own confirmation needs.
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
from dataclasses import asdict, dataclass
from typing import Any

from kiosk.i18n import text, texts

logger = logging.getLogger(__name__)


class OutcomeKind(enum.StrEnum):
    IN = "in"
    IN_ELSEWHERE = "in_elsewhere"  # checked in here; the session still open at another centre goes to review
    OUT = "out"
    OUT_REVIEW = "out_review"  # checked out; the session goes to staff review, so no minutes are shown
    DUPLICATE = "duplicate"
    UNKNOWN = "unknown"
    REVOKED = "revoked"
    LOCKED = "locked"  # the kiosk is locked by a remote command; the tap is still recorded
    PIN_WRONG = "pin_wrong"
    PIN_LOCKED = "pin_locked"
    INVALID = "invalid"  # a value that is not a credential (garbled read); nothing recorded
    ERROR = "error"  # could not be recorded (outbox full, disk error); the member is told to see staff
    STAFF = "staff"  # a staff card or PIN opened (or closed) maintenance mode
    BINDING_CAPTURED = "binding_captured"  # binding mode: a new card was read, pick the member
    BOUND = "bound"  # binding saved to the outbox
    QR_REFUSED = "qr_refused"  # a genuine signed QR code refused (expired, replayed, revoked); recorded


COLOURS: dict[OutcomeKind, str] = {
    OutcomeKind.IN: "green",
    OutcomeKind.OUT: "green",
    OutcomeKind.IN_ELSEWHERE: "amber",
    OutcomeKind.OUT_REVIEW: "amber",
    OutcomeKind.DUPLICATE: "amber",
    OutcomeKind.UNKNOWN: "amber",  # recorded for staff to confirm: a warning, not a failure
    OutcomeKind.STAFF: "blue",
    OutcomeKind.BINDING_CAPTURED: "blue",
    OutcomeKind.BOUND: "green",
}


def format_duration(seconds: float | None, language: str) -> str:
    """``1小时5分钟`` / ``1 h 5 min`` (catalogue ``outcome.duration_*``); empty for no duration."""
    if seconds is None:
        return ""
    hours, minutes = divmod(int(seconds // 60), 60)
    if hours:
        return text("outcome.duration_hm", language, hours=hours, minutes=minutes)
    return text("outcome.duration_m", language, minutes=minutes)


def messages_for(
    kind: OutcomeKind,
    *,
    duration_s: float | None = None,
    previous: str | None = None,
    retry_s: float = 0,
    elsewhere: str | None = None,
) -> tuple[str, str]:
    """(Chinese, English) text for the confirmation screen, from the kiosk catalogue (``outcome.<kind>``);
    ``elsewhere`` names the centre where the member's session is still open."""
    if kind is OutcomeKind.IN_ELSEWHERE:
        if elsewhere:
            return texts("outcome.in_elsewhere", centre=elsewhere)
        return texts("outcome.in_elsewhere_unnamed")
    if kind is OutcomeKind.DUPLICATE:
        return texts("outcome.duplicate_out" if previous == "out" else "outcome.duplicate_in")
    if kind is OutcomeKind.OUT:
        zh, en = (format_duration(duration_s, language) for language in ("zh", "en"))
        return text("outcome.out", "zh", duration=zh), text("outcome.out", "en", duration=en)
    if kind is OutcomeKind.PIN_LOCKED:
        minutes = max(1, int(retry_s // 60 + (1 if retry_s % 60 else 0)))
        return texts("outcome.pin_locked", minutes=minutes)
    return texts(f"outcome.{kind.value}")


@dataclass(frozen=True, slots=True)
class TapOutcome:
    """One read's result as the screen shows it. ``n`` increases by one per outcome in this process."""

    n: int
    kind: OutcomeKind
    colour: str
    message_zh: str
    message_en: str
    at: dt.datetime
    reader_id: str | None = None
    credential_kind: str | None = None
    member_id: int | None = None
    masked_name: str | None = None
    unit_name: str | None = None
    duration_s: float | None = None
    event_id: str | None = None
    seq: int | None = None
    recorded: bool = False
    latency_ms: float | None = None
    detail: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["kind"] = self.kind.value
        out["at"] = self.at.isoformat()
        return out


def colour_for(kind: OutcomeKind) -> str:
    return COLOURS.get(kind, "red")
