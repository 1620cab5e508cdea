"""Enrolment tokens: one-time, expiring, useless when wrong; the CLI makes a working one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from click.testing import CliRunner
from sqlalchemy import func, select

from server.api.enrolment import create_enrol_token
from server.models import EnrolmentToken, Kiosk

from .conftest import health

PATH = "/api/v1/kiosk/enrol"


def _request(token: str) -> dict:
    return {"token": token, "device_name": "前台终端", "software_version": "0.1.0"}


def _kiosks(db_session) -> int:  # type: ignore[no-untyped-def]
    db_session.expire_all()
    return db_session.scalar(select(func.count()).select_from(Kiosk))


def test_token_enrols_once_and_the_secret_signs(client, signed, world, db_session):
    token, _ = create_enrol_token(db_session, world.centre.code, ttl=timedelta(hours=1))
    db_session.commit()
    before = _kiosks(db_session)
    response = client.post(PATH, json=_request(token))
    assert response.status_code == 201, response.get_data(as_text=True)
    body = response.get_json()
    assert body["centre"]["centre_id"] == world.centre.id
    assert bytes.fromhex(body["credential_key"]) == b"test-credential-key-0123456789abcdef"
    kiosk = db_session.scalars(select(Kiosk).where(Kiosk.kiosk_uid == body["kiosk_id"])).one()
    assert kiosk.secret == body["kiosk_secret"] and kiosk.centre_id == world.centre.id
    beat = signed.post(
        kiosk, "/api/v1/kiosk/heartbeat", {"device_time": datetime.now(UTC).isoformat(), "health": health()}
    )
    assert beat.status_code == 200
    again = client.post(PATH, json=_request(token))
    assert again.status_code == 409 and again.get_json()["code"] == "enrol_token_used"
    assert _kiosks(db_session) == before + 1


def test_expired_token_is_refused(client, world, db_session):
    token, row = create_enrol_token(db_session, world.centre.code, ttl=timedelta(hours=1))
    row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    db_session.commit()
    before = _kiosks(db_session)
    response = client.post(PATH, json=_request(token))
    assert response.status_code == 410 and response.get_json()["code"] == "enrol_token_expired"
    assert response.get_json()["message_zh"]
    assert _kiosks(db_session) == before


def test_wrong_or_malformed_token_is_refused(client, world, db_session):
    before = _kiosks(db_session)
    wrong = client.post(PATH, json=_request("A" * 32))
    assert wrong.status_code == 401 and wrong.get_json()["code"] == "invalid_enrol_token"
    malformed = client.post(PATH, json=_request("short"))
    assert malformed.status_code == 422
    assert _kiosks(db_session) == before


def test_cli_makes_a_usable_token(app_config, client, world, db_session, monkeypatch):
    from server.cli import admin_group

    for key, value in app_config.items():
        if isinstance(value, str):
            monkeypatch.setenv(f"BAODAO_{key}", value)
    result = CliRunner().invoke(
        admin_group, ["enrol-token", "--centre", world.centre.code, "--ttl-hours", "2"]
    )
    assert result.exit_code == 0, result.output
    token = result.stdout.strip().splitlines()[0]
    db_session.expire_all()
    row = db_session.scalars(select(EnrolmentToken)).one()
    assert timedelta(hours=1.9) < row.expires_at - datetime.now(UTC) <= timedelta(hours=2)
    assert client.post(PATH, json=_request(token)).status_code == 201
    missing = CliRunner().invoke(admin_group, ["enrol-token", "--centre", "NO-SUCH"])
    assert missing.exit_code == 2 and "服务中心" in missing.output


def test_a_protocol_1_kiosk_still_enrols_and_a_future_one_is_told_why_not(client, world, db_session):
    """The server speaks protocols 1 and 2 (2 adds heartbeat presence); a kiosk from the future is refused."""
    old, _ = create_enrol_token(db_session, world.centre.code, ttl=timedelta(hours=1))
    future, _ = create_enrol_token(db_session, world.centre.code, ttl=timedelta(hours=1))
    db_session.commit()
    response = client.post(PATH, json={**_request(old), "protocol_version": 1})
    assert response.status_code == 201, response.get_data(as_text=True)
    refused = client.post(PATH, json={**_request(future), "protocol_version": 3})
    assert refused.status_code == 400 and refused.get_json()["code"] == "unsupported_protocol"
    assert "1 至 2" in refused.get_data(as_text=True)
