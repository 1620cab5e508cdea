"""Forged, replayed, stale, oversized and malformed requests over real HTTP: the right status and error
code, nothing stored, and the server keeps serving a genuine kiosk afterwards (both backends)."""

from __future__ import annotations

import datetime as dt
import json
import socket
import time
from pathlib import Path

import requests

from kiosk.enrol import enrol
from protocol.signing import sign_request
from tests.factories import make_wire_events

from .conftest import LiveServer, enrol_token, seed_centre, server_events

EVENTS = "/api/v1/kiosk/events"


def _post(url: str, headers: dict[str, str], body: bytes) -> requests.Response:
    return requests.post(
        url + EVENTS, data=body, headers={**headers, "Content-Type": "application/json"}, timeout=10
    )


def test_hostile_requests_are_refused_and_store_nothing(
    live_server: LiveServer, db_url: str, tmp_path: Path
) -> None:
    seeded = seed_centre(db_url, members=1)
    kiosk = enrol(live_server.url, enrol_token(db_url, seeded.centre_code), tmp_path / "k")
    kid, secret = kiosk.kiosk_id, bytes.fromhex(kiosk.kiosk_secret)
    body = json.dumps({"events": make_wire_events(3, member_id=seeded.members[0])}).encode()
    url = live_server.url

    def expect(resp: requests.Response, status: int, code: str) -> dict:
        assert resp.status_code == status, (resp.status_code, resp.text[:300])
        data = resp.json()
        assert data["code"] == code and data["message"] and data["message_zh"]
        return data

    expect(_post(url, sign_request(kid, b"f" * 32, "POST", EVENTS, body), body), 401, "bad_signature")
    expect(_post(url, sign_request("nosuchkiosk", secret, "POST", EVENTS, body), body), 401, "unknown_kiosk")
    tampered = sign_request(kid, secret, "POST", EVENTS, body)
    expect(_post(url, tampered, body.replace(b'"in"', b'"out"', 1)), 401, "bad_signature")
    stale = expect(
        _post(url, sign_request(kid, secret, "POST", EVENTS, body, timestamp=int(time.time()) - 3600), body),
        401,
        "clock_skew",
    )
    assert abs(time.time() - dt.datetime.fromisoformat(stale["server_time"]).timestamp()) < 5
    missing = requests.post(url + EVENTS, data=body, timeout=10)
    assert missing.status_code == 401 and missing.json()["code"] == "malformed_signature_headers"

    big = b'{"events": [' + b" " * (2 * 1024 * 1024) + b"]}"
    resp = _post(url, sign_request(kid, secret, "POST", EVENTS, big), big)
    assert resp.status_code == 413 and resp.json()["message_zh"]

    for bad in (b"{not json", b'{"events": []}', b'{"events": [{"seq": "1"}]}', b"[]"):
        expect(_post(url, sign_request(kid, secret, "POST", EVENTS, bad), bad), 422, "validation_error")
    assert server_events(db_url) == []

    # A genuine request is accepted, and the very same bytes and headers replayed are refused.
    headers = sign_request(kid, secret, "POST", EVENTS, body)
    first = _post(url, headers, body)
    assert first.status_code == 200, first.text[:300]
    assert len(first.json()["accepted"]) == 3
    expect(_post(url, headers, body), 409, "replayed_nonce")

    # Half a request then a hang-up must not wedge the server either.
    with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=5) as raw:
        raw.sendall(b"POST " + EVENTS.encode() + b' HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n{"ev')
    again = _post(url, sign_request(kid, secret, "POST", EVENTS, body), body)
    assert again.status_code == 200 and len(again.json()["duplicates"]) == 3
    assert len(server_events(db_url)) == 3
