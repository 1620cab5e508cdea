"""The check-in decision: pure, fast, and the server's own arithmetic (:mod:`protocol.sessionrules`).

The kiosk decides on the spot, offline, what a tap means so it can say "签到 / 签退" at once; the server
later recomputes sessions from the events. Both call :func:`protocol.sessionrules.step`, so the screen
says what the server records whenever the kiosk knows what the server knows. What the kiosk knows:

* its own taps (rebuilt from the outbox at start), and
* the latest heartbeat's *presence* (:class:`protocol.messages.Presence`): for each roster member who
  tapped anywhere recently, the server's state — a session open at this or another centre, the member's
  last toggle at this centre, and the time of the last tap the server had. The kiosk's state for a
  member is that server state with its own later taps replayed on top (:meth:`MemberStates.get`).

So a member open at centre B who taps here is an IN here, and the screen says (in amber) that the session
at B goes to staff review. Where the kiosk could not know (offline, or a tap elsewhere inside one
heartbeat) the server's result may differ; the server then sends the session to review with what the
screen said (recorded in the tap's ``reason`` by :meth:`protocol.sessionrules.Shown.reason`: the role,
for a check-out the minutes shown).

Times here are the kiosk's estimate of *server* time (device time plus the measured clock offset), the
time the server's engine uses, so a duration shown is the duration credited.
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from protocol.messages import Presence
from protocol.sessionrules import (
    CentreRules,
    CloseReason,
    EndKind,
    OpenSession,
    Role,
    Shown,
    open_session,
    step,
)

logger = logging.getLogger(__name__)

#: This kiosk's own centre in its member states (server centre ids start at 1; a kiosk does not need to
#: know its own id to decide, and one that has not heard a heartbeat yet does not).
HERE = 0


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
class MemberState:
    """What the kiosk believes of one member: the open session (centre :data:`HERE` or a server centre
    id) and the member's last IN or OUT tap at this centre (the debounce window)."""

    open: OpenSession | None
    last_toggle: dt.datetime | None
    #: The open session holds a tap of this kiosk whose screen the server did not record as it was shown
    #: (decided before the kiosk could know, e.g. a check-in the server counts as a duplicate): that
    #: session goes to staff review, so its check-out must not show minutes as if they were credited.
    doubted: bool = False

    @property
    def open_here(self) -> bool:
        return self.open is not None and self.open.centre_id == HERE


@dataclass(frozen=True, slots=True)
class Verdict:
    decision: Decision
    member_id: int | None = None
    duration: dt.timedelta | None = None  # OUT: length of the session; DUPLICATE of IN: time since check-in
    previous: Decision | None = None  # DUPLICATE: what the member was already (IN → "already checked in")
    reason: str | None = None  # recorded with the tap: why refused, or what the screen showed
    elsewhere: str | None = None  # IN: the name of the centre whose open session goes to staff review
    review: bool = False  # OUT: the session goes to staff review, so no minutes are shown
    after: MemberState | None = None  # the member's state after this tap (None: unchanged)


def decide(
    *,
    member_id: int | None,
    revoked: bool,
    locked: bool,
    state: MemberState | None,
    rules: CentreRules,
    now: dt.datetime,
    centre_names: Mapping[int, str] | None = None,
) -> Verdict:
    """What a read means. ``now`` must be aware (server time); ``state`` is the member's (or ``None``)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if locked:
        return Verdict(Decision.LOCKED, member_id, reason="kiosk_locked")
    if member_id is None:
        return Verdict(Decision.UNKNOWN, reason="not_in_roster")
    if revoked:
        return Verdict(Decision.REVOKED, member_id, reason="credential_revoked")
    opened = state.open if state is not None else None
    result = step(opened, state.last_toggle if state else None, centre_id=HERE, at=now, rules=rules)
    if result.role is Role.DUPLICATE:
        here = state is not None and state.open_here
        since = now - opened.started_at if here and opened is not None else None
        previous = Decision.IN if here else Decision.OUT
        return Verdict(Decision.DUPLICATE, member_id, since, previous, reason=Shown(Role.DUPLICATE).reason())
    after = MemberState(result.open, now)
    if result.role is Role.OUT:
        assert result.ended is not None
        if state is not None and state.doubted:
            return Verdict(Decision.OUT, member_id, reason=Shown(Role.OUT).reason(), review=True, after=after)
        minutes = result.ended.credited_minutes
        return Verdict(
            Decision.OUT,
            member_id,
            duration=now - result.ended.session.started_at,
            reason=Shown(Role.OUT, minutes).reason(),
            after=after,
        )
    if result.ended is not None and result.ended.kind is EndKind.ELSEWHERE:
        centre = result.ended.session.centre_id
        name = (centre_names or {}).get(centre) or "其他服务中心"
        return Verdict(
            Decision.IN,
            member_id,
            reason=Shown(Role.IN, elsewhere=True).reason(),
            elsewhere=name,
            after=after,
        )
    return Verdict(Decision.IN, member_id, reason=Shown(Role.IN).reason(), after=after)


def next_state(state: MemberState | None, verdict: Verdict) -> MemberState | None:
    """The member's state after ``verdict`` was recorded (unchanged unless it toggled)."""
    return verdict.after if verdict.after is not None else state


