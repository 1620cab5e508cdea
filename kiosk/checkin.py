"""The check-in decision: pure, fast, and the same rules as the server's session engine.

The kiosk decides on the spot, offline, what a tap means so it can say "签到 / 签退" at once; the server
later recomputes sessions from the events with ``server/sessions/engine.py`` (which the kiosk may not
import). Both apply DESIGN.md's rules in the same order, so the screen and the server agree:

1. **Debounce**: a tap strictly less than ``debounce`` after the member's previous IN or OUT tap at this
   centre is a DUPLICATE ("already checked in") and changes nothing.
2. **Limits**: if the member's session is open and the tap is strictly later than its limit (the earlier of
   ``started_at + max_length`` and the centre's next closing time after the start), the old session was
   auto-closed by the server's rules, and this tap opens a new one (IN).
3. **Toggle**: open → OUT with the duration so far; not open → IN.

The kiosk cannot see taps at other centres (rule 4, "open elsewhere", is the server's): it only knows this
kiosk's own history, rebuilt from the outbox at start. Unknown credentials, revoked credentials and taps
while the kiosk is locked are decided here too, so one function says what every read means.
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

logger = logging.getLogger(__name__)

SHANGHAI = ZoneInfo("Asia/Shanghai")


class Decision(enum.StrEnum):
    IN = "in"
    OUT = "out"
    DUPLICATE = "duplicate"
    UNKNOWN = "unknown"
    REVOKED = "revoked"
    LOCKED = "locked"

    @property
    def wire_direction(self) -> str:
        """The TapEventIn ``direction`` this decision is recorded with."""
        if self in (Decision.REVOKED, Decision.LOCKED):
            return "rejected"
        return self.value


@dataclass(frozen=True, slots=True)
class Rules:
    """Per-centre rules, mirroring ``server.sessions.rules.CentreRules`` (same defaults, same edges)."""

    debounce: dt.timedelta = dt.timedelta(seconds=60)
    max_length: dt.timedelta = dt.timedelta(hours=12)
    closes_at: dt.time | None = None
    tz: ZoneInfo = SHANGHAI

    def __post_init__(self) -> None:
        if self.debounce < dt.timedelta(0):
            raise ValueError(f"debounce must not be negative / 防抖时间不能为负: {self.debounce}")
        if self.max_length <= dt.timedelta(0):
            raise ValueError(f"max_length must be positive / 最长时长必须为正: {self.max_length}")

    def next_closing(self, started_at: dt.datetime) -> dt.datetime | None:
        """First closing instant strictly after ``started_at`` (UTC), ``None`` if the centre never closes."""
        if self.closes_at is None:
            return None
        local_day = started_at.astimezone(self.tz).date()
        for days in (0, 1, 2):
            candidate = dt.datetime.combine(
                local_day + dt.timedelta(days=days), self.closes_at, tzinfo=self.tz
            )
            if candidate.astimezone(dt.UTC) > started_at:
                return candidate.astimezone(dt.UTC)
        raise AssertionError("unreachable")  # pragma: no cover

    def limit(self, started_at: dt.datetime) -> dt.datetime:
        by_length = started_at + self.max_length
        closing = self.next_closing(started_at)
        return closing if closing is not None and closing <= by_length else by_length


@dataclass(frozen=True, slots=True)
class MemberState:
    """The member's last accepted (IN or OUT) tap at this centre."""

    direction: Decision  # IN or OUT
    at: dt.datetime
    session_started_at: dt.datetime | None  # set when direction is IN


@dataclass(frozen=True, slots=True)
class Verdict:
    decision: Decision
    member_id: int | None = None
    duration: dt.timedelta | None = None  # OUT: length of the session; DUPLICATE of IN: time since check-in
    previous: Decision | None = None  # DUPLICATE: what the member was already (IN → "already checked in")
    reason: str | None = None


def decide(
    *,
    member_id: int | None,
    revoked: bool,
    locked: bool,
    state: MemberState | None,
    rules: Rules,
    now: dt.datetime,
) -> Verdict:
    """What a read means. ``now`` must be aware; ``state`` is the member's state (or ``None``)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if locked:
        return Verdict(Decision.LOCKED, member_id, reason="kiosk_locked")
    if member_id is None:
        return Verdict(Decision.UNKNOWN, reason="not_in_roster")
    if revoked:
        return Verdict(Decision.REVOKED, member_id, reason="credential_revoked")
    if state is not None and now - state.at < rules.debounce:
        since = now - state.session_started_at if state.session_started_at is not None else None
        return Verdict(Decision.DUPLICATE, member_id, duration=since, previous=state.direction)
    if state is not None and state.direction is Decision.IN and state.session_started_at is not None:
        started = state.session_started_at
        if now <= rules.limit(started):
            return Verdict(Decision.OUT, member_id, duration=now - started)
    return Verdict(Decision.IN, member_id)


def next_state(state: MemberState | None, verdict: Verdict, now: dt.datetime) -> MemberState | None:
    """The member's state after ``verdict`` was recorded (unchanged unless it toggled)."""
    if verdict.decision is Decision.IN:
        return MemberState(Decision.IN, now, now)
    if verdict.decision is Decision.OUT:
        return MemberState(Decision.OUT, now, None)
    return state


class MemberStates:
    """Per-member state for one kiosk, in memory, rebuilt from the outbox's last IN/OUT taps at start.

    Not thread-safe on its own: the kiosk service holds its lock around decide-append-update.
    """

    def __init__(self) -> None:
        self._states: dict[int, MemberState] = {}

    def get(self, member_id: int | None) -> MemberState | None:
        return None if member_id is None else self._states.get(member_id)

    def update(self, member_id: int | None, state: MemberState | None) -> None:
        if member_id is None or state is None:
            return
        self._states[member_id] = state

    def rebuild(self, last_toggles: Iterable[tuple[int, str, dt.datetime]]) -> int:
        """From ``(member_id, "in"|"out", time)`` of each member's latest toggle tap."""
        self._states.clear()
        for member_id, direction, at in last_toggles:
            d = Decision(direction)
            self._states[member_id] = MemberState(d, at, at if d is Decision.IN else None)
        return len(self._states)

    def open_count(self) -> int:
        return sum(1 for s in self._states.values() if s.direction is Decision.IN)

    def __len__(self) -> int:
        return len(self._states)
