"""Shared field types and the base model of every wire message.

Every message is *strict* (no silent coercion: ``"1"`` is not an integer, ``1`` is not text),
*closed* (unknown fields are rejected, so a typo in a kiosk build fails loudly rather than dropping
data) and *bounded* (every string, list and mapping has a maximum, so a hostile or broken peer cannot
make the server allocate without limit). Enums are the one lax spot: in Python they accept their text
value as well as the member, which is what a kiosk building a message by hand expects.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, JsonValue, StringConstraints
from pydantic.types import UuidVersion

logger = logging.getLogger(__name__)

#: The largest request body a server should read before parsing (a full EventBatch is ≈ 260 KB).
MAX_BODY_BYTES = 1024 * 1024
#: Largest serialised size of free-form JSON (config bodies, command arguments).
MAX_CONFIG_JSON_BYTES = 64 * 1024
MAX_ARGS_JSON_BYTES = 4 * 1024


class Message(BaseModel):
    """Base of every wire message."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, str_max_length=4096)

    def to_json_bytes(self) -> bytes:
        """The body to send. Optional fields left ``None`` are sent as ``null`` for explicitness."""
        return self.model_dump_json().encode()


def _json_size_limit(limit: int) -> AfterValidator:
    def check(value: Any) -> Any:
        if value is not None and len(json.dumps(value, ensure_ascii=False).encode()) > limit:
            raise ValueError(f"serialised JSON larger than {limit} bytes")
        return value

    return AfterValidator(check)


Hex64 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
HexSecret = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32,128}$")]
#: A UUIDv7 (time-ordered): version 7 and the RFC 9562 variant, as :func:`protocol.ids.is_uuid7` — checked
#: by pydantic-core itself (``tests/unit/protocol/test_messages.py`` proves the two agree), because a
#: Python validator per id was a tenth of the validation time of a full batch.
EventId = Annotated[uuid.UUID, UuidVersion(7)]
KioskId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
DbId = Annotated[int, Field(ge=1, le=2**63 - 1)]
#: An aware instant, in years 2 to 9998: Python's datetime range without its first and last year, so that
#: converting any accepted value to UTC (for the chain hash, for storage) cannot overflow — a kiosk clock
#: gone wild is refused with a clear error instead of failing the server halfway. Checked by
#: pydantic-core, comparing instants whatever the zone.
Timestamp = Annotated[
    AwareDatetime, Field(ge=datetime(2, 1, 1, tzinfo=UTC), le=datetime(9998, 12, 31, tzinfo=UTC))
]
TzName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_+\-/]{1,64}$")]
ShortText = Annotated[str, StringConstraints(max_length=200)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Version = Annotated[str, StringConstraints(min_length=1, max_length=64)]
KeyId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9]{1,8}$")]
BadgeSerial = Annotated[str, StringConstraints(pattern=r"^[A-Z0-9]{1,16}$")]
Cursor = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Count = Annotated[int, Field(ge=0, le=2**53)]
Seconds = Annotated[float, Field(ge=0, le=10**10, allow_inf_nan=False)]
ConfigBody = Annotated[dict[str, JsonValue], _json_size_limit(MAX_CONFIG_JSON_BYTES)]
CommandArgs = Annotated[dict[str, JsonValue], Field(max_length=16), _json_size_limit(MAX_ARGS_JSON_BYTES)]
