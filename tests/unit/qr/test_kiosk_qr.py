"""kiosk/qr.py end to end: every rejection is a clear (zh/en) answer, nothing raises, state survives."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kiosk.i18n import has_message, texts
from kiosk.qr import QrVerifier, apply_qr_material, is_signed_token
from protocol import qrtoken
from protocol.qrtoken import (
    STEP_SECONDS,
    generate_signing_key,
    mint_badge_token,
    mint_phone_token,
    public_key_b64,
)

NOW = 1_800_000_000.0
STEP = qrtoken.step_at(NOW)
MEMBER = 4242


@pytest.fixture(scope="module")
def key():  # type: ignore[no-untyped-def]
    return generate_signing_key()


@pytest.fixture
def verifier(tmp_path, key):  # type: ignore[no-untyped-def]
    v = QrVerifier.in_state_dir(tmp_path / "kiosk-a", clock=lambda: NOW)
    v.apply_qr_material({"K1": public_key_b64(key)}, ["REVOKED1"])
    yield v
    v.close()


def phone(key, step: int = STEP, kid: str = "K1", member: int = MEMBER) -> str:  # type: ignore[no-untyped-def]
    return mint_phone_token(key, kid, member, step)


def assert_refused(check, code: str) -> None:  # type: ignore[no-untyped-def]
    assert not check.accepted
    assert check.code == code
    assert check.message_zh and check.message_en
    assert check.message_zh != check.message_en


def test_current_phone_code_is_accepted_with_high_trust_and_step(verifier, key):  # type: ignore[no-untyped-def]
    check = verifier.verify_scanned(phone(key))
    assert check.accepted and check.code == "ok"
    assert check.member_id == MEMBER
    assert check.qr_step == STEP
    assert check.trust == "high"
    assert check.credential_value == f"phone:{MEMBER}"
    assert check.draft_fields() == {"trust": "high", "qr_step": STEP, "badge_serial": None, "reason": None}


@pytest.mark.parametrize("offset", [-1, 1])
def test_neighbouring_steps_are_accepted(verifier, key, offset):  # type: ignore[no-untyped-def]
    assert verifier.verify_scanned(phone(key, STEP + offset)).accepted


def test_forged_signature(verifier, key):  # type: ignore[no-untyped-def]
    text = phone(key)
    i = len(text) - 20  # inside the signature
    forged = text[:i] + ("A" if text[i] != "A" else "B") + text[i + 1 :]
    check = verifier.verify_scanned(forged)
    assert_refused(check, "qr_forged")
    assert not check.genuine and check.credential_value is None


def test_code_from_another_private_key_under_a_known_key_id_is_forged(verifier):  # type: ignore[no-untyped-def]
    assert_refused(verifier.verify_scanned(phone(generate_signing_key())), "qr_forged")


def test_wrong_key_id(verifier, key):  # type: ignore[no-untyped-def]
    check = verifier.verify_scanned(phone(key, kid="K9"))
    assert_refused(check, "qr_unknown_key")
    assert check.member_id is None


def test_expired_step_is_refused_but_attributed(verifier, key):  # type: ignore[no-untyped-def]
    check = verifier.verify_scanned(phone(key, STEP - 2))
    assert_refused(check, "qr_expired")
    assert check.genuine and check.member_id == MEMBER and check.qr_step == STEP - 2
    assert check.draft_fields()["reason"] == "qr_expired"


def test_future_step_beyond_skew(verifier, key):  # type: ignore[no-untyped-def]
    check = verifier.verify_scanned(phone(key, STEP + 2))
    assert_refused(check, "qr_from_future")
    assert check.member_id == MEMBER


def test_truncated(verifier, key):  # type: ignore[no-untyped-def]
    text = phone(key)
    for cut in (4, 20, len(text) // 2, len(text) - 8):
        assert_refused(verifier.verify_scanned(text[:cut]), "qr_malformed")


def test_oversized(verifier, key):  # type: ignore[no-untyped-def]
    assert_refused(verifier.verify_scanned(phone(key) + "A" * 400), "qr_malformed")
    assert_refused(verifier.verify_scanned(b"BD1:" + b"A" * 5000), "qr_malformed")


def test_non_utf8(verifier):  # type: ignore[no-untyped-def]
    assert_refused(verifier.verify_scanned(b"BD1:\xff\xfe\xc3\x28"), "qr_malformed")


def test_not_a_baodao_code(verifier):  # type: ignore[no-untyped-def]
    assert_refused(verifier.verify_scanned("https://example.com/"), "qr_malformed")
    assert not is_signed_token("https://example.com/")
    assert is_signed_token("bd1:ABC") and is_signed_token(b"BD1:xyz")


def test_badge_is_accepted_repeatedly_with_low_trust(verifier, key):  # type: ignore[no-untyped-def]
    text = mint_badge_token(key, "K1", MEMBER, "AB12CD")
    for _ in range(3):  # a badge is tapped every day: not single-use
        check = verifier.verify_scanned(text)
        assert check.accepted
        assert check.trust == "low"
        assert check.badge_serial == "AB12CD" and check.qr_step is None
        assert check.credential_value == "badge:AB12CD"


def test_revoked_badge(verifier, key):  # type: ignore[no-untyped-def]
    check = verifier.verify_scanned(mint_badge_token(key, "K1", MEMBER, "REVOKED1"))
    assert_refused(check, "qr_badge_revoked")
    assert check.member_id == MEMBER and check.badge_serial == "REVOKED1"


def test_replay_at_the_same_kiosk_is_refused_but_another_kiosk_accepts(verifier, key, tmp_path):  # type: ignore[no-untyped-def]
    text = phone(key)
    assert verifier.verify_scanned(text).accepted
    again = verifier.verify_scanned(text)
    assert_refused(again, "qr_replayed")
    assert again.member_id == MEMBER and again.fingerprint == qrtoken.token_fingerprint(again.token)
    assert "已使用" in again.message_zh and "already been used" in again.message_en
    # The next step's code of the same member is a new code.
    assert verifier.verify_scanned(phone(key, STEP + 1)).accepted
    # Kiosk B knows nothing of kiosk A's uses: cross-kiosk replay is the server's job.
    other = QrVerifier.in_state_dir(tmp_path / "kiosk-b", clock=lambda: NOW)
    other.apply_qr_material({"K1": public_key_b64(key)}, [])
    assert other.verify_scanned(text).accepted
    other.close()


def test_used_codes_survive_a_restart_and_old_ones_are_pruned(tmp_path, key):  # type: ignore[no-untyped-def]
    now = [NOW]
    v = QrVerifier.in_state_dir(tmp_path, clock=lambda: now[0])
    v.apply_qr_material({"K1": public_key_b64(key)}, None)
    text = phone(key)
    assert v.verify_scanned(text).accepted
    v.close()
    v = QrVerifier.in_state_dir(tmp_path, clock=lambda: now[0])
    assert v.key_ids() == ["K1"]
    assert v.verify_scanned(text).code == "qr_replayed"
    now[0] = NOW + 10 * STEP_SECONDS
    assert v.verify_scanned(phone(key, qrtoken.step_at(now[0]))).accepted
    assert v.used_count() == 1  # the old fingerprint was pruned
    v.close()


def test_material_none_means_unchanged_and_a_bad_key_is_skipped(tmp_path, key):  # type: ignore[no-untyped-def]
    apply_qr_material(tmp_path, {"K1": public_key_b64(key), "BAD": "not-a-key"}, ["X1"])
    v = QrVerifier.in_state_dir(tmp_path, clock=lambda: NOW)
    assert v.key_ids() == ["K1"]
    v.apply_qr_material(None, [])  # revocations replaced, keys kept
    assert v.verify_scanned(mint_badge_token(key, "K1", 1, "X1")).accepted
    v.apply_qr_material({}, None)  # every key retired
    assert v.verify_scanned(phone(key)).code == "qr_unknown_key"
    v.close()


def test_a_running_verifier_sees_material_applied_by_another_process(tmp_path, key):  # type: ignore[no-untyped-def]
    v = QrVerifier.in_state_dir(tmp_path, clock=lambda: NOW)
    assert v.verify_scanned(phone(key)).code == "qr_unknown_key"
    apply_qr_material(tmp_path, {"K1": public_key_b64(key)}, [])
    assert v.verify_scanned(phone(key)).accepted
    v.close()


def test_every_code_has_both_languages():  # type: ignore[no-untyped-def]
    codes = {c.code for c in (qrtoken.Malformed, qrtoken.UnknownKey, qrtoken.ForgedSignature, qrtoken.Expired,
                              qrtoken.FromFuture, qrtoken.RevokedBadge, qrtoken.Replayed)}  # fmt: skip
    assert all(has_message(f"qr.{code}") for code in codes | {"ok"})
    assert all(zh and en and zh != en for zh, en in (texts(f"qr.{code}") for code in codes))


@pytest.fixture(scope="module")
def fuzz_verifier(tmp_path_factory, key):  # type: ignore[no-untyped-def]
    v = QrVerifier.in_state_dir(tmp_path_factory.mktemp("fuzz"), clock=lambda: NOW)
    v.apply_qr_material({"K1": public_key_b64(key)}, [])
    yield v
    v.close()


@settings(max_examples=300, deadline=None)
@given(data=st.one_of(st.binary(max_size=400), st.text(max_size=400)), prefix=st.booleans())
def test_arbitrary_input_never_raises(fuzz_verifier, data, prefix):  # type: ignore[no-untyped-def]
    if prefix:
        data = (b"BD1:" + data) if isinstance(data, bytes) else "BD1:" + data
    check = fuzz_verifier.verify_scanned(data)
    assert not check.accepted
    assert has_message(f"qr.{check.code}")
    assert (check.message_zh, check.message_en) == texts(f"qr.{check.code}")
