"""TapEvent: the immutable raw record of one identification at one kiosk.

Append-only: the application never updates or deletes a row, and the migration installs triggers that make
the database refuse it too. Each row carries its community id (the distribution key) and the kiosk's hash
chain position, so a gap or an edit is provable.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String, UniqueConstraint, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, utcnow
from .members import _in

TAP_CREDENTIAL_KINDS = ("card", "id_card", "qr", "pin")
TAP_DIRECTIONS = ("in", "out", "duplicate", "unknown", "rejected")


class TapEvent(Base):
    __tablename__ = "tap_events"
    __table_args__ = (
        UniqueConstraint("kiosk_id", "seq"),
        CheckConstraint(_in("credential_kind", TAP_CREDENTIAL_KINDS), name="credential_kind"),
        CheckConstraint(_in("direction", TAP_DIRECTIONS), name="direction"),
        CheckConstraint("seq >= 1", name="seq_positive"),
        Index("ix_tap_events_member_time", "member_id", "effective_time"),
        Index("ix_tap_events_community_time", "community_id", "effective_time"),
        # Taps whose member the server resolved (few): their sessions are loaded by this column too.
        Index(
            "ix_tap_events_resolved_member_time",
            "resolved_member_id",
            "effective_time",
            sqlite_where=text("resolved_member_id IS NOT NULL"),
            postgresql_where=text("resolved_member_id IS NOT NULL"),
        ),
        # The review queue looks for flagged taps (server/web/review.py): only the few flagged rows indexed.
        Index(
            "ix_tap_events_flagged",
            "event_id",
            sqlite_where=text("flags IS NOT NULL"),
            postgresql_where=text("flags IS NOT NULL"),
        ),
    )
    event_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    kiosk_id: Mapped[int] = mapped_column(ForeignKey("kiosks.id"))
    centre_id: Mapped[int] = mapped_column(ForeignKey("service_centres.id"))
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"))
    seq: Mapped[int] = mapped_column(BigInteger)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    credential_kind: Mapped[str] = mapped_column(String(16))
    credential_hash: Mapped[str] = mapped_column(String(64))
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"))
    # The member the *server* resolved from the credential when the kiosk recorded none (a card of a
    # member outside the kiosk's roster, flagged outside_roster). Beside the kiosk's own fields, which the
    # chain hash covers and which stay exactly as recorded, so the stored chain still verifies; sessions
    # take it as the tap's member (server/sessions/store.py).
    resolved_member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"))
    direction: Mapped[str] = mapped_column(String(16))  # as the kiosk decided it, offline
    trust: Mapped[str | None] = mapped_column(String(16))  # e.g. "card", "badge" (lower), "phone"
    qr_step: Mapped[int | None] = mapped_column(BigInteger)
    badge_serial: Mapped[str | None] = mapped_column(String(16))  # covered by the chain hash, so kept
    reason: Mapped[str | None] = mapped_column(String(64))
    device_time: Mapped[datetime]
    device_tz: Mapped[str] = mapped_column(String(64))
    clock_offset_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    effective_time: Mapped[datetime]  # device_time corrected by the clock offset: what sessions use
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    chain_ok: Mapped[bool] = mapped_column(default=True)
    flags: Mapped[str | None] = mapped_column(String(200))  # protocol.flags.TapFlag values, comma-separated
