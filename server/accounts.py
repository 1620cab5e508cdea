"""Creating staff accounts with a valid role/scope combination (used by the CLI, the demo and the web app)."""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import Community, Unit, User
from .passwords import MIN_PASSWORD_LENGTH, hash_password

logger = logging.getLogger(__name__)


class AccountError(ValueError):
    """A person-readable reason why an account cannot be created (English / 中文)."""


def create_user(
    session: Session,
    *,
    username: str,
    password: str,
    role: str,
    community_code: str | None = None,
    unit_code: str | None = None,
    display_name: str | None = None,
) -> User:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(
            f"password must have at least {MIN_PASSWORD_LENGTH} characters / 密码至少 {MIN_PASSWORD_LENGTH} 位"
        )
    if session.scalar(select(User).where(User.username == username)) is not None:
        raise AccountError(f"user {username!r} exists / 用户已存在")
    community_id = unit_id = None
    if role == "community_staff":
        community = session.scalar(select(Community).where(Community.code == (community_code or "")))
        if community is None:
            raise AccountError(
                "community staff need an existing --community code / 社区工作人员需指定已有社区编码"
            )
        community_id = community.id
    elif role == "unit_secretary":
        unit = session.scalar(select(Unit).where(Unit.code == (unit_code or "")))
        if unit is None:
            raise AccountError("unit secretaries need an existing --unit code / 单位书记需指定已有单位编码")
        unit_id = unit.id
    elif community_code or unit_code:
        raise AccountError(f"role {role} has no community or unit scope / 该角色不限定社区或单位")
    user = User(
        username=username,
        display_name=display_name or username,
        password_hash=hash_password(password),
        role=role,
        community_id=community_id,
        unit_id=unit_id,
    )
    session.add(user)
    session.flush()
    logging.getLogger("baodao.audit").info("user created", extra={"username": username, "role": role})
    return user
