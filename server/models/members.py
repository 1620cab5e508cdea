"""Members and the credentials they identify with (with revocation history)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, utcnow

MEMBER_STATUSES = ("active", "inactive")
CREDENTIAL_KINDS = ("card", "id_card", "badge_qr", "phone_qr", "pin")
CREDENTIAL_STATUSES = ("active", "revoked")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Member(Base):
    """在职党员. Personal data is minimised: no raw national ID, ever (only ``national_id_hash``)."""

    __tablename__ = "members"
    __table_args__ = (CheckConstraint(_in("status", MEMBER_STATUSES), name="status"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    member_no: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"), index=True)
    phone: Mapped[str | None] = mapped_column(String(32))
    national_id_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    pin_hash: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Bumped on every ORM update: the kiosk roster's incremental cursor (server/roster.py) follows it.
    updated_at: Mapped[datetime | None] = mapped_column(default=utcnow, onupdate=utcnow, index=True)

    credentials: Mapped[list[Credential]] = relationship(back_populates="member", order_by="Credential.id")


class Credential(Base):
    """One way a member identifies. Revoked rows are kept: they are the history.

    Only one *active* credential may hold a given (kind, value_hash): a partial unique index enforces it
    in the database, while revoked rows with the same value may pile up (a card lost, found, re-bound).
    """

    __tablename__ = "credentials"
    __table_args__ = (
        CheckConstraint(_in("kind", CREDENTIAL_KINDS), name="kind"),
        CheckConstraint(_in("status", CREDENTIAL_STATUSES), name="status"),
        CheckConstraint(
            "(status = 'revoked' AND revoked_at IS NOT NULL) OR (status = 'active' AND revoked_at IS NULL)",
            name="revocation_consistent",
        ),
        Index(
            "uq_credentials_active_value",
            "kind",
            "value_hash",
            unique=True,
            sqlite_where=text("status = 'active'"),
            postgresql_where=text("status = 'active'"),
        ),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    value_hash: Mapped[str] = mapped_column(String(64), index=True)
    label: Mapped[str | None] = mapped_column(
        String(64)
    )  # masked hint for staff, e.g. "…D4E5F6" or badge serial
    status: Mapped[str] = mapped_column(String(16), default="active")
    issued_at: Mapped[datetime] = mapped_column(default=utcnow)
    issued_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    revoked_at: Mapped[datetime | None]
    revoked_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    revoked_reason: Mapped[str | None] = mapped_column(String(200))
    replaced_by_id: Mapped[int | None] = mapped_column(ForeignKey("credentials.id"))
    # Bumped on every ORM update (revocation included): the kiosk roster's incremental cursor follows it.
    updated_at: Mapped[datetime | None] = mapped_column(default=utcnow, onupdate=utcnow, index=True)

    member: Mapped[Member] = relationship(back_populates="credentials")
