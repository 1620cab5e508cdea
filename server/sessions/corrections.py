"""Staff corrections applied on top of the sessions the taps produce.

Corrections are append-only decisions. Recomputation replays them over freshly derived sessions, so a
correction that made sense when it was written may no longer fit (a late upload moved a check-in, the
session it named no longer exists). Such a correction must never crash recomputation: it is skipped and
reported as an :class:`IgnoredCorrection` so staff can see it. The choices, all deliberate:

* Order: ``(created_at, id)``. Each correction states the whole outcome for its session relative to the
  session's *base* state (what the taps, or the manual entry, say); corrections do not stack. So "the
  latest valid correction for a session wins", and an invalid later one leaves the earlier in force.
* ``approve`` → ``approved``, credited = whole minutes between the base ``started_at`` and ``ended_at``.
  Valid only for a session whose end was *observed* (a check-out tap, the tap at another centre, or a
  manual entry) and only if the correction was made at or after that end. An open session cannot be
  approved (``session_open``), and an auto-closed one cannot either (``no_observed_end``): its end is a
  guess by the limit, so crediting it would reward forgetting to check out with up to 12 hours — staff
  use ``adjust`` and state the time. This keeps credited minutes within the wall time between the
  session's own taps unless a person typed the times.
* ``adjust`` → ``adjusted`` with the given times (a missing time keeps the base one) and ``minutes``
  (default: whole minutes of the new times). Times must be aware, end after start; minutes between 0 and
  the whole minutes of the new span.
* ``reject`` → ``rejected``, credited 0, times untouched. Valid for any existing session, even an open one.
* ``manual`` → a new session ``manual:<id>`` with source ``manual`` and status ``approved`` (a person
  entered it, so it needs no further review; ``adjusted`` is kept for altered kiosk sessions). Later
  corrections may target it by key like any other session.
* No overlap: a correction whose resulting session would overlap another non-rejected session of the
  same member (an open one extends to infinity) is ignored (``overlap``), so minutes are never counted
  twice. Intervals are half-open: touching sessions do not overlap.
* Roles of taps are never changed by corrections.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Literal

from protocol.sessionrules import whole_minutes

from .rules import Session, SessionStatus

logger = logging.getLogger(__name__)

_ACTIONS = ("approve", "adjust", "reject", "manual")


@dataclass(frozen=True, slots=True)
class Correction:
    """An append-only staff decision (persisted as ``Correction``); see the module docstring for rules."""

    id: int
    action: Literal["approve", "adjust", "reject", "manual"]
    created_at: datetime
    session_key: str | None
    member_id: int | None = None
    centre_id: int | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    minutes: int | None = None


class IgnoreReason(StrEnum):
    """Why a correction was skipped; stable strings that a staff page can translate."""

    UNKNOWN_ACTION = "unknown_action"
    DUPLICATE_ID = "duplicate_id"
    NAIVE_DATETIME = "naive_datetime"
    MISSING_SESSION_KEY = "missing_session_key"
    UNKNOWN_SESSION = "unknown_session"
    SESSION_OPEN = "session_open"
    NO_OBSERVED_END = "no_observed_end"
    MADE_BEFORE_SESSION_ENDED = "made_before_session_ended"
    INVALID_TIMES = "invalid_times"
    INVALID_MINUTES = "invalid_minutes"
    MANUAL_WITH_SESSION_KEY = "manual_with_session_key"
    MISSING_MEMBER_OR_CENTRE = "missing_member_or_centre"
    OVERLAP = "overlap"


@dataclass(frozen=True, slots=True)
class IgnoredCorrection:
    """A correction recomputation skipped, with the reason."""

    correction_id: int
    reason: IgnoreReason


def _is_aware(value: datetime | None) -> bool:
    return value is None or (value.tzinfo is not None and value.utcoffset() is not None)


def _prepare(corrections: Iterable[Correction]) -> tuple[list[Correction], list[IgnoredCorrection]]:
    """Deduplicate by id and sort; drop what cannot even be ordered. Input order never matters."""
    by_id: dict[int, Correction] = {}
    conflicting: set[int] = set()
    for c in corrections:
        seen = by_id.get(c.id)
        if seen is None:
            by_id[c.id] = c
        elif seen != c:
            conflicting.add(c.id)
    ignored = [IgnoredCorrection(i, IgnoreReason.DUPLICATE_ID) for i in sorted(conflicting)]
    usable: list[Correction] = []
    for cid in sorted(by_id):
        if cid in conflicting:
            continue
        c = by_id[cid]
        if not all(_is_aware(v) for v in (c.created_at, c.started_at, c.ended_at)):
            ignored.append(IgnoredCorrection(cid, IgnoreReason.NAIVE_DATETIME))
        else:
            usable.append(c)
    usable.sort(key=lambda c: (c.created_at, c.id))
    return usable, ignored


def _span_and_minutes(
    start: datetime | None, end: datetime | None, minutes: int | None
) -> tuple[datetime, datetime, int] | IgnoreReason:
    if start is None or end is None or end <= start:
        return IgnoreReason.INVALID_TIMES
    span = whole_minutes(start, end)
    credited = span if minutes is None else minutes
    if isinstance(credited, bool) or not isinstance(credited, int) or not 0 <= credited <= span:
        return IgnoreReason.INVALID_MINUTES
    return start, end, credited


def _evaluate(c: Correction, base: dict[str, Session], observed_end: set[str]) -> Session | IgnoreReason:
    """The session a correction asks for, judged against the base state only."""
    if c.action == "manual":
        if c.session_key is not None:
            return IgnoreReason.MANUAL_WITH_SESSION_KEY
        if c.member_id is None or c.centre_id is None:
            return IgnoreReason.MISSING_MEMBER_OR_CENTRE
        span = _span_and_minutes(c.started_at, c.ended_at, c.minutes)
        if isinstance(span, IgnoreReason):
            return span
        start, end, credited = span
        return Session(
            key=f"manual:{c.id}",
            member_id=c.member_id,
            centre_id=c.centre_id,
            check_in_event_id=None,
            check_out_event_id=None,
            started_at=start,
            ended_at=end,
            status=SessionStatus.APPROVED,
            credited_minutes=credited,
            reason=None,
            source="manual",
        )
    if c.session_key is None:
        return IgnoreReason.MISSING_SESSION_KEY
    session = base.get(c.session_key)
    if session is None:
        return IgnoreReason.UNKNOWN_SESSION
    if c.action == "reject":
        return replace(session, status=SessionStatus.REJECTED, credited_minutes=0)
    if c.action == "approve":
        if session.ended_at is None:
            return IgnoreReason.SESSION_OPEN
        if session.key not in observed_end:
            return IgnoreReason.NO_OBSERVED_END
        if c.created_at < session.ended_at:
            return IgnoreReason.MADE_BEFORE_SESSION_ENDED
        credited = whole_minutes(session.started_at, session.ended_at)
        return replace(session, status=SessionStatus.APPROVED, credited_minutes=credited)
    # adjust
    start = c.started_at if c.started_at is not None else session.started_at
    end = c.ended_at if c.ended_at is not None else session.ended_at
    span = _span_and_minutes(start, end, c.minutes)
    if isinstance(span, IgnoreReason):
        return span
    start, end, credited = span
    return replace(
        session, started_at=start, ended_at=end, status=SessionStatus.ADJUSTED, credited_minutes=credited
    )


def _overlaps(candidate: Session, others: Iterable[Session]) -> bool:
    """Half-open interval overlap with any other non-rejected session of the same member."""
    c_end = candidate.ended_at
    for other in others:
        if other.key == candidate.key or other.member_id != candidate.member_id:
            continue
        if other.status == SessionStatus.REJECTED:
            continue
        o_end = other.ended_at
        starts_before_other_ends = o_end is None or candidate.started_at < o_end
        ends_after_other_starts = c_end is None or c_end > other.started_at
        if starts_before_other_ends and ends_after_other_starts:
            return True
    return False


def apply_corrections(
    sessions: Sequence[Session], corrections: Iterable[Correction], observed_end: set[str]
) -> tuple[list[Session], list[IgnoredCorrection]]:
    """Replay corrections over derived sessions; returns the corrected sessions and what was skipped.

    ``observed_end`` holds the keys of kiosk sessions whose end is a real tap (see module docstring).
    """
    base = {s.key: s for s in sessions}
    current = dict(base)
    by_member: dict[int, dict[str, Session]] = {}
    for s in sessions:
        by_member.setdefault(s.member_id, {})[s.key] = s
    observed = set(observed_end)
    usable, ignored = _prepare(corrections)
    for c in usable:
        if c.action not in _ACTIONS:
            outcome: Session | IgnoreReason = IgnoreReason.UNKNOWN_ACTION
        else:
            outcome = _evaluate(c, base, observed)
        if (
            isinstance(outcome, Session)
            and outcome.status != SessionStatus.REJECTED
            and _overlaps(outcome, by_member.get(outcome.member_id, {}).values())
        ):
            outcome = IgnoreReason.OVERLAP
        if isinstance(outcome, IgnoreReason):
            logger.debug("ignoring correction %s (%s): %s", c.id, c.action, outcome)
            ignored.append(IgnoredCorrection(c.id, outcome))
            continue
        if c.action == "manual":
            base[outcome.key] = outcome
            observed.add(outcome.key)
        current[outcome.key] = outcome
        by_member.setdefault(outcome.member_id, {})[outcome.key] = outcome
    ignored.sort(key=lambda i: i.correction_id)
    return list(current.values()), ignored
