"""Wire messages of the kiosk API (pydantic v2, strict, closed, bounded).

Parse a request body with ``Model.model_validate_json(body)``; send with ``model.to_json_bytes()``.
"""

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
    ReaderState,
    ReaderStatus,
    RosterDelta,
    RosterEntry,
)

__all__ = [
    "MAX_BATCH_EVENTS",
    "MAX_BODY_BYTES",
    "BatchAck",
    "CameraStatus",
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
    "Message",
    "ReaderState",
    "ReaderStatus",
    "RosterDelta",
    "RosterEntry",
    "TapEventIn",
    "Trust",
]
