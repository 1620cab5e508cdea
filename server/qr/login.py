"""How a member gets onto the phone page: member number + PIN (rate-limited, locked out) or a one-time link.

PIN attempts are counted in ``rate_limit_hits`` (shared by every server worker): after
:data:`DEFAULTS` ``QR_LOGIN_MAX_FAILURES`` failures for one member number within the window the number is
locked until the window has passed — the PIN is not even checked, so a locked account leaks nothing — and
one client address gets at most ``QR_LOGIN_MAX_PER_IP`` failures per window across all numbers, so
spraying one common PIN over many members is slowed too. An unknown member number costs the same argon2
verification as a known one.

One-time links (staff send them by SMS or WeChat to a member who has no PIN): the URL carries a token
signed and time-stamped with the server secret (``itsdangerous``), naming a random nonce stored in
``qr_login_links``; it works once, before ``expires_at``. The link page asks the member to *press a
button* before the nonce is used, because chat apps fetch links for previews and would otherwise burn it.
"""

from __future__ import annotations

import enum
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from server.models import Member, QrLoginLink, RateLimitHit, utcnow
from server.passwords import hash_password, verify_password

logger = logging.getLogger(__name__)
audit = logging.getLogger("baodao.audit")

DEFAULTS: dict[str, int] = {
    "QR_LOGIN_MAX_FAILURES": 5,
    "QR_LOGIN_MAX_PER_IP": 30,
    "QR_LOGIN_WINDOW_S": 15 * 60,
    "QR_LINK_TTL_S": 24 * 3600,
}
_LINK_SALT = "baodao-qr-login-link"
_DUMMY_HASH = hash_password("0000-not-a-pin")


class LoginResult(enum.StrEnum):
    OK = "ok"
    WRONG = "wrong"
    LOCKED = "locked"  # this member number: too many failures
    RATE_LIMITED = "rate_limited"  # this client address: too many failures


@dataclass(frozen=True)
class Attempt:
    result: LoginResult
    member: Member | None = None
    retry_after_s: int = 0


def _settings(config: Mapping[str, Any]) -> dict[str, int]:
    return {k: int(config.get(k, v)) for k, v in DEFAULTS.items()}


def _failures(session: Session, key: str, since: datetime) -> tuple[int, datetime | None]:
    count, oldest = session.execute(
        select(func.count(), func.min(RateLimitHit.at)).where(
            RateLimitHit.key == key, RateLimitHit.at >= since
        )
    ).one()
    return int(count), oldest


def pin_login(
    session: Session,
    member_no: str,
    pin: str,
    client: str,
    config: Mapping[str, Any],
    now: datetime | None = None,
) -> Attempt:
    """Check a member number + PIN under the rate limits; the caller commits (failures must be kept)."""
    now = now or utcnow()
    cfg = _settings(config)
    window = timedelta(seconds=cfg["QR_LOGIN_WINDOW_S"])
    member_no = member_no.strip()[:32]
    member_key, ip_key = f"qr_phone:member:{member_no}", f"qr_phone:ip:{client}"
    n, oldest = _failures(session, member_key, now - window)
    if n >= cfg["QR_LOGIN_MAX_FAILURES"]:
        retry = int(((oldest or now) + window - now).total_seconds()) + 1
        audit.warning("phone login locked", extra={"member_no": member_no, "client": client})
        return Attempt(LoginResult.LOCKED, retry_after_s=max(1, retry))
    n_ip, oldest_ip = _failures(session, ip_key, now - window)
    if n_ip >= cfg["QR_LOGIN_MAX_PER_IP"]:
        retry = int(((oldest_ip or now) + window - now).total_seconds()) + 1
        return Attempt(LoginResult.RATE_LIMITED, retry_after_s=max(1, retry))
    member = session.scalars(select(Member).where(Member.member_no == member_no)).first()
    usable = member is not None and member.status == "active" and bool(member.pin_hash)
    ok = verify_password(member.pin_hash if usable and member else _DUMMY_HASH, pin) and usable
    if ok and member is not None:
        session.execute(delete(RateLimitHit).where(RateLimitHit.key == member_key))
        audit.info("phone login", extra={"member_id": member.id, "via": "pin"})
        return Attempt(LoginResult.OK, member)
    session.add(RateLimitHit(key=member_key, at=now, detail="phone pin"))
    session.add(RateLimitHit(key=ip_key, at=now, detail=member_no or None))
    session.flush()
    if n + 1 >= cfg["QR_LOGIN_MAX_FAILURES"]:
        audit.warning("phone login locked after failures", extra={"member_no": member_no, "client": client})
        return Attempt(LoginResult.LOCKED, retry_after_s=cfg["QR_LOGIN_WINDOW_S"])
    return Attempt(LoginResult.WRONG)


def _serializer(secret: str | bytes) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt=_LINK_SALT)


def create_login_link(
    session: Session,
    member: Member,
    secret: str | bytes,
    config: Mapping[str, Any],
    now: datetime | None = None,
) -> str:
    """A signed token for ``/m/link/<token>``; the caller commits and sends the URL to the member."""
    now = now or utcnow()
    ttl = _settings(config)["QR_LINK_TTL_S"]
    nonce = secrets.token_urlsafe(24)
    session.add(
        QrLoginLink(nonce=nonce, member_id=member.id, created_at=now, expires_at=now + timedelta(seconds=ttl))
    )
    session.flush()
    audit.info("phone login link created", extra={"member_id": member.id})
    return _serializer(secret).dumps({"n": nonce})


def _nonce(token: str, secret: str | bytes, max_age: int) -> str | None:
    try:
        data = _serializer(secret).loads(token, max_age=max_age)
    except BadSignature:  # includes SignatureExpired
        return None
    nonce = data.get("n") if isinstance(data, dict) else None
    return nonce if isinstance(nonce, str) else None


def link_is_valid(session: Session, token: str, secret: str | bytes, config: Mapping[str, Any]) -> bool:
    """For the confirmation page: would :func:`use_login_link` succeed now? (Does not use it.)"""
    nonce = _nonce(token, secret, _settings(config)["QR_LINK_TTL_S"])
    if nonce is None:
        return False
    link = session.scalars(select(QrLoginLink).where(QrLoginLink.nonce == nonce)).first()
    return link is not None and link.used_at is None and link.expires_at > utcnow()


def use_login_link(
    session: Session, token: str, secret: str | bytes, config: Mapping[str, Any], now: datetime | None = None
) -> Member | None:
    """The member the link logs in, marking it used — atomically, so two presses cannot both succeed."""
    now = now or utcnow()
    nonce = _nonce(token, secret, _settings(config)["QR_LINK_TTL_S"])
    if nonce is None:
        return None
    claimed = session.execute(
        update(QrLoginLink)
        .where(QrLoginLink.nonce == nonce, QrLoginLink.used_at.is_(None), QrLoginLink.expires_at > now)
        .values(used_at=now)
        .returning(QrLoginLink.member_id)
    ).first()
    if claimed is None:
        audit.warning("phone login link refused (used, expired or unknown)")
        return None
    member = session.get(Member, claimed[0])
    if member is None or member.status != "active":
        return None
    audit.info("phone login", extra={"member_id": member.id, "via": "link"})
    return member
