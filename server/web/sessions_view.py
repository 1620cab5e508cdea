"""The sessions list (filters, paging, sorting) and a member's timeline of taps and sessions."""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

from flask import Blueprint, redirect, render_template, request, url_for
from sqlalchemy import Select, func, literal, or_, select

from server.models import Correction, Member, ServiceCentre, ServiceSession, TapEvent, Unit
from server.models.sessions import SESSION_STATUSES

from .common import arg_int, db, paginate
from .i18n import local_day_bounds
from .scope import Scope, current_scope

logger = logging.getLogger(__name__)
bp = Blueprint("web_sessions", __name__)

SORTS = {
    "start": ServiceSession.started_at,
    "minutes": ServiceSession.credited_minutes,
    "member": Member.member_no,
    "status": ServiceSession.status,
}
TIMELINE_LIMIT = 200


def _date_arg(name: str) -> date | None:
    try:
        return date.fromisoformat(request.args.get(name, "").strip())
    except ValueError:
        return None


def session_rows(scope: Scope) -> Select[Any]:
    """Sessions in scope joined with what a list shows (member, unit, centre).

    The unit's name only where the unit is in scope: a session at this community's centre of a member of
    another community shows the member but not their unit (that is the rest of the member's record).
    """
    return (
        select(ServiceSession, Member, func.coalesce(Unit.name, literal("—")), ServiceCentre.name)
        .join(Member, Member.id == ServiceSession.member_id)
        .outerjoin(Unit, (Unit.id == ServiceSession.unit_id) & scope.clause(Unit))
        .join(ServiceCentre, ServiceCentre.id == ServiceSession.centre_id)
        .where(scope.clause(ServiceSession))
    )


def apply_filters(stmt: Select[Any], join_member: bool = False) -> Select[Any]:
    """The list filters from the query string: centre, unit, status, member text, local date range.

    ``join_member`` joins ``Member`` when the member filter needs it, for statements (counts) that do not
    already join it: a count without the join stays on the sessions' own indexes.
    """
    if (centre_id := arg_int("centre_id")) is not None:
        stmt = stmt.where(ServiceSession.centre_id == centre_id)
    if (unit_id := arg_int("unit_id")) is not None:
        stmt = stmt.where(ServiceSession.unit_id == unit_id)
    status = request.args.get("status", "")
    if status in SESSION_STATUSES:
        stmt = stmt.where(ServiceSession.status == status)
    member = request.args.get("member", "").strip()
    if member:
        if join_member:
            stmt = stmt.join(Member, Member.id == ServiceSession.member_id)
        stmt = stmt.where(or_(Member.member_no == member, Member.name.contains(member, autoescape=True)))
    if (start := _date_arg("date_from")) is not None:
        stmt = stmt.where(ServiceSession.started_at >= local_day_bounds(start)[0])
    if (end := _date_arg("date_to")) is not None:
        stmt = stmt.where(ServiceSession.started_at < local_day_bounds(end)[1])
    return stmt


def filter_choices(scope: Scope) -> dict[str, Any]:
    s = db()
    return {
        "centres": list(
            s.scalars(select(ServiceCentre).where(scope.clause(ServiceCentre)).order_by(ServiceCentre.code))
        ),
        "units": list(s.scalars(select(Unit).where(scope.clause(Unit)).order_by(Unit.code))),
        "statuses": SESSION_STATUSES,
    }


@bp.get("/")
def home() -> Any:
    return redirect(url_for("web_sessions.index"))


@bp.get("/sessions")
def index() -> Any:
    scope = current_scope()
    sort = request.args.get("sort", "start")
    column = SORTS.get(sort, SORTS["start"])
    descending = request.args.get("dir", "desc") != "asc"
    stmt = apply_filters(session_rows(scope))
    stmt = stmt.order_by(column.desc() if descending else column.asc(), ServiceSession.id.desc())
    page = paginate(db(), stmt, scalars=False)
    return render_template(
        "sessions/list.html", page=page, sort=sort, descending=descending, **filter_choices(scope)
    )


@bp.get("/members/<int:member_id>/timeline")
def timeline(member_id: int) -> Any:
    """Taps and sessions of one member, newest first, so staff can see why a session looks as it does.

    Staff see the timeline of a member of another community who served at their centres, limited (like
    every list) by the scope's clauses to the taps, sessions and corrections at their centres; the page
    then shows neither the member's unit nor a link to their details (see ``Scope.timeline_member_or_404``).
    """
    scope = current_scope()
    s = db()
    member, whole_record = scope.timeline_member_or_404(s, member_id)
    taps = list(
        s.execute(
            select(TapEvent, ServiceCentre.name)
            .join(ServiceCentre, ServiceCentre.id == TapEvent.centre_id)
            .where(
                or_(TapEvent.member_id == member.id, TapEvent.resolved_member_id == member.id),
                scope.clause(TapEvent),
            )
            .order_by(TapEvent.effective_time.desc())
            .limit(TIMELINE_LIMIT)
        )
    )
    sessions = list(
        s.execute(
            session_rows(scope)
            .where(ServiceSession.member_id == member.id)
            .order_by(ServiceSession.started_at.desc())
            .limit(TIMELINE_LIMIT)
        )
    )
    corrections = list(
        s.scalars(
            select(Correction)
            .where(Correction.member_id == member.id, scope.clause(Correction))
            .order_by(Correction.created_at.desc())
            .limit(TIMELINE_LIMIT)
        )
    )
    unit = s.get(Unit, member.unit_id) if whole_record else None
    return render_template(
        "sessions/timeline.html",
        member=member,
        unit=unit,
        taps=taps,
        sessions=sessions,
        corrections=corrections,
        whole_record=whole_record,
    )
