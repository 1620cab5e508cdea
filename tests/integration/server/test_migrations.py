"""Migrations and models agree, and the schema can be built up and torn down on both backends."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from server.migrate import current_head, downgrade, upgrade
from server.models import Base


def _diff(url: str) -> list[object]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, Base.metadata)
    engine.dispose()
    return diff


def test_models_match_the_migrated_schema(db_url):
    assert _diff(db_url) == [], "models changed without a migration: run alembic revision --autogenerate"


def test_database_is_at_head_and_round_trips(db_url):
    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == current_head()
    engine.dispose()
    downgrade(db_url, "base")
    engine = sa.create_engine(db_url)
    assert set(sa.inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()
    upgrade(db_url)
    assert _diff(db_url) == []
