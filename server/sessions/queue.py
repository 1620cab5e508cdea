"""The session recompute queue: recomputation off the acknowledgement path, nothing lost on a crash.

Why: recomputing sessions inside the upload request made the kiosk wait for derived data, and every
batch recomputed the same busy members again. Now ingest only *enqueues* the affected members
(:func:`enqueue_members`, one upsert in the transaction that inserts the taps), the kiosk is acknowledged
after commit, and a recomputer drains the queue (:func:`drain_recompute_queue`): claim a chunk of members,
recompute their sessions incrementally, delete their queue rows, commit — the deletion and the session
upsert share a transaction, so a worker that dies between claim and commit leaves the rows for the next
worker, and members enqueued many times before a drain are recomputed once.

Claiming: on PostgreSQL ``SELECT … FOR UPDATE SKIP LOCKED``, so several server processes drain disjoint
chunks; an upload that re-enqueues a member being recomputed waits for that row and then inserts a fresh
one (the recomputer did not see its taps, so the member is recomputed again). SQLite has one writer: the
drain takes the database write lock first, which is the claim.

:class:`Recomputer` is the background thread every server process runs: an app extension made by
:func:`init_app` in ``create_app`` from the ``SESSION_RECOMPUTE*`` settings (``server/config.py``), started
by the first request a process serves; off under ``TESTING`` unless ``SESSION_RECOMPUTER`` is set, so tests
call :func:`drain_recompute_queue` directly and stay deterministic.
Staleness: a tap's session appears within about ``interval`` (default 2 s) plus one drain chunk after
the upload is acknowledged, while the server keeps up.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from flask import Flask
from sqlalchemy import Engine, Select, delete, func, select, text, update
from sqlalchemy.orm import Session

from server.config import switched_on
from server.ingest_db import sqlite_time
from server.models import RecomputeQueueEntry
from server.sqlite_writes import upload_marker

from .store import recompute_sessions

logger = logging.getLogger(__name__)

#: Members recomputed per transaction on PostgreSQL (row locks: uploads are not held up by a chunk).
DEFAULT_CHUNK = 200
#: On SQLite a chunk holds the one write lock every upload needs, so chunks are kept short.
SQLITE_CHUNK = 25
#: PostgreSQL advisory lock key that lets one recomputer thread drain at a time (``b"baodaoRQ"``).
RECOMPUTER_LOCK_KEY = 0x62616F64616F5251


def enqueue_members(db: Session, since: Mapping[int, datetime] | Mapping[int, str], *, now: datetime) -> None:
    """Queue ``since`` (member id → earliest effective time of its new taps) in the caller's transaction.

    A member already queued keeps one row with the earlier ``since`` and its original ``enqueued_at``
    (and is not rewritten when its ``since`` is earlier already). Rows are written in member order so
    concurrent uploads lock them in the same order (no deadlock). On SQLite the times may be given as
    the text SQLite stores (:func:`server.ingest_db.sqlite_time`), formatted before the write lock was taken.
    """
    if not since:
        return
    conn = db.connection()
    if conn.dialect.name == "postgresql":
        # One statement over two arrays, not an executemany: psycopg's per-row pipelining of ~400 upserts
        # cost as much as the tap insert itself. ORDER BY keeps the member-order locking.
        members = sorted(since)
        conn.exec_driver_sql(
            "INSERT INTO session_recompute_queue (member_id, since, enqueued_at) "
            "SELECT m, s, %s FROM unnest(%s::bigint[], %s::timestamptz[]) AS u(m, s) ORDER BY m "
            "ON CONFLICT (member_id) DO UPDATE SET since = LEAST(session_recompute_queue.since, excluded.since)",
            (now, members, [since[m] for m in members]),
        )
        return
    # SQLite: times as UTCDateTime stores them (fixed-width UTC text, so min() compares instants), through
    # the driver: SQLAlchemy's per-row bind processing was a fifth of the upload's time.
    stamp = sqlite_time(now)
    conn.exec_driver_sql(
        "INSERT INTO session_recompute_queue (member_id, since, enqueued_at) VALUES (?, ?, ?) "
        "ON CONFLICT (member_id) DO UPDATE SET since = excluded.since "
        "WHERE excluded.since < session_recompute_queue.since",
        [(m, at if isinstance(at, str) else sqlite_time(at), stamp) for m, at in sorted(since.items())],
    )


def claim(db: Session, limit: int) -> dict[int, datetime]:
    """Lock up to ``limit`` queued members (oldest first) for this transaction; member id → since."""
    query = select(RecomputeQueueEntry.member_id, RecomputeQueueEntry.since).order_by(
        RecomputeQueueEntry.enqueued_at, RecomputeQueueEntry.member_id
    )
    return dict(db.execute(_claiming(db, query.limit(limit))).tuples().all())


def drain_recompute_queue(db: Session, limit: int = DEFAULT_CHUNK, *, now: datetime | None = None) -> int:
    """Recompute one chunk of up to ``limit`` queued members and commit; returns how many were recomputed.

    Call it until it returns 0 to empty the queue. A chunk that fails is rolled back and its members
    recomputed one at a time, so one member whose recomputation fails (a bug, data the engine cannot
    handle) does not hold everybody else's sessions back: that member's row goes to the back of the
    queue (``enqueued_at`` = now), the error is logged, and it is tried again when its turn comes round.
    An error that is not the member's own (the database is gone) is raised.
    """
    now = now or datetime.now(UTC)
    claimed: dict[int, datetime] = {}
    try:
        claimed = claim(db, limit)
        if not claimed:
            db.rollback()
            return 0
        _recompute_and_dequeue(db, claimed, now)
        db.commit()
        return len(claimed)
    except Exception:
        db.rollback()
        if not claimed:
            raise  # the claim itself failed: nothing of any member's
        logger.exception(
            "recomputing a chunk of %d members failed; recomputing them one by one", len(claimed)
        )
    done = 0
    for member_id in claimed:
        try:
            mine = claim_member(db, member_id)
            if mine is None:  # recomputed meanwhile by another worker
                db.rollback()
                continue
            _recompute_and_dequeue(db, {member_id: mine}, now)
            db.commit()
            done += 1
        except Exception:
            db.rollback()
            logger.exception(
                "recomputing the sessions of member %s failed; moved to the back of the queue", member_id
            )
            db.execute(
                update(RecomputeQueueEntry)
                .where(RecomputeQueueEntry.member_id == member_id)
                .values(enqueued_at=now)
            )
            db.commit()
    return done


def _recompute_and_dequeue(db: Session, claimed: dict[int, datetime], now: datetime) -> None:
    """The session upsert and the queue rows' deletion, in the caller's transaction (nothing lost if the
    process dies between claim and commit)."""
    recompute_sessions(db, claimed, now=now, since=claimed)
    db.execute(delete(RecomputeQueueEntry).where(RecomputeQueueEntry.member_id.in_(list(claimed))))


def claim_member(db: Session, member_id: int) -> datetime | None:
    """Lock one queued member for this transaction (as :func:`claim` does a chunk); its ``since``, or
    ``None`` when it is no longer queued or another worker holds it."""
    query = select(RecomputeQueueEntry.since).where(RecomputeQueueEntry.member_id == member_id)
    return db.execute(_claiming(db, query)).scalar_one_or_none()


def _claiming(db: Session, query: Select[Any]) -> Select[Any]:
    """``query``, locking what it reads for this transaction: ``FOR UPDATE SKIP LOCKED`` on PostgreSQL;
    on SQLite the database write lock, taken before reading — that is SQLite's claim."""
    if db.get_bind().dialect.name == "postgresql":
        return query.with_for_update(skip_locked=True)
    db.execute(text("DELETE FROM used_nonces WHERE 1 = 0"))
    return query


