"""Members, units and communities: lists, create/edit forms with validation, and the CSV import pages.

Community staff manage members of their community (units paired with it); units and communities are
managed by admins. Members are never deleted (their sessions and taps refer to them): they are set
inactive. A national ID number typed into a form is checked and stored only as its keyed hash.
"""

from __future__ import annotations

import json
import logging
import secrets
from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    stream_template,
    url_for,
)
from sqlalchemy import Select, func, or_, select

from server.config import VAR_DIR, key_bytes
from server.models import Community, Member, Unit, UnitCommunity

from . import audit, csv_import
from .common import arg_int, db, paginate, require_role
from .forms.imports import ImportForm
from .forms.members import CommunityForm, MemberForm, UnitForm
from .i18n import t
from .scope import current_scope, require_write

logger = logging.getLogger(__name__)
bp = Blueprint("web_members", __name__)

MEMBER_AUDIT_FIELDS = ("member_no", "name", "unit_id", "community_id", "phone", "status")


# ---- members -------------------------------------------------------------------------------------


def filtered_members(scope: Any) -> Select[Any]:
    """(Member, unit name, community name) in the user's scope, filtered by the list's query arguments
    (``q``, ``unit_id``, ``status``); shared by the members page and its export."""
    stmt = (
        select(Member, Unit.name, Community.name)
        .join(Unit, Unit.id == Member.unit_id)
        .join(Community, Community.id == Member.community_id)
        .where(scope.clause(Member))
    )
    q = request.args.get("q", "").strip()
    if q:
        stmt = stmt.where(or_(Member.member_no == q, Member.name.contains(q, autoescape=True)))
    if (unit_id := arg_int("unit_id")) is not None:
        stmt = stmt.where(Member.unit_id == unit_id)
    if request.args.get("status") in ("active", "inactive"):
        stmt = stmt.where(Member.status == request.args["status"])
    return stmt


@bp.get("/members")
def members() -> Any:
    scope = current_scope()
    s = db()
    stmt = filtered_members(scope)
    page = paginate(s, stmt.order_by(Member.member_no), scalars=False)
    units = list(s.scalars(select(Unit).where(scope.clause(Unit)).order_by(Unit.code)))
    return render_template("members/list.html", page=page, units=units, can_write=scope.can_write)


@bp.get("/members/<int:member_id>")
def member_detail(member_id: int) -> Any:
    scope = current_scope()
    s = db()
    member = scope.get_or_404(s, Member, member_id)
    return render_template(
        "members/detail.html",
        member=member,
        unit=s.get(Unit, member.unit_id),
        community=s.get(Community, member.community_id),
        can_write=scope.can_write,
    )


def _member_choices() -> dict[str, Any]:
    scope = current_scope()
    s = db()
    return {
        "units": list(s.scalars(select(Unit).where(scope.clause(Unit)).order_by(Unit.code))),
        "communities": list(
            s.scalars(select(Community).where(scope.clause(Community)).order_by(Community.code))
        ),
    }


@bp.route("/members/new", methods=["GET", "POST"])
def member_new() -> Any:
    require_write()
    return _member_form(None)


@bp.route("/members/<int:member_id>/edit", methods=["GET", "POST"])
def member_edit(member_id: int) -> Any:
    scope = require_write()
    return _member_form(scope.get_or_404(db(), Member, member_id))


