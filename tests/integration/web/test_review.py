"""Review decisions are Correction rows + audit records + a recompute; tap events are never touched."""

from __future__ import annotations

from sqlalchemy import func, select

from server.models import AuditRecord, Correction, ServiceSession, TapEvent
from tests.factories import web_csrf, web_session


def _taps(s) -> list[tuple]:  # type: ignore[no-untyped-def]
    s.expire_all()
    return [
        tuple(r)
        for r in s.execute(
            select(TapEvent.event_id, TapEvent.effective_time, TapEvent.direction).order_by(TapEvent.event_id)
        )
    ]


def test_queue_lists_auto_closed_and_flagged_sessions(client, world) -> None:
    web_session(client, world.users["staff_a"])
    page = client.get("/review").get_data(as_text=True)
    assert f'data-session="{world.a.auto_closed_session_id}"' in page
    assert "终端时钟偏差大" in page  # the clock-drift flag's label (protocol.flags), not its code
    assert f'data-session="{world.a.closed_session_id}"' not in page  # ordinary closed session: not queued


def test_approve_writes_correction_audit_and_recomputes(client, db_session, world) -> None:
    web_session(client, world.users["staff_a"])
    taps_before = _taps(db_session)
    sid = world.a.closed_session_id
    missing = client.post(f"/review/{sid}/approve", data={"reason": " ", "csrf_token": web_csrf(client)})
    assert missing.status_code == 400 and "请填写理由。" in missing.get_data(as_text=True)
    assert db_session.scalar(select(func.count()).select_from(Correction)) == 0
    response = client.post(
        f"/review/{sid}/approve", data={"reason": "签退正常", "csrf_token": web_csrf(client)}
    )
    assert response.status_code == 302
    db_session.expire_all()
    correction = db_session.scalar(select(Correction))
    assert correction.action == "approve" and correction.reason == "签退正常"
    assert correction.user_id == world.users["staff_a"].id and correction.before["status"] == "closed"
    row = db_session.get(ServiceSession, sid)
    assert row.status == "approved" and row.credited_minutes == 120
    record = db_session.scalar(select(AuditRecord).where(AuditRecord.action == "session.approve"))
    assert (
        record.reason == "签退正常"
        and record.before["status"] == "closed"
        and record.after == {"status": "approved"}
    )
    assert _taps(db_session) == taps_before


def test_adjust_auto_closed_session_with_new_times(client, db_session, world) -> None:
    web_session(client, world.users["staff_a"])
    sid = world.a.auto_closed_session_id
    approve = client.post(f"/review/{sid}/approve", data={"reason": "x", "csrf_token": web_csrf(client)})
    assert approve.status_code == 400
    assert (
        db_session.scalar(select(func.count()).select_from(Correction)) == 0
    )  # cannot approve a guessed end
    response = client.post(
        f"/review/{sid}/adjust",
        data={
            "started_at": "2025-03-04T09:00",
            "ended_at": "2025-03-04T11:30",
            "minutes": "",
            "reason": "纸质签退表",
            "csrf_token": web_csrf(client),
        },
    )
    assert response.status_code == 302
    db_session.expire_all()
    row = db_session.scalar(
        select(ServiceSession).where(
            ServiceSession.member_id == world.a.member.id, ServiceSession.status == "adjusted"
        )
    )
    assert row is not None and row.credited_minutes == 150
    correction = db_session.scalar(select(Correction))
    assert correction.action == "adjust" and correction.ended_at.hour == 3  # 11:30 Shanghai = 03:30 UTC
    assert (
        db_session.scalar(select(AuditRecord).where(AuditRecord.action == "session.adjust")).reason
        == "纸质签退表"
    )


def test_adjust_rejects_minutes_beyond_span(client, db_session, world) -> None:
    web_session(client, world.users["staff_a"])
    sid = world.a.closed_session_id
    client.post(
        f"/review/{sid}/adjust", data={"minutes": "500", "reason": "x", "csrf_token": web_csrf(client)}
    )
    assert db_session.scalar(select(func.count()).select_from(Correction)) == 0


def test_reject_and_bulk_approve(client, db_session, world) -> None:
    web_session(client, world.users["admin"])
    client.post(
        f"/review/{world.a.auto_closed_session_id}/reject",
        data={"reason": "误刷", "csrf_token": web_csrf(client)},
    )
    bulk = client.post(
        "/review/bulk-approve",
        data={
            "session_id": [
                str(world.a.closed_session_id),
                str(world.b.closed_session_id),
                str(world.b.auto_closed_session_id),
            ],
            "reason": "批量确认",
            "csrf_token": web_csrf(client),
        },
    )
    assert bulk.status_code == 302
    db_session.expire_all()
    statuses = {r.id: r.status for r in db_session.scalars(select(ServiceSession))}
    assert statuses[world.a.auto_closed_session_id] == "rejected"
    assert (
        statuses[world.a.closed_session_id] == "approved"
        and statuses[world.b.closed_session_id] == "approved"
    )
    assert statuses[world.b.auto_closed_session_id] == "auto_closed"  # skipped: no observed end
    assert (
        db_session.scalar(select(func.count()).select_from(Correction).where(Correction.action == "approve"))
        == 2
    )
    assert (
        db_session.scalar(
            select(func.count()).select_from(AuditRecord).where(AuditRecord.action.like("session.%"))
        )
        == 3
    )


def test_manual_entry_creates_manual_session(client, db_session, world) -> None:
    web_session(client, world.users["staff_a"])
    form = {
        "member_no": world.a.member.member_no,
        "centre_id": str(world.a.centre.id),
        "started_at": "2025-03-10T14:00",
        "ended_at": "2025-03-10T16:00",
        "reason": "纸质登记表第3页",
        "csrf_token": web_csrf(client),
    }
    assert client.post("/review/manual", data={**form, "reason": ""}).status_code == 400
    assert client.post("/review/manual", data=form).status_code == 302
    db_session.expire_all()
    row = db_session.scalar(select(ServiceSession).where(ServiceSession.source == "manual"))
    assert row is not None and row.status == "approved" and row.credited_minutes == 120
    assert row.key.startswith("manual:")
    assert (
        db_session.scalar(select(AuditRecord).where(AuditRecord.action == "session.manual")).reason
        == "纸质登记表第3页"
    )
    timeline = client.get(f"/members/{world.a.member.id}/timeline").get_data(as_text=True)
    assert "手工补录" in timeline


def test_sessions_list_filters_and_sorting(client, world) -> None:
    web_session(client, world.users["admin"])
    both = client.get("/sessions").get_data(as_text=True)
    assert "甲方党员" in both and "乙方党员" in both
    only_b = client.get(f"/sessions?centre_id={world.b.centre.id}").get_data(as_text=True)
    assert "乙方党员" in only_b and "甲方党员" not in only_b
    by_status = client.get("/sessions?status=auto_closed&date_from=2025-03-04&date_to=2025-03-04").get_data(
        as_text=True
    )
    assert by_status.count("s-auto_closed") == 2 and "s-closed" not in by_status
    none = client.get("/sessions?date_from=2025-03-05").get_data(as_text=True)
    assert "s-auto_closed" not in none
    by_member = client.get(f"/sessions?member={world.a.member.member_no}&sort=minutes&dir=asc").get_data(
        as_text=True
    )
    assert "乙方党员" not in by_member and by_member.index("s-auto_closed") < by_member.index("s-closed")
