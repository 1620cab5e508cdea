"""protocol — the wire contract between kiosk and server.

Imports only the standard library, pydantic and ``cryptography``; nothing else of ours. Modules:

* :mod:`protocol.version` — ``PROTOCOL_VERSION`` and its header
* :mod:`protocol.ids` — UUIDv7 event ids
* :mod:`protocol.hashing` — keyed credential hashes, PIN verifiers, national-ID hashes
* :mod:`protocol.chain` — the per-kiosk TapEvent hash chain
* :mod:`protocol.signing` — HMAC request signing and verification
* :mod:`protocol.messages` — pydantic models of every message; :mod:`protocol.schemas` — their JSON Schema
* :mod:`protocol.masking` — names and phone numbers for screens
* :mod:`protocol.qrtoken` — signed QR tokens (rotating phone codes, printed badges)
* :mod:`protocol.sessionrules` — the session rules' arithmetic the kiosk's decision and the server's
  engine share (debounce, limits, closing time, toggle, open elsewhere) and what a screen said
"""

from protocol.chain import (
    GENESIS_HASH,
    BreakReason,
    ChainBreak,
    ChainResult,
    canonical_bytes,
    compute_hash,
    verify_chain,
)
from protocol.hashing import (
    CredentialKind,
    CredentialValueError,
    credential_hash,
    generate_key,
    id_number_check_digit_ok,
    national_id_hash,
    normalise,
    pin_verifier,
)
from protocol.ids import is_uuid7, uuid7, uuid7_time
from protocol.masking import mask_name, mask_phone
from protocol.messages import (
    BatchAck,
    Command,
    CommandName,
    CommandResult,
    Direction,
    EnrolRequest,
    EnrolResponse,
    ErrorResponse,
    EventBatch,
    HealthReport,
    HeartbeatRequest,
    HeartbeatResponse,
    RosterDelta,
    RosterEntry,
    TapEventIn,
    Trust,
)
from protocol.qrtoken import (
    Expired,
    ForgedSignature,
    FromFuture,
    Malformed,
    Replayed,
    RevokedBadge,
    TokenKind,
    TokenRejected,
    UnknownKey,
    VerifiedToken,
    mint_badge_token,
    mint_phone_token,
    step_at,
    token_fingerprint,
    verify_token,
)
from protocol.schemas import openapi_components
from protocol.signing import (
    BadSignature,
    ClockSkew,
    MalformedHeaders,
    SigningError,
    VerifiedRequest,
    parse_signature_headers,
    request_target,
    sign_request,
    verify_request,
)
from protocol.version import API_PREFIX, PROTOCOL_HEADER, PROTOCOL_VERSION

__all__ = [
    "API_PREFIX",
    "GENESIS_HASH",
    "PROTOCOL_HEADER",
    "PROTOCOL_VERSION",
    "BadSignature",
    "BatchAck",
    "BreakReason",
    "ChainBreak",
    "ChainResult",
    "ClockSkew",
    "Command",
    "CommandName",
    "CommandResult",
    "CredentialKind",
    "CredentialValueError",
    "Direction",
    "EnrolRequest",
    "EnrolResponse",
    "ErrorResponse",
    "EventBatch",
    "Expired",
    "ForgedSignature",
    "FromFuture",
    "HealthReport",
    "HeartbeatRequest",
    "HeartbeatResponse",
    "Malformed",
    "MalformedHeaders",
    "Replayed",
    "RevokedBadge",
    "RosterDelta",
    "RosterEntry",
    "SigningError",
    "TapEventIn",
    "TokenKind",
    "TokenRejected",
    "Trust",
    "UnknownKey",
    "VerifiedRequest",
    "VerifiedToken",
    "canonical_bytes",
    "compute_hash",
    "credential_hash",
    "generate_key",
    "id_number_check_digit_ok",
    "is_uuid7",
    "mask_name",
    "mask_phone",
    "mint_badge_token",
    "mint_phone_token",
    "national_id_hash",
    "normalise",
    "openapi_components",
    "parse_signature_headers",
    "pin_verifier",
    "request_target",
    "sign_request",
    "step_at",
    "token_fingerprint",
    "uuid7",
    "uuid7_time",
    "verify_chain",
    "verify_request",
    "verify_token",
]
