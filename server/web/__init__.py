"""The staff web app: server-rendered pages for review, members and administration.

``register(app)`` (called by ``server.create_app``) configures the session cookie, registers one blueprint
per feature, and installs the hooks every ``web_*`` blueprint relies on: load the signed-in user, require
sign-in (unless a view is marked :func:`public`), check the CSRF token on unsafe methods. A new feature adds
a ``web_<name>`` blueprint to :data:`BLUEPRINTS` and gets all of that for free; see docs/readme-web.md.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from flask import Flask, g, redirect, render_template, request, url_for

from protocol.masking import mask_name, mask_phone

from . import auth, csrf, i18n, reasons
from .common import public, require_role, url_args
from .scope import current_scope, require_write

logger = logging.getLogger(__name__)

__all__ = ["current_scope", "public", "register", "require_role", "require_write"]

WEB_PREFIX = "web_"


def _blueprints() -> list[Any]:
    from . import badges, cards, exports, fleet, members, reports, review, sessions_view

    return [
        *(auth.bp, sessions_view.bp, review.bp, members.bp),
        cards.bp,
        badges.bp,
        fleet.bp,
        reports.bp,
        exports.bp,
    ]


def register(app: Flask) -> None:
    """Attach the staff web app to ``app`` (called by ``server.create_app``)."""
    for key, value in auth.DEFAULTS.items():
        app.config.setdefault(key, value)
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=bool(app.config.get("SESSION_COOKIE_SECURE")),
        SESSION_COOKIE_NAME="baodao_session",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=int(app.config.get("SESSION_HOURS", 8))),
    )
    csrf.init_csrf(app)
    i18n.init_i18n(app)
    for bp in _blueprints():
        app.register_blueprint(bp)

    @app.before_request
    def _web_guard() -> Any:
        if not (request.blueprint or "").startswith(WEB_PREFIX):
            return None
        auth.load_user()
        csrf.check_csrf()
        view = app.view_functions.get(request.endpoint or "")
        public_view = getattr(view, "baodao_public", False) or (request.endpoint or "").endswith(".static")
        if g.user is None and not public_view:
            return redirect(url_for("web_auth.login", next=request.full_path.rstrip("?")))
        return None

    @app.after_request
    def _no_store(response: Any) -> Any:
        if (request.blueprint or "").startswith(WEB_PREFIX):
            response.headers.setdefault("Cache-Control", "no-store")
            response.headers.setdefault("X-Frame-Options", "DENY")
            response.headers.setdefault("X-Content-Type-Options", "nosniff")
            response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

    app.add_template_global(reasons.tap_flags, "tap_flags")
    app.add_template_global(reasons.session_reason, "session_reason")
    app.jinja_env.filters.update(
        dt=i18n.fmt_dt,
        dt_input=i18n.fmt_input,
        hm=i18n.fmt_minutes,
        mask_name=mask_name,
        mask_phone=lambda v: mask_phone(v) if v else "",
    )

    app.add_template_global(url_args, "url_args")

    @app.context_processor
    def _nav() -> dict[str, Any]:
        return {"current_user": g.get("user"), "nav_items": NAV_ITEMS}

    for code in (400, 401, 403, 404, 429):
        app.register_error_handler(code, _error_page)
    logger.debug("staff web app registered")


# (endpoint, message key, roles or None for everyone); later features append their own entries.
NAV_ITEMS: list[tuple[str, str, tuple[str, ...] | None]] = [
    ("web_sessions.index", "nav.sessions", None),
    ("web_review.queue", "nav.review", ("admin", "community_staff", "auditor")),
    ("web_members.members", "nav.members", None),
    ("web_members.units", "nav.units", None),
    ("web_members.communities", "nav.communities", None),
    ("web_members.import_csv", "nav.import", ("admin", "community_staff")),
    ("web_fleet.index", "nav.fleet", ("admin", "community_staff", "auditor")),
    ("web_reports.hours", "nav.reports", None),
]


def _error_page(exc: Any) -> Any:
    """HTML error pages for people, JSON for the kiosk API (which has its own handlers under /api)."""
    code = getattr(exc, "code", 500) or 500
    if request.path.startswith("/api/"):
        return {"error": {"code": code, "message": getattr(exc, "description", "")}}, code
    if code == 401:
        return redirect(url_for("web_auth.login"))
    return render_template("error.html", code=code, description=getattr(exc, "description", "")), code
