"""A loopback HTTP server that answers each connection with scripted raw bytes, then closes it.

For faults a real server cannot be made to produce on demand: a connection cut inside the headers, a
zoneless ``Date``, an answer that is not the expected message. Each answer is a function of the request
body it answers; when the script is empty, every upload is acknowledged in full.
"""

from __future__ import annotations

import email.utils
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from protocol.messages import BatchAck

Answer = Callable[[bytes], bytes]


def ack_body(server_time: float, request_body: bytes = b"") -> bytes:
    """A valid ``BatchAck`` accepting every event of ``request_body``, stamped ``server_time``."""
    try:
        ids = [uuid.UUID(e["event_id"]) for e in json.loads(request_body or b"{}").get("events", [])]
    except (ValueError, AttributeError, KeyError, TypeError):  # not an upload: accept nothing
        ids = []
    ack = BatchAck(
        accepted=ids,
        duplicates=[],
        chain="ok",
        head_seq=0,
        server_time=datetime.fromtimestamp(server_time, UTC),
    )
    return ack.to_json_bytes()


def response(body: bytes, *, status: str = "200 OK", date: str | None = None) -> bytes:
    """A complete HTTP/1.1 answer with ``Date`` (now, in GMT, unless given) and ``Content-Length``."""
    date = date if date is not None else email.utils.formatdate(usegmt=True)
    head = (
        f"HTTP/1.1 {status}\r\nDate: {date}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return b""
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return body


class ScriptedServer:
    """Serves on 127.0.0.1 (``port``) in a daemon thread; ``requests`` counts the requests answered."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.script: list[Answer] = []
        self.requests = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                body = _read_request(conn)
                answer = self.script.pop(0) if self.script else (lambda b: response(ack_body(time.time(), b)))
                conn.sendall(answer(body))
                self.requests += 1

    def close(self) -> None:
        self.sock.close()
