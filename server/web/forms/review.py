"""The review decision forms (approve, adjust, reject, bulk approve, manual entry) as WTForms forms.

The rules of a sensible span live in :mod:`server.sessions.validation` (pure, one judge for every path);
these forms turn typed text into values with the catalogue's messages and call ``validate_span`` from
``validate_form``, so a person reads every problem at once, next to the field it is about and in the
summary above the form, with what they typed still in the fields.

Times typed into a ``datetime-local`` field have minute precision. An adjust form is filled with the
session's current times; a field left as it was filled keeps the current time *with its seconds*, so a
session whose check-in and check-out fall in the same minute can still be adjusted (the typed
``09:00`` would otherwise make an empty span of a 40-second session).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from wtforms import BooleanField, IntegerField, StringField
from wtforms.validators import DataRequired, Length

from protocol.masking import mask_name
from server.models import Member, ServiceCentre, ServiceSession, TapEvent, utcnow
from server.sessions.store import centre_rules
from server.sessions.validation import Problem, SpanProblem, SpanRequest, validate_span

from ..i18n import fmt_dt, fmt_input, t
from .base import IdListField, LocalDateTimeField, Msg, StaffForm, TrimmedStringField, WholeNumberField, check

logger = logging.getLogger(__name__)

MAX_REASON = 500
#: The form fields a problem is about (so the page can mark them; the message stands under the last).
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


def _reason_field() -> StringField:
    return TrimmedStringField(
        validators=[
            DataRequired(message=Msg("review.reason_required")),
            Length(max=MAX_REASON, message=Msg("review.reason_too_long", n=MAX_REASON)),
        ]
    )


def _minutes_field() -> IntegerField:
    """Optional whole minutes to credit; blank means "the whole span"."""
    return WholeNumberField(invalid=Msg("review.bad_minutes"), validators=[_not_negative])


def _not_negative(form: Any, field: Any) -> None:
    if field.data is not None and field.data < 0:
        field.data = None
        check(False, Msg("review.bad_minutes"))


def tap_times(s: Session, event_ids: Iterable[object]) -> list[datetime]:
    """The effective times of a session's own taps (its check-in and check-out events)."""
    ids = [e for e in event_ids if e is not None]
    if not ids:
        return []
    return list(s.scalars(select(TapEvent.effective_time).where(TapEvent.event_id.in_(ids))))


def span_problems(
    s: Session,
    *,
    centre_id: int,
    started_at: datetime,
    ended_at: datetime,
    minutes: int | None,
    taps: list[datetime],
    confirmed: bool,
    can_confirm: bool,
) -> list[tuple[str, tuple[str, ...]]]:
    """Every problem of the span as (sentence, fields); the maximum is the centre's rule (the engine's)."""
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
    return [
        (problem_text(p, manual=not taps, can_confirm=can_confirm), _PROBLEM_FIELDS[p.code]) for p in problems
    ]


def session_span_problems(
    s: Session,
    row: ServiceSession,
    *,
    started_at: datetime,
    ended_at: datetime,
    minutes: int | None,
    confirmed: bool,
    can_confirm: bool,
) -> list[tuple[str, tuple[str, ...]]]:
    """:func:`span_problems` for a kiosk session, within reach of its own taps."""
    return span_problems(
        s,
        centre_id=row.centre_id,
        started_at=started_at,
        ended_at=ended_at,
        minutes=minutes,
        taps=tap_times(s, (row.check_in_event_id, row.check_out_event_id)),
        confirmed=confirmed,
        can_confirm=can_confirm,
    )


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


def approvable(row: ServiceSession) -> bool:
    """Approve credits the observed span, so the session needs an observed end (see sessions.corrections)."""
    return row.ended_at is not None and row.status not in ("open", "auto_closed")


class DecisionForm(StaffForm):
    """A decision on one session: ``s``, ``row`` and whether the person may confirm (an admin) are given.

    Only an admin's tick confirms an unusual span; anyone else's tick is ignored.
    """

    action = ""  # the route's name of the decision, set by each form

    reason = _reason_field()
    confirm_span = BooleanField()

    def __init__(self, *args: Any, s: Session, row: ServiceSession, can_confirm: bool, **kwargs: Any) -> None:
        self.s, self.row, self.can_confirm = s, row, can_confirm
        super().__init__(*args, **kwargs)

    @property
    def confirmed(self) -> bool:
        return self.can_confirm and bool(self.confirm_span.data)

    def add_span_problems(self, start: datetime, end: datetime, minutes: int | None) -> None:
        for message, fields in session_span_problems(
            self.s,
            self.row,
            started_at=start,
            ended_at=end,
            minutes=minutes,
            confirmed=self.confirmed,
            can_confirm=self.can_confirm,
        ):
            self.add_error(message, *(f for f in fields if f in self))

    def decision(self) -> dict[str, Any]:
        """The keyword arguments of ``review.write_correction`` (valid forms only)."""
        return {}


