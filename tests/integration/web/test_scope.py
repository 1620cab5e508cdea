"""For every staff-app route: a user of another community or unit gets 403/404 or a page without the other
side's data, and a POST never changes the other side's rows.

Routes come from the app's url_map, so a route added later is tested automatically; a URL argument this
test cannot fill fails the test until ``ARGUMENTS`` learns it. Exemptions are listed with the reason.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from protocol.flags import TapFlag
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


# ---- a member of community A who served at community B's centre ----------------------------------------

VISITOR_PHONE = "13987654321"
#: Text of member A's record that staff of B must never see: phone (plain and masked), unit, A's centre.
VISITOR_PRIVATE = (VISITOR_PHONE, "139****4321", "甲方单位", "甲方服务中心")


@pytest.fixture
def visitor(db_session, world):  # type: ignore[no-untyped-def]
    """Member A (phone changed so it differs from B's) with two sessions at B's centre, besides the two
    sessions at A's own centre that the world gave them. Returns the ids of the sessions at B."""
    from server.models import utcnow
    from server.sessions.store import recompute_sessions
    from tests.factories import make_tap, utc

    member = db_session.get(Member, world.a.member.id)
    member.phone = VISITOR_PHONE
    kiosk_b = world.b.kiosk
    # 2025-03-06 09:00-10:30 and 2025-03-07 14:00-15:00 local at B's centre.
    # The visitor's card is not on B's kiosk: the kiosk records unknown taps, the server resolves the card.
    for at in (utc(2025, 3, 6, 1, 0), utc(2025, 3, 6, 2, 30), utc(2025, 3, 7, 6, 0), utc(2025, 3, 7, 7, 0)):
        make_tap(
            db_session,
            kiosk_b,
            None,
            at,
            direction="unknown",
            resolved_member_id=member.id,
            flags=TapFlag.OUTSIDE_ROSTER.value,
        )
    recompute_sessions(db_session, [member.id], now=utcnow())
    db_session.commit()
    at_b = set(
        db_session.scalars(
            select(ServiceSession.id).where(
                ServiceSession.member_id == member.id, ServiceSession.centre_id == world.b.centre.id
            )
        )
    )
    assert len(at_b) == 2
    return at_b


def _review_links(body: str) -> set[int]:
    import re

    return {int(m) for m in re.findall(r'/review/(\d+)"', body)}


def test_staff_of_b_see_exactly_the_visitors_sessions_at_b(app, client, db_session, world, visitor) -> None:
    """Staff of B: the visitor's timeline lists exactly the sessions at B's centre (and the taps there);
    every other route that names the member is 404, and no page shows the member's phone, unit, or
    anything at A's centre."""
    web_session(client, world.users["staff_b"])
    a_sessions = {world.a.closed_session_id, world.a.auto_closed_session_id}
    timeline = client.get(f"/members/{world.a.member.id}/timeline")
    body = timeline.get_data(as_text=True)
    assert timeline.status_code == 200
    assert "甲方党员" in body and 'id="outside-roster"' in body
    assert _review_links(body) == visitor
    assert body.count("乙方服务中心") == 2 + 4  # two sessions and four taps, all at B's centre
    for session_id in visitor:
        assert client.get(f"/review/{session_id}").status_code == 200
    failures = []
    for endpoint, _rule, method in ROUTES:
        with app.test_request_context():
            from flask import url_for

            arguments = app.url_map._rules_by_endpoint[endpoint][0].arguments
            if "member_id" not in arguments and method == "POST":
                continue
            args = {name: ARGUMENTS[name](world) for name in arguments}
            if "member_id" in args:
                args["member_id"] = world.a.member.id
            if "session_id" in args:
                args["session_id"] = min(visitor)
            url = url_for(endpoint, **args)
        before = _fingerprint(db_session, world)
        if method == "GET":
            response = client.get(url)
        else:
            response = client.post(url, data=_hostile_form(world, web_csrf(client)))
        text = response.get_data(as_text=True)
        if (
            "member_id" in args
            and endpoint != "web_sessions.timeline"
            and response.status_code not in (403, 404)
        ):
            failures.append(f"{method} {url} answered {response.status_code}")
        if leaked := [p for p in VISITOR_PRIVATE if p in text] + sorted(_review_links(text) & a_sessions):
            failures.append(f"{method} {url} shows {leaked}")
        if before[:-1] != _fingerprint(db_session, world)[:-1]:
            failures.append(f"{method} {url} changed something")
    assert failures == []
    members = client.get("/members").get_data(as_text=True)
    assert "甲方党员" not in members  # a visitor is not listed among B's members


def test_staff_of_a_and_visitors_without_service_stay_apart(client, world, visitor) -> None:
    """The counterpart: staff of A still do not see the sessions at B; staff of B get 404 for a member of
    A who never served at B (B's own member from the world is the control)."""
    web_session(client, world.users["staff_a"])
    own = client.get(f"/members/{world.a.member.id}/timeline").get_data(as_text=True)
    assert _review_links(own) == {world.a.closed_session_id, world.a.auto_closed_session_id}
    assert "乙方" not in own
    other = client.application.test_client()
    web_session(other, world.users["staff_b"])
    with client.application.app_context():
        from server.web.common import db

        s = db()
        from tests.factories import make_member

        stranger = make_member(s, s.get(Unit, world.a.unit.id), s.get(Community, world.a.community.id))
        s.commit()
        stranger_id = stranger.id
    assert other.get(f"/members/{stranger_id}/timeline").status_code == 404
    assert other.get(f"/members/{world.b.member.id}/timeline").status_code == 200
