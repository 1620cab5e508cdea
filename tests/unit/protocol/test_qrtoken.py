from __future__ import annotations

import base64
import datetime as dt

import pytest
import qrcode
import zxingcpp
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.hashing import credential_hash
from protocol.qrtoken import (
    PREFIX,
    STEP_SECONDS,
    Expired,
    ForgedSignature,
    FromFuture,
    Malformed,
    RevokedBadge,
    TokenKind,
    TokenRejected,
    UnknownKey,
    generate_signing_key,
    load_public_key_b64,
    mint_badge_token,
    mint_phone_token,
    public_key_b64,
    step_at,
    token_fingerprint,
    verify_token,
)

KEY = generate_signing_key()
OTHER = generate_signing_key()
KEYS = {"k1": KEY.public_key()}
NOW = 1_714_521_615.0  # mid-step
STEP = step_at(NOW)
PHONE = mint_phone_token(KEY, "k1", 123_456, STEP)
BADGE = mint_badge_token(KEY, "k1", 123_456, "B000017")


def test_phone_token_round_trip() -> None:
    token = verify_token(PHONE, KEYS, NOW)
    assert (token.kind, token.key_id, token.member_ref, token.step) == (TokenKind.PHONE, "k1", 123_456, STEP)
    assert token.trust == "high" and token.credential_value == "phone:123456"


def test_badge_token_round_trip() -> None:
    token = verify_token(BADGE, KEYS, NOW, revoked_badges={"B000099"})
    assert (token.kind, token.badge_serial, token.member_ref) == (TokenKind.BADGE, "B000017", 123_456)
    assert token.trust == "low" and token.step is None


def test_text_is_qr_alphanumeric_and_tolerates_scanner_noise() -> None:
    alnum = set("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:")
    assert set(PHONE) <= alnum and set(BADGE) <= alnum
    assert verify_token(PHONE.lower() + "\r\n", KEYS, NOW).member_ref == 123_456
    assert verify_token(PHONE.encode(), KEYS, NOW).member_ref == 123_456


@pytest.mark.parametrize("offset_steps", [-1, 0, 1])
def test_window_accepts_neighbouring_steps(offset_steps: int) -> None:
    token = mint_phone_token(KEY, "k1", 1, STEP + offset_steps)
    assert verify_token(token, KEYS, NOW).step == STEP + offset_steps


def test_expired_and_future_steps() -> None:
    with pytest.raises(Expired) as old:
        verify_token(mint_phone_token(KEY, "k1", 1, STEP - 2), KEYS, NOW)
    assert old.value.step == STEP - 2 and old.value.current_step == STEP and old.value.code == "qr_expired"
    with pytest.raises(FromFuture):
        verify_token(mint_phone_token(KEY, "k1", 1, STEP + 2), KEYS, NOW)
    # the same screenshot replayed later is expired
    with pytest.raises(Expired):
        verify_token(PHONE, KEYS, NOW + 3 * STEP_SECONDS)
    # a wider window accepts it
    assert verify_token(PHONE, KEYS, NOW + 3 * STEP_SECONDS, window=3).step == STEP


def test_now_as_datetime() -> None:
    assert verify_token(PHONE, KEYS, dt.datetime.fromtimestamp(NOW, dt.UTC)).step == STEP


def test_badges_ignore_time_but_honour_revocation() -> None:
    assert verify_token(BADGE, KEYS, NOW + 86_400 * 365).badge_serial == "B000017"
    with pytest.raises(RevokedBadge) as info:
        verify_token(BADGE, KEYS, NOW, revoked_badges={"B000017"})
    assert info.value.badge_serial == "B000017"


def test_forged_signature_and_wrong_key() -> None:
    forged = mint_phone_token(OTHER, "k1", 123_456, STEP)  # right key id, wrong private key
    with pytest.raises(ForgedSignature):
        verify_token(forged, KEYS, NOW)
    with pytest.raises(UnknownKey):
        verify_token(mint_phone_token(KEY, "k2", 123_456, STEP), KEYS, NOW)
    # key rotation: both keys known during the overlap
    rotated = {"k1": KEY.public_key(), "k2": OTHER.public_key()}
    assert verify_token(mint_phone_token(OTHER, "k2", 5, STEP), rotated, NOW).key_id == "k2"


def test_altered_member_is_forged() -> None:
    raw = bytearray(base64.b32decode(PHONE[len(PREFIX) :] + "=" * (-len(PHONE[len(PREFIX) :]) % 8)))
    raw[6] ^= 0x01  # inside the member reference
    altered = PREFIX + base64.b32encode(bytes(raw)).decode().rstrip("=")
    with pytest.raises(ForgedSignature):
        verify_token(altered, KEYS, NOW)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "hello",
        "https://weixin.qq.com/x",
        PREFIX,
        PHONE[:-1],
        PHONE[:40],
        PHONE[:-8],
        PHONE + "AAAAAAAA",
        PHONE + "A" * 300,
        PHONE.replace(PREFIX, "BD2:"),
        PHONE[:20] + "0" + PHONE[21:],  # '0' is not base32
        PHONE[:20] + "1" + PHONE[21:],
        b"\xff\xfe" + PHONE.encode(),
        PHONE.encode() + b"\x80",
        "\ud800" + PHONE,
    ],
)
def test_malformed(text: str | bytes) -> None:
    with pytest.raises(Malformed):
        verify_token(text, KEYS, NOW)


