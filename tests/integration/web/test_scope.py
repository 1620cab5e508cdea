"""For every staff-app route: a user of another community or unit gets 403/404 or a page without the other
side's data, and a POST never changes the other side's rows.

Routes come from the app's url_map, so a route added later is tested automatically; a URL argument this
test cannot fill fails the test until ``ARGUMENTS`` learns it. Exemptions are listed with the reason.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from server.models import AuditRecord, Community, Correction, Member, ServiceSession, Unit
from tests.conftest import TEST_KEYS
from tests.factories import web_csrf, web_login, web_session

EXEMPT = {
    "web_auth.static": "stylesheet, no data",
    "web_auth.login": "the sign-in form itself",
    "web_auth.logout": "ends one's own session",
    "web_auth.language": "one's own language choice",
    "web_auth.password": "one's own password (tested in test_auth)",
    "web_sessions.home": "redirect to the sessions list",
}
# URL argument → how to fill it with an object of side B.
ARGUMENTS = {
    "member_id": lambda w: w.b.member.id,
    "session_id": lambda w: w.b.auto_closed_session_id,
    "unit_id": lambda w: w.b.unit.id,
    "community_id": lambda w: w.b.community.id,
    "centre_id": lambda w: w.b.centre.id,
    "kiosk_id": lambda w: w.b.kiosk.id,
    "action": lambda w: "reject",
    # Cards: the credential id is only ever looked up under the (side-B, out-of-scope) member of the URL.
    "credential_id": lambda w: 1,
}


def _web_routes() -> list[tuple[str, str, str]]:
    from server import create_app

    app = create_app({"DATABASE_URL": "sqlite://", **TEST_KEYS})
    routes = []
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("web_") or rule.endpoint in EXEMPT:
            continue
        for method in sorted((rule.methods or set()) & {"GET", "POST"}):
            routes.append((rule.endpoint, rule.rule, method))
    app.extensions["baodao_db"].dispose()
    return routes


ROUTES = _web_routes()


def _hostile_form(w: Any, token: str) -> dict[str, Any]:
    """A form whose every id-like field points at side B."""
    return {
        "csrf_token": token,
        "session_id": str(w.b.closed_session_id),
        "member_no": w.b.member.member_no,
        "member_id": str(w.b.member.id),
        "centre_id": str(w.b.centre.id),
        "unit_id": str(w.b.unit.id),
        "community_id": str(w.b.community.id),
        "kiosk_id": str(w.b.kiosk.id),
        "reason": "scope probe",
        "name": "越权",
        "code": "PROBE1",
        "status": "inactive",
        "started_at": "2025-03-05T09:00",
        "ended_at": "2025-03-05T10:00",
        "minutes": "30",
        "kind": "members",
        "token": "x",
    }


def _fingerprint(s: Any, w: Any) -> tuple[Any, ...]:
    s.expire_all()
    b = w.b
    member = s.get(Member, b.member.id)
    return (
        s.scalar(
            select(func.count()).select_from(Correction).where(Correction.community_id == b.community.id)
        ),
        s.scalar(select(func.count()).select_from(Member).where(Member.community_id == b.community.id)),
        (member.name, member.status, member.unit_id, member.phone),
        s.get(Unit, b.unit.id).name,
        s.get(Community, b.community.id).name,
        tuple(
            s.scalars(
                select(ServiceSession.status)
                .where(ServiceSession.member_id == b.member.id)
                .order_by(ServiceSession.id)
            )
        ),
        s.scalar(select(func.count()).select_from(AuditRecord)),
    )


def test_every_web_route_is_covered() -> None:
    endpoints = {e for e, _r, _m in ROUTES}
    assert len(ROUTES) >= 25
    assert {"web_review.decide", "web_members.member_edit", "web_sessions.timeline"} <= endpoints


@pytest.mark.parametrize("username", ["staff_a", "sec_a"])
def test_other_side_is_out_of_reach(app, client, db_session, world, username) -> None:
    """One test per user walks every route (one world per backend keeps the suite fast); the failure
    message lists each route that leaked or changed side B."""
    web_session(client, world.users[username])
    failures = [
        f
        for endpoint, rule, method in ROUTES
        if (f := _probe(app, client, db_session, world, endpoint, rule, method))
    ]
    assert failures == []


def _probe(app, client, db_session, world, endpoint: str, rule: str, method: str) -> str | None:  # type: ignore[no-untyped-def]
    args = {}
    for name in app.url_map._rules_by_endpoint[endpoint][0].arguments:
        if name not in ARGUMENTS:
            return f"cannot fill URL argument {name!r} of {rule}: add it to ARGUMENTS"
        args[name] = ARGUMENTS[name](world)
    with app.test_request_context():
        from flask import url_for

        url = url_for(endpoint, **args)
    before = _fingerprint(db_session, world)
    if method == "GET":
        response = client.get(url)
    else:
        response = client.post(url, data=_hostile_form(world, web_csrf(client)))
    body = response.get_data(as_text=True)
    allowed = (403, 404) if args else (200, 302, 400, 403, 404)
    if response.status_code not in allowed:
        return f"{method} {url} answered {response.status_code}"
    if "乙方" in body:
        return f"{method} {url} shows side B's data"
    after = _fingerprint(db_session, world)
    if before[:-1] != after[:-1]:
        return f"{method} {url} changed side B"
    if method == "POST" and before[-1] != after[-1]:
        return f"{method} {url} wrote an audit record for an out-of-scope change"
    return None


def test_own_side_is_visible(client, world) -> None:
    """The counterpart: the same pages do show side A's data to side A (so the test above can fail)."""
    web_login(client, "staff_a")
    assert "甲方党员" in client.get("/sessions").get_data(as_text=True)
    assert client.get(f"/members/{world.a.member.id}/timeline").status_code == 200
    assert client.get(f"/review/{world.a.auto_closed_session_id}").status_code == 200
    admin = client.application.test_client()
    web_login(admin, "admin1")
    text = admin.get("/sessions").get_data(as_text=True)
    assert "甲方党员" in text and "乙方党员" in text


def test_read_only_roles_cannot_write(client, world) -> None:
    for username in ("auditor", "sec_a"):
        c = client.application.test_client()
        web_session(c, world.users[username])
        response = c.post(
            f"/review/{world.a.auto_closed_session_id}/reject",
            data={"reason": "x", "csrf_token": web_csrf(c)},
        )
        assert response.status_code in (403, 404)
        assert c.get("/members/new").status_code == 403
