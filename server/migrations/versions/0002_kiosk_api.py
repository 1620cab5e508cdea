"""kiosk API: roster change tracking (updated_at), the chain-covered badge serial, wire command ids

Revision ID: 0002_kiosk_api
Revises: 0001_initial
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import server.models.base

revision = "0002_kiosk_api"
down_revision = "0001_initial"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ALTER TABLE (no batch copy): tap_events carries append-only triggers a table copy would lose.
    op.add_column("tap_events", sa.Column("badge_serial", sa.String(length=16), nullable=True))
    op.add_column(
        "members", sa.Column("updated_at", server.models.base.UTCDateTime(timezone=True), nullable=True)
    )
    op.add_column(
        "credentials", sa.Column("updated_at", server.models.base.UTCDateTime(timezone=True), nullable=True)
    )
    op.add_column("kiosk_commands", sa.Column("command_uid", sa.Uuid(), nullable=True))
    op.create_index(op.f("ix_kiosk_commands_command_uid"), "kiosk_commands", ["command_uid"], unique=True)
    op.execute("UPDATE members SET updated_at = created_at")
    op.execute("UPDATE credentials SET updated_at = COALESCE(revoked_at, issued_at)")
    op.create_index(op.f("ix_members_updated_at"), "members", ["updated_at"], unique=False)
    op.create_index(op.f("ix_credentials_updated_at"), "credentials", ["updated_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_kiosk_commands_command_uid"), table_name="kiosk_commands")
    op.drop_column("kiosk_commands", "command_uid")
    op.drop_index(op.f("ix_credentials_updated_at"), table_name="credentials")
    op.drop_index(op.f("ix_members_updated_at"), table_name="members")
    op.drop_column("credentials", "updated_at")
    op.drop_column("members", "updated_at")
    op.drop_column("tap_events", "badge_serial")
