"""``GET /api/v1/openapi.json``: the OpenAPI 3.1 document of the kiosk API.

The schemas come from :func:`protocol.schemas.openapi_components`, i.e. from the same pydantic models the
server validates with, so the document cannot drift from the code; only the paths are written here.
"""

from __future__ import annotations

import logging
from functools import cache
from typing import Any

from flask import jsonify

from protocol.messages import MAX_BODY_BYTES
from protocol.schemas import openapi_components
from protocol.signing import KIOSK_HEADER, NONCE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER
from protocol.version import API_PREFIX, PROTOCOL_VERSION

from . import bp

logger = logging.getLogger(__name__)

_SIGNING = (
    "Signed with HMAC-SHA256 of the kiosk secret over METHOD, PATH, TIMESTAMP, NONCE and sha256(body), "
    "joined by newlines (see protocol/signing.py). 以终端密钥对请求签名。"
)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(name: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(name)}}}


def _errors(*statuses: int) -> dict[str, Any]:
    texts = {
        400: "malformed request",
        401: "bad or missing signature, clock skew (with server_time), unknown kiosk or token",
        403: "revoked kiosk",
        409: "replayed nonce or used enrolment token",
        410: "expired enrolment token",
        413: f"body larger than {MAX_BODY_BYTES} bytes",
        422: "body failed validation",
    }
    return {str(s): _json("ErrorResponse", texts[s]) for s in statuses}


def _signed_post(summary: str, request_model: str, response_model: str) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "description": _SIGNING,
            "security": [{name: [] for name in ("kiosk", "timestamp", "nonce", "signature")}],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _ref(request_model)}},
            },
            "responses": {"200": _json(response_model, "committed"), **_errors(401, 403, 409, 413, 422)},
        }
    }


@cache
def openapi_document() -> dict[str, Any]:
    """The document (built once per process; it depends only on code)."""
    headers = {
        "kiosk": KIOSK_HEADER,
        "timestamp": TIMESTAMP_HEADER,
        "nonce": NONCE_HEADER,
        "signature": SIGNATURE_HEADER,
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "baodao kiosk API / 报到终端接口",
            "version": str(PROTOCOL_VERSION),
            "description": "Enrolment, event upload, heartbeat, card bindings and key rotation between "
            "kiosks and the central server.",
        },
        "paths": {
            f"{API_PREFIX}/enrol": {
                "post": {
                    "summary": "Trade a one-time enrolment token for a kiosk identity (unsigned).",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("EnrolRequest")}},
                    },
                    "responses": {
                        "201": _json("EnrolResponse", "enrolled"),
                        **_errors(400, 401, 409, 410, 413, 422),
                    },
                }
            },
            f"{API_PREFIX}/events": _signed_post("Upload a batch of TapEvents.", "EventBatch", "BatchAck"),
            f"{API_PREFIX}/heartbeat": _signed_post(
                "Report health; receive config, roster delta and commands.",
                "HeartbeatRequest",
                "HeartbeatResponse",
            ),
            f"{API_PREFIX}/bindings": _signed_post(
                "Upload card bindings made by staff at the kiosk.", "BindingBatch", "BindingAck"
            ),
            f"{API_PREFIX}/rotate-key": _signed_post(
                "Trade the request-signing secret for a new one (the old one keeps an overlap).",
                "KeyRotationRequest",
                "KeyRotationResponse",
            ),
        },
        "components": {
            "schemas": openapi_components(),
            "securitySchemes": {
                key: {"type": "apiKey", "in": "header", "name": name, "description": _SIGNING}
                for key, name in headers.items()
            },
        },
    }


@bp.get("/openapi.json")
def openapi_json():  # type: ignore[no-untyped-def]
    return jsonify(openapi_document())
