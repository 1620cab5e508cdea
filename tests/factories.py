"""Data factories for tests: ``make_member(session)`` instead of copy-pasted set-up.

Each factory fills every required field with a unique, valid value and accepts overrides; it adds the row
to the session and flushes so ids are available, leaving the commit to the test.
"""

from __future__ import annotations

import itertools
import re
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


# ---- kiosk API: wire events and signed requests (server/api, server/ingest) ---------------------------


def make_wire_events(
    n: int,
    *,
    start_seq: int = 1,
    prev_hash: str = "0" * 64,
    member_id: int | None = None,
    credential_hash_hex: str | None = None,
    start: datetime | None = None,
    step_s: float = 120.0,
    direction: str = "in",
    clock_offset_ms: int = 0,
) -> list[dict[str, Any]]:
    """``n`` chained TapEvent dicts as a kiosk would upload them (wire form, hashes computed).

    Directions alternate in/out starting from ``direction`` (the server recomputes roles anyway).
    """
    from datetime import timedelta

    from protocol.chain import compute_hash
    from protocol.ids import uuid7

    start = start or datetime.now(UTC) - timedelta(hours=1)
    cred = credential_hash_hex or credential_hash(TEST_CREDENTIAL_KEY, "card", secrets.token_hex(4))
    events = []
    for i in range(n):
        at = start + timedelta(seconds=step_s * i)
        event: dict[str, Any] = {
            "event_id": str(uuid7()),
            "seq": start_seq + i,
            "prev_hash": prev_hash,
            "credential_kind": "card",
            "credential_hash": cred,
            "member_id": member_id,
            "direction": direction if i % 2 == 0 else ("out" if direction == "in" else "in"),
            "device_time": at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "device_tz": "Asia/Shanghai",
            "clock_offset_ms": clock_offset_ms,
        }
        if member_id is None:
            event["direction"] = "unknown"
        event["hash"] = compute_hash(prev_hash, {**event, "device_time": at})
        prev_hash = event["hash"]
        events.append(event)
    return events


def signed_headers(kiosk: Kiosk, method: str, path: str, body: bytes, **kw: Any) -> dict[str, str]:
    """Headers of a request signed with ``kiosk``'s secret (``timestamp``/``nonce`` overridable)."""
    from protocol.signing import sign_request

    headers = sign_request(kiosk.kiosk_uid, bytes.fromhex(kiosk.secret), method, path, body, **kw)
    return {**headers, "Content-Type": "application/json"}


# ---- staff web app: stored taps and signed-in test clients (server/web) -------------------------------


def make_tap(
    session: Session,
    kiosk: Kiosk,
    member: Member | None,
    at: datetime,
    *,
    direction: str = "in",
    flags: str | None = None,
    **kw: Any,
) -> Any:
    """A stored TapEvent at ``kiosk`` (next sequence number; hashes are placeholders, not a real chain)."""
    from protocol.ids import uuid7
    from server.models import TapEvent

    kiosk.last_seq += 1
    fields = {
        "event_id": uuid7(),
        "kiosk_id": kiosk.id,
        "centre_id": kiosk.centre_id,
        "community_id": kiosk.community_id,
        "seq": kiosk.last_seq,
        "prev_hash": "0" * 64,
        "hash": secrets.token_hex(32),
        "credential_kind": "card",
        "credential_hash": secrets.token_hex(32),
        "member_id": member.id if member else None,
        "direction": direction,
        "device_time": at,
        "device_tz": "Asia/Shanghai",
        "clock_offset_ms": 0,
        "effective_time": at,
        "flags": flags,
    }
    return _add(session, TapEvent(**{**fields, **kw}))


def web_login(client: Any, username: str, password: str = TEST_PASSWORD) -> Any:
    """Sign a Flask test client in through the real login form (CSRF token included); returns the response."""
    token = form_csrf(client, "/login")
    return client.post("/login", data={"username": username, "password": password, "csrf_token": token})


def form_csrf(client: Any, path: str) -> str:
    """The CSRF token of the form a page at ``path`` renders for this test client's session."""
    page = client.get(path).get_data(as_text=True)
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, f"{path} renders no form with a CSRF token"
    return found.group(1)


def web_csrf(client: Any) -> str:
    """A valid CSRF token for a test client's session, read from a real form (signed in or not)."""
    with client.session_transaction() as sess:
        signed_in = "uid" in sess
    return form_csrf(client, "/account/password" if signed_in else "/login")


def web_session(client: Any, user: User) -> None:
    """Sign ``user`` in on a test client without the password check (for tests about something else:
    scope, review). Sets what ``server.web.auth`` puts in the cookie after a real sign-in."""
    with client.session_transaction() as sess:
        sess["uid"] = user.id
        sess["stamp"] = (user.password_changed_at or user.created_at).isoformat()
