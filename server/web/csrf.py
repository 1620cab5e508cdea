"""CSRF protection for every form of the staff app and the member phone page: Flask-WTF's ``CSRFProtect``.

The token is Flask-WTF's (a random value in the session, handed to forms signed with the app's secret),
checked on every unsafe request to a staff (``web_*``) or phone-page view; templates call
``csrf_token()``. The kiosk API is not covered: it is signed JSON with nonces, not a browser form, so the
default "protect every view" is switched off and the two browser-facing parts opt in through
:func:`check_csrf` in their ``before_request`` hooks. The SameSite=Lax cookie is the second line of
defence.

Token lifetime: Flask-WTF's default one-hour limit would refuse a form left open over lunch although the
sign-in is still valid, so tokens live as long as the session (whose lifetime the session settings
bound); a new sign-in starts a new session and a new token.
"""

from __future__ import annotations

import logging

from flask import Flask, abort, current_app, request
from flask_wtf.csrf import CSRFError, CSRFProtect

logger = logging.getLogger(__name__)
audit_logger = logging.getLogger("baodao.audit")

FIELD = "csrf_token"


def init_csrf(app: Flask) -> CSRFProtect:
    """Attach ``CSRFProtect`` once (it lives in ``app.extensions["csrf"]``); views opt in with check_csrf."""
    app.config.setdefault("WTF_CSRF_CHECK_DEFAULT", False)
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)
    app.config.setdefault("WTF_CSRF_FIELD_NAME", FIELD)
    existing = app.extensions.get("csrf")
    return existing if isinstance(existing, CSRFProtect) else CSRFProtect(app)


def check_csrf() -> None:
    """Abort with 400 (description ``csrf``, which the error pages explain) unless the request carries a
    valid token; safe methods pass."""
    try:
        current_app.extensions["csrf"].protect()
    except CSRFError as exc:
        audit_logger.warning(
            "csrf rejected",
            extra={"path": request.path, "remote": request.remote_addr, "why": exc.description},
        )
        abort(400, description="csrf")
