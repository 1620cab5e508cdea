"""Reports: service hours by local month/year, members without service this quarter, centre activity —
scoped per user, on SQLite and PostgreSQL, with charts on the pages."""

from __future__ import annotations

import re
from datetime import date

from server.models import utcnow
from server.reports import (
    centre_activity,
    monthly_totals,
    no_service_this_quarter,
    quarter_bounds,
    service_hours,
)
from server.sessions.store import recompute_sessions
from server.web.scope import Scope
from tests.factories import make_member, make_tap, utc, web_session

ADMIN = Scope("admin")


def _staff(world) -> Scope:  # type: ignore[no-untyped-def]
    return Scope("community_staff", community_id=world.a.community.id)


def test_hours_per_unit_and_community_in_a_local_month(db_session, world) -> None:
    rows = service_hours(db_session, ADMIN, group="unit", year=2025, month=3)
    assert {(r.name, r.minutes, r.sessions) for r in rows} == {("甲方单位", 120, 1), ("乙方单位", 120, 1)}
    by_community = service_hours(db_session, _staff(world), group="community", year=2025, month=3)
    assert [(r.name, r.hours) for r in by_community] == [("甲方社区", 2.0)]
    members = service_hours(db_session, _staff(world), group="member", year=2025)
    assert [(r.name, r.extra, r.minutes) for r in members] == [("甲方党员", "甲方单位", 120)]
    assert service_hours(db_session, ADMIN, group="unit", year=2025, month=2) == []


def test_month_boundary_is_the_local_day(db_session, world) -> None:
    """A session starting 00:30 on 1 April in Shanghai (16:30 UTC on 31 March) belongs to April."""
    a = world.a
    make_tap(db_session, a.kiosk, a.member, utc(2025, 3, 31, 16, 30), direction="in")
    make_tap(db_session, a.kiosk, a.member, utc(2025, 3, 31, 17, 30), direction="out")
    recompute_sessions(db_session, [a.member.id], now=utcnow())
    db_session.commit()
    march = service_hours(db_session, _staff(world), group="unit", year=2025, month=3)
    april = service_hours(db_session, _staff(world), group="unit", year=2025, month=4)
    assert [r.minutes for r in march] == [120]
    assert [r.minutes for r in april] == [60]
    months = monthly_totals(db_session, _staff(world), year=2025)
    assert months[2] == 120 and months[3] == 60 and sum(months) == 180


def test_members_without_service_this_quarter(db_session, world) -> None:
    idle = make_member(db_session, world.a.unit, world.a.community, name="甲方闲置")
    db_session.commit()
    rows = no_service_this_quarter(db_session, _staff(world), today=date(2025, 3, 15))
    assert [r.name for r in rows] == ["甲方闲置"]
    assert rows[0].member_id == idle.id and rows[0].unit_name == "甲方单位"
    # Next quarter nobody has served yet; the admin sees both communities.
    names = {r.name for r in no_service_this_quarter(db_session, ADMIN, today=date(2025, 4, 2))}
    assert names == {"甲方党员", "甲方闲置", "乙方党员"}
    start, end = quarter_bounds(date(2025, 5, 20))
    assert (start, end) == (utc(2025, 3, 31, 16), utc(2025, 6, 30, 16))


def test_centre_activity_by_local_weekday_and_hour(db_session, world) -> None:
    # World check-ins: Mon 2025-03-03 09:00 and Tue 2025-03-04 09:00 local, on each side.
    grid = centre_activity(db_session, _staff(world), first=date(2025, 3, 1), last=date(2025, 3, 31))
    assert grid.counts[0][9] == 1 and grid.counts[1][9] == 1 and grid.total == 2
    assert grid.by_hour[9] == 2 and grid.by_weekday[:2] == [1, 1]
    everyone = centre_activity(db_session, ADMIN, first=date(2025, 3, 1), last=date(2025, 3, 31))
    assert everyone.total == 4
    one_centre = centre_activity(
        db_session, ADMIN, first=date(2025, 3, 4), last=date(2025, 3, 4), centre_id=world.b.centre.id
    )
    assert one_centre.total == 1 and one_centre.counts[1][9] == 1


def test_report_pages_show_charts_and_only_the_users_scope(client, world) -> None:
    web_session(client, world.users["staff_a"])
    page = client.get("/reports/hours?group=unit&year=2025&month=3").get_data(as_text=True)
    assert "甲方单位" in page and "乙方" not in page
    assert page.count("<svg") == 2
    assert re.search(r"<desc>[^<]*甲方单位: 2</desc>", page), "the bar chart lists the unit's hours"
    year = client.get("/reports/hours?group=community&year=2025&month=").get_data(as_text=True)
    assert "3月: 2" in year  # the line chart's description: March = 2 hours
    idle = client.get("/reports/idle")
    assert idle.status_code == 200 and "乙方" not in idle.get_data(as_text=True)
    activity = client.get("/reports/activity?date_from=2025-03-01&date_to=2025-03-31").get_data(as_text=True)
    assert "周一 09: 1" in activity and "<svg" in activity


def test_unit_secretary_sees_only_their_unit(client, world) -> None:
    web_session(client, world.users["sec_a"])
    page = client.get("/reports/hours?group=member&year=2025&month=3").get_data(as_text=True)
    assert "甲方党员" in page and "乙方" not in page
