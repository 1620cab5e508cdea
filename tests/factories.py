"""Data factories for tests: ``make_member(session)`` instead of copy-pasted set-up.

Each factory fills every required field with a unique, valid value and accepts overrides; it adds the row
to the session and flushes so ids are available, leaving the commit to the test.
"""

from __future__ import annotations

import itertools
import secrets
from datetime import UTC, datetime, time
from typing import Any

from sqlalchemy.orm import Session

from protocol.hashing import credential_hash
from server.models import Community, Credential, Kiosk, Member, ServiceCentre, Unit, UnitCommunity, User
from server.passwords import hash_password

_counter = itertools.count(1)
TEST_CREDENTIAL_KEY = b"test-credential-key-0123456789abcdef"
TEST_PASSWORD = "correct horse battery"


def _n() -> int:
    return next(_counter)


def _add(session: Session, obj: Any) -> Any:
    session.add(obj)
    session.flush()
    return obj


def make_community(session: Session, **kw: Any) -> Community:
    n = _n()
    return _add(session, Community(**{"code": f"C{n:04d}", "name": f"测试社区{n}", **kw}))


def make_centre(session: Session, community: Community | None = None, **kw: Any) -> ServiceCentre:
    community = community or make_community(session)
    n = _n()
    fields = {
        "code": f"SC{n:04d}",
        "name": f"党群服务中心{n}",
        "community_id": community.id,
        "closes_at": time(21, 0),
    }
    return _add(session, ServiceCentre(**{**fields, **kw}))


def make_unit(session: Session, community: Community | None = None, **kw: Any) -> Unit:
    n = _n()
    unit = _add(session, Unit(**{"code": f"U{n:04d}", "name": f"测试单位{n}", **kw}))
    if community is not None:
        _add(session, UnitCommunity(unit_id=unit.id, community_id=community.id))
    return unit


def make_member(
    session: Session, unit: Unit | None = None, community: Community | None = None, **kw: Any
) -> Member:
    community = community or make_community(session)
    unit = unit or make_unit(session, community)
    n = _n()
    fields = {"member_no": f"M{n:06d}", "name": f"张{n}明", "unit_id": unit.id, "community_id": community.id}
    return _add(session, Member(**{**fields, **kw}))


def make_card(session: Session, member: Member, uid: str | None = None, **kw: Any) -> tuple[Credential, str]:
    """Bind a card to ``member``; returns the credential and the raw UID (for taps in tests)."""
    uid = uid or secrets.token_hex(7).upper()
    fields = {
        "member_id": member.id,
        "kind": "card",
        "value_hash": credential_hash(TEST_CREDENTIAL_KEY, "card", uid),
        "label": f"…{uid[-4:]}",
    }
    return _add(session, Credential(**{**fields, **kw})), uid


def make_kiosk(session: Session, centre: ServiceCentre | None = None, **kw: Any) -> Kiosk:
    centre = centre or make_centre(session)
    n = _n()
    fields = {
        "kiosk_uid": f"K{n:05d}",
        "centre_id": centre.id,
        "community_id": centre.community_id,
        "name": f"kiosk {n}",
        "secret": secrets.token_hex(32),
    }
    return _add(session, Kiosk(**{**fields, **kw}))


def make_user(session: Session, role: str = "admin", **kw: Any) -> User:
    n = _n()
    fields = {
        "username": f"user{n}",
        "display_name": f"用户{n}",
        "password_hash": hash_password(TEST_PASSWORD),
        "role": role,
    }
    return _add(session, User(**{**fields, **kw}))


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=UTC)
