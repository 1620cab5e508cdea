"""Corrections that make sense: adjust, approve, bulk approve and manual entry judged by one set of rules
(server.sessions.validation), every error shown at once with the typed values kept, and manual entry for
a member of another community who served at this centre."""

from __future__ import annotations

import re
from html import unescape

from sqlalchemy import func, select

from server.models import AuditRecord, Correction, Member, ServiceCentre, ServiceSession, utcnow
from server.sessions.store import recompute_sessions
from tests.factories import make_card, make_tap, utc, web_csrf, web_session


def _corrections(s) -> int:  # type: ignore[no-untyped-def]
    s.expire_all()
    return s.scalar(select(func.count()).select_from(Correction))


def _errors(body: str, form: str) -> list[str]:
    """The messages listed above form ``form`` (adjust, approve, reject, manual)."""
    block = re.search(rf'id="{form}-errors">(.*?)</div>', body, re.S)
    assert block is not None, f"no error list for {form}"
    return [unescape(m) for m in re.findall(r'<li class="error">(.*?)</li>', block.group(1), re.S)]


def _value(body: str, name: str, form: str | None = None) -> str:
    """The value of field ``name`` (in the form with id ``<form>-form`` if given)."""
    if form is not None:
        found = re.search(rf'id="{form}-form">(.*?)</form>', body, re.S)
        assert found is not None, form
        body = found.group(1)
    match = re.search(rf'name="{name}"[^>]*value="([^"]*)"', body)
    assert match is not None, name
    return unescape(match.group(1))


def test_nonsense_adjustment_lists_every_error_and_keeps_the_typed_values(client, db_session, world) -> None:
    """The seen case: an end in 2027 on a session of 2025-03-03 — future, beyond reach of the taps,
    longer than 12 h, another day — all listed, plus the bad minutes; the reason typed is still there."""
    web_session(client, world.users["staff_a"])
    sid = world.a.closed_session_id
    form = {
        "started_at": "2025-03-03T09:00",
        "ended_at": "2027-03-03T11:00",
        "minutes": "abc",
        "reason": "纸质签到表第 7 页",
        "csrf_token": web_csrf(client),
    }
    response = client.post(f"/review/{sid}/adjust", data=form)
    body = response.get_data(as_text=True)
    assert response.status_code == 400
    errors = _errors(body, "adjust")
    assert errors[0] == "计入分钟须为不小于 0 的整数。"
    assert any(e.startswith("时间不能晚于现在") for e in errors)
    assert any(e.startswith("签退时间不能晚于 2025-03-03 23:00") for e in errors)  # 12 h after the check-out
    assert any(e.startswith("时长超过本中心的最长时长 720 分钟。只有管理员可以确认此情况。") for e in errors)
    assert any(e.startswith("时间超出本记录刷卡的日期（2025-03-03）") for e in errors)
    assert len(errors) == 5
    assert _value(body, "reason", "adjust") == "纸质签到表第 7 页"
    assert _value(body, "reason", "approve") == ""  # the other forms stay as they were
    assert _value(body, "ended_at") == "2027-03-03T11:00" and _value(body, "minutes") == "abc"
    assert 'name="confirm_span"' not in body  # staff cannot confirm; only admins see the box
    assert _corrections(db_session) == 0


def test_errors_in_english(client, db_session, world) -> None:
    web_session(client, world.users["staff_a"])
    with client.session_transaction() as sess:
        sess["locale"] = "en"
    response = client.post(
        f"/review/{world.a.closed_session_id}/adjust",
        data={
            "started_at": "2025-03-03T12:00",
            "ended_at": "2025-03-03T10:00",
            "reason": "",
            "csrf_token": web_csrf(client),
        },
    )
    assert response.status_code == 400
    assert _errors(response.get_data(as_text=True), "adjust") == [
        "A reason is required.",
        "The check-out must be after the check-in.",
    ]
    assert _corrections(db_session) == 0


def test_other_day_needs_an_admins_confirmation(client, db_session, world) -> None:
    """2025-03-03 09:00–11:00 moved to start the evening before (within 12 h of the taps, another day)."""
    sid = world.a.closed_session_id
    form = {"started_at": "2025-03-02T22:00", "ended_at": "2025-03-03T11:00", "reason": "夜间值守"}
    staff = client.application.test_client()
    web_session(staff, world.users["staff_a"])
    refused = staff.post(
        f"/review/{sid}/adjust", data={**form, "confirm_span": "1", "csrf_token": web_csrf(staff)}
    )
    assert refused.status_code == 400  # a staff member's tick is not an admin's confirmation
    assert _errors(refused.get_data(as_text=True), "adjust") == [
        "时长超过本中心的最长时长 720 分钟。只有管理员可以确认此情况。",
        "时间超出本记录刷卡的日期（2025-03-03）。只有管理员可以确认此情况。",
    ]
    web_session(client, world.users["admin"])
    unticked = client.post(f"/review/{sid}/adjust", data={**form, "csrf_token": web_csrf(client)})
    assert unticked.status_code == 400 and "请勾选“管理员确认”" in unticked.get_data(as_text=True)
    assert 'name="confirm_span"' in unticked.get_data(as_text=True)
    assert _corrections(db_session) == 0
    confirmed = client.post(
        f"/review/{sid}/adjust", data={**form, "confirm_span": "1", "csrf_token": web_csrf(client)}
    )
    assert confirmed.status_code == 302
    db_session.expire_all()
    row = db_session.scalar(select(ServiceSession).where(ServiceSession.status == "adjusted"))
    assert row is not None and row.credited_minutes == 13 * 60


