"""Card bindings made by staff at a kiosk, and request-signing key rotation.

A binding ties a newly tapped card to a member; the kiosk keeps it in its outbox (outside the tap hash
chain) until the server answers. The answer is final for every id it names: ``accepted`` (applied now),
``duplicates`` (applied earlier) and ``rejected`` (refused for good, with a reason to show staff).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from protocol.hashing import CredentialKind
from protocol.messages.common import (
    DbId,
    EventId,
    Hex64,
    HexSecret,
    KioskId,
    Message,
    ShortText,
    Timestamp,
    TzName,
)

MAX_BINDINGS = 100


class CardBinding(Message):
    """One binding as the kiosk uploads it (``kiosk.outbox.StoredBinding.to_wire()``)."""

    binding_id: EventId
    credential_kind: Annotated[CredentialKind, Field(strict=False)]
    credential_hash: Hex64
    member_id: DbId
    staff_ref: ShortText | None = None
    device_time: Timestamp
    device_tz: TzName


class BindingBatch(Message):
    bindings: Annotated[list[CardBinding], Field(min_length=1, max_length=MAX_BINDINGS)]


class BindingRejection(Message):
    """A binding the server refused, for good: the kiosk stops sending it and tells staff."""

    id: EventId
    code: Annotated[str, StringConstraints(min_length=1, max_length=40)]
    message: ShortText
    message_zh: ShortText


class BindingAck(Message):
    """Sent after commit. ``accepted``: applied now; ``duplicates``: applied earlier; ``rejected``: refused."""

    accepted: Annotated[list[EventId], Field(default_factory=list, max_length=MAX_BINDINGS)]
    duplicates: Annotated[list[EventId], Field(default_factory=list, max_length=MAX_BINDINGS)]
    rejected: Annotated[list[BindingRejection], Field(default_factory=list, max_length=MAX_BINDINGS)]


class KeyRotationRequest(Message):
    """``command_id``: the ``rotate_key`` command being answered, if any (kiosk-initiated otherwise)."""

    command_id: EventId | None = None


class KeyRotationResponse(Message):
    """The new request-signing secret (hex: ``bytes.fromhex``). Store it durably before using it; the old
    one keeps verifying until the new one has signed a request, then for ``overlap_s`` seconds."""

    kiosk_id: KioskId
    kiosk_secret: HexSecret
    previous_secret_valid_until: Timestamp
    overlap_s: int = Field(ge=0, le=10**7)
    server_time: Timestamp
