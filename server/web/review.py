"""The review queue: approve, adjust or reject sessions, bulk approve, and enter paper sessions.

Every decision is a new ``Correction`` row (append-only) plus an audit record, followed by a recompute of
the member's sessions from their taps and all corrections (``server.sessions.store.recompute_sessions``).
Nothing here edits a tap event or writes a session's status directly: the session engine is the only
writer of sessions, so a later recompute can never undo a decision. When the engine sets a correction
aside (e.g. it would overlap another session) the page says so instead of pretending it applied.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from flask import Blueprint, abort, current_app, flash, g, redirect, render_template, request, url_for
from sqlalchemy import distinct, false, func, literal, or_, select
from sqlalchemy.orm import Session

from protocol.flags import TapFlag
from protocol.sessionrules import whole_minutes
from server.models import Correction, Credential, Member, ServiceCentre, ServiceSession, TapEvent, utcnow

from . import audit
from .cards import CardError, card_hash
from .common import db, form_int, paginate
from .forms.review import (
    DECISION_FORMS,
    BulkApproveForm,
    DecisionForm,
    ManualEntryForm,
    approvable,
    session_span_problems,
)
from .i18n import fmt_dt, t
from .reasons import merged_flags
from .scope import Scope, current_scope, require_write
from .sessions_view import apply_filters, filter_choices, session_rows

logger = logging.getLogger(__name__)
bp = Blueprint("web_review", __name__, url_prefix="/review")

QUEUE_STATUSES = ("needs_review", "auto_closed")
FLAGGED_STATUSES = ("open", "closed")  # a flagged tap queues a session only until someone decides on it
SESSION_FIELDS = ("status", "started_at", "ended_at", "credited_minutes", "reason", "source")


def review_flags() -> frozenset[TapFlag]:
    """The flags that send a session to review: ``REVIEW_FLAGS``, validated by ``load_config``."""
    return frozenset(current_app.config["REVIEW_FLAGS"])


def flagged_tap(flags: Iterable[TapFlag] | None = None) -> Any:
    """Tap events carrying one of ``flags`` (default: the configured ones), via ``ix_tap_events_flagged``.

    ``flags IS NOT NULL`` lets both databases read only the partial index's few rows; each flag is then
    matched as a whole item of the comma-separated text (``,gap,`` or ``,gap:…``), so ``hash_mismatch`` does
    not match ``prev_hash_mismatch``. No configured flag means no tap sends a session to review.
    """
    chosen = sorted(review_flags() if flags is None else flags)
    if not chosen:
        return false()
    padded = literal(",") + TapEvent.flags + literal(",")
    return TapEvent.flags.is_not(None) & or_(
        *(
            padded.like(f"%,{_like_escaped(flag.value)}{end}%", escape="/")
            for flag in chosen
            for end in (",", ":")
        )
    )


def _like_escaped(text: str) -> str:
    """``text`` matched literally by ``LIKE … ESCAPE '/'`` (flag values hold ``_``, a LIKE wildcard).

    The whole pattern is one bound value: ``contains()`` would have the database concatenate ``'%' || :p
    || '%'`` for every flagged row and flag.
    """
    return text.replace("/", "//").replace("%", "/%").replace("_", "/_")


def queue_clause() -> Any:
    """Sessions that need a person: needs-review, auto-closed, or built from a tap with a review flag.

    Used for the rows of a page: ordered by start, the first 50 matches come early in the start index.
    Counting all matches this way is slow (see ``queue_count``).
    """
    flagged = select(TapEvent.event_id).where(flagged_tap())
    return or_(
        ServiceSession.status.in_(QUEUE_STATUSES),
        (ServiceSession.status.in_(FLAGGED_STATUSES))
        & (ServiceSession.check_in_event_id.in_(flagged) | ServiceSession.check_out_event_id.in_(flagged)),
    )


def queue_count(s: Session, scope: Scope) -> int:
    """The exact size of the queue (with the page's filters) as two index-friendly counts, summed.

    ``count(*)`` over ``queue_clause()`` makes PostgreSQL read every session (the ``OR`` of a status test
    and two sub-queries cannot use an index: 190 ms on a city year). The two halves are disjoint by status,
    so their counts add up: sessions with a review status (the status index), and open/closed sessions
    driven from the few flagged taps through ``ix_service_sessions_check_in``/``_check_out`` (migration
    0007), counted distinct because both taps of one session may be flagged.
    """
    by_status = apply_filters(
        select(func.count())
        .select_from(ServiceSession)
        .where(scope.clause(ServiceSession), ServiceSession.status.in_(QUEUE_STATUSES)),
        join_member=True,
    )
    by_flag = apply_filters(
        select(func.count(distinct(ServiceSession.id)))
        .select_from(TapEvent)
        .join(
            ServiceSession,
            or_(
                ServiceSession.check_in_event_id == TapEvent.event_id,
                ServiceSession.check_out_event_id == TapEvent.event_id,
            ),
        )
        .where(flagged_tap(), scope.clause(ServiceSession), ServiceSession.status.in_(FLAGGED_STATUSES)),
        join_member=True,
    )
    return (s.scalar(by_status) or 0) + (s.scalar(by_flag) or 0)


def recompute(s: Session, member_ids: list[int]) -> None:
    """Rebuild the members' sessions from taps and corrections (the session store's one entry point)."""
    from server.sessions.store import recompute_sessions

    recompute_sessions(s, member_ids, now=utcnow())


def write_correction(
    s: Session,
    row: ServiceSession,
    action: str,
    reason: str,
    *,
    started_at: datetime | None = None,
    ended_at: datetime | None = None,
    minutes: int | None = None,
) -> Correction:
    """Append one correction for ``row`` and its audit record (the caller recomputes and commits).

    The decision has been judged by its form (:mod:`server.web.forms.review`, which calls the one set
    of span rules). An adjust states both times of the outcome (the form fills in the current ones), so
    the correction does not depend on what the base session looks like at the next recompute.
    """
    before = audit.snapshot(row, SESSION_FIELDS)
    if action == "reject":
        after: dict[str, Any] = {"status": "rejected", "credited_minutes": 0}
    elif action == "approve":
        after = {"status": "approved"}
    elif action == "adjust":
        assert started_at is not None and ended_at is not None
        after = {
            "status": "adjusted",
            "started_at": started_at,
            "ended_at": ended_at,
            "credited_minutes": whole_minutes(started_at, ended_at) if minutes is None else minutes,
        }
    else:  # pragma: no cover - the routes only pass the three actions above
        raise ValueError(action)
    correction = Correction(
        session_key=row.key,
        member_id=row.member_id,
        centre_id=row.centre_id,
        community_id=row.community_id,
        action=action,
        reason=reason,
        started_at=started_at,
        ended_at=ended_at,
        minutes=minutes,
        before=audit.jsonable(before),
        after=audit.jsonable(after),
        user_id=g.user.id,
        created_at=utcnow(),
    )
    s.add(correction)
    s.flush()
    audit.record(
        s,
        action=f"session.{action}",
        object_type="service_session",
        object_id=row.key,
        before=before,
        after=after,
        reason=reason,
        community_id=row.community_id,
    )
    return correction


def _outcome_message(s: Session, key: str, expected: str) -> None:
    """Tell the person whether the engine applied the decision (it may set it aside, e.g. an overlap)."""
    status = s.scalar(select(ServiceSession.status).where(ServiceSession.key == key))
    if status == expected:
        flash(t("review.saved"), "ok")
    else:
        flash(t("review.not_applied", status=t(f"status.{status}") if status else "—"), "warn")


@bp.get("")
def queue() -> Any:
    scope = current_scope()
    stmt = apply_filters(session_rows(scope).where(queue_clause()))
    stmt = stmt.order_by(ServiceSession.started_at.desc(), ServiceSession.id.desc())
    s = db()
    page = paginate(s, stmt, scalars=False, count=lambda: queue_count(s, scope))
    event_ids = [e for row in page.items for e in (row[0].check_in_event_id, row[0].check_out_event_id) if e]
    stored = dict(
        s.execute(select(TapEvent.event_id, TapEvent.flags).where(TapEvent.event_id.in_(event_ids)))
        .tuples()
        .all()
    )
    flags = {
        row.id: merged_flags(stored.get(e) for e in (row.check_in_event_id, row.check_out_event_id) if e)
        for row, *_ in page.items
    }
    return render_template(
        "review/queue.html",
        page=page,
        flags=flags,
        approvable=approvable,
        can_write=scope.can_write,
        **filter_choices(scope),
    )


def decision_forms(
    s: Session, row: ServiceSession, scope: Scope, refused: DecisionForm | None = None
) -> dict[str, DecisionForm]:
    """The page's three forms, empty (adjust filled with the current times) but for a refused one."""
    forms: dict[str, DecisionForm] = {
        action: cls(formdata=None, s=s, row=row, can_confirm=scope.role == "admin")
        for action, cls in DECISION_FORMS.items()
    }
    if refused is not None:
        forms[refused.action] = refused
    return forms


