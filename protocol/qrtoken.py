"""Signed QR tokens: rotating phone codes and printed badges, verifiable offline with a public key.

Text form: ``BD1:`` followed by unpadded RFC 4648 base32 of ``body || signature``, where ``body`` is
(big-endian)::

    1 byte   version (high nibble, = 1) | kind (low nibble: 1 phone, 2 badge)
    1 byte   key id length n (1-8), then n ASCII bytes of key id ([A-Za-z0-9])
    8 bytes  member reference (the server's member id, unsigned)
    phone:   5 bytes  time step = floor(unix_seconds / 30)
    badge:   1 byte   serial length m (1-16), then m ASCII bytes of badge serial ([A-Z0-9])
    64 bytes Ed25519 signature over b"baodao-qr\\x00" || body

Why base32: every character of ``BD1:`` + base32 lies in the QR *alphanumeric* set (5.5 bits per
character), so a phone code of ~134 characters fits a version 6 symbol at level M and the largest badge
(~163 characters) version 7 — far inside the version ≤ 10 budget, which keeps the modules big enough for
a cheap camera at arm's length. Base45 (RFC 9285) would be ~7 % shorter but contains space, ``%`` and
``$``, which keyboard-wedge line scanners mangle under some layouts and URLs escape; base64 would force
byte mode (8 bits per character). Base32 is also in the standard library and tolerates a scanner that
lower-cases text.

Kiosks hold only Ed25519 *public* keys (by key id, delivered in the roster), so a stolen kiosk cannot
mint codes. Verification order is: form → key id → signature → badge revocation / time window, so a
time-window or revocation rejection always concerns a genuine token (worth recording for staff), while
anything unauthenticated stops at :class:`ForgedSignature` or earlier.

Replay across kiosks (a screenshot sent to a friend) cannot be seen by one kiosk alone: both kiosk and
server remember :func:`token_fingerprint` — (member, step) — and refuse a second use at another kiosk.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import enum
import hashlib
import logging
import re
import struct
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

logger = logging.getLogger(__name__)

TOKEN_VERSION = 1
PREFIX = f"BD{TOKEN_VERSION}:"
STEP_SECONDS = 30
SIGNATURE_BYTES = 64
#: No genuine token is longer (largest badge: 163 characters); longer input is refused before decoding.
MAX_TOKEN_CHARS = 200
SIGNING_DOMAIN = b"baodao-qr\x00"
_KEY_ID_RE = re.compile(rb"[A-Za-z0-9]{1,8}")
_SERIAL_RE = re.compile(rb"[A-Z0-9]{1,16}")
_BASE32_RE = re.compile(r"[A-Z2-7]+")
_MAX_MEMBER_REF = 2**64 - 1
_MAX_STEP = 2**40 - 1


class TokenKind(enum.IntEnum):
    PHONE = 1  # rotating code on the member's phone, 30 s steps, high trust
    BADGE = 2  # printed badge bound to a serial, long-lived and revocable, low trust


class TokenRejected(Exception):
    """Base of every rejection. ``code`` goes on the TapEvent's ``reason``; ``message_zh`` on screen."""

    code = "qr_rejected"
    message_zh = "二维码无效"


class Malformed(TokenRejected):
    """Not a baodao token: wrong prefix, bad characters, truncated, oversized, non-UTF-8, bad fields."""

    code = "qr_malformed"
    message_zh = "无法识别的二维码"


class UnknownKey(TokenRejected):
    """Signed with a key id this kiosk does not know (retired key, or a roster not yet synced)."""

    code = "qr_unknown_key"
    message_zh = "二维码密钥未知，请刷新手机页面"


class ForgedSignature(TokenRejected):
    """The signature does not verify: altered or invented token."""

    code = "qr_forged"
    message_zh = "二维码签名无效"


class Expired(TokenRejected):
    """A phone code older than the window: a screenshot, or a phone that lost its clock."""

    code = "qr_expired"
    message_zh = "二维码已过期，请刷新后重试"

    def __init__(self, message: str, step: int, current_step: int) -> None:
        super().__init__(message)
        self.step, self.current_step = step, current_step