class RejectForm(DecisionForm):
    """Reject: only a reason."""

    action = "reject"


class ApproveForm(DecisionForm):
    """Approve credits the observed span, judged like any other."""

    action = "approve"

    def validate_form(self) -> None:
        if not approvable(self.row):
            self.add_error(t("review.cannot_approve"))
            return
        assert self.row.ended_at is not None
        self.add_span_problems(self.row.started_at, self.row.ended_at, None)


class AdjustForm(DecisionForm):
    """New times and/or minutes; the form is filled with the session's current times."""

    action = "adjust"

    started_at = LocalDateTimeField(invalid=Msg("review.bad_start"))
    ended_at = LocalDateTimeField(invalid=Msg("review.bad_end"))
    minutes = _minutes_field()
    reason = _reason_field()
    confirm_span = BooleanField()

    def __init__(self, *args: Any, s: Session, row: ServiceSession, can_confirm: bool, **kwargs: Any) -> None:
        kwargs.setdefault("data", {"started_at": row.started_at, "ended_at": row.ended_at})
        super().__init__(*args, s=s, row=row, can_confirm=can_confirm, **kwargs)

    def _time(self, name: str, current: datetime | None) -> datetime | None:
        """Blank, or unchanged from the filled-in text, gives the current time (with its seconds)."""
        f = self[name]
        if f.errors:
            return None
        if not f.typed or f.typed == fmt_input(current):
            return current
        value: datetime | None = f.data
        return value

    def validate_form(self) -> None:
        row = self.row
        start = self._time("started_at", row.started_at)
        end = self._time("ended_at", row.ended_at)
        self.start, self.end = start, end
        if self.started_at.errors or self.ended_at.errors:
            return  # a time that could not be read: nothing to judge
        if end is None:
            self.add_error(t("review.end_required"), "ended_at")
            return
        assert start is not None
        unchanged = start == row.started_at and end == row.ended_at and self.minutes.data is None
        if unchanged and not self.messages:
            self.add_error(t("review.adjust_needs_change"), "started_at", "ended_at", "minutes")
            return
        self.add_span_problems(start, end, self.minutes.data)

    def decision(self) -> dict[str, Any]:
        return {"started_at": self.start, "ended_at": self.end, "minutes": self.minutes.data}


DECISION_FORMS: dict[str, type[DecisionForm]] = {
    "approve": ApproveForm,
    "adjust": AdjustForm,
    "reject": RejectForm,
}


class BulkApproveForm(StaffForm):
    """The reason for every ticked session; each session's span is judged on its own by the view."""

    reason = _reason_field()
    session_id = IdListField()


class ManualEntryForm(StaffForm):
    """A session recorded on paper; ``s`` and the person's ``scope`` are given.

    The member may come from another community (they served at this community's centre): they are found
    by exact member number or a card they hold (``find_member``), and saved only once the confirmation
    names this very member (the number may have changed since the page was shown). The centre is a
    ``<select>`` the view checks against the scope before the form is built.
    """

    member_no = TrimmedStringField()
    started_at = LocalDateTimeField(invalid=Msg("review.bad_start"))
    ended_at = LocalDateTimeField(invalid=Msg("review.bad_end"))
    minutes = _minutes_field()
    reason = _reason_field()
    confirm_span = BooleanField()
    confirm_member = StringField()

    def __init__(
        self, *args: Any, s: Session, scope: Any, centre_id: int, find_member: Any, **kwargs: Any
    ) -> None:
        self.s, self.scope, self.centre, self.find_member = s, scope, centre_id, find_member
        self.member: Member | None = None
        self.visitor: Member | None = None
        super().__init__(*args, **kwargs)

    def validate_member_no(self, field: Any) -> None:
        self.member = self.find_member(self.s, field.data or "")
        check(self.member is not None, Msg("review.unknown_member"))

    def validate_started_at(self, field: Any) -> None:
        check(field.data is not None or bool(field.errors), Msg("review.start_required"))

    def validate_ended_at(self, field: Any) -> None:
        check(field.data is not None or bool(field.errors), Msg("review.end_required"))

    def validate_form(self) -> None:
        start, end = self.started_at.data, self.ended_at.data
        if start is not None and end is not None:
            can_confirm = self.scope.role == "admin"
            for message, fields in span_problems(
                self.s,
                centre_id=self.centre,
                started_at=start,
                ended_at=end,
                minutes=self.minutes.data,
                taps=[],
                confirmed=can_confirm and bool(self.confirm_span.data),
                can_confirm=can_confirm,
            ):
                self.add_error(message, *fields)
        member = self.member
        if (
            member is not None
            and not self.scope.on_roster(self.s, member)
            and self.confirm_member.data != str(member.id)
        ):
            self.visitor = member
            self.add_error(
                t("review.outside_roster", name=mask_name(member.name), member_no=member.member_no),
                "member_no",
                first=True,
            )
