"""Database triggers that make the append-only tables refuse UPDATE and DELETE on every backend.

The application never edits a tap event, a correction or an audit record; these triggers make the database
say so too, so a bug or a hand-typed SQL statement cannot quietly rewrite history.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.engine import Connection


def install_append_only_triggers(conn: Connection, tables: Iterable[str]) -> None:
    dialect = conn.dialect.name
    if dialect == "postgresql":
        conn.exec_driver_sql(
            "CREATE OR REPLACE FUNCTION baodao_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN RAISE EXCEPTION '%% is append-only', TG_TABLE_NAME USING ERRCODE = 'restrict_violation'; END $$"
        )
    for table in tables:
        if dialect == "postgresql":
            conn.exec_driver_sql(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION baodao_append_only()"
            )
        elif dialect == "sqlite":
            for op in ("UPDATE", "DELETE"):
                conn.exec_driver_sql(
                    f"CREATE TRIGGER {table}_no_{op.lower()} BEFORE {op} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
                )
        else:  # pragma: no cover - other backends are not supported
            raise NotImplementedError(dialect)


def drop_append_only_triggers(conn: Connection, tables: Iterable[str]) -> None:
    dialect = conn.dialect.name
    for table in tables:
        if dialect == "postgresql":
            conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        else:
            for op in ("update", "delete"):
                conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {table}_no_{op}")
    if dialect == "postgresql":
        conn.exec_driver_sql("DROP FUNCTION IF EXISTS baodao_append_only()")
