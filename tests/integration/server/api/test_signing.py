"""Signed requests: every kind of forgery is refused with its JSON error, and nothing is stored."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from sqlalchemy import func, select

from protocol.version import PROTOCOL_VERSION
from server.models import KioskHeartbeat, UsedNonce
from tests.factories import make_kiosk

from .conftest import health

PATH = "/api/v1/kiosk/heartbeat"


def _body() -> dict:
    return {"device_time": datetime.now(UTC).isoformat(), "health": health()}


def _count(db_session, model) -> int:  # type: ignore[no-untyped-def]
    db_session.expire_all()
    return db_session.scalar(select(func.count()).select_from(model))


def _assert_error(response, status: int, code: str) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert body["code"] == code
    assert body["message"] and body["message_zh"]
    return body


def test_signed_heartbeat_is_accepted_and_stores_its_nonce(signed, world, db_session):
    response = signed.post(world.kiosk, PATH, _body())
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["X-Baodao-Protocol"] == str(PROTOCOL_VERSION)
    assert _count(db_session, KioskHeartbeat) == 1
    assert _count(db_session, UsedNonce) == 1


def test_bad_signature_is_refused_and_nothing_stored(client, world, db_session):
    import json

    from tests.factories import signed_headers

    raw = json.dumps(_body()).encode()
    headers = signed_headers(world.kiosk, "POST", PATH, raw)
    response = client.post(PATH, data=raw.replace(b"0.1.0", b"6.6.6"), headers=headers)  # body altered
    _assert_error(response, 401, "bad_signature")
    assert _count(db_session, KioskHeartbeat) == 0
    assert _count(db_session, UsedNonce) == 0


def test_clock_skew_is_answered_with_server_time(signed, world, db_session):
    response = signed.post(world.kiosk, PATH, _body(), timestamp=int(time.time()) - 6 * 60)
    body = _assert_error(response, 401, "clock_skew")
    server_time = datetime.fromisoformat(body["server_time"].replace("Z", "+00:00"))
    assert abs((server_time - datetime.now(UTC)).total_seconds()) < 60
    assert _count(db_session, KioskHeartbeat) == 0


def test_skew_inside_the_window_is_accepted(signed, world):
    response = signed.post(world.kiosk, PATH, _body(), timestamp=int(time.time()) - 4 * 60)
    assert response.status_code == 200


def test_replayed_nonce_is_refused(signed, world, db_session):
    nonce = "ab" * 16
    assert signed.post(world.kiosk, PATH, _body(), nonce=nonce).status_code == 200
    _assert_error(signed.post(world.kiosk, PATH, _body(), nonce=nonce), 409, "replayed_nonce")
    assert _count(db_session, KioskHeartbeat) == 1


def test_revoked_kiosk_is_refused(signed, world, db_session):
    revoked = make_kiosk(db_session, world.centre, status="revoked", revoked_at=datetime.now(UTC))
    db_session.commit()
    _assert_error(signed.post(revoked, PATH, _body()), 403, "revoked_kiosk")
    assert _count(db_session, KioskHeartbeat) == 0
    assert _count(db_session, UsedNonce) == 0


def test_unknown_kiosk_is_refused(signed, world, db_session):
    from server.models import Kiosk

    ghost = Kiosk(kiosk_uid="ghost-kiosk", secret=world.kiosk.secret)
    _assert_error(signed.post(ghost, PATH, _body()), 401, "unknown_kiosk")
    assert _count(db_session, KioskHeartbeat) == 0


def test_missing_signature_headers_are_refused(client, world):
    response = client.post(PATH, json=_body())
    _assert_error(response, 401, "malformed_signature_headers")


def test_unknown_api_path_and_method_answer_json(client, world):
    _assert_error(client.get("/api/v1/kiosk/nothing-here"), 404, "not_found")
    _assert_error(client.get(PATH), 405, "method_not_allowed")
