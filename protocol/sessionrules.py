"""The session rules' arithmetic, once: what one tap does to a member's session state.

Why in ``protocol``: the kiosk decides on the spot, offline, what a tap means ("签到 / 签退，本次服务 9 分钟")
and the server later recomputes sessions from the stored taps. The member must be told what the server
will record, so both sides run *this* code — :func:`step` is called by the kiosk's decision
(``kiosk/checkin.py``) and by the server's engine (``server/sessions/engine.py``), and the state a kiosk
learns through the heartbeat (``protocol.messages.heartbeat.MemberPresence``) is this module's state.

The rules (DESIGN.md "Rules users will rely on"), in the order :func:`step` applies them to one tap of one
member, the member's taps taken in ``(at, event_id)`` order:

1. **Debounce** (per centre): a tap strictly less than ``debounce`` after the member's previous IN or OUT
   tap at the *same* centre is a DUPLICATE and changes nothing. A tap exactly ``debounce`` later toggles.
2. **Limits**: if a session is open and the tap is strictly later than its limit (the earlier of
   ``started_at + max_length`` and its centre's next closing time), the session ended at the limit
   (auto-closed, credited 0) and the tap opens a new one. A tap exactly at the limit is a check-out.
3. **Toggle**: nothing open → IN; open at this centre → OUT, credited the whole minutes between the taps.
4. **Open elsewhere**: open at another centre → that session ends at this tap, for staff review, credited
   0; this tap is IN here.

Every instant is aware and compared as an instant; local time (Asia/Shanghai by default) matters only for
the closing time, a local wall-clock time.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

logger = logging.getLogger(__name__)

SHANGHAI = ZoneInfo("Asia/Shanghai")
MINUTE = timedelta(minutes=1)


class Role(enum.StrEnum):
    """What one tap did. The values are the tap directions a kiosk records for them."""

    IN = "in"
    OUT = "out"
    DUPLICATE = "duplicate"


class CloseReason(enum.StrEnum):
    """Why a session did not end with an ordinary check-out (the session's ``reason``)."""

    MAX_LENGTH = "max_length"
    CLOSING_TIME = "closing_time"
    OPEN_ELSEWHERE = "open_elsewhere"


class ScreenReason(enum.StrEnum):
    """Why a session went to review because the kiosk's screen said something the server did not record.

    Named after what the screen said, because that is what the reviewer must weigh against the record:
    the member was told it. Stored in the session's ``reason`` like :class:`CloseReason`.
    """

    SHOWED_IN = "screen_in"  # "签到成功", the server made the tap a check-out or a duplicate
    SHOWED_OUT = "screen_out"  # "签退成功", the server made it a check-in or a duplicate
    SHOWED_MINUTES = "screen_minutes"  # "签退成功，本次服务 N 分钟", the server credits another duration
    SHOWED_DUPLICATE = "screen_duplicate"  # "已签到 / 已签退", the server made it a toggle


class EndKind(enum.StrEnum):
    """How an open session ended at a tap (or at ``now``)."""

    CHECKED_OUT = "checked_out"
    LIMIT = "limit"
    ELSEWHERE = "elsewhere"


@dataclass(frozen=True, slots=True)
class CentreRules:
    """Per-centre rules (DESIGN.md "Rules users will rely on"), configurable per centre.

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
            raise ValueError(f"debounce must not be negative / 防抖时间不能为负：{self.debounce}")
        if self.max_length <= timedelta(0):
            raise ValueError(f"max_length must be positive / 最长时长必须为正：{self.max_length}")
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


def whole_minutes(start: datetime, end: datetime) -> int:
    """Whole minutes from ``start`` to ``end``, truncated, never negative (59 s credit 0 minutes).

    The kiosk shows exactly this number after "本次服务", so a duration on the screen is a credit."""
    return max(0, (end - start) // MINUTE)


@dataclass(frozen=True, slots=True)
class OpenSession:
    """A member's open session: where, since when, and until when it counts (its centre's limit).

    The limit is part of the state rather than recomputed from rules, because a kiosk knows the rules of
    its own centre only: the server sends the limit of a session open at another centre with it.
    ``key`` is the check-in event id where known (the server's session key).
    """

    centre_id: int
    started_at: datetime
    until: datetime
    until_reason: CloseReason
    key: str | None = None


def open_session(centre_id: int, at: datetime, rules: CentreRules, key: str | None = None) -> OpenSession:
    """The session a check-in at ``centre_id`` (ruled by ``rules``) opens at ``at``."""
    until, reason = rules.limit(at)
    return OpenSession(centre_id, at, until, reason, key)


@dataclass(frozen=True, slots=True)
class Ending:
    """How the previously open ``session`` ended: when, how, what it credits and why (if not a check-out)."""

    session: OpenSession
    kind: EndKind
    ended_at: datetime
    credited_minutes: int
    reason: CloseReason | None


@dataclass(frozen=True, slots=True)
class Step:
    """What one tap did: its role, the session it ended (if any), and the member's open session after it."""

    role: Role
    ended: Ending | None
    open: OpenSession | None


def expire(session: OpenSession | None, now: datetime) -> Ending | None:
    """The auto-close of ``session`` when ``now`` is strictly past its limit, else ``None``."""
    if session is None or not now > session.until:
        return None
    return Ending(session, EndKind.LIMIT, session.until, 0, session.until_reason)


def step(
    session: OpenSession | None,
    last_toggle_here: datetime | None,
    *,
    centre_id: int,
    at: datetime,
    rules: CentreRules,
    key: str | None = None,
) -> Step:
    """Apply the rules (module docstring) to one tap at ``centre_id`` at ``at``.

    ``session`` is the member's open session (any centre) and ``last_toggle_here`` the time of the member's
    previous IN or OUT tap at ``centre_id``; ``rules`` are ``centre_id``'s. A DUPLICATE changes nothing
    (the caller keeps its state, including ``last_toggle_here``); any other role makes ``at`` the new
    last toggle at ``centre_id``.
    """
    if last_toggle_here is not None and at - last_toggle_here < rules.debounce:
        return Step(Role.DUPLICATE, None, session)
    ended = expire(session, at)
    if ended is not None:
        session = None
    if session is None:
        return Step(Role.IN, ended, open_session(centre_id, at, rules, key))
    if session.centre_id == centre_id:
        credited = whole_minutes(session.started_at, at)
        return Step(Role.OUT, Ending(session, EndKind.CHECKED_OUT, at, credited, None), None)
    ended = Ending(session, EndKind.ELSEWHERE, at, 0, CloseReason.OPEN_ELSEWHERE)
    return Step(Role.IN, ended, open_session(centre_id, at, rules, key))


# -- what the screen said, as the kiosk records it ------------------------------------------------

#: The prefix of the tap ``reason`` in which a kiosk records what its screen said for a toggle or duplicate.
SHOWN_PREFIX = "shown:"


@dataclass(frozen=True, slots=True)
class Shown:
    """What the kiosk's screen said for a tap: its role and, for a check-out, the minutes shown."""

    role: Role
    minutes: int | None = None
    elsewhere: bool = False  # IN: the screen said the session open at another centre goes to review

    def reason(self) -> str:
        """The tap ``reason`` that records this: ``shown:in``, ``shown:in:elsewhere``, ``shown:out:9``,
        ``shown:duplicate``.

        Why in the tap's ``reason`` (already in the hash chain: the kiosk's free text about its decision)
        and not a new event field: the server compares what the member was told with what it records
        without a change to the chain's canonical form. Taps without it (older kiosks, taps written by
        hand) are not compared.
        """
        if self.role is Role.OUT and self.minutes is not None:
            return f"{SHOWN_PREFIX}out:{int(self.minutes)}"
        if self.role is Role.IN and self.elsewhere:
            return f"{SHOWN_PREFIX}in:elsewhere"
        return f"{SHOWN_PREFIX}{self.role.value}"

    def disagreement(self, role: Role, credited: int | None) -> ScreenReason | None:
        """Why a tap the server gave ``role`` (and, for OUT, ``credited`` minutes) contradicts the screen."""
        if self.role is not role:
            return {
                Role.IN: ScreenReason.SHOWED_IN,
                Role.OUT: ScreenReason.SHOWED_OUT,
                Role.DUPLICATE: ScreenReason.SHOWED_DUPLICATE,
            }[self.role]
        if (
            role is Role.OUT
            and self.minutes is not None
            and credited is not None
            and self.minutes != credited
        ):
            return ScreenReason.SHOWED_MINUTES
        return None


def shown_for(direction: str, reason: str | None) -> Shown | None:
    """What the screen said, from a stored tap's ``direction`` and ``reason``; ``None`` when the kiosk did
    not record it (see :meth:`Shown.reason`) or claimed no role (unknown card, refused credential)."""
    if reason is None or not reason.startswith(SHOWN_PREFIX):
        return None
    parts = reason[len(SHOWN_PREFIX) :].split(":")
    try:
        role = Role(parts[0])
    except ValueError:
        return None
    if role.value != direction or len(parts) > 2:
        return None
    if role is Role.OUT and len(parts) == 2:
        return Shown(role, int(parts[1])) if parts[1].isdigit() and len(parts[1]) <= 9 else None
    return Shown(role, elsewhere=parts[1:] == ["elsewhere"])


__all__ = [
    "DEFAULT_RULES",
    "MINUTE",
    "SHANGHAI",
    "SHOWN_PREFIX",
    "CentreRules",
    "CloseReason",
    "EndKind",
    "Ending",
    "OpenSession",
    "Role",
    "ScreenReason",
    "Shown",
    "Step",
    "expire",
    "open_session",
    "shown_for",
    "step",
    "whole_minutes",
]
