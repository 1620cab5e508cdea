"""Reports: an index on session start covering the city-wide report queries; flagged taps for the queue

Revision ID: 0004_reports
Revises: 0003_qr

The brief names 0001_initial as the parent and says revisions are re-chained at merge; chained after the
current head (0003_qr) here so the tree keeps one head and ``upgrade head`` works meanwhile. This revision
touches only its own index, so any parent works.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_reports"
down_revision = "0003_qr"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_service_sessions_started_reports",
        "service_sessions",
        ["started_at"],
        postgresql_include=["status", "credited_minutes", "unit_id", "community_id", "member_id"],
    )

    op.create_index(
        "ix_tap_events_flagged",
        "tap_events",
        ["event_id"],
        sqlite_where=sa.text("flags IS NOT NULL"),
        postgresql_where=sa.text("flags IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_tap_events_flagged", table_name="tap_events")
    op.drop_index("ix_service_sessions_started_reports", table_name="service_sessions")
