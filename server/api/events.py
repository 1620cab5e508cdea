"""``POST /api/v1/kiosk/events``: a signed batch of TapEvents, acknowledged only after commit.

Sessions are not recomputed here: ingest queues the affected members in the same transaction as the
taps, and each server process runs a :class:`~server.sessions.queue.Recomputer` that drains the queue
(see that module for why nothing is lost and how stale sessions may be). The recomputer starts when the
blueprint is registered and again in any process forked after that (gunicorn ``--preload``); it is off
under ``TESTING`` unless ``SESSION_RECOMPUTER`` is set, so tests drain the queue themselves and stay
deterministic. Every upload tells the recomputer it arrived, so the recomputer waits while uploads are
being served (at most ``SESSION_RECOMPUTE_MAX_DEFER_S``; ``SESSION_RECOMPUTE_QUIET_S=0`` turns it off).
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from flask import Flask, current_app
from flask.blueprints import BlueprintSetupState
from sqlalchemy.orm import Session

from protocol.messages import EventBatch
from server.db import get_db
from server.ingest import Prepared, ingest_batch, prepare
from server.sessions.queue import (
    DEFAULT_INTERVAL_S,
    DEFAULT_MAX_DEFER_S,
    DEFAULT_QUIET_S,
    Recomputer,
    note_upload,
    upload_marker,
)

from . import bp
from .auth import authenticate_request
from .errors import ApiError, parse_body

logger = logging.getLogger(__name__)

_EXTENSION = "baodao_recomputer"


@bp.record_once
def _start_recomputer(state: BlueprintSetupState) -> None:
    app: Flask = state.app
    enabled = app.config.get("SESSION_RECOMPUTER", os.environ.get("BAODAO_SESSION_RECOMPUTER"))
    if enabled is None:
        enabled = not app.testing
    if str(enabled).lower() in ("0", "false", "no", "off", ""):
        logger.info("session recomputer off in this process: queued members wait for another process")
        return

    def setting(name: str, default: float) -> float:
        return float(app.config.get(name, os.environ.get(f"BAODAO_{name}", default)))

    recomputer = Recomputer(
        get_db(app).engine,  # type: ignore[arg-type]
        interval=setting("SESSION_RECOMPUTE_INTERVAL_S", DEFAULT_INTERVAL_S),
        quiet=setting("SESSION_RECOMPUTE_QUIET_S", DEFAULT_QUIET_S),
        max_defer=setting("SESSION_RECOMPUTE_MAX_DEFER_S", DEFAULT_MAX_DEFER_S),
    )
    app.extensions[_EXTENSION] = recomputer
    # Started by the first request a process serves, not here: CLI commands and the demo's seeding build
    # the app too and must not leave a thread behind; gunicorn forks workers after building the app.
    app.before_request(recomputer.ensure_running)


_upload_lock_fd: dict[str, int] = {}  # database file → this process's descriptor of its upload lock file
_upload_lock_threads = threading.Lock()  # flock is per descriptor: threads of a process queue here first


@contextmanager
def _sqlite_upload_lock(db: Session) -> Iterator[None]:
    """On a SQLite file, let one upload at a time — across workers and threads — into the write section
    (nonce insert to commit); a no-op elsewhere.

    SQLite has a single write lock, and a connection that finds it taken waits in SQLite's busy handler,
    which *sleeps and retries* (1, 2, 5 … up to 100 ms per try): with three gunicorn workers uploading,
    the lock was mostly free while its waiters slept, and throughput fell to a third of one worker's. An
    ``flock`` on ``<database>.upload-lock`` is a queue in the kernel instead: the next upload starts the
    moment the previous one commits, while the other workers validate and hash their batches in
    parallel. The kernel drops the lock of a killed worker. Other writers (the recomputer, the web app)
    do not take it and still meet the busy handler, as before. The file's modification time doubles as
    the server-wide "an upload just ran" signal for the recomputers (:func:`upload_marker`).
    """
    path = upload_marker(db.get_bind())  # type: ignore[arg-type]
    if path is None:
        yield
        return
    with _upload_lock_threads:
        fd = _upload_lock_fd.get(path)
        if fd is None:
            fd = _upload_lock_fd[path] = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            os.utime(fd)  # every process's recomputer waits while uploads run (upload_marker)
            yield
        except BaseException:
            db.rollback()  # leave SQLite's write lock before the next upload may take it
            raise
        finally:
            os.utime(fd)
            fcntl.flock(fd, fcntl.LOCK_UN)


@bp.post("/kiosk/events")
def upload_events():  # type: ignore[no-untyped-def]
    note_upload()  # this process's recomputer steps aside while uploads arrive (server.sessions.queue)
    db = get_db(current_app).session
    assert db is not None
    early: EventBatch | ApiError | None = None
    prepared: Prepared | None = None
    if db.get_bind().dialect.name == "sqlite":
        # SQLite has one write lock, taken by the nonce insert in authenticate_request and held to the commit:
        # validate, hash and convert first so other workers' uploads are not held up by this one's Python work.
        # (PostgreSQL locks rows only, and there an unauthenticated body is never parsed.)
        try:
            early = parse_body(EventBatch)
            prepared = prepare(early, "sqlite")
        except ApiError as exc:
            early = exc
    with _sqlite_upload_lock(db):
        # Authentication errors come first, whatever the body; a Core read of the kiosk, no ORM object.
        kiosk, _ = authenticate_request(db)
        try:
            if isinstance(early, ApiError):
                raise early
            batch = early if early is not None else parse_body(EventBatch)
        except ApiError:
            db.rollback()  # the nonce is forgotten with the rest: nothing of a refused request stays
            raise
        now = datetime.now(UTC)
        result = ingest_batch(db, kiosk, batch, now=now, prepared=prepared)
        db.commit()  # the acknowledgement below is true from here on
    logger.info(
        "batch from kiosk %s: %d new, %d duplicates, chain %s, %d members queued",
        kiosk.kiosk_uid,
        len(result.ack.accepted),
        len(result.ack.duplicates),
        result.ack.chain,
        len(result.member_ids),
    )
    return current_app.response_class(result.ack.to_json_bytes(), status=200, mimetype="application/json")