def _member_form(member: Member | None) -> Any:
    scope = current_scope()
    s = db()
    if request.method == "GET":
        form = MemberForm(formdata=None, obj=member, s=s, scope=scope, member=member)
        return render_template("members/form.html", member=member, form=form, **_member_choices())
    form = MemberForm(s=s, scope=scope, member=member)
    if not form.validate():
        return render_template("members/form.html", member=member, form=form, **_member_choices()), 400
    id_hash = form.national_id_hash
    before = audit.snapshot(member, MEMBER_AUDIT_FIELDS) if member else None
    if member is None:
        member = Member(member_no=form.member_no.data)
        s.add(member)
    member.member_no = form.member_no.data
    member.name = form.name.data
    member.unit_id = form.unit_id.data  # type: ignore[assignment]
    member.community_id = form.community_id.data  # type: ignore[assignment]
    member.phone = form.phone.data or None
    member.status = form.status.data
    if id_hash:
        member.national_id_hash = id_hash
    s.flush()
    after = audit.snapshot(member, MEMBER_AUDIT_FIELDS)
    if id_hash:
        after["national_id"] = "set"  # that it changed, never the value or its hash
    audit.record(
        s,
        action="member.update" if before else "member.create",
        object_type="member",
        object_id=member.id,
        before=before,
        after=after,
        community_id=member.community_id,
    )
    s.commit()
    flash(t("members.saved"), "ok")
    return redirect(url_for("web_members.member_detail", member_id=member.id))


# ---- units and communities -----------------------------------------------------------------------


@bp.get("/units")
def units() -> Any:
    scope = current_scope()
    s = db()
    counts = select(Member.unit_id, func.count().label("n")).group_by(Member.unit_id).subquery()
    stmt = (
        select(Unit, func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.unit_id == Unit.id)
        .where(scope.clause(Unit))
        .order_by(Unit.code)
    )
    if q := request.args.get("q", "").strip():
        stmt = stmt.where(or_(Unit.code == q, Unit.name.contains(q, autoescape=True)))
    return render_template(
        "members/units.html", page=paginate(s, stmt, scalars=False), is_admin=scope.role == "admin"
    )


@bp.route("/units/new", methods=["GET", "POST"])
@require_role("admin")
def unit_new() -> Any:
    return _unit_form(None)


@bp.route("/units/<int:unit_id>/edit", methods=["GET", "POST"])
@require_role("admin")
def unit_edit(unit_id: int) -> Any:
    return _unit_form(current_scope().get_or_404(db(), Unit, unit_id))


def _unit_form(unit: Unit | None) -> Any:
    s = db()
    communities = list(s.scalars(select(Community).order_by(Community.code)))
    paired = (
        set(s.scalars(select(UnitCommunity.community_id).where(UnitCommunity.unit_id == unit.id)))
        if unit
        else set()
    )
    if request.method == "GET":
        form = UnitForm(formdata=None, obj=unit, s=s, row=unit)
        return render_template(
            "members/unit_form.html", unit=unit, form=form, paired=paired, communities=communities
        )
    form = UnitForm(s=s, row=unit)
    chosen: set[int] = form.community_id.data or set()
    if not chosen <= {c.id for c in communities}:
        abort(404)
    if not form.validate():
        return render_template(
            "members/unit_form.html", unit=unit, form=form, paired=chosen, communities=communities
        ), 400
    before = {"code": unit.code, "name": unit.name, "communities": sorted(paired)} if unit else None
    if unit is None:
        unit = Unit(code=form.code.data, name=form.name.data)
        s.add(unit)
    unit.code, unit.name = form.code.data, form.name.data
    s.flush()
    for cid in chosen - paired:
        s.add(UnitCommunity(unit_id=unit.id, community_id=cid))
    for link in s.scalars(
        select(UnitCommunity).where(
            UnitCommunity.unit_id == unit.id, UnitCommunity.community_id.in_(paired - chosen)
        )
    ):
        s.delete(link)
    audit.record(
        s,
        action="unit.update" if before else "unit.create",
        object_type="unit",
        object_id=unit.id,
        before=before,
        after={"code": unit.code, "name": unit.name, "communities": sorted(chosen)},
    )
    s.commit()
    flash(t("members.saved"), "ok")
    return redirect(url_for("web_members.units"))


@bp.get("/communities")
def communities() -> Any:
    scope = current_scope()
    stmt = select(Community).where(scope.clause(Community)).order_by(Community.code)
    return render_template(
        "members/communities.html", page=paginate(db(), stmt), is_admin=scope.role == "admin"
    )


@bp.route("/communities/new", methods=["GET", "POST"])
@require_role("admin")
def community_new() -> Any:
    return _community_form(None)


