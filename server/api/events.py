"""``POST /api/v1/kiosk/events``: a signed batch of TapEvents, acknowledged only after commit.

The view only orders the steps of the one ingest pipeline (:mod:`server.ingest`): everything that does
not write happens first, while other uploads hold the database's lock — the signature check (reads;
refused requests stop here, before their body is parsed), validation, the lookups and the prepared
rows. Then, in the write section (on SQLite one upload at a time, :mod:`server.sqlite_writes`; on
PostgreSQL a transaction whose row locks do that), the nonce is recorded (a replay is refused there) and
the kiosk's status read again, the batch is stored and the transaction committed.

Sessions are not recomputed here: ingest queues the affected members in the same transaction as the
taps, and each server process runs a :class:`~server.sessions.queue.Recomputer` (an app extension) that
drains the queue; every upload tells it, so it waits while uploads are being served.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from datetime import UTC, datetime

from flask import current_app
from sqlalchemy.orm import Session

from protocol.messages import EventBatch
from server.db import get_db
from server.ingest import (
    BatchCollision,
    IngestResult,
    IngestSettings,
    PreparedBatch,
    look_up,
    prepare,
    store_batch,
)
from server.ingest_db import codec_for
from server.sessions.queue import recomputer_of

from . import bp
from .auth import KioskAuth, SignedRequest, check_signature, record_request
from .errors import parse_body

logger = logging.getLogger(__name__)


@bp.post("/kiosk/events")
def upload_events():  # type: ignore[no-untyped-def]
    app = current_app
    recomputer_of(app).note_upload()  # this process's recomputer steps aside while uploads arrive
    database = get_db(app)
    db = database.session
    assert db is not None
    now = datetime.now(UTC)  # the receive time stamped on the events, and the ack's server time
    signed = check_signature(db)
    batch = parse_body(EventBatch)
    prepared = prepare(
        batch,
        look_up(db, signed.kiosk, batch),
        now=now,
        settings=IngestSettings.from_config(app.config),
        codec=codec_for(db.get_bind().dialect.name),
    )
    gate = database.upload_gate
    with gate.write_section(db) if gate is not None else nullcontext():
        kiosk, result = _store(db, signed, prepared, now)
    if gate is not None:
        gate.stored(db, result.stored)
    logger.info(
        "batch from kiosk %s: %d new, %d duplicates, chain %s, %d members queued%s",
        kiosk.kiosk_uid,
        len(result.accepted),
        len(result.duplicates),
        result.ack.chain,
        len(result.member_ids),
        " (continued the head)" if result.continued else "",
    )
    return current_app.response_class(result.ack.to_json_bytes(), status=200, mimetype="application/json")


def _store(
    db: Session, signed: SignedRequest, prepared: PreparedBatch, now: datetime
) -> tuple[KioskAuth, IngestResult]:
    """Record the nonce, store the batch and commit: the acknowledgement is true from the commit on."""
    kiosk, _ = record_request(db, signed, recheck_status=True)
    try:
        result = store_batch(db, kiosk, prepared, now=now)
    except BatchCollision as exc:
        logger.warning("batch from kiosk %s: %s; deciding event by event", kiosk.kiosk_uid, exc)
        db.rollback()  # the nonce too: recorded again below, still inside the write section
        kiosk, _ = record_request(db, signed, recheck_status=True)
        result = store_batch(db, kiosk, prepared, now=now, continuing=False)
    db.commit()
    return kiosk, result
