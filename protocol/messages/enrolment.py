"""Enrolment: a kiosk trades a one-time token for its identity and secrets (the only unsigned call)."""

from __future__ import annotations

import logging
from typing import Annotated

from pydantic import Field, StringConstraints

from protocol.messages.common import DbId, HexSecret, KioskId, Message, Name, Timestamp, TzName, Version
from protocol.version import PROTOCOL_VERSION

logger = logging.getLogger(__name__)

EnrolToken = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{16,128}$")]


class EnrolRequest(Message):
    token: EnrolToken
    device_name: Name
    software_version: Version
    protocol_version: Annotated[int, Field(ge=1, le=1000)] = PROTOCOL_VERSION


class CentreInfo(Message):
    centre_id: DbId
    name: Name
    community_id: DbId
    community_name: Name
    timezone: TzName = "Asia/Shanghai"


class EnrolResponse(Message):
    """The kiosk's identity. ``kiosk_secret`` signs requests; ``credential_key`` hashes credentials
    (:mod:`protocol.hashing`). Both hex; the kiosk stores them readable by its service user only."""

    kiosk_id: KioskId
    kiosk_secret: HexSecret
    credential_key: HexSecret
    centre: CentreInfo
    server_time: Timestamp
    protocol_version: Annotated[int, Field(ge=1, le=1000)] = PROTOCOL_VERSION
    heartbeat_interval_s: Annotated[int, Field(ge=5, le=3600)] = 30
