"""The central server's domain model, one module per domain (see DESIGN.md "Domain")."""

from .base import Base, UTCDateTime, utcnow
from .events import TapEvent
from .kiosks import (
    EnrolmentToken,
    Kiosk,
    KioskBinding,
    KioskCommand,
    KioskConfig,
    KioskHeartbeat,
    RateLimitHit,
    UsedNonce,
)
from .members import Credential, Member
from .org import Community, ServiceCentre, Unit, UnitCommunity
from .qr import QrBadge, QrLoginLink, QrSigningKey, QrTokenUse
from .recompute import RecomputeQueueEntry
from .sessions import Correction, ServiceSession
from .users import AuditRecord, User

APPEND_ONLY_TABLES = ("tap_events", "corrections", "audit_records")

__all__ = [
    "APPEND_ONLY_TABLES",
    "AuditRecord",
    "Base",
    "Community",
    "Correction",
    "Credential",
    "EnrolmentToken",
    "Kiosk",
    "KioskBinding",
    "KioskCommand",
    "KioskConfig",
    "KioskHeartbeat",
    "Member",
    "QrBadge",
    "QrLoginLink",
    "QrSigningKey",
    "QrTokenUse",
    "RateLimitHit",
    "RecomputeQueueEntry",
    "ServiceCentre",
    "ServiceSession",
    "TapEvent",
    "UTCDateTime",
    "Unit",
    "UnitCommunity",
    "UsedNonce",
    "User",
    "utcnow",
]
