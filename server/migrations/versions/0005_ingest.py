"""Ingest: the session recompute queue (recomputation moves off the acknowledgement path)

Revision ID: 0005_ingest
Revises: 0004_reports

Chained after the head at the time of writing (0004_reports); this revision touches only its own table,
so any parent works when revisions are re-chained at merge.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import server.models.base

revision = "0005_ingest"
down_revision = "0004_reports"
branch_labels = None
depends_on = None

_TS = server.models.base.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "session_recompute_queue",
        sa.Column("member_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("since", _TS, nullable=False),
        sa.Column("enqueued_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_session_recompute_queue_member_id_members")
        ),
        sa.PrimaryKeyConstraint("member_id", name=op.f("pk_session_recompute_queue")),
    )
    op.create_index(
        "ix_session_recompute_queue_enqueued", "session_recompute_queue", ["enqueued_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_session_recompute_queue_enqueued", table_name="session_recompute_queue")
    op.drop_table("session_recompute_queue")
