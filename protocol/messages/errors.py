"""The one JSON error envelope of the kiosk API."""

from __future__ import annotations

import logging
from typing import Annotated

from pydantic import Field, StringConstraints

from protocol.messages.common import Message, Timestamp

logger = logging.getLogger(__name__)

ErrorCode = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]{1,64}$")]
ErrorText = Annotated[str, StringConstraints(min_length=1, max_length=500)]


class ErrorResponse(Message):
    """``code`` is stable for programs (e.g. ``bad_signature``, ``clock_skew``, ``replayed_nonce``,
    ``unknown_kiosk``, ``revoked_kiosk``, ``validation_error``); the two messages are for people.
    ``server_time`` is set on clock-skew errors so the kiosk can correct its offset."""

    code: ErrorCode
    message: ErrorText
    message_zh: ErrorText
    server_time: Timestamp | None = None
    details: (
        Annotated[list[Annotated[str, StringConstraints(max_length=300)]], Field(max_length=20)] | None
    ) = None
