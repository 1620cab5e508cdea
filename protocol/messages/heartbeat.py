"""Heartbeat: kiosk health out; desired config, roster delta and queued commands back.

The heartbeat is the whole management channel, so a kiosk behind NAT needs no inbound connection:
commands queue on the server and ride the next heartbeat; their results ride the one after.
"""

from __future__ import annotations

import enum
import logging
from typing import Annotated, Self

from pydantic import Field, StringConstraints, model_validator

from protocol.hashing import CredentialKind
from protocol.messages.common import (
    BadgeSerial,
    CommandArgs,
    ConfigBody,
    Count,
    Cursor,
    DbId,
    EventId,
    Hex64,
    KeyId,
    Message,
    Name,
    Seconds,
    ShortText,
    Timestamp,
    Version,
)
from protocol.sessionrules import CloseReason
from protocol.version import PROTOCOL_VERSION

logger = logging.getLogger(__name__)

MAX_ROSTER_PAGE = 5000
MAX_COMMANDS = 50
MAX_REVOKED_BADGES = 20_000
MAX_PRESENCE = 20_000

#: Raw Ed25519 public key (32 bytes) in unpadded base64url: 43 characters.
PublicKeyB64 = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{43}$")]


class ReaderState(enum.StrEnum):
    """Mirrors ``hardware.base.ReaderState`` (protocol may not import hardware)."""

    STOPPED = "stopped"
    CONNECTING = "connecting"
    READY = "ready"
    ERROR = "error"


class ReaderStatus(Message):
    reader_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    driver: Annotated[str, StringConstraints(min_length=1, max_length=32)]
    state: Annotated[ReaderState, Field(strict=False)]
    reads: Count = 0
    errors: Count = 0
    last_error: ShortText | None = None


class CameraStatus(Message):
    state: Annotated[ReaderState, Field(strict=False)]
    fps: Annotated[float, Field(ge=0, le=1000, allow_inf_nan=False)] = 0.0
    last_frame_age_s: Seconds | None = None
    decodes: Count = 0


class HealthReport(Message):
    """What staff see on the fleet page and what raises alarms (outbox growing, clock drifting)."""

    readers: Annotated[list[ReaderStatus], Field(max_length=16)]
    camera: CameraStatus | None = None
    outbox_depth: Count
    oldest_unsynced_age_s: Seconds | None = None
    clock_offset_ms: Annotated[int, Field(ge=-(10**12), le=10**12)] | None = None
    disk_free_bytes: Count
    capacity_alarm: bool = False
    software_version: Version
    config_version: Count  # the config the kiosk has stored
    applied_config_version: Count  # the config it is running (differs while a reload is pending)
    locked: bool = False
    uptime_s: Seconds | None = None
    protocol_version: Annotated[int, Field(ge=1, le=1000)] = PROTOCOL_VERSION


class CommandName(enum.StrEnum):
    RELOAD_CONFIG = "reload_config"
    RESYNC_ROSTER = "resync_roster"
    RESTART_READERS = "restart_readers"
    LOCK_SCREEN = "lock_screen"
    UNLOCK_SCREEN = "unlock_screen"
    SHOW_MESSAGE = "show_message"  # args: text (Chinese, required), text_en, seconds
    ROTATE_KEY = "rotate_key"  # the kiosk re-enrols its secret over the signed channel


class Command(Message):
    command_id: EventId
    name: Annotated[CommandName, Field(strict=False)]
    args: Annotated[CommandArgs, Field(default_factory=dict)]
    issued_at: Timestamp
    expires_at: Timestamp | None = None

    @model_validator(mode="after")
    def _show_message_has_text(self) -> Self:
        if self.name is CommandName.SHOW_MESSAGE:
            text = self.args.get("text")
            if not isinstance(text, str) or not 1 <= len(text) <= 200:
                raise ValueError("show_message needs args.text of 1-200 characters")
        return self


class CommandResult(Message):
    command_id: EventId
    name: Annotated[CommandName, Field(strict=False)]
    ok: bool
    detail: ShortText | None = None
    completed_at: Timestamp


class HeartbeatRequest(Message):
    """``roster_cursor`` is the cursor of the last roster delta applied; ``None`` asks for everything."""

    device_time: Timestamp
    health: HealthReport
    roster_cursor: Cursor | None = None
    command_results: Annotated[list[CommandResult], Field(default_factory=list, max_length=MAX_COMMANDS)]


class RosterEntry(Message):
    """One credential the kiosk may recognise offline. Names are masked on the server (protocol.masking)."""

    credential_hash: Hex64
    credential_kind: Annotated[CredentialKind, Field(strict=False)]
    member_id: DbId
    masked_name: Annotated[str, StringConstraints(min_length=1, max_length=32)]
    unit_name: Name


class PresenceSession(Message):
    """A member's open session as the server's engine sees it: where, since when, and until when it
    counts (its centre's limit, computed with that centre's rules, which the kiosk does not have)."""

    centre_id: DbId
    centre_name: Name
    started_at: Timestamp
    until: Timestamp
    until_reason: Annotated[CloseReason, Field(strict=False)]


class MemberPresence(Message):
    """The server's state of one roster member, as :func:`protocol.sessionrules.step` needs it.

    ``last_tap_at``: the time of the member's latest tap the server had (anywhere); the kiosk replays its
    own later taps on top. ``last_toggle_here``: the member's latest IN or OUT at the kiosk's centre
    (the debounce window), when recent. ``open``: the open session, at this centre or another.
    """

    member_id: DbId
    last_tap_at: Timestamp
    last_toggle_here: Timestamp | None = None
    open: PresenceSession | None = None


class Presence(Message):
    """Which roster members tapped recently, and where they are open — a complete set, as of ``as_of``.

    Members absent from it had no tap the server knows of in the last ``max_length + debounce``: nothing
    of their state survives that long. ``centre_id`` is the kiosk's own centre.
    """

    centre_id: DbId
    as_of: Timestamp
    members: Annotated[list[MemberPresence], Field(default_factory=list, max_length=MAX_PRESENCE)]


class RosterDelta(Message):
    """Changes since the kiosk's cursor. With ``full_resync`` the kiosk drops its roster first.

    ``more`` means another page is waiting: the kiosk heartbeats again at once with the new cursor.
    ``qr_public_keys`` and ``revoked_badges`` are complete sets when present, ``None`` when unchanged.
    ``presence`` (protocol 2) rides every page, complete; ``None`` from a server that does not send it,
    and never sent to a kiosk that announced protocol 1 (its closed messages would refuse it).
    """

    cursor: Cursor
    full_resync: bool = False
    more: bool = False
    upserts: Annotated[list[RosterEntry], Field(default_factory=list, max_length=MAX_ROSTER_PAGE)]
    removals: Annotated[list[Hex64], Field(default_factory=list, max_length=MAX_ROSTER_PAGE)]
    qr_public_keys: Annotated[dict[KeyId, PublicKeyB64], Field(max_length=16)] | None = None
    revoked_badges: Annotated[list[BadgeSerial], Field(max_length=MAX_REVOKED_BADGES)] | None = None
    presence: Presence | None = None


class HeartbeatResponse(Message):
    """``config`` is sent only when ``desired_config_version`` differs from what the kiosk applied."""

    server_time: Timestamp
    desired_config_version: Count
    config: ConfigBody | None = None
    roster: RosterDelta
    commands: Annotated[list[Command], Field(default_factory=list, max_length=MAX_COMMANDS)]
