"""The session recompute queue: members whose ServiceSessions lag behind their stored taps.

Ingest writes here in the same transaction as the TapEvents (so a committed tap always has either
up-to-date sessions or a queue row), and a background recomputer (:mod:`server.sessions.queue`) deletes
the row in the same transaction as the session upsert — a worker that dies half-way leaves the row, and
the member is recomputed by whoever claims it next. One row per member: many uploads touching a member
before the recomputer gets to it cost one recomputation.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, utcnow


class RecomputeQueueEntry(Base):
    """``since``: the earliest effective time among the taps enqueued for this member (the incremental
    recompute restarts at the last quiet point before it); ``enqueued_at`` orders the work, oldest first."""

    __tablename__ = "session_recompute_queue"
    __table_args__ = (Index("ix_session_recompute_queue_enqueued", "enqueued_at"),)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), primary_key=True, autoincrement=False)
    since: Mapped[datetime]
    enqueued_at: Mapped[datetime] = mapped_column(default=utcnow)
