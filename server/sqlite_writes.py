"""SQLite's write machinery for uploads: one upload at a time in the write section, checkpoints after it.

SQLite has a single write lock for the whole database. Two things about it shape the upload path
(:mod:`server.api.events`), and both live here, with the database code, as one object per app
(:class:`SqliteUploadGate`, made by :meth:`server.db.Database.init_app` and kept in ``app.extensions``):

* **A queue instead of SQLite's busy handler.** A connection that finds the write lock taken *sleeps and
  retries* (1, 2, 5 … up to 100 ms per try): with three gunicorn workers uploading, the lock was mostly
  free while its waiters slept, and throughput fell to a third of one worker's. An ``flock`` on
  ``<database>.upload-lock`` is a queue in the kernel instead: the next upload starts the moment the
  previous one commits, while the other workers validate and prepare their batches in parallel. The
  kernel drops the lock of a killed worker. Other writers (the recomputer, the web app) do not take it
  and still meet the busy handler, as before. The file's modification time doubles as the server-wide
  "an upload just ran" signal for the recomputers (:func:`server.sessions.queue.upload_marker`).
* **Checkpoints outside the write section.** SQLite's automatic checkpoint runs inside the commit that
  crosses its threshold, so every few uploads one held the only write lock for the whole copy and
  ``fsync``: measured, two fifths of a batch's commit time. Uploads turn it off for their write section
  and checkpoint after it, once this process stored ``SQLITE_CHECKPOINT_EVERY_EVENTS`` events since its
  last one; a ``PASSIVE`` checkpoint takes no write lock, so the next upload writes while this one
  copies. Everything else keeps SQLite's automatic checkpoint, so the WAL stays bounded even when no
  upload arrives.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine
from sqlalchemy.orm import Session

logger = logging.getLogger(__name__)


def upload_marker(engine: Engine) -> str | None:
    """On a SQLite file, ``<database>.upload-lock`` (see the module docstring); ``None`` elsewhere
    (PostgreSQL locks rows: uploads need no queue there, and one recomputer drains at a time)."""
    url = engine.url
    path = url.database
    if url.get_backend_name() != "sqlite" or not path or path == ":memory:" or path.startswith("file:"):
        return None
    return f"{path}.upload-lock"


class SqliteUploadGate:
    """The upload write section of one SQLite database file in this process (see the module docstring).

    ``path`` is :func:`upload_marker` of the database; ``checkpoint_every`` events between this process's
    checkpoints; ``autocheckpoint_pages`` the automatic threshold restored after each write section
    (SQLite's default is 1000 pages, about as many as ``checkpoint_every`` events fill).
    """

    def __init__(self, path: str, *, checkpoint_every: int, autocheckpoint_pages: int) -> None:
        self.path = path
        self.checkpoint_every = checkpoint_every
        self.autocheckpoint_pages = autocheckpoint_pages
        self._threads = threading.Lock()  # flock is per descriptor: threads of a process queue here first
        self._fd: int | None = None
        self._fd_pid: int | None = None  # a descriptor opened before a fork is shared with the parent
        self._counter = threading.Lock()
        self._stored_since_checkpoint = 0

    def _descriptor(self) -> int:
        if self._fd is None or self._fd_pid != os.getpid():
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            self._fd_pid = os.getpid()
        return self._fd

    @contextmanager
    def write_section(self, db: Session) -> Iterator[None]:
        """Let one upload at a time — across workers and threads — from its first write to its commit.

        An exception inside rolls ``db`` back before the next upload may enter (it must not find SQLite's
        write lock still held by this one).
        """
        with self._threads:
            fd = self._descriptor()
            fcntl.flock(fd, fcntl.LOCK_EX)
            dbapi = db.connection().connection.driver_connection
            assert dbapi is not None
            try:
                os.utime(fd)  # every process's recomputer waits while uploads run (upload_marker)
                dbapi.execute(
                    "PRAGMA wal_autocheckpoint=0"
                )  # checkpoint after the section, not in the commit
                yield
            except BaseException:
                db.rollback()
                raise
            finally:
                dbapi.execute(f"PRAGMA wal_autocheckpoint={int(self.autocheckpoint_pages)}")
                os.utime(fd)
                fcntl.flock(fd, fcntl.LOCK_UN)

    def stored(self, db: Session, events: int) -> None:
        """Count ``events`` stored by this process and checkpoint once enough were — call it after the
        write section, with the transaction committed."""
        with self._counter:
            self._stored_since_checkpoint += events
            if self._stored_since_checkpoint < self.checkpoint_every:
                return
            self._stored_since_checkpoint = 0
        try:
            db.connection().exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            db.rollback()  # end the read the pragma began; nothing was written


__all__ = ["SqliteUploadGate", "upload_marker"]
