"""The kiosk API under ``/api/v1`` (DESIGN.md "Kiosk ↔ server contract"), one module per resource.

* :mod:`.enrolment` — ``POST /api/v1/kiosk/enrol`` (the only unsigned call) and enrolment tokens
* :mod:`.events` — ``POST /api/v1/kiosk/events`` (bulk upload, see :mod:`server.ingest`)
* :mod:`.heartbeat` — ``POST /api/v1/kiosk/heartbeat`` (health in; config, roster, commands out)
* :mod:`.bindings` — ``POST /api/v1/kiosk/bindings`` (card bindings made by staff at a kiosk)
* :mod:`.rotation` — ``POST /api/v1/kiosk/rotate-key`` (a new request-signing secret, with an overlap)
* :mod:`.openapi` — ``GET /api/v1/openapi.json``
* :mod:`.auth` — signature, skew, revocation and nonce checks; :mod:`.errors` — the JSON error envelope
"""

from __future__ import annotations

import logging

from flask import Blueprint, Flask, abort, request

from protocol.messages import MAX_BODY_BYTES
from protocol.version import PROTOCOL_HEADER, PROTOCOL_VERSION

from .errors import attach_blueprint_handlers, register_app_handlers

logger = logging.getLogger(__name__)

bp = Blueprint("kiosk_api", __name__, url_prefix="/api/v1")
attach_blueprint_handlers(bp)


@bp.before_request
def _limit_body() -> None:
    """Refuse oversized bodies before reading them (the protocol's limit, tighter than the app's)."""
    request.max_content_length = MAX_BODY_BYTES
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        abort(413)


@bp.after_request
def _protocol_header(response):  # type: ignore[no-untyped-def]
    response.headers[PROTOCOL_HEADER] = str(PROTOCOL_VERSION)
    return response


def init_app(app: Flask) -> None:
    """The API's JSON error envelope for the whole app (the app factory registers :data:`bp` itself)."""
    register_app_handlers(app)


@bp.route("/<path:_rest>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
def _not_found(_rest: str):  # type: ignore[no-untyped-def]
    """Unknown API paths answer in the API's envelope, whatever other features do for their 404s."""
    from flask import current_app

    from .errors import ApiError

    if any(rule.rule == request.path for rule in current_app.url_map.iter_rules()):
        raise ApiError(405, "method_not_allowed", f"{request.method} not allowed here", "不支持的请求方法")
    raise ApiError(404, "not_found", "no such API endpoint", "接口不存在")


# The resources' routes attach to ``bp`` when their modules are imported (after ``bp`` exists).
from . import bindings, enrolment, events, heartbeat, openapi, rotation  # noqa: E402, F401
