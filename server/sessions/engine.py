"""The session engine: taps + corrections → service sessions with credited minutes.

A pure function (no database, no Flask, no I/O), so the same events and corrections always give the same
sessions, on every database and on every recomputation. The server persists its output and may throw it
away and recompute at will; that is why a session's key is the id of the event that opened it.

The rules' arithmetic is :func:`protocol.sessionrules.step` — the same function the kiosk's decision calls,
so the screen and the record agree. Rules, in the order they are applied to each tap of one member, taps
sorted by ``(at, event_id)``:

1. **Debounce** (per centre): a tap strictly less than ``debounce`` after the member's previous IN or OUT
   tap at the *same* centre is a DUPLICATE ("already checked in/out") and changes nothing — it neither
   toggles nor extends the window. Debounce is judged first, so a duplicate never closes anything.
2. **Limits**: if the member has an open session and this tap is strictly later than the session's limit
   (the earlier of ``started_at + max_length`` and the centre's next closing time), the session is
   AUTO_CLOSED at the limit, credited 0, reason ``max_length`` or ``closing_time``. The tap then opens a
   new session. A tap exactly at the limit is an ordinary check-out.
3. **Toggle**: no open session → the tap is IN and opens one. Open at this centre → OUT; the session is
   CLOSED with the whole minutes between the two taps.
4. **Open elsewhere**: open at another centre → the open session is closed as NEEDS_REVIEW at this tap's
   time, credited 0, reason ``open_elsewhere``; this tap is IN at the new centre.

After the last tap, a session still open at ``now`` is AUTO_CLOSED the same way if ``now`` is strictly past
its limit; otherwise it stays OPEN with credited 0. The rules of the session's own centre decide its
limits; the rules of the tapped centre decide debounce. Midnight in Asia/Shanghai matters only through
closing times: a session crossing midnight at a centre without a closing time is kept whole.

**What the screen said**: a tap carries it when the kiosk recorded it (:class:`protocol.sessionrules.Shown`);
if the engine gives the tap another role, or a check-out other minutes, the session the tap belongs to (the
one it opened or closed, or the one its duplicate fell into) is NEEDS_REVIEW, credited 0, with a
:class:`~protocol.sessionrules.ScreenReason` (the first disagreeing tap's).

Corrections are applied afterwards (see :mod:`server.sessions.corrections`).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import MappingProxyType

from protocol.sessionrules import (
    DEFAULT_RULES,
    CentreRules,
    CloseReason,
    Ending,
    EndKind,
    OpenSession,
    ScreenReason,
    expire,
    step,
)
from protocol.sessionrules import Role as TapRole

from .corrections import Correction, IgnoredCorrection, IgnoreReason, apply_corrections
from .rules import Session, SessionStatus, Tap, require_aware

logger = logging.getLogger(__name__)

__all__ = [
    "CentreRules",
    "CloseReason",
    "Correction",
    "EngineResult",
    "IgnoreReason",
    "IgnoredCorrection",
    "Session",
    "SessionStatus",
    "Tap",
    "TapRole",
    "compute_sessions",
]


@dataclass(frozen=True, slots=True)
class EngineResult:
    """Sessions ordered by ``(started_at, key)``; every input event id → its role; skipped corrections."""

    sessions: tuple[Session, ...]
    roles: Mapping[str, TapRole]
    ignored_corrections: tuple[IgnoredCorrection, ...] = field(default=())


RulesArg = Mapping[int, CentreRules] | CentreRules


def _rules_lookup(rules: RulesArg) -> Callable[[int], CentreRules]:
    """One rule set for all centres, or a mapping with :data:`DEFAULT_RULES` for centres it lacks."""
    if isinstance(rules, CentreRules):
        return lambda _centre_id: rules
    table = dict(rules)
    return lambda centre_id: table.get(centre_id, DEFAULT_RULES)


def _normalise(taps: Iterable[Tap]) -> list[Tap]:
    """Taps in UTC, one per event id. An id seen twice with the same content is one event (uploads are
    at-least-once); the same id with different content is corrupt input and raises."""
    by_id: dict[str, Tap] = {}
    for tap in taps:
        tap = replace(tap, at=require_aware(tap.at, "Tap.at"))
        seen = by_id.get(tap.event_id)
        if seen is None:
            by_id[tap.event_id] = tap
        elif seen != tap:
            raise ValueError(
                f"event id {tap.event_id} appears with different contents / 事件编号重复但内容不同"
            )
    return list(by_id.values())


_STATUS_OF_END = {
    EndKind.CHECKED_OUT: SessionStatus.CLOSED,
    EndKind.LIMIT: SessionStatus.AUTO_CLOSED,
    EndKind.ELSEWHERE: SessionStatus.NEEDS_REVIEW,
}


def _key(opened: OpenSession) -> str:
    """The session key of an engine-opened session: its check-in event id (always set here)."""
    assert opened.key is not None
    return opened.key


def _kiosk_session(
    opened: OpenSession,
    member_id: int,
    ended_at: datetime | None,
    status: SessionStatus,
    credited: int = 0,
    reason: str | None = None,
    out_event: str | None = None,
) -> Session:
    return Session(
        key=_key(opened),
        member_id=member_id,
        centre_id=opened.centre_id,
        check_in_event_id=opened.key,
        check_out_event_id=out_event,
        started_at=opened.started_at,
        ended_at=ended_at,
        status=status,
        credited_minutes=credited,
        reason=reason,
        source="kiosk",
    )


def _ended(ending: Ending, member_id: int, out_event: str | None) -> Session:
    checked_out = ending.kind is EndKind.CHECKED_OUT
    return _kiosk_session(
        ending.session,
        member_id,
        ending.ended_at,
        _STATUS_OF_END[ending.kind],
        ending.credited_minutes,
        None if ending.reason is None else str(ending.reason),
        out_event if checked_out else None,
    )


def _disputed(session: Session, reason: ScreenReason) -> Session:
    """A session whose tap the screen described otherwise: to review, credited 0 until a person decides."""
    return replace(session, status=SessionStatus.NEEDS_REVIEW, credited_minutes=0, reason=str(reason))


def _run_member(
    taps: list[Tap],
    rules_for: Callable[[int], CentreRules],
    now: datetime,
    roles: dict[str, TapRole],
    sessions: list[Session],
    observed_end: set[str],
) -> None:
    """Apply the tap rules (:func:`protocol.sessionrules.step`) to one member's taps, already in
    ``(at, event_id)`` order, then send every session a tap's screen contradicts to review."""
    opened: OpenSession | None = None
    last_toggle: dict[int, datetime] = {}
    toggle_session: dict[int, str] = {}  # centre → key of the session its last toggle opened or closed
    disputed: dict[str, ScreenReason] = {}
    produced: list[Session] = []
    for tap in taps:
        result = step(
            opened,
            last_toggle.get(tap.centre_id),
            centre_id=tap.centre_id,
            at=tap.at,
            rules=rules_for(tap.centre_id),
            key=tap.event_id,
        )
        roles[tap.event_id] = result.role
        credited = None
        if result.role is TapRole.DUPLICATE:
            touched = toggle_session.get(tap.centre_id)
        else:
            last_toggle[tap.centre_id] = tap.at
            if result.ended is not None:
                produced.append(_ended(result.ended, tap.member_id, tap.event_id))
                if result.ended.kind is not EndKind.LIMIT:  # its end was a tap, not a guess
                    observed_end.add(_key(result.ended.session))
            if result.role is TapRole.OUT:
                assert result.ended is not None
                touched, credited = _key(result.ended.session), result.ended.credited_minutes
            else:
                touched = tap.event_id
            toggle_session[tap.centre_id] = touched
        opened = result.open
        if tap.shown is not None and touched is not None and touched not in disputed:
            why = tap.shown.disagreement(result.role, credited)
            if why is not None:
                disputed[touched] = why
    if opened is not None:
        ending = expire(opened, now)
        if ending is not None:
            produced.append(_ended(ending, taps[-1].member_id, None))
        else:
            produced.append(_kiosk_session(opened, taps[-1].member_id, None, SessionStatus.OPEN))
    if disputed:
        logger.info(
            "screen and record disagree for %d sessions of member %d", len(disputed), taps[0].member_id
        )
        produced = [_disputed(s, disputed[s.key]) if s.key in disputed else s for s in produced]
    sessions.extend(produced)


