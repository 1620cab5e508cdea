"""CSRF protection for every form of the staff app: a per-session token, checked on each unsafe request.

A dozen lines of our own instead of Flask-WTF: we render forms by hand in Jinja and validate them in the
views, so WTForms would be a second form layer just to get this token. The token lives in the signed
session cookie; every POST/PUT/PATCH/DELETE to a ``web_*`` blueprint must echo it in the ``csrf_token``
form field or the ``X-CSRF-Token`` header, compared in constant time. The SameSite=Lax cookie is the
second line of defence.
"""

from __future__ import annotations

import hmac
import logging
import secrets

from flask import abort, request, session

logger = logging.getLogger(__name__)

SESSION_KEY = "_csrf"
FIELD = "csrf_token"
HEADER = "X-CSRF-Token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def csrf_token() -> str:
    """The session's token (created on first use); templates put it in a hidden field of every form."""
    token = session.get(SESSION_KEY)
    if not token:
        token = secrets.token_urlsafe(32)
        session[SESSION_KEY] = token
    return token


def check_csrf() -> None:
    """Abort with 400 unless the request carries the session's token."""
    if request.method not in UNSAFE_METHODS:
        return
    expected = session.get(SESSION_KEY)
    given = request.form.get(FIELD) or request.headers.get(HEADER) or ""
    if not expected or not hmac.compare_digest(str(expected), str(given)):
        logging.getLogger("baodao.audit").warning(
            "csrf rejected", extra={"path": request.path, "remote": request.remote_addr}
        )
        abort(400, description="csrf")
