"""Server key management, badges and the roster material, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from protocol import qrtoken
from protocol.hashing import credential_hash
from protocol.qrtoken import load_public_key_b64, mint_phone_token
from server.models import Credential, QrSigningKey, utcnow
from server.qr import badges, keys
from server.qr.roster import qr_roster_material
from tests.factories import TEST_CREDENTIAL_KEY, make_member


def _kiosk_keys(session, now=None):  # type: ignore[no-untyped-def]
    published, _ = qr_roster_material(session, now)
    return {kid: load_public_key_b64(b64) for kid, b64 in published.items()}


def test_first_key_is_created_once_and_its_private_half_is_sealed(db_session, seal):  # type: ignore[no-untyped-def]
    row = keys.ensure_signing_key(db_session, seal)
    assert keys.ensure_signing_key(db_session, seal).key_id == row.key_id
    assert len(db_session.scalars(select(QrSigningKey)).all()) == 1
    sign = keys.signer(db_session, seal)
    token = mint_phone_token(sign.private_key, sign.key_id, 5, qrtoken.step_at(utcnow()))
    assert qrtoken.verify_token(token, _kiosk_keys(db_session), utcnow()).member_ref == 5
    raw = sign.private_key.private_bytes_raw()
    assert raw not in bytes(row.private_key_enc)


def test_rotation_publishes_first_signs_later_and_retires_after_the_overlap(db_session, seal):  # type: ignore[no-untyped-def]
    t0 = utcnow()
    old = keys.ensure_signing_key(db_session, seal, t0)
    new = keys.rotate_key(db_session, seal, t0, lead=timedelta(minutes=10), overlap=timedelta(days=2))
    # Published at once, so kiosks learn it before it signs anything ...
    assert set(qr_roster_material(db_session, t0)[0]) == {old.key_id, new.key_id}
    assert keys.signing_key_row(db_session, t0 + timedelta(minutes=9)).key_id == old.key_id
    # ... signs after the lead ...
    assert keys.signing_key_row(db_session, t0 + timedelta(minutes=11)).key_id == new.key_id
    # ... and the old key stays published through the overlap, then drops out.
    assert old.key_id in qr_roster_material(db_session, t0 + timedelta(days=2))[0]
    assert set(qr_roster_material(db_session, t0 + timedelta(days=2, minutes=11))[0]) == {new.key_id}


def test_rotation_keeps_a_key_with_active_badges_and_retire_key_voids_them(db_session, seal):  # type: ignore[no-untyped-def]
    t0 = utcnow()
    member = make_member(db_session)
    old = keys.ensure_signing_key(db_session, seal, t0)
    issued = badges.issue_badge(db_session, member, seal=seal, credential_key=TEST_CREDENTIAL_KEY, now=t0)
    keys.rotate_key(db_session, seal, t0, lead=timedelta(0), overlap=timedelta(hours=1))
    later = t0 + timedelta(days=30)
    assert old.key_id in qr_roster_material(db_session, later)[0]
    assert qrtoken.verify_token(issued.token, _kiosk_keys(db_session, later), later).badge_serial
    keys.retire_key(db_session, old.key_id, later)
    with pytest.raises(qrtoken.UnknownKey):
        qrtoken.verify_token(issued.token, _kiosk_keys(db_session, later), later)
    with pytest.raises(badges.BadgeError):
        badges.badge_token(db_session, issued.badge.serial, seal=seal, now=later)


def test_no_signing_key_while_only_a_pending_one_exists(db_session, seal):  # type: ignore[no-untyped-def]
    t0 = utcnow()
    keys.create_key(db_session, seal, not_before=t0 + timedelta(hours=1))
    with pytest.raises(keys.NoSigningKey):
        keys.ensure_signing_key(db_session, seal, t0)


def test_badge_issue_binds_a_roster_credential_and_prints_a_verifiable_token(db_session, seal):  # type: ignore[no-untyped-def]
    member = make_member(db_session)
    keys.ensure_signing_key(db_session, seal)
    issued = badges.issue_badge(db_session, member, seal=seal, credential_key=TEST_CREDENTIAL_KEY)
    db_session.commit()
    token = qrtoken.verify_token(issued.token, _kiosk_keys(db_session), utcnow())
    assert token.kind is qrtoken.TokenKind.BADGE and token.member_ref == member.id
    assert token.badge_serial == issued.badge.serial and token.trust == "low"
    cred = db_session.get(Credential, issued.credential.id)
    assert cred.kind == "badge_qr" and cred.status == "active" and cred.label == issued.badge.serial
    # The kiosk hashes the verified token's credential_value and finds this very row.
    assert cred.value_hash == credential_hash(TEST_CREDENTIAL_KEY, "qr", token.credential_value)
    # A reprint is the same text (Ed25519 is deterministic).
    assert badges.badge_token(db_session, issued.badge.serial, seal=seal) == issued.token


def test_badge_revocation_reaches_the_revocation_list_once(db_session, seal):  # type: ignore[no-untyped-def]
    member = make_member(db_session)
    keys.ensure_signing_key(db_session, seal)
    keep = badges.issue_badge(db_session, member, seal=seal, credential_key=TEST_CREDENTIAL_KEY)
    lost = badges.issue_badge(db_session, member, seal=seal, credential_key=TEST_CREDENTIAL_KEY)
    assert qr_roster_material(db_session)[1] == []
    badges.revoke_badge(db_session, lost.badge.serial, reason="lost / 遗失")
    db_session.commit()
    published, revoked = qr_roster_material(db_session)
    assert revoked == [lost.badge.serial]
    cred = db_session.get(Credential, lost.credential.id)
    assert cred.status == "revoked" and cred.revoked_at is not None and cred.revoked_reason == "lost / 遗失"
    kiosk_keys = {k: load_public_key_b64(v) for k, v in published.items()}
    with pytest.raises(qrtoken.RevokedBadge):
        qrtoken.verify_token(lost.token, kiosk_keys, utcnow(), revoked_badges=revoked)
    assert qrtoken.verify_token(keep.token, kiosk_keys, utcnow(), revoked_badges=revoked)
    with pytest.raises(badges.BadgeError):
        badges.revoke_badge(db_session, lost.badge.serial, reason="again")
    with pytest.raises(badges.BadgeError):
        badges.revoke_badge(db_session, "NOSUCHSERIAL", reason="x")


def test_roster_material_is_empty_before_any_key(db_session):  # type: ignore[no-untyped-def]
    assert qr_roster_material(db_session) == ({}, [])
