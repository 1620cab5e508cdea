"""Wire messages of the kiosk API (pydantic v2, strict, closed, bounded).

Parse a request body with ``Model.model_validate_json(body)``; send with ``model.to_json_bytes()``.
"""

from protocol.messages.bindings import (
    MAX_BINDINGS,
    BindingAck,
    BindingBatch,
    BindingRejection,
    CardBinding,
    KeyRotationRequest,
    KeyRotationResponse,
)
from protocol.messages.common import MAX_BODY_BYTES, Message
from protocol.messages.enrolment import CentreInfo, EnrolRequest, EnrolResponse
from protocol.messages.errors import ErrorResponse
from protocol.messages.events import (
    MAX_BATCH_EVENTS,
    BatchAck,
    ChainFlag,
    ChainStatus,
    Direction,
    EventBatch,
    TapEventIn,
    Trust,
)
from protocol.messages.heartbeat import (
    CameraStatus,
    Command,
    CommandName,
    CommandResult,
    HealthReport,
    HeartbeatRequest,
    HeartbeatResponse,
    MemberPresence,
    Presence,
    PresenceSession,
    ReaderState,
    ReaderStatus,
    RosterDelta,
    RosterEntry,
)

__all__ = [
    "MAX_BATCH_EVENTS",
    "MAX_BINDINGS",
    "MAX_BODY_BYTES",
    "BatchAck",
    "BindingAck",
    "BindingBatch",
    "BindingRejection",
    "CameraStatus",
    "CardBinding",
    "CentreInfo",
    "ChainFlag",
    "ChainStatus",
    "Command",
    "CommandName",
    "CommandResult",
    "Direction",
    "EnrolRequest",
    "EnrolResponse",
    "ErrorResponse",
    "EventBatch",
    "HealthReport",
    "HeartbeatRequest",
    "HeartbeatResponse",
    "KeyRotationRequest",
    "KeyRotationResponse",
    "MemberPresence",
    "Message",
    "Presence",
    "PresenceSession",
    "ReaderState",
    "ReaderStatus",
    "RosterDelta",
    "RosterEntry",
    "TapEventIn",
    "Trust",
]