@dataclass(frozen=True, slots=True)
class ServerView:
    """The server's state of one member as the last heartbeat told it, and the time of the last tap of
    that member the server had then (the kiosk replays its own later taps on top)."""

    state: MemberState
    last_tap_at: dt.datetime


@dataclass(slots=True)
class _Presence:
    views: dict[int, ServerView]
    centre_names: dict[int, str]
    as_of: dt.datetime


@dataclass(slots=True)
class _Member:
    local: MemberState | None = None  # from this kiosk's own taps only
    #: own session-forming taps since start: (time, whether the screen showed a check-in or check-out)
    own: list[tuple[dt.datetime, bool]] = field(default_factory=list)


class MemberStates:
    """Per-member state for one kiosk, in memory: own taps plus the last heartbeat's presence.

    Not thread-safe on its own: the kiosk service holds its lock around decide-append-update and the
    heartbeat applies presence under the same lock.
    """

    def __init__(self) -> None:
        self._members: dict[int, _Member] = {}
        self._presence: _Presence | None = None

    # -- what the decision reads -------------------------------------------------------------------
    def get(self, member_id: int | None, rules: CentreRules | None = None) -> MemberState | None:
        """The member's state: the server's view (if a heartbeat told one) with own later taps replayed."""
        if member_id is None:
            return None
        mine = self._members.get(member_id)
        if self._presence is None:
            return mine.local if mine else None
        view = self._presence.views.get(member_id)
        state = view.state if view is not None else None
        own = mine.own if mine else []
        rules = rules or CentreRules()
        if view is not None and state is not None and state.open_here and state.open is not None:
            started = state.open.started_at
            # The server's session here runs unbroken from ``started`` to its last tap, so any own tap in
            # between that this kiosk showed as a check-in or check-out is one the server did not record so.
            if any(toggled and started < at <= view.last_tap_at for at, toggled in own):
                state = replace(state, doubted=True)
        for at, _toggled in own:
            if view is not None and at <= view.last_tap_at:
                continue
            result = step(
                state.open if state else None,
                state.last_toggle if state else None,
                centre_id=HERE,
                at=at,
                rules=rules,
            )
            if result.role is not Role.DUPLICATE:
                state = MemberState(result.open, at)
        return state

    @property
    def centre_names(self) -> Mapping[int, str]:
        return {} if self._presence is None else self._presence.centre_names

    # -- what changes it ---------------------------------------------------------------------------
    def record(self, member_id: int | None, at: dt.datetime, verdict: Verdict) -> None:
        """A session-forming tap of ``member_id`` at ``at`` was recorded with ``verdict``."""
        if member_id is None or verdict.decision not in (Decision.IN, Decision.OUT, Decision.DUPLICATE):
            return
        mine = self._members.setdefault(member_id, _Member())
        mine.own.append((at, verdict.decision is not Decision.DUPLICATE))
        horizon = at - dt.timedelta(days=2)
        if mine.own[0][0] < horizon:
            mine.own = [own for own in mine.own if own[0] >= horizon]
        if verdict.after is not None:
            mine.local = verdict.after

    def apply_presence(
        self,
        centre_id: int,
        as_of: dt.datetime,
        views: Mapping[int, ServerView],
        centre_names: Mapping[int, str],
    ) -> None:
        """Adopt a heartbeat's presence (complete set) for this kiosk's centre ``centre_id``."""
        self._presence = _Presence(dict(views), dict(centre_names), as_of)
        logger.debug("presence applied: %d members, centre %d", len(views), centre_id)

    def apply_presence_message(self, presence: Presence) -> None:
        """Adopt :class:`protocol.messages.Presence` as the heartbeat delivered it."""
        views: dict[int, ServerView] = {}
        names: dict[int, str] = {}
        for m in presence.members:
            opened = None
            if m.open is not None:
                centre = HERE if m.open.centre_id == presence.centre_id else m.open.centre_id
                names[centre] = m.open.centre_name
                opened = OpenSession(
                    centre, m.open.started_at, m.open.until, CloseReason(m.open.until_reason)
                )
            views[m.member_id] = ServerView(MemberState(opened, m.last_toggle_here), m.last_tap_at)
        self.apply_presence(presence.centre_id, presence.as_of, views, names)

    def rebuild(self, last_toggles: Iterable[tuple[int, str, dt.datetime]], rules: CentreRules) -> int:
        """From ``(member_id, "in"|"out", server time)`` of each member's latest toggle tap (outbox)."""
        self._members.clear()
        for member_id, direction, at in last_toggles:
            opened = open_session(HERE, at, rules) if direction == Decision.IN else None
            self._members[member_id] = _Member(local=MemberState(opened, at))
        return len(self._members)

    def open_count(self) -> int:
        """Members this kiosk believes open at its own centre (health report)."""
        return sum(1 for m in self._members if (s := self.get(m)) is not None and s.open_here)

    def __len__(self) -> int:
        return len(self._members)


__all__ = ["HERE", "Decision", "MemberState", "MemberStates", "ServerView", "Verdict", "decide", "next_state"]
