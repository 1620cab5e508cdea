"""Review queue: index the sessions' check-in and check-out event ids

Revision ID: 0007_review_indexes
Revises: 0006_bindings

The review queue counts the sessions built from a flagged tap by going from the few flagged taps
(``ix_tap_events_flagged``) to their sessions; without these indexes that join reads every session.
Chained after the head at the time of writing (0006_bindings); this revision touches only its own
indexes, so any parent works when revisions are re-chained at merge.
"""

from __future__ import annotations

from alembic import op

revision = "0007_review_indexes"
down_revision = "0006_bindings"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_service_sessions_check_in", "service_sessions", ["check_in_event_id"])
    op.create_index("ix_service_sessions_check_out", "service_sessions", ["check_out_event_id"])


def downgrade() -> None:
    op.drop_index("ix_service_sessions_check_out", table_name="service_sessions")
    op.drop_index("ix_service_sessions_check_in", table_name="service_sessions")
