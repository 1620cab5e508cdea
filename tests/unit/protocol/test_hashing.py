from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.hashing import (
    CredentialValueError,
    credential_hash,
    id_number_check_digit_ok,
    national_id_hash,
    normalise,
    pin_verifier,
)

KEY = bytes(range(32))
SERVER_KEY = bytes(range(32, 64))

# Known-answer vectors: they pin the contract, so a kiosk build and a server build that drift apart fail
# here instead of silently failing to recognise members. Recompute only with a PROTOCOL_VERSION bump.
VECTORS = [
    ("card", "04:a2:3b:1c", "c39bac2d926b60b54e788fd66cd4f0f1aa9d269083d076575020a6e01fc14607"),
    ("id_card", "11010519491231002x", "101b9c094c6dd7b9e063d97c358ac6f2a3470c963296bf691ac546ae5042835d"),
    ("qr", "BD1.hello", "3b000c7a3fee2b784e804119924885e7b544aed5609512d833e809c904066119"),
]


@pytest.mark.parametrize(("kind", "value", "expected"), VECTORS)
def test_known_answer_vectors(kind: str, value: str, expected: str) -> None:
    assert credential_hash(KEY, kind, value) == expected


@pytest.mark.parametrize(("kind", "value", "expected"), VECTORS)
def test_definition_matches_the_documented_formula(kind: str, value: str, expected: str) -> None:
    message = f"{kind}:{normalise(kind, value)}".encode()
    assert hmac.new(KEY, message, hashlib.sha256).hexdigest() == expected


def test_pin_and_national_id_vectors() -> None:
    assert (
        pin_verifier(KEY, "M0001", "123456")
        == "20445e280433b3510bb3bb979ecb85962f35a7b85f28ebe8d6db3859935389a0"
    )
    assert (
        national_id_hash(SERVER_KEY, "11010519491231002X")
        == "a7d5e6446277af26eb17fbd6f145ced36f527daf2216805eedc823c0c18c60d9"
    )


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("04a23b1c", "04A23B1C"),
        ("04:A2:3B:1C", "04A23B1C"),
        ("04-a2-3b-1c", "04A23B1C"),
        (" 04 a2 3b 1c ", "04A23B1C"),
    ],
)
def test_card_spellings_hash_alike(raw: str, normal: str) -> None:
    assert normalise("card", raw) == normal
    assert credential_hash(KEY, "card", raw) == credential_hash(KEY, "card", normal)


@pytest.mark.parametrize(
    ("kind", "raw"),
    [
        ("card", "04G23B1C"),
        ("card", "04"),
        ("card", "0" * 66),
        ("card", ""),
        ("id_card", "1101051949123100"),
        ("id_card", "11010519491231002Y"),
        ("id_card", "1101051949123100X2"),
        ("qr", ""),
        ("qr", "x" * 513),
        ("pin", "1234"),
    ],
)
def test_bad_values_are_rejected(kind: str, raw: str) -> None:
    with pytest.raises(CredentialValueError):
        credential_hash(KEY, kind, raw)


def test_kind_separates_domains_and_key_matters() -> None:
    assert credential_hash(KEY, "card", "1234ABCD") != credential_hash(KEY, "qr", "1234ABCD")
    assert credential_hash(KEY, "card", "1234ABCD") != credential_hash(bytes(32), "card", "1234ABCD")
    assert national_id_hash(KEY, "11010519491231002X") != credential_hash(
        KEY, "id_card", "11010519491231002X"
    )


def test_short_keys_refused() -> None:
    with pytest.raises(ValueError):
        credential_hash(b"short", "card", "04A23B1C")
    with pytest.raises(ValueError):
        national_id_hash(b"short", "11010519491231002X")


@pytest.mark.parametrize(
    ("number", "ok"),
    [
        ("11010519491231002X", True),
        ("11010519491231002x", True),
        ("110105194912310021", False),
        ("440524188001010014", True),
        ("440524188001010015", False),
        ("not a number", False),
    ],
)
def test_id_check_digit(number: str, ok: bool) -> None:
    assert id_number_check_digit_ok(number) is ok


@given(st.from_regex(r"[0-9]{17}", fullmatch=True))
def test_exactly_one_check_character_is_valid(body: str) -> None:
    valid = [c for c in "0123456789X" if id_number_check_digit_ok(body + c)]
    assert len(valid) == 1


def test_pin_verifier_per_member_salt_and_rejections() -> None:
    assert pin_verifier(KEY, "M0001", "123456") != pin_verifier(KEY, "M0002", "123456")
    assert pin_verifier(KEY, "M0001", "123456") != pin_verifier(KEY, "M0001", "123457")
    for member_no, pin in [("M0001", "12a4"), ("M0001", "123"), ("bad no", "1234"), ("", "1234")]:
        with pytest.raises(CredentialValueError):
            pin_verifier(KEY, member_no, pin)


@given(st.text(max_size=80))
def test_normalise_never_raises_anything_but_value_errors(text: str) -> None:
    for kind in ("card", "id_card", "qr"):
        try:
            result = credential_hash(KEY, kind, text)
        except CredentialValueError:
            continue
        assert len(result) == 64
