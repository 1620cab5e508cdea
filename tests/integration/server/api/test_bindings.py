"""``POST /api/v1/kiosk/bindings``: staff card bindings from a kiosk become credentials, once, in scope."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from kiosk.outbox import Outbox
from protocol.hashing import credential_hash
from protocol.ids import uuid7
from protocol.messages import BindingAck
from protocol.signing import sign_request
from server.config import key_bytes
from server.models import AuditRecord, Community, Credential, KioskBinding, Member
from tests.factories import TEST_CREDENTIAL_KEY, make_community, make_member, make_unit

from .conftest import health

PATH = "/api/v1/kiosk/bindings"


def wire_binding(member_id: int, uid: str | None = None, *, kind: str = "card", **kw) -> dict:  # type: ignore[no-untyped-def]
    """A binding in the kiosk's wire form (``StoredBinding.to_wire()``), hashed with the test key."""
    uid = uid or secrets.token_hex(7).upper()
    return {
        "binding_id": str(uuid7()),
        "credential_kind": kind,
        "credential_hash": credential_hash(TEST_CREDENTIAL_KEY, kind, uid),
        "member_id": member_id,
        "staff_ref": "staff-card:…9F3A",
        "device_time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "device_tz": "Asia/Shanghai",
        **kw,
    }


def post(signed, kiosk, bindings):  # type: ignore[no-untyped-def]
    response = signed.post(kiosk, PATH, {"bindings": bindings})
    assert response.status_code == 200, response.get_data(as_text=True)
    return BindingAck.model_validate_json(response.get_data())


def _audits(db_session, binding_id: str) -> list[AuditRecord]:  # type: ignore[no-untyped-def]
    db_session.expire_all()
    return list(
        db_session.scalars(
            select(AuditRecord).where(
                AuditRecord.object_type == "kiosk_binding", AuditRecord.object_id == binding_id
            )
        )
    )