@bp.get("/<int:session_id>")
def detail(session_id: int, refused: DecisionForm | None = None) -> Any:
    """The session, its taps and decisions; after a refused decision, with what was typed and why."""
    scope = current_scope()
    s = db()
    row = scope.get_or_404(s, ServiceSession, session_id)
    member = s.get(Member, row.member_id)
    centre = s.get(ServiceCentre, row.centre_id)
    event_ids = [e for e in (row.check_in_event_id, row.check_out_event_id) if e]
    taps = list(
        s.scalars(select(TapEvent).where(TapEvent.event_id.in_(event_ids)).order_by(TapEvent.effective_time))
    )
    corrections = list(
        s.scalars(select(Correction).where(Correction.session_key == row.key).order_by(Correction.created_at))
    )
    return render_template(
        "review/detail.html",
        row=row,
        member=member,
        centre=centre,
        taps=taps,
        corrections=corrections,
        approvable=approvable(row),
        can_write=scope.can_write,
        is_admin=scope.role == "admin",
        forms=decision_forms(s, row, scope, refused),
        refused=refused.action if refused is not None else None,
    )


@bp.post("/<int:session_id>/<any(approve, adjust, reject):action>")
def decide(session_id: int, action: str) -> Any:
    """Approve, adjust or reject one session; a refused decision shows the page again with every error
    and the typed values (status 400), nothing written."""
    scope = require_write()
    s = db()
    row = scope.get_or_404(s, ServiceSession, session_id)
    form = DECISION_FORMS[action](s=s, row=row, can_confirm=scope.role == "admin")
    if not form.validate():
        s.rollback()
        return detail(session_id, refused=form), 400
    write_correction(s, row, action, form.reason.data, **form.decision())
    key, member_id = row.key, row.member_id
    recompute(s, [member_id])
    s.commit()
    _outcome_message(s, key, {"approve": "approved", "adjust": "adjusted", "reject": "rejected"}[action])
    return redirect(url_for("web_review.queue"))


