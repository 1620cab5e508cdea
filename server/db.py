"""Database engine and session handling for the Flask app (plain SQLAlchemy 2.0, no Flask extension)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from flask import Flask
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, scoped_session, sessionmaker

from .sqlite_writes import SqliteUploadGate, upload_marker

logger = logging.getLogger(__name__)


SQLITE_MMAP_BYTES = 256 * 1024 * 1024


def make_engine(url: str, **kwargs: object) -> Engine:
    """Create an engine with the settings each backend needs.

    SQLite gets WAL and a busy timeout so the server's threads and a CLI can share the file; foreign keys
    are switched on per connection because SQLite leaves them off by default.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            # Reads through a memory map: a connection drops its page cache whenever another process
            # committed (two gunicorn workers upload in turn), and re-reading the index pages it needs
            # is then memory access instead of read() calls: +4 % uploads in bench.ingest. The cost,
            # as SQLite documents it: a disk I/O error while reading surfaces as SIGBUS, not an error.
            cur.execute(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")
            cur.close()

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


class Database:
    """Holds the engine and a request-scoped session; attached to an app with ``init_app``.

    On a SQLite file it also holds the upload write section (:class:`server.sqlite_writes.
    SqliteUploadGate`, ``upload_gate``): process state of this database, made here rather than in a
    module global, configured from ``SQLITE_*`` settings. ``None`` on PostgreSQL, which needs none.
    """

    def __init__(self) -> None:
        self.engine: Engine | None = None
        self.session: scoped_session[Session] | None = None
        self.upload_gate: SqliteUploadGate | None = None

    def init_app(self, app: Flask) -> None:
        self.engine = make_engine(app.config["DATABASE_URL"])
        factory = sessionmaker(bind=self.engine, expire_on_commit=False)
        self.session = scoped_session(factory)
        marker = upload_marker(self.engine)
        if marker is not None:
            self.upload_gate = SqliteUploadGate(
                marker,
                checkpoint_every=int(app.config["SQLITE_CHECKPOINT_EVERY_EVENTS"]),
                autocheckpoint_pages=int(app.config["SQLITE_AUTOCHECKPOINT_PAGES"]),
            )
        app.extensions["baodao_db"] = self

        @app.teardown_appcontext
        def _remove_session(_exc: BaseException | None) -> None:
            if self.session is not None:
                self.session.remove()

    @property
    def backend(self) -> str:
        assert self.engine is not None
        return self.engine.dialect.name

    @contextmanager
    def begin(self) -> Iterator[Session]:
        """A session in its own transaction, for CLI commands and background work."""
        assert self.engine is not None
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            yield session

    def dispose(self) -> None:
        if self.session is not None:
            self.session.remove()
        if self.engine is not None:
            self.engine.dispose()


def get_db(app: Flask) -> Database:
    return app.extensions["baodao_db"]
