"""Request signing between an enrolled kiosk and the server.

Every kiosk request after enrolment carries four headers::

    X-Baodao-Kiosk:     the kiosk id from enrolment
    X-Baodao-Timestamp: Unix seconds, decimal
    X-Baodao-Nonce:     32-128 lower-case hex digits (>= 16 random bytes), fresh per request
    X-Baodao-Signature: hex HMAC-SHA256(kiosk_secret, canonical string)

and the canonical string is five lines joined by ``\\n`` (no trailing newline)::

    METHOD            upper-case, e.g. POST
    PATH              the request target as sent: path, plus "?query" when there is a query
    TIMESTAMP         exactly the header text
    NONCE             exactly the header text
    sha256(body) hex  of the raw body bytes (sha256 of b"" for an empty body)

Why this shape: an HMAC with a per-kiosk secret needs no TLS client certificates on cheap kiosks, and
covering method, target and body digest means a captured request cannot be pointed elsewhere or given
another body. The timestamp bounds how long a captured request is worth anything; within that window
the nonce makes each request single-use — but remembering nonces needs storage shared by every server
worker, so :func:`verify_request` returns the nonce and the server checks it (DESIGN.md: nothing shared
lives in one process's memory).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass

from protocol.version import PROTOCOL_HEADER, PROTOCOL_VERSION

logger = logging.getLogger(__name__)

KIOSK_HEADER = "X-Baodao-Kiosk"
TIMESTAMP_HEADER = "X-Baodao-Timestamp"
NONCE_HEADER = "X-Baodao-Nonce"
SIGNATURE_HEADER = "X-Baodao-Signature"

DEFAULT_MAX_SKEW_S = 300
NONCE_BYTES = 16

_KIOSK_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_TIMESTAMP_RE = re.compile(r"[0-9]{1,12}")
_NONCE_RE = re.compile(r"[0-9a-f]{32,128}")
_SIGNATURE_RE = re.compile(r"[0-9a-f]{64}")
_METHOD_RE = re.compile(r"[A-Z]{3,10}")


class SigningError(Exception):
    """Base of every rejection by :func:`verify_request`.

    ``code`` is the stable machine code for the JSON error envelope; ``message_zh`` is the Chinese text
    for people (the exception's own message is English).
    """

    code = "signing_error"
    message_zh = "请求签名无效"


class MalformedHeaders(SigningError):
    """A signing header is missing or not in its required form."""

    code = "malformed_signature_headers"
    message_zh = "请求签名头缺失或格式错误"


class BadSignature(SigningError):
    """The signature does not match: wrong secret, or method, path, timestamp, nonce or body altered."""

    code = "bad_signature"
    message_zh = "请求签名校验失败"


class ClockSkew(SigningError):
    """The request's timestamp is too far from the server's clock; the kiosk should correct and retry."""

    code = "clock_skew"
    message_zh = "设备时钟与服务器相差过大"

    def __init__(self, server_time: int, request_time: int, max_skew_s: int) -> None:
        super().__init__(
            f"request timestamp {request_time} is {request_time - server_time:+d} s from server time "
            f"{server_time} (allowed ±{max_skew_s} s)"
        )
        self.server_time = server_time
        self.request_time = request_time
        self.max_skew_s = max_skew_s


@dataclass(frozen=True, slots=True)
class SignatureHeaders:
    """The parsed signing headers, before the signature is checked."""

    kiosk_id: str
    timestamp: int
    timestamp_text: str
    nonce: str
    signature: str


@dataclass(frozen=True, slots=True)
class VerifiedRequest:
    """An authentic request. The server must still reject a ``nonce`` it has seen from ``kiosk_id``
    within the skew window (keep nonces for at least ``2 × max_skew``)."""

    kiosk_id: str
    timestamp: int
    nonce: str


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def request_target(path: str, query_string: str | bytes = "") -> str:
    """The PATH line for a path and raw query string, matching what an HTTP client sends.

    On a Flask server: ``request_target(request.path, request.query_string)``.
    """
    if isinstance(query_string, bytes):
        query_string = query_string.decode("latin-1")
    return f"{path}?{query_string}" if query_string else path


def canonical_string(method: str, path: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    """The exact bytes that are signed (see the module docstring)."""
    return "\n".join((method.upper(), path, timestamp, nonce, body_digest(body))).encode()


def _mac(secret: bytes, method: str, path: str, timestamp: str, nonce: str, body: bytes) -> str:
    if not isinstance(secret, bytes | bytearray) or len(secret) < 16:
        raise ValueError("kiosk secret must be at least 16 bytes")
    return hmac.new(
        bytes(secret), canonical_string(method, path, timestamp, nonce, body), hashlib.sha256
    ).hexdigest()


def sign_request(
    kiosk_id: str,
    secret: bytes,
    method: str,
    path: str,
    body: bytes = b"",
    *,
    timestamp: int | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """Headers to add to a kiosk request (also the protocol-version header).

    ``timestamp`` should be the kiosk's best estimate of server time (device time + measured offset),
    so a kiosk with a wrong wall clock still lands inside the skew window after its first exchange.
    """
    if not _KIOSK_RE.fullmatch(kiosk_id):
        raise ValueError("kiosk id must be 1-64 characters of A-Z a-z 0-9 _ . -")
    ts = str(int(time.time()) if timestamp is None else int(timestamp))
    nonce = secrets.token_hex(NONCE_BYTES) if nonce is None else nonce
    if not _NONCE_RE.fullmatch(nonce):
        raise ValueError("nonce must be 32-128 lower-case hex digits")
    return {
        KIOSK_HEADER: kiosk_id,
        TIMESTAMP_HEADER: ts,
        NONCE_HEADER: nonce,
        SIGNATURE_HEADER: _mac(secret, method, path, ts, nonce, body),
        PROTOCOL_HEADER: str(PROTOCOL_VERSION),
    }


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if value is None:  # plain dicts are case-sensitive; HTTP headers are not
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    if value is None:
        raise MalformedHeaders(f"missing header {name}")
    if not isinstance(value, str):
        raise MalformedHeaders(f"header {name} is not text")
    return value


def parse_signature_headers(headers: Mapping[str, str]) -> SignatureHeaders:
    """Parse and check the form of the signing headers; the server uses ``kiosk_id`` to find the secret."""
    kiosk_id = _header(headers, KIOSK_HEADER)
    timestamp = _header(headers, TIMESTAMP_HEADER)
    nonce = _header(headers, NONCE_HEADER)
    signature = _header(headers, SIGNATURE_HEADER)
    if not _KIOSK_RE.fullmatch(kiosk_id):
        raise MalformedHeaders(f"{KIOSK_HEADER} must be 1-64 characters of A-Z a-z 0-9 _ . -")
    if not _TIMESTAMP_RE.fullmatch(timestamp):
        raise MalformedHeaders(f"{TIMESTAMP_HEADER} must be Unix seconds in decimal")
    if not _NONCE_RE.fullmatch(nonce):
        raise MalformedHeaders(f"{NONCE_HEADER} must be 32-128 lower-case hex digits")
    if not _SIGNATURE_RE.fullmatch(signature):
        raise MalformedHeaders(f"{SIGNATURE_HEADER} must be 64 lower-case hex digits")
    return SignatureHeaders(kiosk_id, int(timestamp), timestamp, nonce, signature)


def verify_request(
    headers: Mapping[str, str],
    method: str,
    path: str,
    body: bytes,
    secret: bytes,
    *,
    now: float | None = None,
    max_skew_s: int = DEFAULT_MAX_SKEW_S,
) -> VerifiedRequest:
    """Check a request's signature, then its timestamp; raise a :class:`SigningError` subclass.

    The signature is checked first, so only a holder of the kiosk secret learns the server's clock
    from a :class:`ClockSkew` — and a genuine kiosk with a wrong clock gets exactly that answer.
    ``method`` must be the request's method and ``path`` its request target (:func:`request_target`).
    """
    parsed = parse_signature_headers(headers)
    if not _METHOD_RE.fullmatch(method.upper()):
        raise MalformedHeaders(f"unexpected method {method[:16]!r}")
    expected = _mac(secret, method, path, parsed.timestamp_text, parsed.nonce, body)
    if not hmac.compare_digest(expected, parsed.signature):
        raise BadSignature("signature does not match the request")
    server_time = int(time.time() if now is None else now)
    if abs(parsed.timestamp - server_time) > max_skew_s:
        raise ClockSkew(server_time, parsed.timestamp, max_skew_s)
    return VerifiedRequest(parsed.kiosk_id, parsed.timestamp, parsed.nonce)
