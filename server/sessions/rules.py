"""The vocabulary of the session engine: taps in, sessions out.

The value types live here (rather than in ``engine.py``) so that ``corrections.py`` and ``engine.py`` can
both use them without importing each other. Everything is plain, frozen data: the engine is a pure
function and its inputs and outputs must be safe to share, hash and compare.

The per-centre rules and their arithmetic (:class:`CentreRules`, roles, close reasons, whole minutes)
are the kiosk's too, so they live once in :mod:`protocol.sessionrules`; this module adds what only the
server has: session statuses and the stored session. Time: every instant is *aware*; the engine
normalises to UTC.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal

from protocol.sessionrules import Shown

logger = logging.getLogger(__name__)


class SessionStatus(StrEnum):
    """Lifecycle of a session; the values are what the database stores."""

    OPEN = "open"
    CLOSED = "closed"
    AUTO_CLOSED = "auto_closed"
    NEEDS_REVIEW = "needs_review"
    APPROVED = "approved"
    ADJUSTED = "adjusted"
    REJECTED = "rejected"


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
    shown: Shown | None = None


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


def require_aware(value: datetime, what: str) -> datetime:
    """Return ``value`` in UTC; naive datetimes are a programming error, so they raise."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware / {what} 必须带时区: {value!r}")
    return value.astimezone(UTC)