def test_binding_from_the_kiosk_outbox_makes_a_card_the_server_recognises(
    app, client, db_session, world, tmp_path
):
    """The whole contract: enrol, hash the UID with the key the enrolment handed out, store the binding in
    the real kiosk outbox, upload its wire form; the server's credential is the hash *it* would compute,
    and the card reaches the kiosk roster."""
    from server.api.enrolment import create_enrol_token
    from server.models import ServiceCentre

    centre = db_session.get(ServiceCentre, world.centre.id)
    token, _ = create_enrol_token(db_session, centre.code, ttl=timedelta(hours=1))
    db_session.commit()
    enrolled = client.post(
        "/api/v1/kiosk/enrol",
        json={"token": token, "device_name": "kiosk A", "software_version": "0.1.0"},
    ).get_json()
    kiosk_key = bytes.fromhex(enrolled["credential_key"])
    kiosk_id, secret = enrolled["kiosk_id"], bytes.fromhex(enrolled["kiosk_secret"])

    member = make_member(db_session, community=db_session.get(Community, world.centre.community_id))
    db_session.commit()
    uid = "04A1B2C3D4E5F6"
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    stored = outbox.append_binding(
        credential_kind="card",
        credential_hash=credential_hash(kiosk_key, "card", uid),
        member_id=member.id,
        device_time=datetime.now(UTC),
        device_tz="Asia/Shanghai",
        staff_ref="pin:0",
    )
    raw = json.dumps({"bindings": [b.to_wire() for b in outbox.pending_bindings()]}).encode()
    outbox.close()
    headers = {**sign_request(kiosk_id, secret, "POST", PATH, raw), "Content-Type": "application/json"}
    response = client.post(PATH, data=raw, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {"accepted": [stored.binding_id], "duplicates": [], "rejected": []}

    (cred,) = db_session.scalars(select(Credential).where(Credential.member_id == member.id)).all()
    server_hash = credential_hash(key_bytes(app.config, "CREDENTIAL_KEY"), "card", uid)
    assert cred.kind == "card" and cred.status == "active" and cred.value_hash == server_hash

    beat = {"device_time": datetime.now(UTC).isoformat(), "health": health(), "roster_cursor": None}
    raw = json.dumps(beat).encode()
    headers = {
        **sign_request(kiosk_id, secret, "POST", "/api/v1/kiosk/heartbeat", raw),
        "Content-Type": "application/json",
    }
    roster = client.post("/api/v1/kiosk/heartbeat", data=raw, headers=headers).get_json()["roster"]
    assert {e["credential_hash"]: e["member_id"] for e in roster["upserts"]}[server_hash] == member.id

    (audit,) = _audits(db_session, stored.binding_id)
    assert audit.action == "kiosk_card_bound"
    assert audit.after["kiosk"] == kiosk_id and audit.after["staff_ref"] == "pin:0"
    assert audit.after["credential_id"] == cred.id


def test_resending_a_binding_is_a_duplicate_and_changes_nothing(signed, world, db_session):
    member = make_member(db_session, community=db_session.get(Community, world.centre.community_id))
    db_session.commit()
    binding = wire_binding(member.id)
    assert [str(b) for b in post(signed, world.kiosk, [binding]).accepted] == [binding["binding_id"]]
    again = post(signed, world.kiosk, [binding])
    assert [str(b) for b in again.duplicates] == [binding["binding_id"]]
    assert again.accepted == [] and again.rejected == []
    db_session.expire_all()
    count = db_session.scalar(
        select(func.count()).select_from(Credential).where(Credential.member_id == member.id)
    )
    assert count == 1
    assert len(_audits(db_session, binding["binding_id"])) == 1


def test_a_card_active_for_another_member_is_refused_with_a_reason(signed, world, db_session):
    other = make_member(db_session, community=db_session.get(Community, world.centre.community_id))
    db_session.commit()
    binding = wire_binding(other.id, world.card_uid)  # world.card belongs to world.member
    ack = post(signed, world.kiosk, [binding])
    assert ack.accepted == [] and ack.duplicates == []
    (refusal,) = ack.rejected
    assert str(refusal.id) == binding["binding_id"] and refusal.code == "card_bound_to_other"
    assert "another member" in refusal.message and "其他党员" in refusal.message_zh
    db_session.expire_all()
    assert db_session.scalars(select(Credential).where(Credential.member_id == other.id)).all() == []
    assert db_session.get(Credential, world.card.id).member_id == world.member.id
    (audit,) = _audits(db_session, binding["binding_id"])
    assert audit.action == "kiosk_card_binding_rejected" and audit.after["code"] == "card_bound_to_other"

    # re-sent: the same refusal, no second audit record
    again = post(signed, world.kiosk, [binding])
    assert [r.code for r in again.rejected] == ["card_bound_to_other"]
    assert len(_audits(db_session, binding["binding_id"])) == 1


def test_scope_is_the_kiosk_community_and_its_paired_units(signed, world, db_session):
    community = db_session.get(Community, world.centre.community_id)
    elsewhere = make_community(db_session)
    paired_unit = make_unit(db_session, community)  # paired with the kiosk's community
    paired = make_member(db_session, unit=paired_unit, community=elsewhere)
    stranger = make_member(db_session, community=elsewhere)
    gone = make_member(db_session, community=community, status="inactive")
    db_session.commit()
    ok, far, inactive, missing = (
        wire_binding(paired.id),
        wire_binding(stranger.id),
        wire_binding(gone.id),
        wire_binding(10**12),
    )
    ack = post(signed, world.kiosk, [ok, far, inactive, missing])
    assert [str(b) for b in ack.accepted] == [ok["binding_id"]]
    codes = {str(r.id): r.code for r in ack.rejected}
    assert codes == {
        far["binding_id"]: "member_out_of_scope",
        inactive["binding_id"]: "member_inactive",
        missing["binding_id"]: "unknown_member",
    }
    db_session.expire_all()
    assert db_session.scalars(select(Credential).where(Credential.member_id == stranger.id)).all() == []
    assert db_session.scalar(select(func.count()).select_from(KioskBinding)) == 4


@pytest.mark.parametrize("kind", ["qr", "pin"])
def test_only_cards_and_id_cards_can_be_bound(signed, world, kind):
    binding = wire_binding(world.member.id, credential_kind=kind, credential_hash=secrets.token_hex(32))
    ack = post(signed, world.kiosk, [binding])
    assert [r.code for r in ack.rejected] == ["unsupported_kind"]


def test_id_card_and_an_already_bound_card_are_accepted(signed, world, db_session):
    id_card = wire_binding(world.member.id, "110101199001011234", kind="id_card")
    same = wire_binding(world.member.id, world.card_uid)  # already this member's card
    ack = post(signed, world.kiosk, [id_card, same])
    assert {str(b) for b in ack.accepted} == {id_card["binding_id"], same["binding_id"]}
    db_session.expire_all()
    creds = db_session.scalars(select(Credential).where(Credential.member_id == world.member.id)).all()
    assert sorted(c.kind for c in creds) == ["card", "id_card"]  # no second card credential
    row = db_session.scalars(select(KioskBinding).where(KioskBinding.code == "already_bound")).one()
    assert row.credential_id == world.card.id


def test_a_revoked_card_can_be_bound_again(signed, world, db_session):
    card = db_session.get(Credential, world.card.id)
    card.status, card.revoked_at = "revoked", datetime.now(UTC)
    other = make_member(db_session, community=db_session.get(Community, world.centre.community_id))
    db_session.commit()
    ack = post(signed, world.kiosk, [wire_binding(other.id, world.card_uid)])
    assert len(ack.accepted) == 1
    db_session.expire_all()
    (new,) = db_session.scalars(select(Credential).where(Credential.member_id == other.id)).all()
    assert new.value_hash == world.card.value_hash and new.status == "active"


def test_two_bindings_of_one_card_in_one_batch_keep_the_first(signed, world, db_session):
    community = db_session.get(Community, world.centre.community_id)
    a, b = make_member(db_session, community=community), make_member(db_session, community=community)
    db_session.commit()
    first, second = wire_binding(a.id, "AABBCCDD"), wire_binding(b.id, "AABBCCDD")
    ack = post(signed, world.kiosk, [first, second])
    assert [str(x) for x in ack.accepted] == [first["binding_id"]]
    assert [(str(r.id), r.code) for r in ack.rejected] == [(second["binding_id"], "card_bound_to_other")]


def test_bad_requests_store_nothing(signed, client, world, db_session):
    bad_hash = wire_binding(world.member.id, credential_hash="XYZ")
    response = signed.post(world.kiosk, PATH, {"bindings": [bad_hash]})
    assert response.status_code == 422 and response.get_json()["code"] == "validation_error"
    assert signed.post(world.kiosk, PATH, {"bindings": []}).status_code == 422
    unsigned = client.post(PATH, json={"bindings": [wire_binding(world.member.id)]})
    assert unsigned.status_code == 401
    db_session.expire_all()
    assert db_session.scalar(select(func.count()).select_from(KioskBinding)) == 0
    assert db_session.scalar(select(func.count()).select_from(Member)) == 1