class FromFuture(TokenRejected):
    """A phone code ahead of the window: the phone's or the kiosk's clock is wrong."""

    code = "qr_from_future"
    message_zh = "二维码时间异常，请检查手机时间"

    def __init__(self, message: str, step: int, current_step: int) -> None:
        super().__init__(message)
        self.step, self.current_step = step, current_step


class RevokedBadge(TokenRejected):
    code = "qr_badge_revoked"
    message_zh = "此胸卡已注销，请联系工作人员"

    def __init__(self, message: str, badge_serial: str) -> None:
        super().__init__(message)
        self.badge_serial = badge_serial


class Replayed(TokenRejected):
    """Raised by kiosk or server (not by :func:`verify_token`) when a fingerprint was already used elsewhere."""

    code = "qr_replayed"
    message_zh = "此二维码已在其他终端使用"


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    kind: TokenKind
    key_id: str
    member_ref: int
    step: int | None
    badge_serial: str | None

    @property
    def trust(self) -> str:
        """``messages.Trust`` value for the TapEvent: a badge can be lent, a rotating code hardly."""
        return "high" if self.kind is TokenKind.PHONE else "low"

    @property
    def credential_value(self) -> str:
        """Stable value for :func:`protocol.hashing.credential_hash` with kind ``qr`` — the same for every
        step, so the roster can hold (and revoke) a member's phone-code credential like a card."""
        if self.kind is TokenKind.PHONE:
            return f"phone:{self.member_ref}"
        return f"badge:{self.badge_serial}"


