"""Signed QR codes through the real kiosk path: simulated camera read → KioskService → QrVerifier →
check-in decision → outbox → outcome. (The real camera driver is exercised by
``tests/integration/qr/test_phone_to_camera_browser.py``.)"""

from __future__ import annotations

import json

import pytest

from kiosk.outcomes import OutcomeKind
from kiosk.service import KioskService
from protocol import RosterDelta, RosterEntry, TapEventIn, credential_hash, qrtoken, verify_chain
from protocol.qrtoken import generate_signing_key, mint_badge_token, mint_phone_token, public_key_b64

from .conftest import KEY, make_config
from .test_service import tap

KID = "K1"


@pytest.fixture(scope="module")
def signing_key():  # type: ignore[no-untyped-def]
    return generate_signing_key()


@pytest.fixture
def svc(state_dir, clock, signing_key):  # type: ignore[no-untyped-def]
    service = KioskService(make_config(state_dir), clock=clock, start_sync=False)
    service.qr.apply_qr_material({KID: public_key_b64(signing_key)}, ["REVOKED7"])
    service.roster.apply_delta(
        RosterDelta(
            cursor="c3",
            upserts=[
                RosterEntry(
                    credential_hash=credential_hash(KEY, "qr", "badge:B1"),
                    credential_kind="qr",
                    member_id=2,
                    masked_name="李*",
                    unit_name="街道办事处",
                )
            ],
        )
    )
    service.start()
    yield service
    service.stop()


def step_of(clock) -> int:  # type: ignore[no-untyped-def]
    return qrtoken.step_at(clock().timestamp())


def test_phone_code_checks_in_with_masked_name_and_replay_is_recorded_as_rejected(svc, clock, signing_key):  # type: ignore[no-untyped-def]
    code = mint_phone_token(signing_key, KID, 1, step_of(clock))
    first = tap(svc, code, "qr")
    assert (first.kind, first.colour, first.masked_name, first.unit_name) == (
        OutcomeKind.IN,
        "green",
        "张*明",
        "区税务局",
    )
    assert first.recorded and first.credential_kind == "qr"

    again = tap(svc, code, "qr")
    assert again.kind is OutcomeKind.QR_REFUSED and again.colour == "red"
    assert again.recorded and again.detail == "qr_replayed" and again.masked_name == "张*明"
    assert "已使用" in again.message_zh and "already been used" in again.message_en

    [t_in, t_replay] = svc.outbox.all_taps()
    phone_hash = credential_hash(KEY, "qr", "phone:1")
    assert (t_in.direction, t_in.member_id, t_in.trust, t_in.qr_step, t_in.credential_hash) == (
        "in",
        1,
        "high",
        step_of(clock),
        phone_hash,
    )
    assert (t_replay.direction, t_replay.member_id, t_replay.reason) == ("rejected", 1, "qr_replayed")

    # The refusal changed nothing: the member's next fresh code, past the debounce, checks out.
    clock.advance(minutes=5)
    out = tap(svc, mint_phone_token(signing_key, KID, 1, step_of(clock)), "qr")
    assert out.kind is OutcomeKind.OUT and out.duration_s == 300


def test_expired_code_is_recorded_as_rejected_for_staff(svc, clock, signing_key):  # type: ignore[no-untyped-def]
    old = mint_phone_token(signing_key, KID, 1, step_of(clock) - 3)
    outcome = tap(svc, old, "qr")
    assert outcome.kind is OutcomeKind.QR_REFUSED and outcome.detail == "qr_expired"
    assert "过期" in outcome.message_zh
    [row] = svc.outbox.all_taps()
    assert (row.direction, row.member_id, row.reason, row.trust) == ("rejected", 1, "qr_expired", "high")
    assert svc.members.open_count() == 0


def test_forged_and_garbage_codes_record_nothing_and_count_in_health(svc, clock, signing_key):  # type: ignore[no-untyped-def]
    genuine = mint_phone_token(signing_key, KID, 1, step_of(clock))
    i = len(genuine) - 20
    forged = genuine[:i] + ("A" if genuine[i] != "A" else "B") + genuine[i + 1 :]
    other_key = mint_phone_token(generate_signing_key(), KID, 1, step_of(clock))
    outcomes = [tap(svc, text, "qr") for text in (forged, other_key, "BD1:NOT-A-TOKEN")]
    assert [o.kind for o in outcomes] == [OutcomeKind.INVALID] * 3
    assert [o.detail for o in outcomes] == ["qr_forged", "qr_forged", "qr_malformed"]
    assert all(not o.recorded and o.member_id is None for o in outcomes)
    assert "不是" in outcomes[0].message_zh or "无效" in outcomes[0].message_zh
    assert svc.outbox.all_taps() == []
    qr_health = svc.health()["qr"]
    assert qr_health["unauthenticated"] == 3
    assert qr_health["scans"] == {"qr_forged": 2, "qr_malformed": 1}
    assert qr_health["key_ids"] == [KID]


