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
from server.ingest import IngestResult, ingest_batch
from server.ingest_sqlite import PreparedBatchCollision, known_members, prepare
from server.sessions.queue import (
    DEFAULT_INTERVAL_S,
    DEFAULT_MAX_DEFER_S,
    DEFAULT_QUIET_S,
    Recomputer,
    note_upload,
    upload_marker,
)

from . import bp
from .auth import KioskAuth, authenticate_request, check_signature, record_request
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


#: Events this process stores between its WAL checkpoints on SQLite (see _checkpoint_now_and_then); about
#: as many WAL pages as SQLite's own automatic checkpoint lets accumulate (1000).
CHECKPOINT_EVERY_EVENTS = 4000
SQLITE_AUTOCHECKPOINT_PAGES = 1000  # SQLite's default, restored on the connection after the write section
_stored_since_checkpoint = 0


def _checkpoint_now_and_then(db: Session, stored: int) -> None:
    """Copy the WAL into the database file once this process has stored about
    :data:`CHECKPOINT_EVERY_EVENTS` events since its last checkpoint — *after* leaving the write section.

    SQLite's automatic checkpoint runs inside the commit that crosses its threshold, so with it every
    few uploads one held the server's only write lock for the whole copy and ``fsync``: measured, that
    was two fifths of a batch's commit time. Uploads turn it off for their write section
    (:func:`_sqlite_upload_lock`) and checkpoint here instead; a ``PASSIVE`` checkpoint takes no write
    lock, so the next upload writes while this one copies. Everything else (the web app, the
    recomputer, CLI commands) keeps SQLite's automatic checkpoint, so the WAL stays bounded even
    when no upload arrives.
    """
    global _stored_since_checkpoint
    _stored_since_checkpoint += stored
    if _stored_since_checkpoint < CHECKPOINT_EVERY_EVENTS:
        return
    _stored_since_checkpoint = 0
    try:
        db.connection().exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
    finally:
        db.rollback()  # end the read the pragma began; nothing was written


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
        dbapi = db.connection().connection.driver_connection
        try:
            os.utime(fd)  # every process's recomputer waits while uploads run (upload_marker)
            dbapi.execute("PRAGMA wal_autocheckpoint=0")  # checkpoint after the lock, not in the commit
            yield
        except BaseException:
            db.rollback()  # leave SQLite's write lock before the next upload may take it
            raise
        finally:
            dbapi.execute(f"PRAGMA wal_autocheckpoint={SQLITE_AUTOCHECKPOINT_PAGES}")
            os.utime(fd)
            fcntl.flock(fd, fcntl.LOCK_UN)


@bp.post("/kiosk/events")
def upload_events():  # type: ignore[no-untyped-def]
    note_upload()  # this process's recomputer steps aside while uploads arrive (server.sessions.queue)
    db = get_db(current_app).session
    assert db is not None
    now = datetime.now(UTC)  # the receive time stamped on the events, and the ack's server time
    if db.get_bind().dialect.name == "sqlite":
        kiosk, result = _store_on_sqlite(db, now)
        _checkpoint_now_and_then(db, result.stored)
    else:
        kiosk, result = _store(db, now)
    logger.info(
        "batch from kiosk %s: %d new, %d duplicates, chain %s, %d members queued%s",
        kiosk.kiosk_uid,
        len(result.accepted),
        len(result.duplicates),
        result.ack.chain,
        len(result.member_ids),
        " (prepared)" if result.prepared_path else "",
    )
    return current_app.response_class(result.ack.to_json_bytes(), status=200, mimetype="application/json")


def _store(db: Session, now: datetime) -> tuple[KioskAuth, IngestResult]:
    """PostgreSQL locks rows only: authentication (nonce included), validation and ingest share one
    transaction, and the body of an unauthenticated request is never parsed."""
    kiosk, _ = authenticate_request(db)
    try:
        batch = parse_body(EventBatch)
    except ApiError:
        db.rollback()  # the nonce is forgotten with the rest: nothing of a refused request stays
        raise
    result = ingest_batch(db, kiosk, batch, now=now)
    db.commit()  # the acknowledgement is true from here on
    return kiosk, result


def _store_on_sqlite(db: Session, now: datetime) -> tuple[KioskAuth, IngestResult]:
    """SQLite has one write lock for the whole database, taken by the nonce insert and held to the commit
    (the upload write section, :func:`_sqlite_upload_lock`). Everything that does not write happens
    before it, while other workers' uploads hold it: the signature check (reads; refused requests
    stop here, before their body is parsed), validation, and the batch's rows prepared for the insert
    (:mod:`server.ingest_sqlite`). Inside, the nonce is recorded (a replay is refused there) and the
    kiosk's status read again, then the rows are stored."""
    signed = check_signature(db)
    batch = parse_body(EventBatch)
    prepared = prepare(batch, now=now, known_members=known_members(db, batch))
    with _sqlite_upload_lock(db):
        kiosk, _ = record_request(db, signed, recheck_status=True)
        try:
            result = ingest_batch(db, kiosk, batch, now=now, prepared=prepared)
        except PreparedBatchCollision as exc:
            logger.warning("batch from kiosk %s: %s; stored through the general path", kiosk.kiosk_uid, exc)
            db.rollback()  # the nonce too: recorded again below, still inside the write section
            kiosk, _ = record_request(db, signed, recheck_status=True)
            result = ingest_batch(db, kiosk, batch, now=now)
        db.commit()  # the acknowledgement is true from here on
    return kiosk, result
