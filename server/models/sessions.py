"""ServiceSession (derived, recomputable) and Correction (append-only staff decisions)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, utcnow
from .members import _in

SESSION_STATUSES = ("open", "closed", "auto_closed", "needs_review", "approved", "adjusted", "rejected")
SESSION_SOURCES = ("kiosk", "manual")
CORRECTION_ACTIONS = ("approve", "adjust", "reject", "manual")


class ServiceSession(Base):
    """A check-in/check-out pair with credited minutes, derived by the session engine.

    ``key`` is the check-in event id (or ``manual:<correction id>``); corrections point at keys, so
    sessions can be recomputed from events and corrections at any time without losing a decision.
    """

    __tablename__ = "service_sessions"
    __table_args__ = (
        CheckConstraint(_in("status", SESSION_STATUSES), name="status"),
        CheckConstraint(_in("source", SESSION_SOURCES), name="source"),
        CheckConstraint("credited_minutes >= 0", name="credited_nonneg"),
        CheckConstraint("ended_at IS NULL OR ended_at >= started_at", name="ends_after_start"),
        Index("ix_service_sessions_member_start", "member_id", "started_at"),
        Index("ix_service_sessions_community_start", "community_id", "started_at"),
        Index("ix_service_sessions_status", "status"),
        # Reports over a whole city month/year (server/reports): an index-only scan on PostgreSQL.
        Index(
            "ix_service_sessions_started_reports",
            "started_at",
            postgresql_include=["status", "credited_minutes", "unit_id", "community_id", "member_id"],
        ),
        # The review queue's count goes from the few flagged taps to their sessions (server/web/review.py).
        Index("ix_service_sessions_check_in", "check_in_event_id"),
        Index("ix_service_sessions_check_out", "check_out_event_id"),
    )
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"))
    centre_id: Mapped[int] = mapped_column(ForeignKey("service_centres.id"))
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"))
    check_in_event_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("tap_events.event_id"))
    check_out_event_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("tap_events.event_id"))
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(16))
    credited_minutes: Mapped[int] = mapped_column(default=0)
    reason: Mapped[str | None] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(16), default="kiosk")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Correction(Base):
    """A staff decision on a session: who, when, why, before and after. Append-only (database triggers)."""

    __tablename__ = "corrections"
    __table_args__ = (
        CheckConstraint(_in("action", CORRECTION_ACTIONS), name="action"),
        CheckConstraint("length(reason) > 0", name="reason_required"),
        CheckConstraint("minutes IS NULL OR minutes >= 0", name="minutes_nonneg"),
        Index("ix_corrections_member", "member_id", "created_at"),
    )
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True)
    session_key: Mapped[str | None] = mapped_column(String(64), index=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    centre_id: Mapped[int] = mapped_column(ForeignKey("service_centres.id"))
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"))
    action: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    started_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    minutes: Mapped[int | None]
    before: Mapped[dict[str, Any] | None]
    after: Mapped[dict[str, Any] | None]
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