def compute_sessions(
    taps: Iterable[Tap],
    rules: RulesArg,
    corrections: Iterable[Correction] = (),
    *,
    now: datetime,
) -> EngineResult:
    """Turn taps (any order) and corrections into sessions, tap roles and skipped corrections.

    ``rules`` is one :class:`CentreRules` for every centre or a mapping ``centre_id → CentreRules``
    (centres not in it get the defaults). ``now`` (aware) decides whether a session left open has passed
    its limit. Naive datetimes in taps or ``now`` raise ``ValueError``; invalid corrections never raise,
    they are returned in ``ignored_corrections``. All datetimes in the result are UTC.
    """
    now = require_aware(now, "now")
    rules_for = _rules_lookup(rules)
    by_member: dict[int, list[Tap]] = defaultdict(list)
    for tap in _normalise(taps):
        by_member[tap.member_id].append(tap)

    roles: dict[str, TapRole] = {}
    sessions: list[Session] = []
    observed_end: set[str] = set()
    for member_id in sorted(by_member):
        member_taps = sorted(by_member[member_id], key=lambda t: (t.at, t.event_id))
        _run_member(member_taps, rules_for, now, roles, sessions, observed_end)

    corrected, ignored = apply_corrections(sessions, corrections, observed_end)
    corrected.sort(key=lambda s: (s.started_at, s.key))
    logger.debug(
        "computed %d sessions from %d taps, %d corrections ignored", len(corrected), len(roles), len(ignored)
    )
    return EngineResult(
        sessions=tuple(corrected),
        roles=MappingProxyType(dict(sorted(roles.items()))),
        ignored_corrections=tuple(ignored),
    )