@bp.post("/bulk-approve")
def bulk_approve() -> Any:
    """Approve every ticked session that can be approved; the others are counted and left in the queue.

    Each span is judged like a single approval; a session refused by the rules is named with its
    problems, the rest of the batch goes ahead.
    """
    scope = require_write()
    s = db()
    form = BulkApproveForm()
    if not form.validate():
        for message in form.messages:
            flash(message, "error")
        return redirect(url_for("web_review.queue"))
    ids = form.session_id.data or set()
    rows = list(
        s.scalars(select(ServiceSession).where(ServiceSession.id.in_(ids), scope.clause(ServiceSession)))
    )
    if len(rows) != len(ids):
        abort(404)  # an id outside the scope (or gone): refuse the whole batch rather than guess
    done, skipped = 0, 0
    for row in rows:
        if not approvable(row):
            skipped += 1
            continue
        assert row.ended_at is not None
        problems = session_span_problems(
            s,
            row,
            started_at=row.started_at,
            ended_at=row.ended_at,
            minutes=None,
            confirmed=False,
            can_confirm=scope.role == "admin",
        )
        if problems:
            skipped += 1
            member = s.get(Member, row.member_id)
            flash(
                t(
                    "review.not_approved",
                    when=fmt_dt(row.started_at),
                    member=member.name if member else "—",
                    problems=" ".join(message for message, _fields in problems),
                ),
                "warn",
            )
            continue
        write_correction(s, row, "approve", form.reason.data)
        done += 1
    if done:
        recompute(s, sorted({row.member_id for row in rows}))
    s.commit()
    flash(t("review.bulk_done", done=done, skipped=skipped), "ok" if not skipped else "warn")
    return redirect(url_for("web_review.queue"))


