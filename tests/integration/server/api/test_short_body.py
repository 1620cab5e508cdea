"""A request body cut short by the network is "incomplete", not a forgery — behind a real gunicorn.

The kiosk signs the whole body; a proxy or a dropped connection delivers less than ``Content-Length``.
Signature-checking what arrived made every network cut a ``bad_signature`` in the security log (a false
forgery alarm). Now a short body is answered 400 ``incomplete_request`` (or the connection is closed)
and logged as such; a complete body with a wrong signature is still logged as ``bad_signature``. The
gunicorn workers' stderr (where the security log goes without a configured handler) is read back.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from sqlalchemy.orm import Session

from bench.ingest import free_port, wait_until_idle
from protocol.signing import sign_request
from tests.conftest import REPO_ROOT, TEST_KEYS
from tests.factories import make_centre, make_kiosk, make_member, make_wire_events, signed_headers
from tests.integration.sync.conftest import wait_http

PATH = "/api/v1/kiosk/events"


@contextmanager
def gunicorn_logged(db_url: str, log: Path) -> Iterator[str]:
    """``gunicorn -w 2 'server:create_app()'`` with its stderr in ``log``; yields the base URL."""
    port = free_port()
    env = {**os.environ, **{f"BAODAO_{k}": v for k, v in TEST_KEYS.items()}, "BAODAO_DATABASE_URL": db_url}
    cmd = [sys.executable, "-m", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}", "server:create_app()"]
    with log.open("wb") as err:
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stderr=err)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_http(base + "/healthz", timeout=60, proc=proc)
            wait_until_idle(proc.pid, 2)
            yield base
        finally:
            proc.terminate()
            proc.wait(30)


@pytest.fixture
def kiosk(db_url: str) -> dict[str, str | int]:
    engine = sa.create_engine(db_url)
    with Session(engine) as db:
        centre = make_centre(db, closes_at=None)
        member = make_member(db)
        k = make_kiosk(db, centre)
        out = {"uid": k.kiosk_uid, "secret": k.secret, "member_id": member.id}
        db.commit()
    engine.dispose()
    return out


def _body(kiosk: dict) -> bytes:
    events = make_wire_events(3, member_id=kiosk["member_id"], start=datetime.now(UTC))
    return json.dumps({"events": events}).encode()


def send_cut(base: str, headers: dict[str, str], body: bytes, sent: int) -> bytes:
    """POST announcing ``len(body)`` bytes, send only ``sent`` of them, half-close; the raw answer."""
    host, port = base.removeprefix("http://").split(":")
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = (
        f"POST {PATH} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{head}Connection: close\r\n\r\n"
    ).encode()
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(request + body[:sent])
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def _assert_incomplete(envelope: dict) -> None:
    assert envelope["code"] == "incomplete_request"
    assert "incomplete request" in envelope["message"]
    assert envelope["message_zh"] == "请求不完整：请求体在传输中被截断"


def _security_lines(log: Path) -> list[str]:
    return [line for line in log.read_text(errors="replace").splitlines() if "kiosk" in line]


@pytest.mark.slow
def test_a_cut_body_behind_gunicorn_is_incomplete_not_a_forgery(db_url, kiosk, tmp_path):
    log = tmp_path / "gunicorn.err"
    body = _body(kiosk)
    headers = sign_request(str(kiosk["uid"]), bytes.fromhex(str(kiosk["secret"])), "POST", PATH, body)
    with gunicorn_logged(db_url, log) as base:
        answer = send_cut(base, headers, body, len(body) // 2)
        # the same kiosk, a complete body under a signature made for another body: a forgery
        forged = requests.post(
            base + PATH, data=body.replace(b'"events"', b'"events" '), headers=headers, timeout=30
        )
    lines = _security_lines(log)
    status_line, _, rest = answer.partition(b"\r\n")  # gunicorn answers a half-closed connection
    assert b" 400 " in status_line, answer[:300]
    _assert_incomplete(json.loads(rest.partition(b"\r\n\r\n")[2]))
    assert forged.status_code == 401 and forged.json()["code"] == "bad_signature"
    assert sum("bad_signature" in line for line in lines) == 1, lines  # the forgery, not the cut
    assert any("incomplete" in line for line in lines), lines
    engine = sa.create_engine(db_url)
    with engine.connect() as conn:  # neither the cut nor the forgery stored anything
        assert conn.execute(sa.text("SELECT count(*) FROM tap_events")).scalar_one() == 0
    engine.dispose()


def test_a_short_body_through_the_flask_client_is_incomplete(client, world, caplog):
    """The same rule without gunicorn: Werkzeug's own short read of ``wsgi.input``."""
    body = json.dumps({"events": make_wire_events(2, member_id=world.member.id)}).encode()
    headers = signed_headers(world.kiosk, "POST", PATH, body)
    with caplog.at_level(logging.INFO, logger="baodao.security"):
        cut = client.post(
            PATH, data=body[:40], headers=headers, environ_overrides={"CONTENT_LENGTH": str(len(body))}
        )
        forged = client.post(PATH, data=body.replace(b'"events"', b'"events" '), headers=headers)
    assert cut.status_code == 400
    _assert_incomplete(cut.get_json())
    assert forged.status_code == 401 and forged.get_json()["code"] == "bad_signature"
    security = [r.getMessage() for r in caplog.records if r.name == "baodao.security"]
    assert sum("bad_signature" in m for m in security) == 1, security
