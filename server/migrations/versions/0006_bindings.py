"""Kiosk card bindings (idempotent upload) and kiosk secret rotation with an overlap

Revision ID: 0006_bindings
Revises: 0005_ingest

Chained after the head at the time of writing (0005_ingest); this revision touches only its own table
and new nullable columns of ``kiosks``, so any parent works when revisions are re-chained at merge.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import server.models.base

revision = "0006_bindings"
down_revision = "0005_ingest"
branch_labels = None
depends_on = None

_TS = server.models.base.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.add_column("kiosks", sa.Column("previous_secret", sa.String(length=128), nullable=True))
    op.add_column("kiosks", sa.Column("previous_secret_until", _TS, nullable=True))
    op.add_column("kiosks", sa.Column("secret_rotated_at", _TS, nullable=True))
    op.add_column("kiosks", sa.Column("secret_confirmed_at", _TS, nullable=True))
    op.create_table(
        "kiosk_bindings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("binding_uid", sa.Uuid(), nullable=False),
        sa.Column("kiosk_id", sa.Integer(), nullable=False),
        sa.Column("community_id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.BigInteger(), nullable=False),
        sa.Column("credential_kind", sa.String(length=16), nullable=False),
        sa.Column("credential_hash", sa.String(length=64), nullable=False),
        sa.Column("credential_id", sa.Integer(), nullable=True),
        sa.Column("staff_ref", sa.String(length=200), nullable=True),
        sa.Column("device_time", _TS, nullable=False),
        sa.Column("device_tz", sa.String(length=64), nullable=False),
        sa.Column("received_at", _TS, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=True),
        sa.CheckConstraint("status IN ('accepted', 'rejected')", name=op.f("ck_kiosk_bindings_status")),
        sa.ForeignKeyConstraint(
            ["community_id"], ["communities.id"], name=op.f("fk_kiosk_bindings_community_id_communities")
        ),
        sa.ForeignKeyConstraint(
            ["credential_id"], ["credentials.id"], name=op.f("fk_kiosk_bindings_credential_id_credentials")
        ),
        sa.ForeignKeyConstraint(["kiosk_id"], ["kiosks.id"], name=op.f("fk_kiosk_bindings_kiosk_id_kiosks")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kiosk_bindings")),
        sa.UniqueConstraint("binding_uid", name=op.f("uq_kiosk_bindings_binding_uid")),
    )
    op.create_index(op.f("ix_kiosk_bindings_kiosk_id"), "kiosk_bindings", ["kiosk_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_kiosk_bindings_kiosk_id"), table_name="kiosk_bindings")
    op.drop_table("kiosk_bindings")
    op.drop_column("kiosks", "secret_confirmed_at")
    op.drop_column("kiosks", "secret_rotated_at")
    op.drop_column("kiosks", "previous_secret_until")
    op.drop_column("kiosks", "previous_secret")