def drain_all(db: Session, limit: int = DEFAULT_CHUNK, *, now: datetime | None = None) -> int:
    """Drain until the queue is empty (as seen by this worker); returns the members recomputed."""
    total = 0
    while done := drain_recompute_queue(db, limit, now=now):
        total += done
    return total


def queue_depth(db: Session) -> int:
    return int(db.scalar(select(func.count()).select_from(RecomputeQueueEntry)) or 0)


class Recomputer:
    r"""A daemon thread that drains the queue every ``interval`` seconds (at once while there is work),
    stepping aside while this process is serving uploads.

    One per process: :meth:`ensure_running` starts it in the current process if it is not running
    there (gunicorn forks workers after the app may have been built), and is cheap to call per request.

    Yielding to uploads: Python has no per-thread priority (``os.nice`` is per process), so the thread
    waits while an upload was served in this process within ``quiet`` seconds — each gunicorn worker
    gets a share of the uploads, so a busy server keeps every worker's recomputer waiting — but for at
    most ``max_defer`` seconds at a stretch; then it drains until the queue is empty. A burst shorter
    than ``max_defer`` is acknowledged at full speed and its sessions follow right after it; sustained
    uploads still get their sessions within about ``max_defer`` plus one drain. ``quiet=0`` switches
    this off. The alternative for production is a separate, ``nice``\ d process (``python -m
    server.sessions.queue``) with ``BAODAO_SESSION_RECOMPUTER=off`` on the gunicorn workers.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        interval: float,
        quiet: float,
        max_defer: float,
        chunk: int | None = None,
    ):
        self.engine = engine
        self._last_upload = 0.0  # time.monotonic() of the last upload this process served
        self.interval = interval
        self.chunk = chunk or (SQLITE_CHUNK if engine.dialect.name == "sqlite" else DEFAULT_CHUNK)
        self.quiet = quiet
        self.max_defer = max_defer
        self._deferring_since: float | None = None
        self._marker = upload_marker(engine)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self._lock = threading.Lock()

    def note_upload(self) -> None:
        """An upload was just served by this process: wait ``quiet`` seconds before draining."""
        self._last_upload = time.monotonic()

    def ensure_running(self) -> None:
        if self._pid == os.getpid() and self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if self._pid == os.getpid() and self._thread is not None and self._thread.is_alive():
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="session-recomputer", daemon=True)
            self._pid = os.getpid()
            self._thread.start()
            logger.info("session recomputer started", extra={"pid": self._pid})

    def stop(self, timeout: float | None = 10) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._pid == os.getpid():
            self._thread.join(timeout)

    def defer_for(self, now: float | None = None) -> float:
        """Seconds to wait before draining because uploads are being served; 0 to drain now."""
        now = time.monotonic() if now is None else now
        idle = now - self._last_upload
        if self._marker is not None and self.quiet > 0:  # uploads of other processes count too
            with contextlib.suppress(OSError):  # no file yet: no upload yet
                idle = min(idle, max(0.0, time.time() - os.stat(self._marker).st_mtime))
        if self.quiet <= 0 or idle >= self.quiet:
            self._deferring_since = None
            return 0.0
        if self._deferring_since is None:
            self._deferring_since = now
        deferred = now - self._deferring_since
        if deferred >= self.max_defer:
            return 0.0  # stays forced until a drain finds the queue empty
        return min(self.quiet - idle, self.max_defer - deferred)

    def _throttled(self, db: Session) -> bool:
        """On PostgreSQL one recomputer thread drains at a time, server-wide (a transaction-scoped
        advisory lock): uploads keep the other cores. :func:`drain_recompute_queue` itself is safe to
        run concurrently (``SKIP LOCKED``); this is about CPU, not correctness."""
        if self.engine.dialect.name != "postgresql":
            return False
        return not db.scalar(select(func.pg_try_advisory_xact_lock(RECOMPUTER_LOCK_KEY)))

    def _burst_began(self, db: Session) -> bool:
        """On a SQLite file, take the write lock first and look again: a drain decided on just before a
        burst would otherwise wait for the lock behind the first uploads and then hold it for a whole
        chunk while the rest of the burst waits. True (and rolled back) if uploads have started."""
        if self._marker is None:
            return False
        db.execute(text("DELETE FROM used_nonces WHERE 1 = 0"))  # SQLite's write lock, as claim() takes it
        if self.defer_for() > 0:
            db.rollback()
            return True
        return False

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            self._wake.clear()
            wait = self.defer_for()
            if wait > 0:
                self._wake.wait(wait)
                continue
            try:
                with Session(self.engine, expire_on_commit=False) as db:
                    if self._throttled(db):
                        db.rollback()
                        done = 0
                    elif self._burst_began(db):
                        continue
                    else:
                        done = drain_recompute_queue(db, self.chunk)
                failures = 0
            except Exception:
                failures += 1
                logger.exception("session recompute failed; the members stay queued")
                done = 0
            if done:
                continue
            self._deferring_since = None
            self._wake.wait(self.interval * min(2**failures, 60))


EXTENSION = "baodao_recomputer"


def init_app(app: Flask, engine: Engine) -> Recomputer:
    """Make this app's :class:`Recomputer` (``app.extensions``) from its settings.

    ``SESSION_RECOMPUTE_INTERVAL_S`` is how long it sleeps when the queue is empty (during a burst also
    how many seconds of uploads one recomputation of a busy member covers). While this process served an
    upload less than ``SESSION_RECOMPUTE_QUIET_S`` ago it waits — uploads come in bursts and the kiosk
    waits for its acknowledgement, nobody for a session a few seconds sooner — but never longer than
    ``SESSION_RECOMPUTE_MAX_DEFER_S``, which bounds how stale a session gets. Unless
    ``SESSION_RECOMPUTER`` is off (default: off under ``TESTING``), the first request a process serves
    starts it — not building the app: CLI commands and the demo's seeding build it too and must not leave
    a thread behind, and gunicorn forks workers after building the app.
    """
    config = app.config
    recomputer = Recomputer(
        engine,
        interval=float(config["SESSION_RECOMPUTE_INTERVAL_S"]),
        quiet=float(config["SESSION_RECOMPUTE_QUIET_S"]),
        max_defer=float(config["SESSION_RECOMPUTE_MAX_DEFER_S"]),
    )
    app.extensions[EXTENSION] = recomputer
    if switched_on(config.get("SESSION_RECOMPUTER"), default=not app.testing):
        app.before_request(recomputer.ensure_running)
    else:
        logger.info("session recomputer off in this process: queued members wait for another process")
    return recomputer


def recomputer_of(app: Flask) -> Recomputer:
    """The app's :class:`Recomputer` (made by :func:`init_app`)."""
    return app.extensions[EXTENSION]


