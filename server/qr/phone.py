"""The member's phone page under ``/m/``: log in, then show a QR code that changes every 30 seconds.

The private key never leaves the server: the page receives *signed tokens*, each already rendered as an
SVG, for the current step and the next :data:`AHEAD_STEPS` (by default 4, i.e. the code keeps working for
about 2½ minutes without a network — long enough for a lift or a basement corridor, short enough that a
copied page is worth little: every token is single-use at a kiosk and the server flags the same token from
two kiosks). A small inline script picks the SVG for the current step (clock corrected by the server time
sent with the tokens, so a phone with a wrong clock still shows the right code) and fetches fresh tokens
every :data:`REFRESH_S` seconds; when the pre-fetched steps run out it says so instead of showing a stale
code. No third-party JavaScript, no QR library in the browser.

Chinese by default, English with ``?lang=en`` (kept in the session). CSRF token on every form.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import (
    Blueprint,
    Response,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_wtf.csrf import generate_csrf
from sqlalchemy.orm import Session
from wtforms import PasswordField
from wtforms.validators import DataRequired, Length

from protocol.masking import mask_name
from protocol.qrtoken import STEP_SECONDS, mint_phone_token, step_at
from server.db import get_db
from server.models import Member
from server.web.csrf import check_csrf
from server.web.forms.base import Msg, StaffForm, TrimmedStringField
from server.web.i18n import get_locale, init_i18n, t

from . import login
from .keys import ensure_signing_key, sealing_key, signer
from .render import qr_svg

logger = logging.getLogger(__name__)

bp = Blueprint("qr_phone", __name__, url_prefix="/m", template_folder="templates")

AHEAD_STEPS = 4
REFRESH_S = 20
SESSION_MEMBER = "qr_member"

#: ``?lang=`` values the page offers → the catalogue locale (kept in the session like the staff pages' choice).
LANGS = {"zh": "zh_CN", "en": "en"}


def register(app: Any) -> None:
    init_i18n(app)
    for key, value in login.DEFAULTS.items():
        app.config.setdefault(key, value)
    app.register_blueprint(bp)


def _db() -> Session:
    return get_db(current_app).session()  # type: ignore[misc,operator]


def _lang() -> str:
    """``zh`` or ``en``: a ``?lang=`` choice is remembered in the session's locale (the staff pages' too)."""
    asked = request.args.get("lang")
    if asked in LANGS:
        session["locale"] = LANGS[asked]
    return "en" if get_locale() == "en" else "zh"


@bp.before_request
def _check_csrf() -> None:
    check_csrf()


@bp.after_request
def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _page(template: str, status: int = 200, **context: Any) -> tuple[str, int]:
    lang = _lang()
    return render_template(
        template,
        lang=lang,
        other="en" if lang == "zh" else "zh",
        csrf_token=generate_csrf(),
        **context,
    ), status


def _current_member() -> Member | None:
    member_id = session.get(SESSION_MEMBER)
    if not isinstance(member_id, int):
        return None
    member = _db().get(Member, member_id)
    if member is None or member.status != "active":
        session.pop(SESSION_MEMBER, None)
        return None
    return member


def _log_in(member: Member) -> None:
    locale = session.get("locale")
    session.clear()  # a fresh session: no fixation from before the login
    session[SESSION_MEMBER] = member.id
    if locale:
        session["locale"] = locale


def token_payload(db: Session, member: Member, now: float | None = None) -> dict[str, Any]:
    """Signed tokens (text + SVG) for the current step and :data:`AHEAD_STEPS` after it."""
    now = time.time() if now is None else now
    seal = sealing_key(current_app.config)
    ensure_signing_key(db, seal)
    sign = signer(db, seal)
    first = step_at(now)
    steps = []
    for step in range(first, first + AHEAD_STEPS + 1):
        token = mint_phone_token(sign.private_key, sign.key_id, member.id, step)
        steps.append({"step": step, "token": token, "svg": qr_svg(token)})
    return {
        "server_time_ms": int(now * 1000),
        "step_seconds": STEP_SECONDS,
        "refresh_s": REFRESH_S,
        "steps": steps,
    }


@bp.get("/")
def index() -> Any:
    member = _current_member()
    if member is None:
        return _page("qr/login.html", form=PinLoginForm(formdata=None))
    db = _db()
    payload = token_payload(db, member)
    db.commit()  # a first signing key created on a fresh installation
    return _page("qr/code.html", payload=payload, masked_name=mask_name(member.name))


def _staff_locale() -> str:
    """The phone page's language as a locale of the message catalogue."""
    return "en" if _lang() == "en" else "zh_CN"


class PinLoginForm(StaffForm):
    """Member number and PIN; only checked for being filled in (a wrong pair is the login's answer, which
    never says which half was wrong). The page has its own language choice, used for the messages."""

    member_no = TrimmedStringField(
        validators=[
            DataRequired(message=Msg("forms.member_no_required", locale=_staff_locale)),
            Length(max=32, message=Msg("import.bad_member_no", locale=_staff_locale)),
        ]
    )
    pin = PasswordField(validators=[DataRequired(message=Msg("forms.pin_required", locale=_staff_locale))])

    def locale(self) -> str:
        return _staff_locale()


@bp.post("/login")
def pin_login() -> Any:
    form = PinLoginForm()
    if not form.validate():
        return _page("qr/login.html", 400, form=form)
    db = _db()
    attempt = login.pin_login(
        db, form.member_no.data, form.pin.data, request.remote_addr or "?", current_app.config
    )
    db.commit()
    if attempt.result is login.LoginResult.OK and attempt.member is not None:
        _log_in(attempt.member)
        return redirect(url_for("qr_phone.index"))
    if attempt.result is login.LoginResult.WRONG:
        return _page("qr/login.html", 401, error=t("phone.wrong"), form=form)
    minutes = max(1, -(-attempt.retry_after_s // 60))
    error = (
        t("phone.locked", minutes=minutes)
        if attempt.result is login.LoginResult.LOCKED
        else t("phone.rate_limited")
    )
    page, status = _page("qr/login.html", 429, error=error, form=form)
    return page, status, {"Retry-After": str(attempt.retry_after_s)}


@bp.get("/link/<token>")
def link(token: str) -> Any:
    valid = login.link_is_valid(_db(), token, current_app.config["SECRET_KEY"], current_app.config)
    return _page("qr/link.html", 200 if valid else 410, token=token, valid=valid)


@bp.post("/link")
def use_link() -> Any:
    db = _db()
    member = login.use_login_link(
        db, request.form.get("token", ""), current_app.config["SECRET_KEY"], current_app.config
    )
    db.commit()
    if member is None:
        return _page("qr/link.html", 410, token="", valid=False)
    _log_in(member)
    return redirect(url_for("qr_phone.index"))


@bp.get("/tokens.json")
def tokens() -> Any:
    member = _current_member()
    if member is None:
        return jsonify(
            {
                "error": "login_required",
                "message": t("phone.login_required", "en"),
                "message_zh": t("phone.login_required", "zh_CN"),
            }
        ), 401
    db = _db()
    payload = token_payload(db, member)
    db.commit()
    return jsonify(payload)


@bp.post("/logout")
def logout() -> Any:
    session.pop(SESSION_MEMBER, None)
    return redirect(url_for("qr_phone.index"))
