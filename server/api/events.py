"""``POST /api/v1/kiosk/events``: a signed batch of TapEvents, acknowledged only after commit.

Sessions are not recomputed here: ingest queues the affected members in the same transaction as the
taps, and each server process runs a :class:`~server.sessions.queue.Recomputer` that drains the queue
(see that module for why nothing is lost and how stale sessions may be). The recomputer starts when the
blueprint is registered and again in any process forked after that (gunicorn ``--preload``); it is off
under ``TESTING`` unless ``SESSION_RECOMPUTER`` is set, so tests drain the queue themselves and stay
deterministic.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime

from flask import Flask, current_app
from flask.blueprints import BlueprintSetupState

from protocol.messages import EventBatch
from server.db import get_db
from server.ingest import ingest_batch
from server.sessions.queue import DEFAULT_INTERVAL_S, Recomputer

from . import bp
from .auth import authenticate_kiosk
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
    interval = float(
        app.config.get(
            "SESSION_RECOMPUTE_INTERVAL_S",
            os.environ.get("BAODAO_SESSION_RECOMPUTE_INTERVAL_S", DEFAULT_INTERVAL_S),
        )
    )
    recomputer = Recomputer(get_db(app).engine, interval=interval)  # type: ignore[arg-type]
    app.extensions[_EXTENSION] = recomputer
    # Started by the first request a process serves, not here: CLI commands and the demo's seeding build
    # the app too and must not leave a thread behind; gunicorn forks workers after building the app.
    app.before_request(recomputer.ensure_running)


@bp.post("/kiosk/events")
def upload_events():  # type: ignore[no-untyped-def]
    db = get_db(current_app).session
    assert db is not None
    kiosk = authenticate_kiosk(db)
    try:
        batch = parse_body(EventBatch)
    except ApiError:
        db.rollback()  # the nonce is forgotten with the rest: nothing of a refused request stays
        raise
    now = datetime.now(UTC)
    result = ingest_batch(db, kiosk, batch, now=now)
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
