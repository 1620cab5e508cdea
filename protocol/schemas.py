"""JSON Schema of every wire message, shaped for an OpenAPI 3.1 ``components.schemas`` section.

OpenAPI 3.1 uses JSON Schema 2020-12, which is what pydantic emits, so the server can serve these dicts
unchanged: ``{"openapi": "3.1.0", ..., "components": {"schemas": openapi_components()}}`` and refer to
``#/components/schemas/TapEventIn`` from its paths.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic.json_schema import models_json_schema

from protocol import messages

logger = logging.getLogger(__name__)

REF_TEMPLATE = "#/components/schemas/{model}"

#: Every top-level message; nested models (CentreInfo, RosterEntry, …) come along as their own components.
MESSAGE_MODELS: tuple[type[messages.Message], ...] = (
    messages.EnrolRequest,
    messages.EnrolResponse,
    messages.TapEventIn,
    messages.EventBatch,
    messages.BatchAck,
    messages.HealthReport,
    messages.HeartbeatRequest,
    messages.HeartbeatResponse,
    messages.Command,
    messages.CommandResult,
    messages.ErrorResponse,
    messages.BindingBatch,
    messages.BindingAck,
    messages.KeyRotationRequest,
    messages.KeyRotationResponse,
)


def openapi_components() -> dict[str, Any]:
    """``{model name: JSON schema}`` for every message and every model or enum they use."""
    _, top = models_json_schema([(m, "validation") for m in MESSAGE_MODELS], ref_template=REF_TEMPLATE)
    return dict(top.get("$defs", {}))
