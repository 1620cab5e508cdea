"""The kiosk fleet: every kiosk's health at a glance, alerts, and remote management per kiosk.

Anyone who may see a kiosk may also verify its hash chain here (``/fleet/<id>/chain``, or every kiosk in
scope at ``/fleet/chain``): the stored events are recomputed by :mod:`server.chain_audit`, the same check
as ``baodao audit verify-chain``, and every gap and break is listed with its position. It only reads.

Health comes from the kiosk's heartbeats (``Kiosk.health`` holds the latest report, ``KioskHeartbeat`` the
history). Changes — push a config, queue a command, revoke, issue an enrolment token — are for admins only
and are audited; community staff and auditors see the kiosks in their scope. A config is a new numbered
``KioskConfig`` row plus ``Kiosk.desired_config_version``; the heartbeat delivers it and the kiosk reports
``applied_config_version`` back, which this page shows next to the desired one.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

from flask import Blueprint, current_app, flash, g, redirect, render_template, request, url_for
from sqlalchemy import func, select

from server.models import (
    Community,
    Kiosk,
    KioskCommand,
    KioskConfig,
    KioskHeartbeat,
    ServiceCentre,
)
from server.models.kiosks import COMMAND_NAMES

from . import audit
from .common import db, paginate, require_role
from .exports import export_format, send_table
from .forms.base import StaffForm
from .forms.fleet import CommandForm, ConfigForm, RevokeKioskForm
from .i18n import fmt_dt, get_locale, t
from .scope import current_scope

logger = logging.getLogger(__name__)
bp = Blueprint("web_fleet", __name__, url_prefix="/fleet")

VIEW_ROLES = ("admin", "community_staff", "auditor")
DEFAULTS = {
    "FLEET_ONLINE_S": 180,  # a heartbeat within this → online
    "FLEET_SILENT_ALERT_S": 1800,  # silent longer than this → alert
    "FLEET_CLOCK_ALERT_MS": 30_000,  # |clock offset| above this → alert
    "FLEET_BACKLOG_ALERT_S": 3600,  # oldest unsynced tap older than this → alert
    "FLEET_BACKLOG_SAMPLES": 3,  # outbox depth rising over this many heartbeats → alert
}


def _setting(name: str) -> int:
    return int(current_app.config.get(name, DEFAULTS[name]))


@dataclass
class KioskState:
    """What one fleet row shows, derived from the kiosk row, its latest health and recent heartbeats."""

    kiosk: Kiosk
    centre: str
    community: str
    state: str  # online / offline / never / revoked
    readers: list[tuple[str, str]] = field(default_factory=list)  # (reader id, state)
    camera: str = ""
    backlog: int | None = None
    oldest_s: float | None = None
    alerts: list[str] = field(default_factory=list)


def _age(then: datetime | None, now: datetime) -> float | None:
    return None if then is None else (now - then).total_seconds()


def kiosk_state(kiosk: Kiosk, centre: str, community: str, depths: list[int], now: datetime) -> KioskState:
    """Online/offline and alerts for one kiosk; ``depths`` are its recent outbox depths, oldest first."""
    health = kiosk.health or {}
    age = _age(kiosk.last_seen_at, now)
    if kiosk.status == "revoked":
        state = "revoked"
    elif age is None:
        state = "never"
    else:
        state = "online" if age <= _setting("FLEET_ONLINE_S") else "offline"
    row = KioskState(kiosk=kiosk, centre=centre, community=community, state=state)
    row.readers = [
        (str(r.get("reader_id", "?")), str(r.get("state", "?"))) for r in health.get("readers") or []
    ]
    camera = health.get("camera") or {}
    row.camera = str(camera.get("state", "")) if camera else ""
    row.backlog = health.get("outbox_depth")
    row.oldest_s = health.get("oldest_unsynced_age_s")
    if kiosk.status == "revoked":
        return row
    if age is None or age > _setting("FLEET_SILENT_ALERT_S"):
        row.alerts.append("silent")
    samples = _setting("FLEET_BACKLOG_SAMPLES")
    recent = depths[-samples:]
    rising = len(recent) >= samples and all(a < b for a, b in pairwise(recent))
    if rising or (row.oldest_s or 0) > _setting("FLEET_BACKLOG_ALERT_S"):
        row.alerts.append("backlog")
    if kiosk.clock_offset_ms is not None and abs(kiosk.clock_offset_ms) > _setting("FLEET_CLOCK_ALERT_MS"):
        row.alerts.append("clock")
    if kiosk.chain_broken:
        row.alerts.append("chain")
    if any(s == "error" for _r, s in row.readers) or row.camera == "error":
        row.alerts.append("device")
    return row


def fleet_states(scope: Any, now: datetime | None = None) -> list[KioskState]:
    """Every kiosk in scope with its state; recent outbox depths come from one query for all kiosks."""
    s = db()
    now = now or datetime.now(UTC)
    rows = s.execute(
        select(Kiosk, ServiceCentre.name, Community.name)
        .join(ServiceCentre, ServiceCentre.id == Kiosk.centre_id)
        .join(Community, Community.id == Kiosk.community_id)
        .where(scope.clause(Kiosk))
        .order_by(Community.code, ServiceCentre.code, Kiosk.name)
    ).all()
    ids = [k.id for k, _c, _m in rows]
    depths: dict[int, list[int]] = {}
    if ids:
        since = now - timedelta(seconds=_setting("FLEET_SILENT_ALERT_S"))
        for kiosk_id, depth in s.execute(
            select(KioskHeartbeat.kiosk_id, KioskHeartbeat.outbox_depth)
            .where(KioskHeartbeat.kiosk_id.in_(ids), KioskHeartbeat.received_at >= since)
            .order_by(KioskHeartbeat.kiosk_id, KioskHeartbeat.received_at)
        ):
            if depth is not None:
                depths.setdefault(kiosk_id, []).append(depth)
    return [kiosk_state(k, centre, community, depths.get(k.id, []), now) for k, centre, community in rows]


@bp.get("/")
@require_role(*VIEW_ROLES)
def index() -> Any:
    scope = current_scope()
    states = fleet_states(scope)
    fmt = export_format()
    if fmt:
        headers = [
            t(k)
            for k in (
                "fleet.kiosk", "fleet.centre", "fleet.state", "fleet.last_seen", "fleet.backlog", "fleet.oldest",
                "fleet.readers", "fleet.camera", "fleet.clock", "fleet.software", "fleet.config", "fleet.alerts",
            )
        ]  # fmt: skip
        table = (
            [
                r.kiosk.name,
                r.centre,
                t(f"fleet.{r.state}"),
                fmt_dt(r.kiosk.last_seen_at),
                r.backlog,
                r.oldest_s,
                " ".join(f"{rid}:{st}" for rid, st in r.readers),
                r.camera,
                r.kiosk.clock_offset_ms,
                r.kiosk.software_version or "",
                f"{r.kiosk.applied_config_version}/{r.kiosk.desired_config_version}",
                " ".join(t(f"fleet.alert.{a}") for a in r.alerts),
            ]
            for r in states
        )
        return send_table(fmt, "fleet", headers, table)
    centres = list(
        db().scalars(select(ServiceCentre).where(scope.clause(ServiceCentre)).order_by(ServiceCentre.code))
    )
    return render_template(
        "fleet/index.html",
        states=states,
        alerting=sum(1 for r in states if r.alerts),
        centres=centres,
        is_admin=scope.role == "admin",
        ttl_hours=_ttl().total_seconds() / 3600,
    )


def _kiosk(kiosk_id: int) -> Kiosk:
    return current_scope().get_or_404(db(), Kiosk, kiosk_id)


@bp.get("/<int:kiosk_id>")
@require_role(*VIEW_ROLES)
def detail(kiosk_id: int) -> Any:
    s = db()
    kiosk = _kiosk(kiosk_id)
    centre = s.get(ServiceCentre, kiosk.centre_id)
    community = s.get(Community, kiosk.community_id)
    beats = paginate(
        s,
        select(KioskHeartbeat)
        .where(KioskHeartbeat.kiosk_id == kiosk.id)
        .order_by(KioskHeartbeat.received_at.desc(), KioskHeartbeat.id.desc()),
    )
    depths = [b.outbox_depth for b in reversed(beats.items) if b.outbox_depth is not None]
    state = kiosk_state(kiosk, centre.name if centre else "", community.name if community else "", depths,
                        datetime.now(UTC))  # fmt: skip
    commands = list(
        s.scalars(select(KioskCommand).where(KioskCommand.kiosk_id == kiosk.id).order_by(KioskCommand.id.desc()).limit(50))
    )  # fmt: skip
    configs = list(
        s.scalars(select(KioskConfig).where(KioskConfig.kiosk_id == kiosk.id).order_by(KioskConfig.version.desc()).limit(20))
    )  # fmt: skip
    latest = configs[0].body if configs else {}
    return render_template(
        "fleet/detail.html",
        kiosk=kiosk,
        state=state,
        beats=beats,
        commands=commands,
        configs=configs,
        config_text=request.args.get("config") or json.dumps(latest, ensure_ascii=False, indent=2),
        command_names=COMMAND_NAMES,
        is_admin=current_scope().role == "admin",
        ttl_hours=_ttl().total_seconds() / 3600,
        token=None,
    )


def _chain_page(kiosks: list[Kiosk], back: str) -> Any:
    from server.chain_audit import verify_kiosks

    reports = verify_kiosks(db(), kiosks)
    logger.info("chain verification of %d kiosks from the fleet page", len(reports))
    english = not get_locale().startswith("zh")
    return render_template(
        "fleet/chain.html",
        reports=reports,
        bad=sum(1 for r in reports if not r.ok),
        text=lambda finding: finding.describe(short=True)[1 if english else 0],
        back=back,
    )


@bp.get("/chain")
@require_role(*VIEW_ROLES)
def chain_all() -> Any:
    """Every kiosk in scope (verification only reads)."""
    from server.chain_audit import kiosks_to_verify

    kiosks = kiosks_to_verify(db(), where=current_scope().clause(Kiosk))
    return _chain_page(kiosks, url_for("web_fleet.index"))


@bp.get("/<int:kiosk_id>/chain")
@require_role(*VIEW_ROLES)
def chain_one(kiosk_id: int) -> Any:
    kiosk = _kiosk(kiosk_id)
    return _chain_page([kiosk], url_for("web_fleet.detail", kiosk_id=kiosk.id))


def _back(kiosk: Kiosk, **args: str) -> Any:
    return redirect(url_for("web_fleet.detail", kiosk_id=kiosk.id, **args))


def _refused(kiosk: Kiosk, form: StaffForm, **args: str) -> Any:
    """Every message of a refused admin form, flashed on the kiosk's page (what was typed goes back in
    the address: the page keeps its redirect-after-post, which the command history relies on)."""
    for message in form.messages:
        flash(message, "error")
    return _back(kiosk, **args)


@bp.post("/<int:kiosk_id>/config")
@require_role("admin")
def push_config(kiosk_id: int) -> Any:
    s = db()
    kiosk = _kiosk(kiosk_id)
    form = ConfigForm()
    if not form.validate():
        return _refused(kiosk, form, config=form.body.data or "")
    body = form.config
    current = s.scalar(select(func.max(KioskConfig.version)).where(KioskConfig.kiosk_id == kiosk.id)) or 0
    version = max(current, kiosk.desired_config_version) + 1
    before = audit.snapshot(kiosk, ("desired_config_version", "applied_config_version"))
    s.add(KioskConfig(kiosk_id=kiosk.id, version=version, body=body, created_by=_uid()))
    kiosk.desired_config_version = version
    audit.record(
        s,
        action="kiosk.config",
        object_type="kiosk",
        object_id=kiosk.id,
        before=before,
        after={"desired_config_version": version, "body": body},
        reason=form.reason.data or None,
        community_id=kiosk.community_id,
    )
    s.commit()
    flash(t("fleet.config_pushed", v=version), "ok")
    return _back(kiosk)


def _uid() -> int | None:
    return g.user.id if g.get("user") is not None else None


@bp.post("/<int:kiosk_id>/command")
@require_role("admin")
def queue_command(kiosk_id: int) -> Any:
    s = db()
    kiosk = _kiosk(kiosk_id)
    form = CommandForm()
    if not form.validate():
        return _refused(kiosk, form)
    name, args = form.name.data, form.args
    row = KioskCommand(kiosk_id=kiosk.id, name=name, args=args, created_by=_uid())
    s.add(row)
    s.flush()
    audit.record(
        s,
        action="kiosk.command",
        object_type="kiosk",
        object_id=kiosk.id,
        after={"command_id": row.id, "name": name, "args": args},
        community_id=kiosk.community_id,
    )
    s.commit()
    flash(t("fleet.command_queued"), "ok")
    return _back(kiosk)


@bp.post("/<int:kiosk_id>/revoke")
@require_role("admin")
def revoke(kiosk_id: int) -> Any:
    s = db()
    kiosk = _kiosk(kiosk_id)
    if kiosk.status == "revoked":
        flash(t("fleet.already_revoked"), "warn")
        return _back(kiosk)
    form = RevokeKioskForm()
    if not form.validate():
        return _refused(kiosk, form)
    reason = form.reason.data
    before = audit.snapshot(kiosk, ("status", "revoked_at"))
    kiosk.status, kiosk.revoked_at = "revoked", datetime.now(UTC)
    audit.record(
        s,
        action="kiosk.revoke",
        object_type="kiosk",
        object_id=kiosk.id,
        before=before,
        after=audit.snapshot(kiosk, ("status", "revoked_at")),
        reason=reason,
        community_id=kiosk.community_id,
    )
    s.commit()
    flash(t("fleet.revoked_ok"), "ok")
    return _back(kiosk)


def _ttl() -> timedelta:
    return timedelta(seconds=int(current_app.config.get("ENROL_TOKEN_TTL_S", 24 * 3600)))


def _issue_token(centre: ServiceCentre, kiosk: Kiosk | None) -> str:
    """A one-time enrolment token for ``centre`` via the kiosk API's own function, audited (hash only)."""
    from server.api.enrolment import create_enrol_token

    s = db()
    token, row = create_enrol_token(s, centre.code, ttl=_ttl(), created_by=_uid())
    audit.record(
        s,
        action="kiosk.enrol_token",
        object_type="enrolment_token",
        object_id=row.id,
        after={
            "centre_id": centre.id,
            "expires_at": row.expires_at,
            "for_kiosk": kiosk.id if kiosk else None,
        },
        community_id=centre.community_id,
    )
    s.commit()
    return token


@bp.post("/enrol")
@require_role("admin")
def enrol_token() -> Any:
    """A token for a new kiosk at the centre chosen on the fleet page (shown once, never stored raw)."""
    scope = current_scope()
    centre_id = request.form.get("centre_id", "")
    centre = scope.get_or_404(db(), ServiceCentre, int(centre_id)) if centre_id.isdigit() else None
    if centre is None:
        return redirect(url_for("web_fleet.index"))
    token = _issue_token(centre, None)
    return render_template(
        "fleet/token.html", token=token, centre=centre, ttl_hours=_ttl().total_seconds() / 3600
    )


@bp.post("/<int:kiosk_id>/enrol")
@require_role("admin")
def enrol_token_for_kiosk(kiosk_id: int) -> Any:
    """A token to re-enrol (replace) this kiosk at its centre, e.g. after revoking a stolen device."""
    kiosk = _kiosk(kiosk_id)
    centre = db().get(ServiceCentre, kiosk.centre_id)
    assert centre is not None
    token = _issue_token(centre, kiosk)
    return render_template(
        "fleet/token.html", token=token, centre=centre, ttl_hours=_ttl().total_seconds() / 3600
    )
