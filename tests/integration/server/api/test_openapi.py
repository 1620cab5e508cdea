"""The OpenAPI document describes the kiosk API, and schemathesis finds no 500 in it.

Generated requests to the signed endpoints are signed with a real kiosk's secret (otherwise every one
would stop at the signature check and the bodies would never be exercised). Examples are bounded so the
run stays short; what must hold for every one: no 5xx, and every answer is either the documented
success body or the JSON error envelope.
"""

from __future__ import annotations

import json

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from protocol.messages import BatchAck, EnrolResponse, ErrorResponse, HeartbeatResponse
from tests.factories import signed_headers

MAX_EXAMPLES = 20
SUCCESS = {
    "/api/v1/kiosk/enrol": EnrolResponse,
    "/api/v1/kiosk/events": BatchAck,
    "/api/v1/kiosk/heartbeat": HeartbeatResponse,
}


def test_document_is_openapi_31_with_the_protocol_schemas(client):
    doc = client.get("/api/v1/openapi.json").get_json()
    assert doc["openapi"] == "3.1.0"
    assert {"/api/v1/kiosk/enrol", "/api/v1/kiosk/events", "/api/v1/kiosk/heartbeat"} <= set(doc["paths"])
    assert {"EventBatch", "BatchAck", "HeartbeatRequest", "ErrorResponse"} <= set(
        doc["components"]["schemas"]
    )


@pytest.mark.parametrize("path", ["/api/v1/kiosk/enrol", "/api/v1/kiosk/events", "/api/v1/kiosk/heartbeat"])
def test_schemathesis_finds_no_server_error(app, client, world, path):
    schemathesis.experimental.OPEN_API_3_1.enable()  # 3.1 support is behind a flag in schemathesis 3.x
    schema = schemathesis.from_dict(client.get("/api/v1/openapi.json").get_json(), app=app)
    operation = schema[path]["POST"]
    strategy = operation.as_strategy()
    statuses: list[int] = []

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def check(case):  # type: ignore[no-untyped-def]
        raw = json.dumps(case.body).encode() if case.body is not None else b""
        headers = signed_headers(world.kiosk, "POST", path, raw)
        response = client.post(path, data=raw, headers=headers)
        statuses.append(response.status_code)
        assert response.status_code < 500, response.get_data(as_text=True)
        if response.status_code >= 400:
            ErrorResponse.model_validate_json(response.get_data())
        else:
            SUCCESS[path].model_validate_json(response.get_data())

    check()
    assert statuses, "schemathesis generated no requests"
