"""A small TCP proxy between kiosk and server that misbehaves on demand (named test double for a network).

Faults, set per connection through :attr:`FaultProxy.plan` (a callable returning a :class:`Fault` for the
n-th connection) or all at once with :attr:`FaultProxy.fault`:

* ``PASS``  — forward both ways;
* ``DROP``  — accept and close at once, nothing reaches the server (connection reset / refused);
* ``DELAY`` — wait ``delay_s`` before forwarding the request;
* ``CUT_REQUEST``  — forward only the first ``cut_bytes`` of the request, then close both sides;
* ``CUT_RESPONSE`` — forward the whole request (the server processes and commits it), then pass only
  ``cut_bytes`` of the answer and close: the "response lost after commit" fault.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

logger = logging.getLogger(__name__)


class Fault(enum.Enum):
    PASS = "pass"
    DROP = "drop"
    DELAY = "delay"
    CUT_REQUEST = "cut_request"
    CUT_RESPONSE = "cut_response"


@dataclass
class Counters:
    connections: int = 0
    faults: int = 0


class FaultProxy:
    def __init__(self, target_port: int, *, delay_s: float = 0.5, cut_bytes: int = 200) -> None:
        self.target = ("127.0.0.1", target_port)
        self.delay_s = delay_s
        self.cut_bytes = cut_bytes
        self.fault = Fault.PASS
        self.plan: Callable[[int], Fault] | None = None
        self.counters = Counters()
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = int(self._listener.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
        self._thread.join(5)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.counters.connections += 1
                n = self.counters.connections
                fault = self.plan(n) if self.plan is not None else self.fault
                if fault is not Fault.PASS:
                    self.counters.faults += 1
            threading.Thread(target=self._handle, args=(conn, fault), daemon=True).start()

    def _handle(self, client: socket.socket, fault: Fault) -> None:
        if fault is Fault.DROP:
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            client.close()  # RST
            return
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            client.close()
            return
        if fault is Fault.DELAY:
            time.sleep(self.delay_s)
        request_limit = self.cut_bytes if fault is Fault.CUT_REQUEST else None
        response_limit = self.cut_bytes if fault is Fault.CUT_RESPONSE else None
        done = threading.Event()
        up = threading.Thread(
            target=self._pipe, args=(client, upstream, request_limit, done, True), daemon=True
        )
        down = threading.Thread(target=self._pipe, args=(upstream, client, response_limit, done), daemon=True)
        up.start()
        down.start()
        done.wait(60)
        for s in (client, upstream):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    @staticmethod
    def _pipe(
        src: socket.socket,
        dst: socket.socket,
        limit: int | None,
        done: threading.Event,
        request: bool = False,
    ) -> None:
        """Copy bytes; on the request side ask for ``Connection: close`` so each connection carries one
        exchange and a fault planned for a connection hits exactly one request."""
        sent = 0
        first = request
        try:
            while not done.is_set():
                src.settimeout(1.0)
                try:
                    data = src.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    break
                if first:
                    data = data.replace(b"Connection: keep-alive", b"Connection: close", 1)
                    first = False
                if limit is not None and sent + len(data) >= limit:
                    dst.sendall(data[: max(0, limit - sent)])
                    break
                dst.sendall(data)
                sent += len(data)
        except OSError:
            pass
        finally:
            done.set()
