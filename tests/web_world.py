"""Two communities side by side ("甲方" = A, "乙方" = B) with members, taps, sessions and one user per role.

Shared by the staff web app's integration and browser tests. Every B-side name contains "乙方", so a scope
test can assert that text never reaches an A-side user. All users have the password ``TEST_PASSWORD``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from server.models import ServiceSession, User, utcnow
from server.passwords import hash_password
from server.sessions.store import recompute_sessions
from tests.factories import (
    TEST_PASSWORD,
    make_centre,
    make_community,
    make_kiosk,
    make_member,
    make_tap,
    make_unit,
    make_user,
    utc,
)

_HASH = hash_password(TEST_PASSWORD)  # once per test run: argon2 is deliberately slow


@dataclass
class Side:
    community: Any
    centre: Any
    unit: Any
    member: Any
    kiosk: Any
    closed_session_id: int = 0
    auto_closed_session_id: int = 0


@dataclass
class World:
    a: Side
    b: Side
    users: dict[str, User]


def _side(s: Any, label: str) -> Side:
    community = make_community(s, name=f"{label}社区")
    centre = make_centre(s, community, name=f"{label}服务中心")
    unit = make_unit(s, community, name=f"{label}单位")
    member = make_member(s, unit, community, name=f"{label}党员", phone="13812345678")
    kiosk = make_kiosk(s, centre)
    # 2025-03-03 09:00-11:00 local: a closed session; 2025-03-04 09:00 with no check-out: auto-closed.
    make_tap(s, kiosk, member, utc(2025, 3, 3, 1, 0), direction="in")
    make_tap(s, kiosk, member, utc(2025, 3, 3, 3, 0), direction="out")
    make_tap(s, kiosk, member, utc(2025, 3, 4, 1, 0), direction="in", flags="clock_drift")
    return Side(community, centre, unit, member, kiosk)


def build_world(s: Any) -> World:
    """Create both sides and the users in session ``s`` and commit."""
    a, b = _side(s, "甲方"), _side(s, "乙方")
    recompute_sessions(s, [a.member.id, b.member.id], now=utcnow())
    for side in (a, b):
        rows = s.scalars(
            select(ServiceSession)
            .where(ServiceSession.member_id == side.member.id)
            .order_by(ServiceSession.started_at)
        ).all()
        assert [r.status for r in rows] == ["closed", "auto_closed"], [r.status for r in rows]
        side.closed_session_id, side.auto_closed_session_id = rows[0].id, rows[1].id
    users = {
        "admin": make_user(s, "admin", username="admin1", password_hash=_HASH),
        "auditor": make_user(s, "auditor", username="auditor1", password_hash=_HASH),
        "staff_a": make_user(
            s, "community_staff", username="staff_a", community_id=a.community.id, password_hash=_HASH
        ),
        "staff_b": make_user(
            s, "community_staff", username="staff_b", community_id=b.community.id, password_hash=_HASH
        ),
        "sec_a": make_user(s, "unit_secretary", username="sec_a", unit_id=a.unit.id, password_hash=_HASH),
    }
    s.commit()
    return World(a=a, b=b, users=users)
