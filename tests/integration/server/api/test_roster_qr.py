"""The heartbeat's roster delta carries the QR public keys and the revoked badge serials."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from protocol.messages import HeartbeatResponse
from server.models import QrSigningKey
from server.qr.badges import issue_badge, revoke_badge
from server.qr.keys import ensure_signing_key, rotate_key, sealing_key
from tests.conftest import TEST_KEYS
from tests.factories import TEST_CREDENTIAL_KEY

from .conftest import health

PATH = "/api/v1/kiosk/heartbeat"


@pytest.fixture
def seal() -> bytes:
    return sealing_key(TEST_KEYS)


def _roster(signed, kiosk, cursor=None):  # type: ignore[no-untyped-def]
    body = {"device_time": datetime.now(UTC).isoformat(), "health": health(), "roster_cursor": cursor}
    response = signed.post(kiosk, PATH, body)
    assert response.status_code == 200, response.get_data(as_text=True)
    return HeartbeatResponse.model_validate_json(response.get_data()).roster


def test_no_keys_yet_means_empty_sets(signed, world):
    roster = _roster(signed, world.kiosk)
    assert roster.qr_public_keys == {} and roster.revoked_badges == []


def test_keys_and_revoked_badges_ride_every_delta(signed, world, db_session, seal):
    key = ensure_signing_key(db_session, seal)
    badge = issue_badge(db_session, world.member, seal=seal, credential_key=TEST_CREDENTIAL_KEY)
    db_session.commit()

    first = _roster(signed, world.kiosk)
    assert first.full_resync
    assert first.qr_public_keys == {key.key_id: key.public_key}
    assert first.revoked_badges == []

    revoke_badge(db_session, badge.badge.serial, reason="lost")
    db_session.commit()
    incremental = _roster(signed, world.kiosk, first.cursor)
    assert not incremental.full_resync
    assert incremental.revoked_badges == [badge.badge.serial]
    assert incremental.qr_public_keys == {key.key_id: key.public_key}
    # the badge credential itself leaves the roster as a removal too
    assert badge.credential.value_hash in incremental.removals


def test_a_rotated_in_key_is_published_before_it_signs(signed, world, db_session, seal):
    old = ensure_signing_key(db_session, seal)
    new = rotate_key(db_session, seal, lead=timedelta(minutes=10))
    db_session.commit()
    roster = _roster(signed, world.kiosk)
    assert set(roster.qr_public_keys or {}) == {old.key_id, new.key_id}
    assert roster.qr_public_keys[new.key_id] == db_session.get(QrSigningKey, new.id).public_key
