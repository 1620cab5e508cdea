"""``GET /healthz``: liveness plus a real round trip to the database."""

from __future__ import annotations

import logging
import time

from flask import Blueprint, current_app, jsonify
from sqlalchemy import text

from .db import get_db

logger = logging.getLogger(__name__)
bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():  # type: ignore[no-untyped-def]
    db = get_db(current_app)
    started = time.perf_counter()
    try:
        assert db.session is not None
        db.session.execute(text("SELECT 1"))
        db_ok, error = True, None
    except Exception as exc:  # report, don't crash: the point of a health check
        logger.exception("database health check failed")
        db_ok, error = False, type(exc).__name__
    body = {
        "status": "ok" if db_ok else "degraded",
        "service": "baodao-server",
        "database": {
            "backend": db.backend,
            "ok": db_ok,
            "latency_ms": round((time.perf_counter() - started) * 1000, 2),
        },
    }
    if error:
        body["database"]["error"] = error
    return jsonify(body), 200 if db_ok else 503
