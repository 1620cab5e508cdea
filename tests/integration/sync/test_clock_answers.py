"""Which answers may move the kiosk's clock: a real socket server on loopback against the real client.

Each scripted answer is what a network fault or a misbehaving middlebox really sends: a connection cut
inside the ``Date`` header (``http.client`` then reports a 200 with the truncated header), a ``Date``
without its zone, an answer that is not the expected message, an answer to an unsigned request, and a
lone sample that jumps by hours. None of them may move the offset; a cut is counted and logged.
"""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from kiosk.client import BadResponse, ClientError, ClockOffset, KioskClient, ServerError
from protocol.messages import BatchAck, EnrolRequest, EnrolResponse
from protocol.messages.enrolment import CentreInfo

from .scripted_server import ScriptedServer, ack_body, response

SECRET = bytes(range(32))
EMPTY_BATCH = b'{"events": []}'
ENROL = EnrolRequest(token="t" * 16, device_name="test kiosk", software_version="0.1.0")


def _enrolled(server_time: float) -> bytes:
    centre = CentreInfo(centre_id=1, name="测试中心", community_id=1, community_name="测试社区")
    return EnrolResponse(
        kiosk_id="K-TEST",
        kiosk_secret="ab" * 32,
        credential_key="cd" * 32,
        centre=centre,
        server_time=datetime.fromtimestamp(server_time, UTC),
    ).to_json_bytes()


HOURS = 3 * 3600.0


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    srv = ScriptedServer()
    yield srv
    srv.close()


@pytest.fixture
def client(server: ScriptedServer) -> Iterator[KioskClient]:
    c = KioskClient(f"http://127.0.0.1:{server.port}", "K-TEST", SECRET, offset=ClockOffset(clock=time.time))
    # a true server clock 1.0 s ahead of ours: the estimate every test starts from
    server.script.append(lambda _b: response(ack_body(time.time() + 1.0)))
    c.upload_events(EMPTY_BATCH)
    yield c
    c.close()


def _baseline(client: KioskClient) -> int:
    value = client.offset.offset_ms
    assert value is not None and abs(value - 1000) < 500, value
    return value


def test_a_connection_cut_inside_the_date_header_does_not_move_the_clock(server, client, caplog):
    before = _baseline(client)
    now = email.utils.formatdate(usegmt=True)  # e.g. "Tue, 01 Dec 2026 21:54:07 GMT"
    cut_at = now.index(":") + 2  # "…21:5": parses as 21:05
    server.script.append(
        lambda _b: f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nDate: {now[:cut_at]}".encode()
    )
    with caplog.at_level(logging.WARNING, logger="kiosk.client"), pytest.raises(ClientError):
        client.upload_events(EMPTY_BATCH)
    assert client.offset.offset_ms == before
    assert client.bad_answers == 1
    assert "clock offset not measured" in caplog.text


def test_a_date_without_zone_is_never_read_as_local_time(server, client):
    before = _baseline(client)
    zoneless = time.strftime("%a, %d %b %Y %H:%M:%S", time.gmtime(time.time() + 8 * 3600))
    # an error page from a proxy, complete, with a zoneless Date eight hours away
    server.script.append(
        lambda _b: response(b"<html>bad gateway</html>", status="502 Bad Gateway", date=zoneless)
    )
    with pytest.raises(ServerError):
        client.upload_events(EMPTY_BATCH)
    assert client.offset.offset_ms == before
    # a complete, valid answer: its body's time counts, its zoneless Date does not
    server.script.append(lambda _b: response(ack_body(time.time() + 1.0), date=zoneless))
    client.upload_events(EMPTY_BATCH)
    assert abs(client.offset.current_ms() - 1000) < 500


def test_an_answer_that_is_not_the_expected_message_does_not_move_the_clock(server, client):
    before = _baseline(client)
    wrong = datetime.fromtimestamp(time.time() + HOURS, UTC).isoformat().encode()
    server.script.append(lambda _b: response(b'{"server_time": "' + wrong + b'"}'))  # no BatchAck
    with pytest.raises(BadResponse):
        client.upload_events(EMPTY_BATCH)
    # an answer with a zoneless time where the call expects any JSON object
    zoneless = datetime.fromtimestamp(time.time() + HOURS, UTC).replace(tzinfo=None).isoformat()
    server.script.append(lambda _b: response(f'{{"server_time": "{zoneless}"}}'.encode()))
    client.command_results([])
    assert client.offset.offset_ms == before
    assert client.bad_answers == 1


def test_an_unsigned_call_moves_the_clock_only_when_it_is_the_enrolment(server, client):
    """The enrolment (authenticated by its one-time token) seeds the offset; any other unsigned call does
    not, and a cut enrolment answer does not either."""
    before = _baseline(client)
    server.script.append(lambda _b: response(ack_body(time.time() + HOURS)))
    client._call("POST", "/api/v1/kiosk/events", EMPTY_BATCH, BatchAck, signed=False)
    assert client.offset.offset_ms == before
    fresh = KioskClient(client.base_url, offset=ClockOffset(clock=time.time))
    cut = email.utils.formatdate(usegmt=True)[:20]
    server.script.append(lambda _b: f"HTTP/1.1 200 OK\r\nDate: {cut}".encode())
    with pytest.raises(ClientError):
        fresh.enrol(ENROL)
    assert fresh.offset.offset_ms is None
    server.script.append(lambda _b: response(_enrolled(time.time() + HOURS)))
    fresh.enrol(ENROL)
    assert abs(fresh.offset.current_ms() - HOURS * 1000) < 1500
    fresh.close()


def test_an_implausible_jump_is_refused_until_a_second_answer_confirms_it(server, client):
    before = _baseline(client)
    server.script.append(lambda _b: response(ack_body(time.time() + HOURS)))
    client.upload_events(EMPTY_BATCH)
    assert client.offset.offset_ms == before and client.offset.jumps_held == 1
    server.script.append(lambda _b: response(ack_body(time.time() + 1.0)))  # the next one agrees with the old
    client.upload_events(EMPTY_BATCH)
    assert abs(client.offset.current_ms() - before) < 500
    # a device clock that really was stepped: two answers in a row agree, and the kiosk follows
    server.script.extend([lambda _b: response(ack_body(time.time() + HOURS))] * 2)
    client.upload_events(EMPTY_BATCH)
    assert abs(client.offset.current_ms() - before) < 500
    client.upload_events(EMPTY_BATCH)
    assert abs(client.offset.current_ms() - HOURS * 1000) < 1500


def test_the_servers_clock_skew_refusal_still_corrects_a_wrong_clock(server, client):
    """The one answer besides a valid one that moves the clock: the server refused our timestamp."""
    _baseline(client)
    true_time = datetime.fromtimestamp(time.time() + HOURS, UTC).isoformat()
    refusal = (
        f'{{"code": "clock_skew", "message": "clock skew", "message_zh": "终端时钟偏差过大", '
        f'"server_time": "{true_time}"}}'
    ).encode()
    server.script.append(lambda _b: response(refusal, status="401 Unauthorized"))
    server.script.append(lambda _b: response(ack_body(time.time() + HOURS)))
    client.upload_events(EMPTY_BATCH)
    assert abs(client.offset.current_ms() - HOURS * 1000) < 1500
