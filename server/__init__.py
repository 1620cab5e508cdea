"""The central server: ``create_app(config)`` builds the Flask app (see DESIGN.md "Server")."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask

from .config import load_config
from .db import Database

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

    from .health import bp as health_bp

    app.register_blueprint(health_bp)
    for register in _optional_blueprints():
        register(app)
    logger.info("server app created", extra={"database": db.backend})
    return app


def _optional_blueprints() -> list[Any]:
    """Feature blueprints register themselves through ``server.features.FEATURES`` (one per feature)."""
    from .features import FEATURES

    return list(FEATURES)
