"""TapEvent upload: the events a kiosk sends and the server's acknowledgement."""

from __future__ import annotations

import enum
import logging
from typing import Annotated, Self

from pydantic import Field, model_validator

from protocol.chain import BreakReason, compute_hash
from protocol.hashing import CredentialKind
from protocol.messages.common import (
    BadgeSerial,
    DbId,
    EventId,
    Hex64,
    Message,
    ShortText,
    Timestamp,
    TzName,
)

logger = logging.getLogger(__name__)

MAX_BATCH_EVENTS = 500


class Direction(enum.StrEnum):
    """What the kiosk decided for a tap (DESIGN.md "Rules users will rely on")."""

    IN = "in"
    OUT = "out"
    DUPLICATE = "duplicate"  # same credential again inside the debounce window
    UNKNOWN = "unknown"  # credential not in the roster; recorded so staff can bind it
    REJECTED = "rejected"  # recognised but refused (expired or replayed QR, revoked badge, locked kiosk)


class Trust(enum.StrEnum):
    """How strongly the credential proves presence: a printed badge or a PIN can be lent, so it is low."""

    HIGH = "high"
    LOW = "low"


class ChainStatus(enum.StrEnum):
    OK = "ok"
    GAP = "gap"  # events missing between the server's head and this batch
    BROKEN = "broken"  # an edited, reordered or forked history


class TapEventIn(Message):
    """One identification at one kiosk, as the kiosk recorded it. Immutable once hashed into the chain.

    ``hash`` covers every other field (see :mod:`protocol.chain`); a mismatch is *not* a validation
    error, because the server must store and flag an edited history, not bounce it back forever.
    """

    event_id: EventId
    seq: Annotated[int, Field(ge=1, le=2**53)]
    prev_hash: Hex64
    hash: Hex64
    credential_kind: Annotated[CredentialKind, Field(strict=False)]
    credential_hash: Hex64
    qr_step: Annotated[int, Field(ge=0, le=2**40)] | None = None
    badge_serial: BadgeSerial | None = None
    member_id: DbId | None = None
    direction: Annotated[Direction, Field(strict=False)]
    device_time: Timestamp
    device_tz: TzName
    clock_offset_ms: Annotated[int, Field(ge=-(10**12), le=10**12)]
    trust: Annotated[Trust, Field(strict=False)] | None = None
    reason: ShortText | None = None

    @model_validator(mode="after")
    def _qr_fields_only_for_qr(self) -> Self:
        if self.credential_kind is not CredentialKind.QR and (
            self.qr_step is not None or self.badge_serial is not None
        ):
            raise ValueError("qr_step and badge_serial are only allowed for credential_kind 'qr'")
        if self.qr_step is not None and self.badge_serial is not None:
            raise ValueError("an event has a qr_step (phone code) or a badge_serial (badge), not both")
        return self

    def computed_hash(self) -> str:
        """The hash this event's content implies; equals ``hash`` unless the event was altered."""
        return compute_hash(self.prev_hash, self)

    def hash_ok(self) -> bool:
        return self.computed_hash() == self.hash


class EventBatch(Message):
    """Up to :data:`MAX_BATCH_EVENTS` events, in ``seq`` order, with no repeated ``event_id``."""

    events: Annotated[list[TapEventIn], Field(min_length=1, max_length=MAX_BATCH_EVENTS)]

    @model_validator(mode="after")
    def _unique_ids(self) -> Self:
        if len({e.event_id for e in self.events}) != len(self.events):
            raise ValueError("event_id repeated within one batch")
        return self


class ChainFlag(Message):
    """A chain problem the server found and recorded (it still stored the events)."""

    event_id: EventId | None = None
    seq: Annotated[int, Field(ge=0, le=2**53)] | None = None
    reason: Annotated[BreakReason, Field(strict=False)]
    expected: ShortText
    got: ShortText


class BatchAck(Message):
    """Sent only after the server committed the batch. ``accepted`` are new, ``duplicates`` were already
    stored; the kiosk may delete both from its outbox. ``head_seq`` is the server's verified chain head."""

    accepted: Annotated[list[EventId], Field(max_length=MAX_BATCH_EVENTS)]
    duplicates: Annotated[list[EventId], Field(max_length=MAX_BATCH_EVENTS)]
    chain: Annotated[ChainStatus, Field(strict=False)]
    flags: Annotated[list[ChainFlag], Field(default_factory=list, max_length=MAX_BATCH_EVENTS)]
    head_seq: Annotated[int, Field(ge=0, le=2**53)]
    server_time: Timestamp
