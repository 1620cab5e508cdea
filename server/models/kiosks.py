"""Kiosks, their enrolment tokens, remote commands, configs, heartbeats and used request nonces."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from protocol.ids import uuid7

from .base import Base, utcnow
from .members import _in

KIOSK_STATUSES = ("active", "revoked")
COMMAND_NAMES = (
    "reload_config",
    "resync_roster",
    "restart_readers",
    "lock_screen",
    "unlock_screen",
    "show_message",
    "rotate_key",
)
COMMAND_STATUSES = ("queued", "sent", "done", "failed")


class Kiosk(Base):
    """An enrolled device at one centre. ``secret`` signs its requests (HMAC needs it on both sides)."""

    __tablename__ = "kiosks"
    __table_args__ = (CheckConstraint(_in("status", KIOSK_STATUSES), name="status"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    kiosk_uid: Mapped[str] = mapped_column(String(40), unique=True)
    centre_id: Mapped[int] = mapped_column(ForeignKey("service_centres.id"), index=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    secret: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), default="active")
    enrolled_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
    last_seen_at: Mapped[datetime | None]
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    last_hash: Mapped[str] = mapped_column(String(64), default="0" * 64)
    chain_broken: Mapped[bool] = mapped_column(default=False)
    # The clock offset stamped on the chain head's tap (server/ingest.py): the next batch's first tap is
    # flagged clock_jump when its offset moved by more than the bound. NULL until the first tap.
    last_tap_offset_ms: Mapped[int | None] = mapped_column(BigInteger)
    desired_config_version: Mapped[int] = mapped_column(default=0)
    applied_config_version: Mapped[int] = mapped_column(default=0)
    software_version: Mapped[str | None] = mapped_column(String(40))
    clock_offset_ms: Mapped[int | None] = mapped_column(BigInteger)
    health: Mapped[dict[str, Any] | None]
    # Key rotation (server/api/rotation.py): the secret before the last rotation still verifies until
    # ``previous_secret_until`` — shortened to a brief overlap once the new secret has signed a request.
    previous_secret: Mapped[str | None] = mapped_column(String(128))
    previous_secret_until: Mapped[datetime | None]
    secret_rotated_at: Mapped[datetime | None]
    secret_confirmed_at: Mapped[datetime | None]


BINDING_STATUSES = ("accepted", "rejected")


class KioskBinding(Base):
    """A card binding staff made at a kiosk, as uploaded (server/api/bindings.py): idempotent by
    ``binding_uid``, kept whether accepted or refused so a re-sent binding gets the same answer."""

    __tablename__ = "kiosk_bindings"
    __table_args__ = (CheckConstraint(_in("status", BINDING_STATUSES), name="status"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    binding_uid: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True)
    kiosk_id: Mapped[int] = mapped_column(ForeignKey("kiosks.id"), index=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"))
    member_id: Mapped[int] = mapped_column(BigInteger)  # as sent (may name no member: then rejected)
    credential_kind: Mapped[str] = mapped_column(String(16))
    credential_hash: Mapped[str] = mapped_column(String(64))
    credential_id: Mapped[int | None] = mapped_column(ForeignKey("credentials.id"))
    staff_ref: Mapped[str | None] = mapped_column(String(200))
    device_time: Mapped[datetime]
    device_tz: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    status: Mapped[str] = mapped_column(String(16))
    code: Mapped[str | None] = mapped_column(String(40))


class EnrolmentToken(Base):
    """One-time, expiring token an admin hands to the person installing a kiosk. Stored hashed."""

    __tablename__ = "enrolment_tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    centre_id: Mapped[int] = mapped_column(ForeignKey("service_centres.id"))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    kiosk_id: Mapped[int | None] = mapped_column(ForeignKey("kiosks.id"))


class KioskConfig(Base):
    """A versioned configuration pushed to a kiosk; the kiosk reports the version it applied."""

    __tablename__ = "kiosk_configs"
    __table_args__ = (UniqueConstraint("kiosk_id", "version"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    kiosk_id: Mapped[int] = mapped_column(ForeignKey("kiosks.id"), index=True)
    version: Mapped[int]
    body: Mapped[dict[str, Any]]
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class KioskCommand(Base):
    """A remote command queued for a kiosk, delivered by heartbeat, acknowledged with a result."""

    __tablename__ = "kiosk_commands"
    __table_args__ = (
        CheckConstraint(_in("name", COMMAND_NAMES), name="name"),
        CheckConstraint(_in("status", COMMAND_STATUSES), name="status"),
        Index("ix_kiosk_commands_pending", "kiosk_id", "status"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    # The id on the wire (protocol Command.command_id is a UUIDv7); made when the row is created.
    command_uid: Mapped[uuid.UUID | None] = mapped_column(Uuid, unique=True, index=True, default=uuid7)
    kiosk_id: Mapped[int] = mapped_column(ForeignKey("kiosks.id"))
    name: Mapped[str] = mapped_column(String(32))
    args: Mapped[dict[str, Any] | None]
    status: Mapped[str] = mapped_column(String(16), default="queued")
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    result: Mapped[dict[str, Any] | None]


class KioskHeartbeat(Base):
    """History of health reports, for the fleet page's per-kiosk history and alerts."""

    __tablename__ = "kiosk_heartbeats"
    __table_args__ = (Index("ix_kiosk_heartbeats_kiosk_time", "kiosk_id", "received_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    kiosk_id: Mapped[int] = mapped_column(ForeignKey("kiosks.id"))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    clock_offset_ms: Mapped[int | None] = mapped_column(BigInteger)
    outbox_depth: Mapped[int | None]
    oldest_unsynced_s: Mapped[int | None]
    health: Mapped[dict[str, Any]]


class UsedNonce(Base):
    """Nonces of signed kiosk requests seen within the skew window: replay protection shared by all workers.

    The primary key makes a replay fail on insert, whichever gunicorn worker sees it; rows older than the
    skew window are purged.
    """

    __tablename__ = "used_nonces"
    nonce: Mapped[str] = mapped_column(String(80), primary_key=True)
    kiosk_id: Mapped[int] = mapped_column(ForeignKey("kiosks.id"))
    seen_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class RateLimitHit(Base):
    """Counters for rate limits (logins, PIN attempts) kept in the database so every worker shares them."""

    __tablename__ = "rate_limit_hits"
    __table_args__ = (Index("ix_rate_limit_hits_key_time", "key", "at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    detail: Mapped[str | None] = mapped_column(Text)