def test_badge_checks_in_with_low_trust_and_revoked_badge_is_rejected(svc, signing_key):  # type: ignore[no-untyped-def]
    badge = tap(svc, mint_badge_token(signing_key, KID, 2, "B1"), "qr")
    assert (badge.kind, badge.masked_name) == (OutcomeKind.IN, "李*")
    revoked = tap(svc, mint_badge_token(signing_key, KID, 3, "REVOKED7"), "qr")
    assert revoked.kind is OutcomeKind.QR_REFUSED and revoked.detail == "qr_badge_revoked"
    rows = svc.outbox.all_taps()
    assert [(t.direction, t.member_id, t.trust, t.badge_serial, t.reason) for t in rows] == [
        ("in", 2, "low", "B1", "shown:in"),  # what the screen said, for the server to compare
        ("rejected", 3, "low", "REVOKED7", "qr_badge_revoked"),
    ]
    # Badges are not single use: the same badge again is a debounced duplicate, not a replay.
    assert tap(svc, mint_badge_token(signing_key, KID, 2, "B1"), "qr").kind is OutcomeKind.DUPLICATE


def test_phone_code_of_a_member_outside_the_roster_is_unknown_but_names_the_member(svc, clock, signing_key):  # type: ignore[no-untyped-def]
    outcome = tap(svc, mint_phone_token(signing_key, KID, 777, step_of(clock)), "qr")
    assert outcome.kind is OutcomeKind.UNKNOWN and outcome.recorded
    [row] = svc.outbox.all_taps()
    assert (row.direction, row.member_id, row.reason) == ("unknown", 777, "not_in_roster")


def test_verification_uses_the_clock_corrected_by_the_measured_offset(svc, clock, signing_key):  # type: ignore[no-untyped-def]
    true_step = step_of(clock) + 20  # the server is 10 minutes ahead of this kiosk's wall clock
    code = mint_phone_token(signing_key, KID, 1, true_step)
    assert tap(svc, code, "qr").detail == "qr_from_future"
    svc.set_clock_offset(20 * qrtoken.STEP_SECONDS * 1000)
    code = mint_phone_token(signing_key, KID, 1, true_step + 1)
    assert tap(svc, code, "qr").kind is OutcomeKind.IN


def test_qr_events_are_valid_on_the_wire_and_chained(svc, clock, signing_key):  # type: ignore[no-untyped-def]
    tap(svc, mint_phone_token(signing_key, KID, 1, step_of(clock)), "qr")
    tap(svc, mint_phone_token(signing_key, KID, 1, step_of(clock)), "qr")  # replay → rejected
    tap(svc, mint_badge_token(signing_key, KID, 2, "B1"), "qr")
    models = [TapEventIn.model_validate_json(json.dumps(t.to_wire())) for t in svc.outbox.pending()]
    assert [m.direction.value for m in models] == ["in", "rejected", "in"]
    assert models[2].badge_serial == "B1" and models[0].qr_step is not None
    assert verify_chain(models).ok


def test_used_codes_survive_a_restart(state_dir, clock, signing_key):  # type: ignore[no-untyped-def]
    code = mint_phone_token(signing_key, KID, 1, step_of(clock))
    first = KioskService(make_config(state_dir), clock=clock, start_sync=False)
    first.qr.apply_qr_material({KID: public_key_b64(signing_key)}, [])
    first.start()
    try:
        assert tap(first, code, "qr").kind is OutcomeKind.IN
    finally:
        first.stop()
    clock.advance(seconds=10)
    second = KioskService(make_config(state_dir), clock=clock, start_sync=False)
    second.start()
    try:
        assert second.qr.key_ids() == [KID]  # the keys came back from the state dir
        assert tap(second, code, "qr").detail == "qr_replayed"
    finally:
        second.stop()
