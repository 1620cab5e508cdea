"""The vocabulary of the session engine and the per-centre limits that end a session.

The value types live here (rather than in ``engine.py``) so that ``corrections.py`` and ``engine.py`` can
both use them without importing each other. Everything is plain, frozen data: the engine is a pure
function and its inputs and outputs must be safe to share, hash and compare.

Time: every instant is an *aware* datetime; the engine normalises to UTC. Local time (Asia/Shanghai by
default) matters in exactly one place, :meth:`CentreRules.next_closing`, because a centre's closing time is
a local wall-clock time. The local day boundary (midnight) has no effect of its own: a session that
crosses midnight is kept whole unless the centre's closing time ends it first. Splitting hours by day is
a reporting concern, not a session rule.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum
from typing import Literal
from zoneinfo import ZoneInfo

logger = logging.getLogger(__name__)

SHANGHAI = ZoneInfo("Asia/Shanghai")
MINUTE = timedelta(minutes=1)


class SessionStatus(StrEnum):
    """Lifecycle of a session; the values are what the database stores."""

    OPEN = "open"
    CLOSED = "closed"
    AUTO_CLOSED = "auto_closed"
    NEEDS_REVIEW = "needs_review"
    APPROVED = "approved"
    ADJUSTED = "adjusted"
    REJECTED = "rejected"


class TapRole(StrEnum):
    """What one tap did. Every input event gets exactly one role; corrections never change roles."""

    IN = "in"
    OUT = "out"
    DUPLICATE = "duplicate"


class CloseReason(StrEnum):
    """Why a session did not end with an ordinary check-out (``Session.reason``)."""

    MAX_LENGTH = "max_length"
    CLOSING_TIME = "closing_time"
    OPEN_ELSEWHERE = "open_elsewhere"


@dataclass(frozen=True, slots=True)
class Tap:
    """One TapEvent as the engine sees it.

    ``event_id`` is canonical lower-case UUIDv7 text (``str(uuid.UUID(...))``); taps at the same instant
    are ordered by it, so it must be the same text on every recomputation. ``at`` is aware; it is the
    kiosk's device time corrected by its measured clock offset.
    """

    event_id: str
    member_id: int
    centre_id: int
    at: datetime


@dataclass(frozen=True, slots=True)
class CentreRules:
    """Per-centre rules (DESIGN.md "Rules users will rely on").

    * ``debounce``: a tap strictly less than this after the member's previous IN or OUT tap *at the same
      centre* is a duplicate. A tap exactly ``debounce`` later toggles.
    * ``max_length``: a session is cut at ``started_at + max_length`` if the member's next tap comes
      strictly later (a tap exactly at the limit is an ordinary check-out).
    * ``closes_at``: local wall-clock closing time, or ``None`` for centres that never close.
    * ``tz``: the zone ``closes_at`` is read in.
    """

    debounce: timedelta = timedelta(seconds=60)
    max_length: timedelta = timedelta(hours=12)
    closes_at: time | None = None
    tz: ZoneInfo = SHANGHAI

    def __post_init__(self) -> None:
        if self.debounce < timedelta(0):
            raise ValueError(f"debounce must not be negative / 防抖时间不能为负: {self.debounce}")
        if self.max_length <= timedelta(0):
            raise ValueError(f"max_length must be positive / 最长时长必须为正: {self.max_length}")
        if self.closes_at is not None and self.closes_at.tzinfo is not None:
            raise ValueError("closes_at is a local wall-clock time without zone / 闭馆时间不应带时区")

    def next_closing(self, started_at: datetime) -> datetime | None:
        """The first closing instant strictly after ``started_at`` (UTC), or ``None`` if the centre never closes.

        "Strictly after" means a check-in at or after today's closing time runs until *tomorrow's* closing
        time (or ``max_length``, whichever is earlier) — the kiosk accepted the tap, so we do not cut the
        session at the instant it starts. In zones with daylight saving a closing time that falls in a
        skipped hour resolves with ``fold=0`` (zoneinfo's rule); Asia/Shanghai has had no DST since 1991.
        """
        if self.closes_at is None:
            return None
        local_day = started_at.astimezone(self.tz).date()
        for days in (0, 1, 2):
            candidate = datetime.combine(local_day + timedelta(days=days), self.closes_at, tzinfo=self.tz)
            if candidate.astimezone(UTC) > started_at:
                return candidate.astimezone(UTC)
        raise AssertionError("unreachable: a closing time recurs every local day")  # pragma: no cover

    def limit(self, started_at: datetime) -> tuple[datetime, CloseReason]:
        """When an open session started at ``started_at`` stops counting, and why.

        The earlier of ``started_at + max_length`` and the next closing time wins; if both fall on the same
        instant the reason is ``closing_time``, the more specific rule of the two.
        """
        by_length = started_at + self.max_length
        closing = self.next_closing(started_at)
        if closing is not None and closing <= by_length:
            return closing, CloseReason.CLOSING_TIME
        return by_length, CloseReason.MAX_LENGTH


DEFAULT_RULES = CentreRules()


@dataclass(frozen=True, slots=True)
class Session:
    """One derived service session (persisted as ``ServiceSession``).

    ``key`` is the check-in event id for kiosk sessions and ``manual:<correction id>`` for manual ones;
    corrections point at keys. ``check_out_event_id`` is set only by an ordinary check-out: a session cut
    by a tap at another centre keeps ``None`` there, because that tap is the *next* session's check-in.
    """

    key: str
    member_id: int
    centre_id: int
    check_in_event_id: str | None
    check_out_event_id: str | None
    started_at: datetime
    ended_at: datetime | None
    status: SessionStatus
    credited_minutes: int
    reason: str | None
    source: Literal["kiosk", "manual"]


def whole_minutes(start: datetime, end: datetime) -> int:
    """Whole minutes from ``start`` to ``end``, truncated, never negative (59 s credit 0 minutes)."""
    return max(0, (end - start) // MINUTE)


def require_aware(value: datetime, what: str) -> datetime:
    """Return ``value`` in UTC; naive datetimes are a programming error, so they raise."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware / {what} 必须带时区: {value!r}")
    return value.astimezone(UTC)