@bp.route("/communities/<int:community_id>/edit", methods=["GET", "POST"])
@require_role("admin")
def community_edit(community_id: int) -> Any:
    return _community_form(current_scope().get_or_404(db(), Community, community_id))


def _community_form(community: Community | None) -> Any:
    s = db()
    fields = ("code", "name", "district")
    if request.method == "GET":
        form = CommunityForm(formdata=None, obj=community, s=s, row=community)
        return render_template("members/community_form.html", community=community, form=form)
    form = CommunityForm(s=s, row=community)
    if not form.validate():
        return render_template("members/community_form.html", community=community, form=form), 400
    before = audit.snapshot(community, fields) if community else None
    if community is None:
        community = Community(code=form.code.data, name=form.name.data)
        s.add(community)
    community.code, community.name = form.code.data, form.name.data
    community.district = form.district.data or None
    s.flush()
    audit.record(
        s,
        action="community.update" if before else "community.create",
        object_type="community",
        object_id=community.id,
        before=before,
        after=audit.snapshot(community, fields),
        community_id=community.id,
    )
    s.commit()
    flash(t("members.saved"), "ok")
    return redirect(url_for("web_members.communities"))


# ---- CSV import ----------------------------------------------------------------------------------


def _import_dir() -> Path:
    path = Path(current_app.config.get("IMPORT_DIR") or VAR_DIR / "imports")
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


@bp.route("/import", methods=["GET", "POST"])
def import_csv() -> Any:
    """Upload → dry run: parse, plan and show what would change; the rows wait under a token to apply."""
    scope = require_write()
    if request.method == "GET":
        return render_template("members/import.html", result=None, form=ImportForm(formdata=None))
    form = ImportForm()
    if not form.validate():
        return render_template("members/import.html", result=None, form=form), 400
    kind, upload = form.kind.data, form.file.data
    try:
        parsed = csv_import.parse(upload.read(), kind, key_bytes(current_app.config, "NATIONAL_ID_KEY"))
    except csv_import.ImportError_ as exc:
        form.add_error(str(exc), "file")
        return render_template("members/import.html", result=None, form=form), 400
    result = csv_import.plan(db(), parsed, scope)
    token = None
    if not result.errors and result.total_changes:
        token = secrets.token_urlsafe(16)
        payload = {"user_id": g.user.id, "kind": kind, "rows": parsed.rows, "filename": upload.filename}
        (_import_dir() / f"{token}.json").write_text(json.dumps(payload, ensure_ascii=False))
    logger.info("import dry run: %s rows, %s errors", len(parsed.rows), len(result.errors))
    return render_template(
        "members/import.html", result=result, form=form, token=token, filename=upload.filename
    )


@bp.post("/import/apply")
def import_apply() -> Any:
    """Apply a dry run's rows, streaming progress to the page chunk by chunk; all or nothing."""
    scope = require_write()
    token = request.form.get("token", "")
    path = _import_dir() / f"{token}.json"
    if not csv_import.CODE_RE.fullmatch(token) or not path.is_file():
        abort(404)
    payload = json.loads(path.read_text())
    if payload["user_id"] != g.user.id:
        abort(404)
    s = db()
    parsed = csv_import.Parsed(kind=payload["kind"], rows=payload["rows"])
    result = csv_import.plan(s, parsed, scope)
    summary: dict[str, Any] = {"ok": False, "errors": result.errors}

    def steps() -> Any:
        if result.errors:
            return
        yield from csv_import.apply(s, result)
        audit.record(
            s,
            action=f"import.{payload['kind']}",
            object_type="import",
            object_id=token,
            after={
                "file": payload["filename"],
                "created": len(result.creates),
                "updated": len(result.updates),
                "pairings": len(result.pairings),
                "updated_keys": [u["key"] for u in result.updates[:1000]],
            },
            community_id=scope.community_id,
        )
        s.commit()
        path.unlink(missing_ok=True)
        summary["ok"] = True
        logger.info("import applied: %d created, %d updated", len(result.creates), len(result.updates))

    return stream_template("members/import_apply.html", steps=steps(), result=result, summary=summary)