def step_at(now: float | dt.datetime) -> int:
    """The 30-second step containing ``now`` (Unix seconds or an aware datetime)."""
    seconds = now.timestamp() if isinstance(now, dt.datetime) else float(now)
    return int(seconds // STEP_SECONDS)


def generate_signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def public_key_b64(key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    """Raw 32-byte public key as unpadded base64url (43 characters) — the roster's ``qr_public_keys`` form."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def load_public_key_b64(text: str) -> Ed25519PublicKey:
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    return Ed25519PublicKey.from_public_bytes(raw)


def _encode_common(kind: TokenKind, key_id: str, member_ref: int) -> bytes:
    kid = key_id.encode("ascii", "replace")
    if not _KEY_ID_RE.fullmatch(kid):
        raise ValueError("key id must be 1-8 characters of A-Z a-z 0-9")
    if not 0 <= member_ref <= _MAX_MEMBER_REF:
        raise ValueError("member reference must fit in 64 bits")
    return bytes([(TOKEN_VERSION << 4) | kind, len(kid)]) + kid + struct.pack(">Q", member_ref)


def _finish(private_key: Ed25519PrivateKey, body: bytes) -> str:
    signature = private_key.sign(SIGNING_DOMAIN + body)
    return PREFIX + base64.b32encode(body + signature).decode().rstrip("=")


def mint_phone_token(private_key: Ed25519PrivateKey, key_id: str, member_ref: int, step: int) -> str:
    """A rotating phone code for ``step`` (see :func:`step_at`). Server side only: needs the private key."""
    if not 0 <= step <= _MAX_STEP:
        raise ValueError("step out of range")
    body = _encode_common(TokenKind.PHONE, key_id, member_ref) + step.to_bytes(5, "big")
    return _finish(private_key, body)


def mint_badge_token(private_key: Ed25519PrivateKey, key_id: str, member_ref: int, badge_serial: str) -> str:
    """A printed badge code; valid until ``badge_serial`` is revoked or ``key_id`` retired."""
    serial = badge_serial.encode("ascii", "replace")
    if not _SERIAL_RE.fullmatch(serial):
        raise ValueError("badge serial must be 1-16 characters of A-Z 0-9")
    body = _encode_common(TokenKind.BADGE, key_id, member_ref) + bytes([len(serial)]) + serial
    return _finish(private_key, body)


def _decode(text: str | bytes) -> tuple[bytes, bytes, VerifiedToken]:
    """(signed body, signature, claimed token) — raises only :class:`Malformed`."""
    if isinstance(text, bytes | bytearray):
        if len(text) > MAX_TOKEN_CHARS * 4:
            raise Malformed("token too long")
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            raise Malformed("token is not UTF-8 text") from None
    if not isinstance(text, str):
        raise Malformed("token must be text")
    text = text.strip()
    if len(text) > MAX_TOKEN_CHARS:
        raise Malformed(f"token longer than {MAX_TOKEN_CHARS} characters")
    if not text.upper().startswith(PREFIX):
        raise Malformed("not a baodao QR token")
    payload = text[len(PREFIX) :].upper()
    if not _BASE32_RE.fullmatch(payload) or len(payload) % 8 in (1, 3, 6):
        raise Malformed("token body is not base32")
    try:
        raw = base64.b32decode(payload + "=" * (-len(payload) % 8))
    except (binascii.Error, ValueError):
        raise Malformed("token body is not base32") from None
    return _parse(raw)


def _parse(raw: bytes) -> tuple[bytes, bytes, VerifiedToken]:
    if len(raw) < 2 + 1 + 8 + 1 + SIGNATURE_BYTES:
        raise Malformed("token truncated")
    body, signature = raw[:-SIGNATURE_BYTES], raw[-SIGNATURE_BYTES:]
    version, kind_code = body[0] >> 4, body[0] & 0x0F
    if version != TOKEN_VERSION:
        raise Malformed(f"unsupported token version {version}")
    if kind_code not in (TokenKind.PHONE, TokenKind.BADGE):
        raise Malformed(f"unknown token kind {kind_code}")
    kind = TokenKind(kind_code)
    kid_len = body[1]
    kid = body[2 : 2 + kid_len]
    if not 1 <= kid_len <= 8 or len(kid) != kid_len or not _KEY_ID_RE.fullmatch(kid):
        raise Malformed("bad key id")
    pos = 2 + kid_len
    if len(body) < pos + 8:
        raise Malformed("token truncated")
    (member_ref,) = struct.unpack_from(">Q", body, pos)
    pos += 8
    step, serial = None, None
    if kind is TokenKind.PHONE:
        if len(body) != pos + 5:
            raise Malformed("phone token has the wrong length")
        step = int.from_bytes(body[pos:], "big")
    else:
        serial_len = body[pos] if len(body) > pos else 0
        serial_raw = body[pos + 1 :]
        if len(serial_raw) != serial_len or not _SERIAL_RE.fullmatch(serial_raw):
            raise Malformed("bad badge serial")
        serial = serial_raw.decode("ascii")
    return body, signature, VerifiedToken(kind, kid.decode("ascii"), member_ref, step, serial)


def verify_token(
    text: str | bytes,
    public_keys: Mapping[str, Ed25519PublicKey],
    now: float | dt.datetime,
    revoked_badges: Collection[str] = frozenset(),
    window: int = 1,
) -> VerifiedToken:
    """Verify a scanned token offline. Returns the token or raises a :class:`TokenRejected` subclass —
    never anything else, whatever bytes a camera or scanner produced.

    Phone codes are accepted for steps ``current - window … current + window`` (± 30 s by default, so a
    code that just changed on the phone and a kiosk a few seconds off both still work).
    """
    body, signature, token = _decode(text)
    key = public_keys.get(token.key_id)
    if key is None:
        raise UnknownKey(f"unknown key id {token.key_id!r}")
    try:
        key.verify(signature, SIGNING_DOMAIN + body)
    except InvalidSignature:
        raise ForgedSignature("signature does not verify") from None
    if token.kind is TokenKind.BADGE:
        if token.badge_serial in revoked_badges:
            raise RevokedBadge(f"badge {token.badge_serial} is revoked", token.badge_serial or "")
        return token
    current = step_at(now)
    if token.step is None:  # unreachable: _parse always sets a phone token's step
        raise Malformed("phone token without step")
    if token.step < current - window:
        raise Expired(f"step {token.step} is {current - token.step} steps old", token.step, current)
    if token.step > current + window:
        raise FromFuture(f"step {token.step} is {token.step - current} steps ahead", token.step, current)
    return token


def token_fingerprint(token: VerifiedToken) -> str:
    """What identifies *one use* of a token across kiosks: (member, step) for phone codes, the badge
    serial for badges. 32 hex digits; store it with the TapEvent and refuse a repeat at another kiosk."""
    if token.kind is TokenKind.PHONE:
        basis = f"phone:{token.member_ref}:{token.step}"
    else:
        basis = f"badge:{token.member_ref}:{token.badge_serial}"
    return hashlib.sha256(basis.encode()).hexdigest()[:32]
