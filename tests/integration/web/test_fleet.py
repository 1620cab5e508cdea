"""The fleet page and per-kiosk management: health and alerts from heartbeats, versioned config pushed and
acknowledged through the real kiosk API, commands and their results, revocation, enrolment tokens."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from server.api.enrolment import token_hash
from server.models import AuditRecord, EnrolmentToken, Kiosk, KioskCommand, KioskConfig, KioskHeartbeat
from tests.factories import signed_headers, web_csrf, web_session


def _health(**kw: object) -> dict[str, object]:
    return {
        "readers": [{"reader_id": "pcsc0", "driver": "pcsc", "state": "ready"}],
        "camera": {"state": "ready", "fps": 10.0},
        "outbox_depth": 0,
        "disk_free_bytes": 10**9,
        "software_version": "0.3.1",
        "config_version": 0,
        "applied_config_version": 0,
        "clock_offset_ms": 120,
        **kw,
    }


def _heartbeat(client, kiosk, results=(), **health):  # type: ignore[no-untyped-def]
    body = json.dumps(
        {
            "device_time": datetime.now(UTC).isoformat(),
            "health": _health(**health),
            "command_results": list(results),
        }
    ).encode()
    path = "/api/v1/kiosk/heartbeat"
    response = client.post(path, data=body, headers=signed_headers(kiosk, "POST", path, body))
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def test_fleet_lists_scope_and_alerts(client, db_session, world) -> None:
    now = datetime.now(UTC)
    a = db_session.get(Kiosk, world.a.kiosk.id)
    a.last_seen_at, a.clock_offset_ms, a.chain_broken = now, 95_000, True
    a.health = _health(
        readers=[{"reader_id": "em4100", "driver": "serial", "state": "error"}], outbox_depth=7
    )
    for i, depth in enumerate((2, 4, 7)):
        db_session.add(
            KioskHeartbeat(
                kiosk_id=a.id, received_at=now - timedelta(minutes=3 - i), outbox_depth=depth, health={}
            )
        )
    db_session.commit()
    web_session(client, world.users["staff_a"])
    page = client.get("/fleet/").get_data(as_text=True)
    assert world.a.kiosk.name in page and "乙方" not in page and world.b.kiosk.name not in page
    alerts = set(__import__("re").findall(r'data-alert="(\w+)"', page))
    assert alerts == {"backlog", "clock", "chain", "device"}
    assert "在线" in page
    admin = client.application.test_client()
    web_session(admin, world.users["admin"])
    everyone = admin.get("/fleet/").get_data(as_text=True)
    assert world.b.kiosk.name in everyone and "从未连接" in everyone  # B never sent a heartbeat
    assert 'data-alert="silent"' in everyone


def test_unit_secretary_has_no_fleet(client, world) -> None:
    web_session(client, world.users["sec_a"])
    assert client.get("/fleet/").status_code == 403


def test_config_push_is_versioned_and_acknowledged(client, db_session, world) -> None:
    web_session(client, world.users["admin"])
    kiosk = world.a.kiosk
    url = f"/fleet/{kiosk.id}/config"
    bad = client.post(url, data={"csrf_token": web_csrf(client), "body": "[1, 2]"}, follow_redirects=True)
    assert "JSON" in bad.get_data(as_text=True)
    client.post(
        url, data={"csrf_token": web_csrf(client), "body": '{"debounce_seconds": 30}', "reason": "试点"}
    )
    client.post(url, data={"csrf_token": web_csrf(client), "body": '{"debounce_seconds": 45}'})
    db_session.expire_all()
    versions = db_session.scalars(select(KioskConfig.version).where(KioskConfig.kiosk_id == kiosk.id)).all()
    assert sorted(versions) == [1, 2] and db_session.get(Kiosk, kiosk.id).desired_config_version == 2
    reply = _heartbeat(client, db_session.get(Kiosk, kiosk.id))
    assert reply["desired_config_version"] == 2 and reply["config"] == {"debounce_seconds": 45}
    _heartbeat(client, db_session.get(Kiosk, kiosk.id), config_version=2, applied_config_version=2)
    page = client.get(f"/fleet/{kiosk.id}").get_data(as_text=True)
    assert 'id="config-versions">2/2<' in page
    audits = db_session.scalars(select(AuditRecord).where(AuditRecord.action == "kiosk.config")).all()
    assert len(audits) == 2 and audits[0].reason == "试点"


def test_commands_are_delivered_and_results_shown(client, db_session, world) -> None:
    web_session(client, world.users["admin"])
    kiosk = world.a.kiosk
    url = f"/fleet/{kiosk.id}/command"
    refused = client.post(url, data={"csrf_token": web_csrf(client), "name": "show_message", "text": ""})
    assert refused.status_code == 302
    client.post(url, data={"csrf_token": web_csrf(client), "name": "show_message", "text": "今天提前闭馆"})
    command = db_session.scalars(select(KioskCommand).where(KioskCommand.kiosk_id == kiosk.id)).one()
    assert command.status == "queued" and command.args["text"] == "今天提前闭馆"
    reply = _heartbeat(client, db_session.get(Kiosk, kiosk.id))
    assert [c["name"] for c in reply["commands"]] == ["show_message"]
    result = {
        "command_id": reply["commands"][0]["command_id"],
        "name": "show_message",
        "ok": True,
        "detail": "shown",
        "completed_at": datetime.now(UTC).isoformat(),
    }
    _heartbeat(client, db_session.get(Kiosk, kiosk.id), results=[result])
    page = client.get(f"/fleet/{kiosk.id}").get_data(as_text=True)
    assert "已完成" in page and "shown" in page
    history = page.split('id="heartbeats"')[1]
    assert history.count("<tr>") == 3  # header + two heartbeats


def test_revoke_needs_a_reason_and_is_audited(client, db_session, world) -> None:
    web_session(client, world.users["admin"])
    kiosk = world.a.kiosk
    client.post(f"/fleet/{kiosk.id}/revoke", data={"csrf_token": web_csrf(client), "reason": " "})
    db_session.expire_all()
    assert db_session.get(Kiosk, kiosk.id).status == "active"
    client.post(f"/fleet/{kiosk.id}/revoke", data={"csrf_token": web_csrf(client), "reason": "设备被盗"})
    db_session.expire_all()
    assert db_session.get(Kiosk, kiosk.id).status == "revoked"
    record = db_session.scalars(select(AuditRecord).where(AuditRecord.action == "kiosk.revoke")).one()
    assert record.reason == "设备被盗" and record.before["status"] == "active"
    body = json.dumps({"device_time": datetime.now(UTC).isoformat(), "health": _health()}).encode()
    path = "/api/v1/kiosk/heartbeat"
    refused = client.post(
        path, data=body, headers=signed_headers(db_session.get(Kiosk, kiosk.id), "POST", path, body)
    )
    assert refused.status_code in (401, 403)


def test_enrolment_token_is_shown_once_and_stored_hashed(client, db_session, world) -> None:
    web_session(client, world.users["admin"])
    page = client.post("/fleet/enrol", data={"csrf_token": web_csrf(client), "centre_id": world.a.centre.id})
    token = __import__("re").search(r'id="enrol-token"[^>]*>([A-Za-z0-9_-]+)<', page.get_data(as_text=True))[
        1
    ]
    row = db_session.scalars(select(EnrolmentToken)).one()
    assert row.token_hash == token_hash(token) and row.centre_id == world.a.centre.id
    again = client.post(f"/fleet/{world.b.kiosk.id}/enrol", data={"csrf_token": web_csrf(client)})
    assert again.status_code == 200
    db_session.expire_all()
    assert {r.centre_id for r in db_session.scalars(select(EnrolmentToken))} == {
        world.a.centre.id,
        world.b.centre.id,
    }
    staff = client.application.test_client()
    web_session(staff, world.users["staff_a"])
    denied = staff.post("/fleet/enrol", data={"csrf_token": web_csrf(staff), "centre_id": world.a.centre.id})
    assert denied.status_code == 403
