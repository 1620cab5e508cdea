"""The form layer of the review decisions (adjust, approve, manual entry): read what was typed, collect
*every* error, and judge the resulting span with :func:`server.sessions.validation.validate_span`.

Why a module of its own: the rules of a sensible span live in ``server.sessions.validation`` (pure, one
definition for every path); this module only turns form text into values and problems into sentences,
so moving the forms to Flask-WTF later replaces this module and nothing else. Errors never stop at the
first one, and the typed values go back to the page, so a person fixes everything in one go.

Times typed into a ``datetime-local`` field have minute precision. An adjust form is filled with the
session's current times; a field left as it was filled keeps the current time *with its seconds*, so a
session whose check-in and check-out fall in the same minute can still be adjusted (the typed
``09:00`` would otherwise make an empty span of a 40-second session).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.models import ServiceCentre, TapEvent, utcnow
from server.sessions.store import centre_rules
from server.sessions.validation import Problem, SpanProblem, SpanRequest, validate_span

from .i18n import fmt_dt, fmt_input, parse_local, t

logger = logging.getLogger(__name__)

MAX_REASON = 500
CONFIRM_FIELD = "confirm_span"
#: The form fields a problem is about (so the page can mark them).
_PROBLEM_FIELDS: dict[SpanProblem, tuple[str, ...]] = {
    SpanProblem.END_NOT_AFTER_START: ("started_at", "ended_at"),
    SpanProblem.IN_FUTURE: ("started_at", "ended_at"),
    SpanProblem.BEFORE_PROGRAMME: ("started_at", "ended_at"),
    SpanProblem.MINUTES_OUT_OF_RANGE: ("minutes",),
    SpanProblem.STARTS_TOO_EARLY: ("started_at",),
    SpanProblem.ENDS_TOO_LATE: ("ended_at",),
    SpanProblem.TOO_LONG: ("started_at", "ended_at"),
    SpanProblem.OTHER_DAY: ("started_at", "ended_at"),
}


@dataclass
class FormErrors:
    """Every message for the person, in the order found, and the fields they are about."""

    messages: list[str] = field(default_factory=list)
    fields: set[str] = field(default_factory=set)

    def add(self, message: str, *fields: str) -> None:
        self.messages.append(message)
        self.fields.update(fields)

    def extend(self, other: FormErrors) -> None:
        self.messages.extend(other.messages)
        self.fields |= other.fields

    def __bool__(self) -> bool:
        return bool(self.messages)


class ReviewError(ValueError):
    """A decision that cannot be taken as asked; every message is shown to the person."""

    def __init__(self, errors: FormErrors | str) -> None:
        self.errors = errors if isinstance(errors, FormErrors) else FormErrors([errors])
        super().__init__(" ".join(self.errors.messages))


def read_reason(form: Mapping[str, str], errors: FormErrors) -> str:
    """The stripped reason, or an error added (a decision always says why)."""
    reason = form.get("reason", "").strip()
    if not reason:
        errors.add(t("review.reason_required"), "reason")
    elif len(reason) > MAX_REASON:
        errors.add(t("review.reason_too_long", n=MAX_REASON), "reason")
    return reason


def read_time(
    form: Mapping[str, str], name: str, errors: FormErrors, *, current: datetime | None = None
) -> datetime | None:
    """A ``datetime-local`` field as aware UTC; blank or unchanged from ``current`` gives ``current``.

    A missing value is not an error here (the caller knows whether the time is required).
    """
    text = form.get(name, "").strip()
    if not text or (current is not None and text == fmt_input(current)):
        return current
    try:
        return parse_local(text)
    except ValueError:
        errors.add(t("review.bad_start" if name == "started_at" else "review.bad_end"), name)
        return None


def read_minutes(form: Mapping[str, str], errors: FormErrors) -> int | None:
    """Optional whole minutes to credit; ``None`` means "the whole span"."""
    text = form.get("minutes", "").strip()
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        errors.add(t("review.bad_minutes"), "minutes")
        return None
    return value


def confirmed_by_admin(form: Mapping[str, str], role: str) -> bool:
    """Only an admin's tick confirms an unusual span; anyone else's tick is ignored."""
    return role == "admin" and form.get(CONFIRM_FIELD) == "1"


def tap_times(s: Session, event_ids: Iterable[object]) -> list[datetime]:
    """The effective times of a session's own taps (its check-in and check-out events)."""
    ids = [e for e in event_ids if e is not None]
    if not ids:
        return []
    return list(s.scalars(select(TapEvent.effective_time).where(TapEvent.event_id.in_(ids))))


def span_errors(
    s: Session,
    *,
    centre_id: int,
    started_at: datetime,
    ended_at: datetime,
    minutes: int | None,
    taps: list[datetime],
    confirmed: bool,
    can_confirm: bool,
) -> FormErrors:
    """Every problem of the span as sentences; the maximum is the centre's rule, the engine's value."""
    centre = s.get(ServiceCentre, centre_id)
    assert centre is not None, centre_id
    rules = centre_rules(centre)
    problems = validate_span(
        SpanRequest(
            started_at=started_at,
            ended_at=ended_at,
            minutes=minutes,
            max_length=rules.max_length,
            now=utcnow(),
            tap_times=taps,
            tz=rules.tz,
        ),
        confirmed=confirmed,
    )
    errors = FormErrors()
    for problem in problems:
        errors.add(
            problem_text(problem, manual=not taps, can_confirm=can_confirm), *_PROBLEM_FIELDS[problem.code]
        )
    return errors


def problem_text(problem: Problem, *, manual: bool, can_confirm: bool) -> str:
    """One problem as a sentence in the person's language, with what they can do about it."""
    params = {
        k: fmt_dt(v) if isinstance(v, datetime) else "、".join(map(str, v)) if isinstance(v, list) else v
        for k, v in problem.params.items()
    }
    key = (
        "span.other_day_manual"
        if problem.code is SpanProblem.OTHER_DAY and manual
        else f"span.{problem.code}"
    )
    text = t(key, **params)
    if not problem.confirmable:
        return text
    return t(
        "span.with_remedy", problem=text, remedy=t("span.tick_confirm" if can_confirm else "span.needs_admin")
    )