def test_adjusting_a_session_within_one_minute(client, db_session, world) -> None:
    """Check-in 09:00:10, check-out 09:00:50 (a centre with a 10 s debounce): the form shows 09:00 twice;
    left as shown, the times keep their seconds, so crediting 0 minutes is accepted instead of "the end
    must be after the start"."""
    db_session.get(ServiceCentre, world.a.centre.id).debounce_seconds = 10
    member = db_session.get(Member, world.a.member.id)
    make_tap(db_session, world.a.kiosk, member, utc(2025, 3, 5, 1, 0, 10), direction="in")
    make_tap(db_session, world.a.kiosk, member, utc(2025, 3, 5, 1, 0, 50), direction="out")
    recompute_sessions(db_session, [member.id], now=utcnow())
    db_session.commit()
    sid = db_session.scalar(
        select(ServiceSession.id).where(ServiceSession.started_at == utc(2025, 3, 5, 1, 0, 10))
    )
    web_session(client, world.users["staff_a"])
    page = client.get(f"/review/{sid}").get_data(as_text=True)
    shown = {name: _value(page, name) for name in ("started_at", "ended_at")}
    assert shown == {"started_at": "2025-03-05T09:00", "ended_at": "2025-03-05T09:00"}
    response = client.post(
        f"/review/{sid}/adjust",
        data={**shown, "minutes": "0", "reason": "误触", "csrf_token": web_csrf(client)},
    )
    assert response.status_code == 302
    db_session.expire_all()
    correction = db_session.scalar(select(Correction))
    assert (correction.started_at, correction.ended_at) == (
        utc(2025, 3, 5, 1, 0, 10),
        utc(2025, 3, 5, 1, 0, 50),
    )
    assert db_session.get(ServiceSession, sid).status == "adjusted"


def test_approve_and_bulk_approve_use_the_same_rules(client, db_session, world) -> None:
    """A's centre lowers its maximum to 60 minutes: A's 120-minute session can no longer be approved
    alone or in a batch (named with its problem); B's goes through in the same batch."""
    db_session.get(ServiceCentre, world.a.centre.id).max_session_minutes = 60
    db_session.commit()
    web_session(client, world.users["admin"])
    single = client.post(
        f"/review/{world.a.closed_session_id}/approve",
        data={"reason": "核对无误", "csrf_token": web_csrf(client)},
    )
    body = single.get_data(as_text=True)
    assert single.status_code == 400
    assert _errors(body, "approve") == [
        "时长超过本中心的最长时长 60 分钟。如确认无误，请勾选“管理员确认”后再保存。"
    ]
    assert _value(body, "reason", "approve") == "核对无误"
    assert 'name="confirm_span"' in body.split('id="approve-form"')[1].split("</form>")[0]
    bulk = client.post(
        "/review/bulk-approve",
        data={
            "session_id": [str(world.a.closed_session_id), str(world.b.closed_session_id)],
            "reason": "批量确认",
            "csrf_token": web_csrf(client),
        },
    )
    assert bulk.status_code == 302
    queue = client.get("/review").get_data(as_text=True)
    assert "2025-03-03 09:00（甲方党员）未确认：时长超过本中心的最长时长 60 分钟。" in queue
    assert "已确认 1 条，跳过 1 条" in queue
    db_session.expire_all()
    approved = db_session.scalars(select(Correction.session_key).where(Correction.action == "approve")).all()
    assert approved == [db_session.get(ServiceSession, world.b.closed_session_id).key]
    assert (
        db_session.scalar(
            select(func.count()).select_from(AuditRecord).where(AuditRecord.action == "session.approve")
        )
        == 1
    )


def test_manual_entry_lists_every_error(client, db_session, world) -> None:
    web_session(client, world.users["staff_a"])
    form = {
        "member_no": "NO-SUCH-1",
        "centre_id": str(world.a.centre.id),
        "started_at": "2025-03-10T16:00",
        "ended_at": "2025-03-10T14:00",
        "minutes": "-5",
        "reason": "纸质登记表第 3 页",
        "csrf_token": web_csrf(client),
    }
    response = client.post("/review/manual", data=form)
    body = response.get_data(as_text=True)
    assert response.status_code == 400
    assert _errors(body, "manual") == [
        "找不到该党员编号或卡号。",
        "计入分钟须为不小于 0 的整数。",
        "签退时间必须晚于签到时间。",
    ]
    assert _value(body, "reason") == "纸质登记表第 3 页" and _value(body, "started_at") == "2025-03-10T16:00"
    across = client.post(
        "/review/manual",
        data={**form, "member_no": world.a.member.member_no, "minutes": "", "ended_at": "2025-03-11T01:00"},
    )
    assert _errors(across.get_data(as_text=True), "manual") == [
        "签到与签退不在同一天。只有管理员可以确认此情况。"
    ]
    assert _corrections(db_session) == 0


