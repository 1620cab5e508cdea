"""Sign-in, sign-out, password change, and loading the signed-in user for every staff page.

The session is Flask's signed cookie (HttpOnly, SameSite=Lax, Secure behind TLS — set in ``register``).
It holds the user id and a *stamp* of the password's last change, so changing a password signs out every
other browser that still holds an old cookie.

Brute force is slowed in the database, so every gunicorn worker sees the same counts:

* per client address: at most ``LOGIN_MAX_PER_IP`` failed attempts per ``LOGIN_WINDOW_S`` in
  ``rate_limit_hits``; beyond that, 429 without even checking the password;
* per account: ``LOGIN_LOCKOUT_THRESHOLD`` consecutive failures lock the account for ``LOGIN_LOCKOUT_S``
  (``users.failed_logins`` / ``users.locked_until``); a correct password does not unlock it early.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from flask import Blueprint, current_app, flash, g, redirect, render_template, request, session, url_for
from sqlalchemy import delete, func, select, update

from server.models import RateLimitHit, User, utcnow
from server.passwords import hash_password, needs_rehash, verify_password

from . import audit
from .common import db, public
from .forms.auth import PasswordForm, SignInForm
from .i18n import LOCALES, t

logger = logging.getLogger(__name__)
audit_logger = logging.getLogger("baodao.audit")
bp = Blueprint(
    "web_auth", __name__, template_folder="templates", static_folder="static", static_url_path="/static/web"
)

DEFAULTS = {
    "LOGIN_MAX_PER_IP": 20,
    "LOGIN_WINDOW_S": 15 * 60,
    "LOGIN_LOCKOUT_THRESHOLD": 5,
    "LOGIN_LOCKOUT_S": 15 * 60,
}
# A valid argon2 hash to verify against when the username is unknown, so the answer takes as long.
_DUMMY_HASH = hash_password("not-a-real-password-0000")


def _stamp(user: User) -> str:
    return (user.password_changed_at or user.created_at).isoformat()


def load_user() -> None:
    """Set ``g.user`` from the session cookie (or None if absent, inactive, or the password changed)."""
    g.user = None
    uid = session.get("uid")
    if uid is None:
        return
    user = db().get(User, uid)
    if user is None or not user.active or session.get("stamp") != _stamp(user):
        session.pop("uid", None)
        return
    g.user = user


def _login_session(user: User) -> None:
    locale = session.get("locale")
    session.clear()  # a fresh session (and CSRF token) per sign-in
    session.permanent = True
    session["uid"] = user.id
    session["stamp"] = _stamp(user)
    if locale:
        session["locale"] = locale


def _ip_key() -> str:
    return f"login-ip:{request.remote_addr or 'unknown'}"


@bp.route("/login", methods=["GET", "POST"])
@public
def login() -> Any:
    if request.method == "GET":
        if g.get("user") is not None:
            return redirect(url_for("web_sessions.index"))
        return render_template("auth/login.html", form=SignInForm(formdata=None))
    form = SignInForm()
    cfg = current_app.config
    s = db()
    now = utcnow()
    window_start = now - timedelta(seconds=cfg["LOGIN_WINDOW_S"])
    ip_key = _ip_key()
    recent = s.scalar(select(func.count()).where(RateLimitHit.key == ip_key, RateLimitHit.at >= window_start))
    if (recent or 0) >= cfg["LOGIN_MAX_PER_IP"]:
        audit_logger.warning("login rate-limited", extra={"remote": request.remote_addr})
        return render_template("auth/login.html", error=t("auth.rate_limited"), form=form), 429
    if not form.validate():
        return render_template("auth/login.html", form=form), 400
    username, password = form.username.data, form.password.data

    user = s.scalar(select(User).where(User.username == username)) if username else None
    if user is not None and user.locked_until is not None and user.locked_until > now:
        verify_password(_DUMMY_HASH, password)
        _failed(s, ip_key, username, user=None)
        s.commit()
        return render_template("auth/login.html", error=t("auth.locked"), form=form), 403

    ok = verify_password(user.password_hash if user else _DUMMY_HASH, password)
    if not ok or user is None or not user.active:
        locked = _failed(s, ip_key, username, user=user)
        s.commit()
        message = t("auth.locked") if locked else t("auth.bad_credentials")
        return render_template("auth/login.html", error=message, form=form), 401

    user.failed_logins = 0
    user.locked_until = None
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    s.commit()
    _login_session(user)
    audit_logger.info("login", extra={"username": username, "remote": request.remote_addr})
    target = request.args.get("next", "")
    if not target.startswith("/") or target.startswith("//"):
        target = url_for("web_sessions.index")
    return redirect(target)


def _failed(s: Any, ip_key: str, username: str, user: User | None) -> bool:
    """Count a failed attempt for the address and the account; True if the account is now locked."""
    cfg = current_app.config
    now = utcnow()
    s.add(RateLimitHit(key=ip_key, at=now, detail=username[:64] or None))
    s.execute(delete(RateLimitHit).where(RateLimitHit.at < now - timedelta(seconds=cfg["LOGIN_WINDOW_S"])))
    audit_logger.warning("login failed", extra={"username": username, "remote": request.remote_addr})
    if user is None:
        return False
    count = s.scalar(
        update(User)
        .where(User.id == user.id)
        .values(failed_logins=User.failed_logins + 1)
        .returning(User.failed_logins)
    )
    if count is not None and count >= cfg["LOGIN_LOCKOUT_THRESHOLD"]:
        s.execute(
            update(User)
            .where(User.id == user.id)
            .values(failed_logins=0, locked_until=now + timedelta(seconds=cfg["LOGIN_LOCKOUT_S"]))
        )
        audit_logger.warning("account locked", extra={"username": username})
        return True
    return False


@bp.post("/logout")
def logout() -> Any:
    locale = session.get("locale")
    session.clear()
    if locale:
        session["locale"] = locale
    return redirect(url_for("web_auth.login"))


@bp.route("/account/password", methods=["GET", "POST"])
def password() -> Any:
    user: User = g.user
    if request.method == "GET":
        return render_template("auth/password.html", form=PasswordForm(formdata=None, user=user))
    form = PasswordForm(user=user)
    if not form.validate():
        return render_template("auth/password.html", form=form), 400
    new = form.new_password.data
    s = db()
    user.password_hash = hash_password(new)
    user.password_changed_at = utcnow()
    audit.record(s, action="user.password_change", object_type="user", object_id=user.id)
    s.commit()
    _login_session(user)
    flash(t("auth.password_changed"), "ok")
    return redirect(url_for("web_sessions.index"))


@bp.post("/language")
@public
def language() -> Any:
    """Switch the page language for this session (and remember it on the account when signed in)."""
    chosen = request.form.get("locale", "")
    if chosen in LOCALES:
        session["locale"] = chosen
        if g.get("user") is not None:
            g.user.locale = chosen
            db().commit()
    target = request.form.get("next", "")
    if not target.startswith("/") or target.startswith("//"):
        target = url_for("web_auth.login")
    return redirect(target)
