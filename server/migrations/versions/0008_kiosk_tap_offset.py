"""Kiosks: the clock offset of the chain head's tap

Revision ID: 0008_kiosk_tap_offset
Revises: 0007_review_indexes

Ingest flags a tap ``clock_jump`` when its kiosk's measured clock offset moved by more than the bound
since the kiosk's previous tap. Within a batch the previous tap is in the batch; for the first tap of a
batch it is the chain head, so the head row keeps that tap's offset next to ``last_seq``/``last_hash``.
This revision touches only its own column, so any parent works when revisions are re-chained at merge.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_kiosk_tap_offset"
down_revision = "0007_review_indexes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("kiosks") as batch:
        batch.add_column(sa.Column("last_tap_offset_ms", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("kiosks") as batch:
        batch.drop_column("last_tap_offset_ms")