@bp.route("/manual", methods=["GET", "POST"])
def manual() -> Any:
    """A session recorded on paper: a ``manual`` correction that the engine turns into a session.

    The member may come from another community (they served at this community's centre): they are found
    by exact member number or a card they hold, shown masked, and saved only once confirmed.
    """
    scope = require_write()
    s = db()
    centres = list(
        s.scalars(select(ServiceCentre).where(scope.clause(ServiceCentre)).order_by(ServiceCentre.code))
    )
    context = {"centres": centres, "is_admin": scope.role == "admin"}
    if request.method == "GET":
        form = ManualEntryForm(formdata=None, s=s, scope=scope, centre_id=0, find_member=find_entry_member)
        return render_template("review/manual.html", form=form, **context)
    centre_id = form_int("centre_id")
    if not scope.allows(s, ServiceCentre, centre_id):
        abort(404)
    assert centre_id is not None
    form = ManualEntryForm(s=s, scope=scope, centre_id=centre_id, find_member=find_entry_member)
    if not form.validate():
        s.rollback()
        return render_template("review/manual.html", form=form, **context), 400
    correction = _manual_entry(s, form)
    recompute(s, [correction.member_id])
    s.commit()
    _outcome_message(s, f"manual:{correction.id}", "approved")
    return redirect(url_for("web_sessions.timeline", member_id=correction.member_id))


def find_entry_member(s: Session, text: str) -> Member | None:
    """The member a manual entry names: exact member number, else the holder of an active card UID.

    Exact matches only, never a search: a manual entry must not become a way to browse the city's list.
    """
    if not text:
        return None
    member = s.scalar(select(Member).where(Member.member_no == text))
    if member is not None:
        return member
    try:
        value_hash, _label = card_hash(text)
    except CardError:
        return None
    return s.scalar(
        select(Member)
        .join(Credential, Credential.member_id == Member.id)
        .where(Credential.kind == "card", Credential.value_hash == value_hash, Credential.status == "active")
    )


def _manual_entry(s: Session, form: ManualEntryForm) -> Correction:
    """Write the validated manual entry as a ``manual`` correction and its audit record."""
    centre = s.get(ServiceCentre, form.centre)
    member, start, end = form.member, form.started_at.data, form.ended_at.data
    minutes, reason = form.minutes.data, form.reason.data
    assert centre is not None and member is not None and start is not None and end is not None
    after = {
        "status": "approved",
        "source": "manual",
        "started_at": start,
        "ended_at": end,
        "credited_minutes": whole_minutes(start, end) if minutes is None else minutes,
    }
    correction = Correction(
        session_key=None,
        member_id=member.id,
        centre_id=centre.id,
        community_id=centre.community_id,
        action="manual",
        reason=reason,
        started_at=start,
        ended_at=end,
        minutes=minutes,
        before=None,
        after=audit.jsonable(after),
        user_id=g.user.id,
        created_at=utcnow(),
    )
    s.add(correction)
    s.flush()
    audit.record(
        s,
        action="session.manual",
        object_type="correction",
        object_id=correction.id,
        after={**after, "member_no": member.member_no, "centre": centre.code},
        reason=reason,
        community_id=centre.community_id,
    )
    logger.info("manual session %s for member %s at %s", fmt_dt(start), member.id, centre.code)
    return correction
