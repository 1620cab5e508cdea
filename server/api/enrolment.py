"""Enrolment: an admin makes a one-time, expiring token; a kiosk trades it for its id and secrets.

The token is shown once and stored only as its SHA-256 (a database dump gives nobody a kiosk). It is
spent with a conditional UPDATE (``… WHERE used_at IS NULL``), so two kiosks racing with one token get
one kiosk between them, whichever workers they reach.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import UTC, datetime, timedelta

from flask import current_app
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from protocol.ids import uuid7
from protocol.messages import CentreInfo, EnrolRequest, EnrolResponse
from protocol.version import MIN_PROTOCOL_VERSION, PROTOCOL_VERSION
from server.config import key_bytes
from server.db import get_db
from server.models import Community, EnrolmentToken, Kiosk, ServiceCentre

from . import bp
from .errors import ApiError, parse_body

logger = logging.getLogger(__name__)
audit_log = logging.getLogger("baodao.audit")


class EnrolTokenError(ValueError):
    """The centre given for a new token does not exist."""


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_enrol_token(
    db: Session, centre_code: str, *, ttl: timedelta, created_by: int | None = None
) -> tuple[str, EnrolmentToken]:
    """A fresh token for a kiosk at ``centre_code``; returns the raw token (shown once) and its row."""
    centre = db.scalars(select(ServiceCentre).where(ServiceCentre.code == centre_code)).one_or_none()
    if centre is None:
        raise EnrolTokenError(f"no service centre with code {centre_code!r} / 服务中心编码不存在")
    token = secrets.token_urlsafe(24)  # 32 characters of [A-Za-z0-9_-], as EnrolRequest requires
    now = datetime.now(UTC)
    row = EnrolmentToken(
        token_hash=token_hash(token),
        centre_id=centre.id,
        created_by=created_by,
        created_at=now,
        expires_at=now + ttl,
    )
    db.add(row)
    db.flush()
    audit_log.info("enrolment token created", extra={"centre": centre_code, "expires_at": row.expires_at})
    return token, row


@bp.post("/kiosk/enrol")
def enrol():  # type: ignore[no-untyped-def]
    db = get_db(current_app).session
    assert db is not None
    body = parse_body(EnrolRequest)
    if not MIN_PROTOCOL_VERSION <= body.protocol_version <= PROTOCOL_VERSION:
        raise ApiError(
            400,
            "unsupported_protocol",
            f"server speaks protocol {MIN_PROTOCOL_VERSION} to {PROTOCOL_VERSION}",
            f"协议版本不兼容（服务器支持 {MIN_PROTOCOL_VERSION} 至 {PROTOCOL_VERSION}）",
        )
    now = datetime.now(UTC)
    token = db.scalars(
        select(EnrolmentToken).where(EnrolmentToken.token_hash == token_hash(body.token))
    ).one_or_none()
    if token is None:
        raise ApiError(401, "invalid_enrol_token", "unknown enrolment token", "注册令牌无效")
    if token.used_at is not None:
        raise ApiError(409, "enrol_token_used", "enrolment token already used", "注册令牌已被使用")
    if token.expires_at <= now:
        raise ApiError(410, "enrol_token_expired", "enrolment token expired", "注册令牌已过期")
    spent = db.execute(
        update(EnrolmentToken)
        .where(EnrolmentToken.id == token.id, EnrolmentToken.used_at.is_(None))
        .values(used_at=now)
    )
    if spent.rowcount != 1:  # type: ignore[attr-defined]
        db.rollback()
        raise ApiError(409, "enrol_token_used", "enrolment token already used", "注册令牌已被使用")
    centre = db.get(ServiceCentre, token.centre_id)
    assert centre is not None
    community = db.get(Community, centre.community_id)
    assert community is not None
    secret = secrets.token_hex(32)
    kiosk = Kiosk(
        kiosk_uid=uuid7().hex,
        centre_id=centre.id,
        community_id=centre.community_id,
        name=body.device_name,
        secret=secret,
        software_version=body.software_version[:40],
        enrolled_at=now,
    )
    db.add(kiosk)
    db.flush()
    db.execute(update(EnrolmentToken).where(EnrolmentToken.id == token.id).values(kiosk_id=kiosk.id))
    response = EnrolResponse(
        kiosk_id=kiosk.kiosk_uid,
        kiosk_secret=secret,
        credential_key=key_bytes(current_app.config, "CREDENTIAL_KEY").hex(),
        centre=CentreInfo(
            centre_id=centre.id,
            name=centre.name,
            community_id=community.id,
            community_name=community.name,
            timezone=centre.timezone,
        ),
        server_time=now,
    )
    db.commit()
    audit_log.info("kiosk enrolled", extra={"kiosk": kiosk.kiosk_uid, "centre": centre.code})
    return current_app.response_class(response.to_json_bytes(), status=201, mimetype="application/json")