def test_fingerprint_is_member_and_step() -> None:
    again = verify_token(PHONE, KEYS, NOW + 10)  # same step, re-scanned
    assert token_fingerprint(verify_token(PHONE, KEYS, NOW)) == token_fingerprint(again)
    next_step = verify_token(mint_phone_token(KEY, "k1", 123_456, STEP + 1), KEYS, NOW)
    other_member = verify_token(mint_phone_token(KEY, "k1", 7, STEP), KEYS, NOW)
    assert len({token_fingerprint(t) for t in (again, next_step, other_member)}) == 3


def test_credential_value_hashes_like_any_credential() -> None:
    token = verify_token(PHONE, KEYS, NOW)
    later = verify_token(mint_phone_token(KEY, "k1", 123_456, STEP + 1), KEYS, NOW)
    key = bytes(range(32))
    assert credential_hash(key, "qr", token.credential_value) == credential_hash(
        key, "qr", later.credential_value
    )


def test_public_key_text_round_trip() -> None:
    text = public_key_b64(KEY)
    assert len(text) == 43
    assert verify_token(PHONE, {"k1": load_public_key_b64(text)}, NOW).member_ref == 123_456


@pytest.mark.parametrize(
    "kwargs",
    [{"key_id": "toolongid"}, {"key_id": ""}, {"key_id": "k-1"}, {"member_ref": -1}, {"member_ref": 2**64}],
)
def test_mint_rejects_bad_fields(kwargs: dict) -> None:
    args = {"key_id": "k1", "member_ref": 1, **kwargs}
    with pytest.raises(ValueError):
        mint_phone_token(KEY, args["key_id"], args["member_ref"], STEP)
    with pytest.raises(ValueError):
        mint_badge_token(KEY, "k1", 1, "b-lower")


def largest_tokens() -> list[str]:
    return [
        mint_phone_token(KEY, "K" * 8, 2**64 - 1, 2**40 - 1),
        mint_badge_token(KEY, "K" * 8, 2**64 - 1, "Z" * 16),
    ]


@pytest.mark.parametrize("mode", ["auto", "byte"])
def test_largest_token_fits_version_10_at_m(mode: str) -> None:
    for text in largest_tokens():
        assert len(text.encode()) <= 213
        qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M)
        if mode == "byte":
            qr.add_data(qrcode.util.QRData(text.encode(), mode=qrcode.util.MODE_8BIT_BYTE))
        else:
            qr.add_data(text)
        qr.make(fit=True)
        assert qr.version <= 10, (mode, qr.version)


def test_rendered_code_decodes_and_verifies() -> None:
    """Render with qrcode, read back with a real decoder (zxing-cpp), verify."""
    for text in [PHONE, BADGE]:
        image = qrcode.make(text, error_correction=qrcode.constants.ERROR_CORRECT_M).convert("L")
        results = zxingcpp.read_barcodes(image)
        assert [r.text for r in results] == [text]
        assert verify_token(results[0].text, KEYS, NOW).member_ref == 123_456


@settings(max_examples=300)
@given(st.text(max_size=400) | st.binary(max_size=400))
def test_arbitrary_input_only_raises_rejections(data: str | bytes) -> None:
    with pytest.raises(TokenRejected):
        verify_token(data, KEYS, NOW)


@settings(max_examples=300)
@given(st.data())
def test_any_byte_change_of_a_real_token_is_rejected(data: st.DataObject) -> None:
    text = data.draw(st.sampled_from([PHONE, BADGE]))
    i = data.draw(st.integers(len(PREFIX), len(text) - 1))
    replacement = data.draw(
        st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567").filter(lambda c: c != text[i])
    )
    changed = text[:i] + replacement + text[i + 1 :]
    try:
        token = verify_token(changed, KEYS, NOW)
    except TokenRejected:
        return
    # only a change to the unused low bits of the last base32 character may decode to the same bytes
    assert i == len(text) - 1 and token == verify_token(text, KEYS, NOW)


@settings(max_examples=100)
@given(st.binary(min_size=0, max_size=140))
def test_arbitrary_binary_payloads_are_rejected(raw: bytes) -> None:
    text = PREFIX + base64.b32encode(raw).decode().rstrip("=")
    with pytest.raises(TokenRejected):
        verify_token(text, KEYS, NOW)
