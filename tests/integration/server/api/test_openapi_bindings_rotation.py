"""The bindings and key-rotation endpoints are in the OpenAPI document, and schemathesis finds no 500."""

from __future__ import annotations

import json

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from protocol.messages import BindingAck, ErrorResponse, KeyRotationResponse
from server.models import Kiosk
from tests.factories import signed_headers

MAX_EXAMPLES = 20
SUCCESS = {"/api/v1/kiosk/bindings": BindingAck, "/api/v1/kiosk/rotate-key": KeyRotationResponse}


def test_document_describes_bindings_and_rotation(client):
    doc = client.get("/api/v1/openapi.json").get_json()
    schemas = doc["components"]["schemas"]
    for path, (request, response) in {
        "/api/v1/kiosk/bindings": ("BindingBatch", "BindingAck"),
        "/api/v1/kiosk/rotate-key": ("KeyRotationRequest", "KeyRotationResponse"),
    }.items():
        post = doc["paths"][path]["post"]
        assert post["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/" + request)
        assert post["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
            "/" + response
        )
        assert request in schemas and response in schemas
    assert set(schemas["BindingAck"]["properties"]) == {"accepted", "duplicates", "rejected"}
    assert {"id", "code", "message", "message_zh"} <= set(schemas["BindingRejection"]["properties"])


@pytest.mark.parametrize("path", sorted(SUCCESS))
def test_schemathesis_finds_no_server_error(app, client, world, db_session, path):
    schemathesis.experimental.OPEN_API_3_1.enable()
    schema = schemathesis.from_dict(client.get("/api/v1/openapi.json").get_json(), app=app)
    strategy = schema[path]["POST"].as_strategy()
    statuses: list[int] = []

    @settings(
        max_examples=MAX_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(case=strategy)
    def check(case):  # type: ignore[no-untyped-def]
        kiosk = db_session.get(Kiosk, world.kiosk.id)
        db_session.refresh(kiosk)  # rotate-key changes the secret: sign with the current one
        raw = json.dumps(case.body).encode() if case.body is not None else b""
        response = client.post(path, data=raw, headers=signed_headers(kiosk, "POST", path, raw))
        statuses.append(response.status_code)
        assert response.status_code < 500, response.get_data(as_text=True)
        if response.status_code >= 400:
            ErrorResponse.model_validate_json(response.get_data())
        else:
            SUCCESS[path].model_validate_json(response.get_data())

    check()
    assert statuses, "schemathesis generated no requests"