def main() -> None:
    """``python -m server.sessions.queue``: run the recomputer in the foreground, as its own process.

    For production under load: start gunicorn with ``BAODAO_SESSION_RECOMPUTER=off`` and this with
    ``nice -n 10`` so the operating system gives uploads the CPU first (configuration as for the server:
    ``BAODAO_DATABASE_URL`` and the other ``BAODAO_*`` variables). Stops on SIGTERM / Ctrl-C.
    """
    import signal

    from server import create_app
    from server.db import get_db

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    app = create_app({"SESSION_RECOMPUTER": "off"})
    recomputer = Recomputer(
        get_db(app).engine,  # type: ignore[arg-type]
        interval=float(app.config["SESSION_RECOMPUTE_INTERVAL_S"]),
        quiet=0,
        max_defer=float(app.config["SESSION_RECOMPUTE_MAX_DEFER_S"]),
    )
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    recomputer.ensure_running()
    logger.info("session recomputer running as its own process (pid %d) / 会话重算进程已启动", os.getpid())
    with contextlib.suppress(KeyboardInterrupt):
        while not stopped.wait(1.0):
            pass
    recomputer.stop()


__all__ = [
    "DEFAULT_CHUNK",
    "Recomputer",
    "claim",
    "drain_all",
    "drain_recompute_queue",
    "enqueue_members",
    "init_app",
    "queue_depth",
    "recomputer_of",
]


if __name__ == "__main__":
    main()
