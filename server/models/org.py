"""Communities, their service centres, work units and which units report to which communities."""

from __future__ import annotations

from datetime import datetime, time

from sqlalchemy import CheckConstraint, ForeignKey, String, Time, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, utcnow


class Community(Base):
    """社区: the scope of community staff and the distribution key of events and sessions."""

    __tablename__ = "communities"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    district: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    centres: Mapped[list[ServiceCentre]] = relationship(back_populates="community")


class ServiceCentre(Base):
    """党群服务中心: where kiosks stand; carries the session rules that may differ per centre."""

    __tablename__ = "service_centres"
    __table_args__ = (
        CheckConstraint("debounce_seconds >= 0", name="debounce_nonneg"),
        CheckConstraint("max_session_minutes > 0", name="max_session_positive"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"), index=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    address: Mapped[str | None] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    opens_at: Mapped[time | None] = mapped_column(Time)
    closes_at: Mapped[time | None] = mapped_column(Time)
    debounce_seconds: Mapped[int] = mapped_column(default=60)
    max_session_minutes: Mapped[int] = mapped_column(default=12 * 60)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    community: Mapped[Community] = relationship(back_populates="centres")


class Unit(Base):
    """报到单位: a work-unit party organisation whose members report to communities."""

    __tablename__ = "units"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class UnitCommunity(Base):
    """The pairing of a unit with a community it reports to (双报到)."""

    __tablename__ = "unit_communities"
    __table_args__ = (UniqueConstraint("unit_id", "community_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"), index=True)
    since: Mapped[datetime] = mapped_column(default=utcnow)
