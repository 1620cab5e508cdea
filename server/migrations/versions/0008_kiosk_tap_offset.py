"""Ingest: the clock offset of the chain head's tap; the member the server resolved for a tap

Revision ID: 0008_kiosk_tap_offset
Revises: 0007_review_indexes

Ingest flags a tap ``clock_jump`` when its kiosk's measured clock offset moved by more than the bound
since the kiosk's previous tap. Within a batch the previous tap is in the batch; for the first tap of a
batch it is the chain head, so the head row keeps that tap's offset next to ``last_seq``/``last_hash``.

``tap_events.resolved_member_id``: the member the server resolved from the credential of a tap the kiosk
recorded without one. A column of its own, because ``member_id`` is covered by the chain hash and must
stay as the kiosk recorded it. Plain ``ADD COLUMN`` (no batch mode): recreating ``tap_events`` on SQLite
would drop its append-only triggers.

This revision touches only its own columns, so any parent works when revisions are re-chained at merge.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_kiosk_tap_offset"
down_revision = "0007_review_indexes"
branch_labels = None
depends_on = None


_RESOLVED = sa.text("resolved_member_id IS NOT NULL")


def upgrade() -> None:
    with op.batch_alter_table("kiosks") as batch:
        batch.add_column(sa.Column("last_tap_offset_ms", sa.BigInteger(), nullable=True))
    if op.get_bind().dialect.name == "sqlite":  # SQLite adds a reference only inline, with the column
        op.execute("ALTER TABLE tap_events ADD COLUMN resolved_member_id INTEGER REFERENCES members (id)")
    else:
        op.add_column(
            "tap_events",
            sa.Column(
                "resolved_member_id",
                sa.Integer(),
                sa.ForeignKey("members.id", name="fk_tap_events_resolved_member_id_members"),
                nullable=True,
            ),
        )
    op.create_index(
        "ix_tap_events_resolved_member_time",
        "tap_events",
        ["resolved_member_id", "effective_time"],
        sqlite_where=_RESOLVED,
        postgresql_where=_RESOLVED,
    )


def downgrade() -> None:
    op.drop_index("ix_tap_events_resolved_member_time", table_name="tap_events")
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE tap_events DROP COLUMN resolved_member_id")  # keeps the table and triggers
    else:
        op.drop_column("tap_events", "resolved_member_id")
    with op.batch_alter_table("kiosks") as batch:
        batch.drop_column("last_tap_offset_ms")