def test_manual_entry_for_a_member_of_another_community(client, db_session, world) -> None:
    """Staff of B enter a paper session at B's centre for member A, found by a card the member holds:
    first the masked name and a confirmation, then the session (at B, credited) on B's timeline view."""
    _credential, uid = make_card(db_session, db_session.get(Member, world.a.member.id))
    db_session.commit()
    web_session(client, world.users["staff_b"])
    form = {
        "member_no": uid,
        "centre_id": str(world.b.centre.id),
        "started_at": "2025-03-10T14:00",
        "ended_at": "2025-03-10T16:00",
        "reason": "社区活动签到表",
        "csrf_token": web_csrf(client),
    }
    asked = client.post("/review/manual", data=form)
    body = asked.get_data(as_text=True)
    assert asked.status_code == 400
    assert "甲**员" in body and "甲方党员" not in body and "甲方单位" not in body
    assert f'name="confirm_member" value="{world.a.member.id}"' in body
    assert _errors(body, "manual")[0].startswith(f"甲**员（{world.a.member.member_no}）在其他社区报到")
    assert _corrections(db_session) == 0
    wrong = client.post("/review/manual", data={**form, "confirm_member": str(world.b.member.id)})
    assert wrong.status_code == 400 and _corrections(db_session) == 0
    saved = client.post("/review/manual", data={**form, "confirm_member": str(world.a.member.id)})
    assert saved.status_code == 302 and saved.headers["Location"].endswith(
        f"/members/{world.a.member.id}/timeline"
    )
    db_session.expire_all()
    row = db_session.scalar(select(ServiceSession).where(ServiceSession.source == "manual"))
    assert (row.member_id, row.centre_id, row.community_id) == (
        world.a.member.id,
        world.b.centre.id,
        world.b.community.id,
    )
    assert row.status == "approved" and row.credited_minutes == 120
    timeline = client.get(saved.headers["Location"]).get_data(as_text=True)
    assert "手工补录" in timeline and "甲方单位" not in timeline
    # by member number too, and a member of B's own roster needs no confirmation
    by_number = client.post("/review/manual", data={**form, "member_no": world.a.member.member_no})
    assert f'name="confirm_member" value="{world.a.member.id}"' in by_number.get_data(as_text=True)
    own = client.post(
        "/review/manual",
        data={
            **form,
            "member_no": world.b.member.member_no,
            "started_at": "2025-03-11T14:00",
            "ended_at": "2025-03-11T15:00",
        },
    )
    assert own.status_code == 302


def test_admin_confirms_a_long_day_on_one_check_in(client, db_session, world) -> None:
    """The auto-closed 2025-03-04 09:00 session (cut at closing time, 21:00) really ran to 23:00: longer
    than 12 h and beyond reach of its only tap, which an admin may confirm and staff may not."""
    sid = world.a.auto_closed_session_id
    form = {
        "started_at": "2025-03-04T09:00",
        "ended_at": "2025-03-04T23:00",
        "reason": "活动延时",
        "confirm_span": "1",
    }
    staff = client.application.test_client()
    web_session(staff, world.users["staff_a"])
    refused = staff.post(f"/review/{sid}/adjust", data={**form, "csrf_token": web_csrf(staff)})
    assert [e.split("：")[0].split("。")[0] for e in _errors(refused.get_data(as_text=True), "adjust")] == [
        "签退时间不能晚于 2025-03-04 21:00",
        "时长超过本中心的最长时长 720 分钟",
    ]
    web_session(client, world.users["admin"])
    assert (
        client.post(f"/review/{sid}/adjust", data={**form, "csrf_token": web_csrf(client)}).status_code == 302
    )
    db_session.expire_all()
    row = db_session.scalar(
        select(ServiceSession).where(ServiceSession.key == db_session.scalar(select(Correction)).session_key)
    )
    assert row.status == "adjusted" and row.credited_minutes == 14 * 60


def test_admin_confirms_an_approval_beyond_the_maximum(client, db_session, world) -> None:
    db_session.get(ServiceCentre, world.a.centre.id).max_session_minutes = 60
    db_session.commit()
    web_session(client, world.users["admin"])
    confirmed = client.post(
        f"/review/{world.a.closed_session_id}/approve",
        data={"reason": "核对无误", "confirm_span": "1", "csrf_token": web_csrf(client)},
    )
    assert confirmed.status_code == 302
    db_session.expire_all()
    assert db_session.scalar(select(Correction.action)) == "approve"
