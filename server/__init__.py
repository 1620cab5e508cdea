"""The central server: ``create_app(config)`` builds the Flask app (see DESIGN.md "Server")."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask

from .config import load_config
from .db import Database
from .sessions import queue as recompute_queue

logger = logging.getLogger(__name__)

__all__ = ["create_app"]


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the server app; ``config`` overrides defaults, the TOML file and ``BAODAO_*`` variables."""
    app = Flask(__name__)
    settings = load_config(config)
    app.config.update(settings)
    app.config["MAX_CONTENT_LENGTH"] = settings["MAX_REQUEST_BYTES"]

    db = Database()
    db.init_app(app)
    assert db.engine is not None
    recompute_queue.init_app(app, db.engine)

    from . import health, web
    from .api import bp as kiosk_api
    from .api import init_app as init_kiosk_api
    from .qr import phone

    app.register_blueprint(health.bp)  # GET /healthz
    init_kiosk_api(app)  # the kiosk API's JSON error envelope
    app.register_blueprint(kiosk_api)  # /api/v1: enrolment, events, heartbeat, bindings, key rotation
    phone.register(app)  # /m/: the member's phone QR page (and its settings' defaults)
    web.register(app)  # the staff pages: their sign-in and CSRF hooks and web_* blueprints (server/web)
    logger.info("server app created", extra={"database": db.backend})
    return app
