"""Credential hashing shared by kiosk and server.

A kiosk must recognise members while offline, so its roster maps *credential hashes* to members and the
kiosk hashes every read the same way the server did. The hash is keyed —
``HMAC-SHA256(credential_key, f"{kind}:{normalised_value}")`` — because the value spaces are tiny: a
4-byte card UID has 2**32 values and a resident ID number far fewer than that once birth date and region
are guessed, so an unkeyed SHA-256 in a stolen roster dump would be reversed in minutes. The credential
key is a deployment-wide secret the server hands a kiosk at enrolment; without it the dump is useless.

Normalisation happens here, once, so that ``"04:a2:3b:1c"`` from one reader and ``"04A23B1C"`` from
another match the same member.

PINs are different: a member types member number + PIN, a 4–6 digit space no key makes large. The server
keeps an argon2 hash for web log-in; for offline kiosk entry the roster carries :func:`pin_verifier`,
a PBKDF2 with a per-member salt. See its docstring for the trade-off.

National ID numbers of member records are hashed with :func:`national_id_hash` under a *different*,
server-only key, so a kiosk's credential key never lets anyone match the server's member table.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import logging
import re
import secrets

logger = logging.getLogger(__name__)


class CredentialKind(enum.StrEnum):
    """How a member identified. Values are part of the wire contract (TapEvent, roster)."""

    CARD = "card"
    ID_CARD = "id_card"
    QR = "qr"
    PIN = "pin"


#: Minimum secret length for the credential key and the national-ID key: 128 bits.
MIN_KEY_BYTES = 16
#: Longest raw value accepted for hashing; a QR payload larger than a version 10 code is not a credential.
MAX_VALUE_CHARS = 512

#: PBKDF2 iterations for :func:`pin_verifier`. Measured ≈ 15 ms on one x86 core, well under 200 ms on a
#: Raspberry-Pi-class kiosk — once per PIN entry, and once per member when the server builds a roster.
PIN_ITERATIONS = 60_000

_HEX_RE = re.compile(r"[0-9A-F]+")
_CARD_SEPARATORS = re.compile(r"[\s:\-.]")
_ID_RE = re.compile(r"[0-9]{17}[0-9X]")
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK_CHARS = "10X98765432"
_MEMBER_NO_RE = re.compile(r"[0-9A-Za-z_-]{1,32}")
_PIN_RE = re.compile(r"[0-9]{4,8}")


class CredentialValueError(ValueError):
    """A raw credential value that cannot be normalised (wrong characters, length, or kind)."""


def generate_key() -> bytes:
    """A fresh 256-bit secret for a credential key, a national-ID key or a kiosk secret."""
    return secrets.token_bytes(32)


def _check_key(key: bytes, what: str) -> None:
    if not isinstance(key, bytes | bytearray) or len(key) < MIN_KEY_BYTES:
        raise ValueError(f"{what} must be at least {MIN_KEY_BYTES} bytes")


def normalise_card_uid(value: str) -> str:
    """Upper-case hex without separators: ``"04:a2:3b:1c"`` → ``"04A23B1C"``.

    Rejects anything that is not hex after removing ``: - . whitespace``; 4 to 64 hex digits (a 2-byte
    UID is not a credential; 32 bytes is beyond any card).
    """
    cleaned = _CARD_SEPARATORS.sub("", value).upper()
    if not 4 <= len(cleaned) <= 64 or not _HEX_RE.fullmatch(cleaned):
        raise CredentialValueError(f"card UID must be 4-64 hex digits, got {value[:80]!r}")
    return cleaned


def normalise_id_number(value: str) -> str:
    """Upper-case 18-character resident ID number (trailing ``x`` → ``X``), surrounding space removed.

    The format is checked; the check digit is not (see :func:`id_number_check_digit_ok`) — a reader
    decoding a genuine card never gets it wrong, and a staff form wants to say *which* problem it is.
    """
    cleaned = value.strip().upper()
    if not _ID_RE.fullmatch(cleaned):
        raise CredentialValueError("ID number must be 17 digits followed by a digit or X")
    return cleaned


def id_number_check_digit_ok(value: str) -> bool:
    """ISO 7064 MOD 11-2 check of an 18-character resident ID number (GB 11643-1999)."""
    try:
        number = normalise_id_number(value)
    except CredentialValueError:
        return False
    total = sum(int(digit) * weight for digit, weight in zip(number[:17], _ID_WEIGHTS, strict=True))
    return _ID_CHECK_CHARS[total % 11] == number[17]


def normalise_qr(value: str) -> str:
    """QR text is hashed as decoded: its own format (see :mod:`protocol.qrtoken`) defines equality."""
    if not value or len(value) > MAX_VALUE_CHARS:
        raise CredentialValueError(f"QR text must be 1-{MAX_VALUE_CHARS} characters")
    return value


def normalise(kind: CredentialKind | str, value: str) -> str:
    """The normalised form of ``value`` for ``kind`` (card, id_card, qr)."""
    kind = CredentialKind(kind)
    if not isinstance(value, str):
        raise CredentialValueError("credential value must be text")
    if kind is CredentialKind.CARD:
        return normalise_card_uid(value)
    if kind is CredentialKind.ID_CARD:
        return normalise_id_number(value)
    if kind is CredentialKind.QR:
        return normalise_qr(value)
    raise CredentialValueError("PINs are not hashed with credential_hash; use pin_verifier()")


def credential_hash(credential_key: bytes, kind: CredentialKind | str, value: str) -> str:
    """``HMAC-SHA256(credential_key, f"{kind}:{normalised}")`` as 64 lower-case hex digits.

    The kind is part of the message so the same digits read as a card UID and typed as something else
    never collide.
    """
    _check_key(credential_key, "credential key")
    kind = CredentialKind(kind)
    message = f"{kind.value}:{normalise(kind, value)}".encode()
    return hmac.new(bytes(credential_key), message, hashlib.sha256).hexdigest()


def pin_verifier(credential_key: bytes, member_no: str, pin: str) -> str:
    """The roster value a kiosk compares an offline PIN entry against (64 hex digits).

    ``PBKDF2-HMAC-SHA256(password=pin, salt=HMAC(credential_key, "pin-salt:" + member_no),
    iterations=PIN_ITERATIONS)``. The salt is per member (so one precomputed table does not cover
    everyone) and derived from the credential key (so a roster dump alone cannot be attacked at all).

    Trade-off, stated plainly: a PIN has 10**4–10**8 values. Whoever holds *both* the roster and the
    credential key can try every 6-digit PIN of one member in about 10**6 × 15 ms ≈ 4 CPU-hours; the
    iteration count only buys time. It cannot be much larger because a kiosk computes it on every PIN
    entry, on slow hardware, while a member waits. PIN check-in is therefore a fallback with lower trust;
    the real defences are the credential key staying on the kiosk, per-member PIN change after a kiosk
    is lost, and the server's argon2 hash for anything beyond check-in.
    """
    _check_key(credential_key, "credential key")
    if not isinstance(member_no, str) or not _MEMBER_NO_RE.fullmatch(member_no):
        raise CredentialValueError("member number must be 1-32 letters, digits, '-' or '_'")
    if not isinstance(pin, str) or not _PIN_RE.fullmatch(pin):
        raise CredentialValueError("PIN must be 4-8 digits")
    salt = hmac.new(bytes(credential_key), f"pin-salt:{member_no}".encode(), hashlib.sha256).digest()
    return hashlib.pbkdf2_hmac("sha256", pin.encode(), salt, PIN_ITERATIONS).hex()


def national_id_hash(server_secret: bytes, id_number: str) -> str:
    """Keyed hash of a resident ID number for the server's member records (64 hex digits).

    A separate server-only secret and a distinct domain label (``national_id:``) keep this apart from
    kiosk credential hashes: leaking a kiosk's credential key reveals nothing about member records.
    """
    _check_key(server_secret, "national-ID secret")
    message = f"national_id:{normalise_id_number(id_number)}".encode()
    return hmac.new(bytes(server_secret), message, hashlib.sha256).hexdigest()
