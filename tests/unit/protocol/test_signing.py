from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.signing import (
    KIOSK_HEADER,
    NONCE_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    BadSignature,
    ClockSkew,
    MalformedHeaders,
    SigningError,
    canonical_string,
    request_target,
    sign_request,
    verify_request,
)

SECRET = b"s" * 32
NOW = 1_714_521_600
PATH = "/api/v1/kiosk/events"
BODY = b'{"events": []}'


def signed(**kw: object) -> dict[str, str]:
    args = {"timestamp": NOW, **kw}
    return sign_request("kiosk-7", SECRET, "POST", PATH, BODY, **args)


def test_round_trip_returns_identity_and_nonce() -> None:
    headers = signed()
    verified = verify_request(headers, "POST", PATH, BODY, SECRET, now=NOW)
    assert verified.kiosk_id == "kiosk-7" and verified.timestamp == NOW
    assert verified.nonce == headers[NONCE_HEADER] and len(verified.nonce) == 32


def test_nonces_are_fresh() -> None:
    assert len({signed()[NONCE_HEADER] for _ in range(50)}) == 50


def test_canonical_string_layout() -> None:
    text = canonical_string("post", "/p?a=1", "1", "ab" * 16, b"").decode()
    assert text.split("\n") == [
        "POST",
        "/p?a=1",
        "1",
        "ab" * 16,
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    ]


def test_request_target() -> None:
    assert request_target("/a", b"") == "/a"
    assert request_target("/a", b"x=1&y=2") == "/a?x=1&y=2"


def test_headers_are_case_insensitive() -> None:
    lowered = {k.lower(): v for k, v in signed().items()}
    assert verify_request(lowered, "POST", PATH, BODY, SECRET, now=NOW).kiosk_id == "kiosk-7"


@pytest.mark.parametrize(
    ("method", "path", "body", "secret"),
    [
        ("PUT", PATH, BODY, SECRET),
        ("POST", PATH + "/", BODY, SECRET),
        ("POST", PATH + "?x=1", BODY, SECRET),
        ("POST", PATH, BODY + b" ", SECRET),
        ("POST", PATH, b"", SECRET),
        ("POST", PATH, BODY, b"t" * 32),
    ],
)
def test_any_change_breaks_the_signature(method: str, path: str, body: bytes, secret: bytes) -> None:
    with pytest.raises(BadSignature):
        verify_request(signed(), method, path, body, secret, now=NOW)


@pytest.mark.parametrize("header", [TIMESTAMP_HEADER, NONCE_HEADER, KIOSK_HEADER])
def test_changed_signed_header_breaks_the_signature(header: str) -> None:
    headers = signed()
    if header == TIMESTAMP_HEADER:
        headers[header] = str(NOW + 1)
    elif header == NONCE_HEADER:
        headers[header] = "0" * 32
    else:  # the kiosk id is not in the string but selects the secret; another kiosk's secret fails
        headers[header] = "kiosk-8"
        with pytest.raises(BadSignature):
            verify_request(headers, "POST", PATH, BODY, b"other-kiosk-secret!!", now=NOW)
        return
    with pytest.raises(BadSignature):
        verify_request(headers, "POST", PATH, BODY, SECRET, now=NOW)


@settings(max_examples=200)
@given(st.data())
def test_flipping_any_byte_breaks_the_signature(data: st.DataObject) -> None:
    target = data.draw(st.sampled_from(["body", "path", "method", "signature"]))
    headers = signed()
    method, path, body = "POST", PATH, BODY
    if target == "body":
        i = data.draw(st.integers(0, len(body) - 1))
        body = body[:i] + bytes([body[i] ^ data.draw(st.integers(1, 255))]) + body[i + 1 :]
    elif target == "path":
        i = data.draw(st.integers(0, len(path) - 1))
        path = path[:i] + chr(ord(path[i]) ^ data.draw(st.integers(1, 127))) + path[i + 1 :]
    elif target == "method":
        method = data.draw(st.sampled_from(["GET", "PUT", "PATCH", "DELETE"]))
    else:
        sig = headers[SIGNATURE_HEADER]
        i = data.draw(st.integers(0, 63))
        headers[SIGNATURE_HEADER] = (
            sig[:i]
            + data.draw(st.sampled_from("0123456789abcdef").filter(lambda c: c != sig[i]))
            + sig[i + 1 :]
        )
    with pytest.raises(BadSignature):
        verify_request(headers, method, path, body, SECRET, now=NOW)


@pytest.mark.parametrize("offset", [-301, 301, -86_400 * 3])
def test_clock_skew_reports_server_time(offset: int) -> None:
    headers = signed(timestamp=NOW + offset)
    with pytest.raises(ClockSkew) as info:
        verify_request(headers, "POST", PATH, BODY, SECRET, now=NOW)
    assert info.value.server_time == NOW and info.value.request_time == NOW + offset
    assert info.value.code == "clock_skew" and info.value.message_zh


@pytest.mark.parametrize("offset", [-300, 0, 300])
def test_skew_inside_window_is_accepted(offset: int) -> None:
    verify_request(signed(timestamp=NOW + offset), "POST", PATH, BODY, SECRET, now=NOW)


def test_skew_limit_is_configurable() -> None:
    with pytest.raises(ClockSkew):
        verify_request(signed(timestamp=NOW + 31), "POST", PATH, BODY, SECRET, now=NOW, max_skew_s=30)


def test_forged_and_stale_gives_bad_signature_not_server_time() -> None:
    headers = signed(timestamp=NOW - 10_000)
    headers[SIGNATURE_HEADER] = "0" * 64
    with pytest.raises(BadSignature):
        verify_request(headers, "POST", PATH, BODY, SECRET, now=NOW)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda h: h.pop(KIOSK_HEADER),
        lambda h: h.pop(TIMESTAMP_HEADER),
        lambda h: h.pop(NONCE_HEADER),
        lambda h: h.pop(SIGNATURE_HEADER),
        lambda h: h.__setitem__(TIMESTAMP_HEADER, "12.5"),
        lambda h: h.__setitem__(TIMESTAMP_HEADER, "-5"),
        lambda h: h.__setitem__(TIMESTAMP_HEADER, "9" * 30),
        lambda h: h.__setitem__(NONCE_HEADER, "ab" * 8),  # 8 bytes: too short
        lambda h: h.__setitem__(NONCE_HEADER, "AB" * 16),  # upper-case
        lambda h: h.__setitem__(SIGNATURE_HEADER, "0" * 63),
        lambda h: h.__setitem__(KIOSK_HEADER, "kiosk 7"),
        lambda h: h.__setitem__(KIOSK_HEADER, "k" * 65),
    ],
)
def test_malformed_headers(mutate) -> None:
    headers = signed()
    mutate(headers)
    with pytest.raises(MalformedHeaders):
        verify_request(headers, "POST", PATH, BODY, SECRET, now=NOW)


@given(st.dictionaries(st.text(max_size=30), st.text(max_size=80), max_size=6), st.binary(max_size=64))
def test_arbitrary_headers_only_raise_signing_errors(headers: dict[str, str], body: bytes) -> None:
    with pytest.raises(SigningError):
        verify_request(headers, "POST", PATH, body, SECRET, now=NOW)


def test_sign_rejects_bad_inputs() -> None:
    with pytest.raises(ValueError):
        sign_request("bad id", SECRET, "POST", PATH, BODY)
    with pytest.raises(ValueError):
        sign_request("k", b"short", "POST", PATH, BODY)
    with pytest.raises(ValueError):
        sign_request("k", SECRET, "POST", PATH, BODY, nonce="xyz")
