"""A virtual contactless card for the real pcscd + vsmartcard ``vpcd`` driver.

``vpcd`` (the IFD handler Debian ships in ``vsmartcard-vpcd``) listens on TCP 35963; whoever connects
*is* the card in slot "Virtual PCD 00 00". Inserting a card = connecting, removing it = closing the
socket, so pyscard talks to pcscd exactly as it would with an ACR122U. Wire format (both ways): 2-byte
big-endian length + payload; a 1-byte payload from vpcd is a control code (0 power off, 1 power on,
2 reset, 4 get ATR — only the last one expects an answer, the ATR). Any longer payload is a command
APDU and expects a response APDU.

vpcd writes the length and the payload in two ``send`` calls; with delayed ACKs on our side every
APDU would cost ~44 ms (Nagle on vpcd's side waits for our ACK), hence ``TCP_QUICKACK`` re-armed after
every ``recv`` (Linux clears it again on its own) and ``TCP_NODELAY`` for our answers.

This is a test double for the *card* only; pcscd, the vpcd driver and pyscard are the real ones.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable

logger = logging.getLogger(__name__)

VPCD_HOST = "127.0.0.1"
VPCD_PORT = 35963

GET_UID = bytes.fromhex("FFCA000000")
SW_OK = bytes.fromhex("9000")
#: PC/SC part 3 ATR of a MIFARE Classic 1K as an ACR122U reports it: what a real tap looks like.
MIFARE_ATR = bytes.fromhex("3B8F8001804F0CA000000306030001000000006A")

CTRL_POWER_OFF, CTRL_POWER_ON, CTRL_RESET, CTRL_GET_ATR = 0, 1, 2, 4


class VirtualCard:
    """One card placed on the vpcd reader while :meth:`insert` … :meth:`remove`.

    ``uid_status`` is consumed one status word per GET UID command (the last one repeats), so
    ``[b"\\x63\\x00", SW_OK]`` answers 6300 once and then the UID. ``pull_on`` closes the socket
    instead of answering the N-th APDU that starts with the given bytes: the card leaving the field
    mid-read. ``responses`` answers other APDUs (exact match); everything else gets 6D00.
    """

    def __init__(
        self,
        uid: bytes,
        *,
        host: str = VPCD_HOST,
        port: int = VPCD_PORT,
        atr: bytes = MIFARE_ATR,
        uid_status: Iterable[bytes] = (SW_OK,),
        responses: dict[bytes, bytes] | None = None,
        pull_on: bytes | None = None,
        hang_on: bytes | None = None,
        after_remove: Callable[[], object] | None = None,
        quickack: bool = True,
    ) -> None:
        self.uid = uid
        self.host, self.port = host, port
        self.atr = atr
        self._uid_status = list(uid_status) or [SW_OK]
        self.responses = dict(responses or {})
        self.pull_on = pull_on
        self.hang_on = hang_on
        self.hung = threading.Event()
        self.after_remove = after_remove
        self.quickack = quickack  # False only to measure the trap (bench/tap_latency.py)
        self.apdus: list[bytes] = []
        self.controls: list[int] = []
        self.powered = threading.Event()
        self.pulled = threading.Event()
        self.inserted_at: float | None = None
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # -- placing and pulling ---------------------------------------------------------------------
    def insert(self, timeout: float = 10.0) -> VirtualCard:
        """Connect to vpcd (retrying while pcscd is (re)starting) and answer it in a thread."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                sock = socket.create_connection((self.host, self.port), timeout=1.0)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.quickack:
            _quickack(sock)
        self.inserted_at = time.monotonic()
        self._sock = sock
        self.pulled.clear()
        self._thread = threading.Thread(target=self._serve, args=(sock,), name="vpcd-card", daemon=True)
        self._thread.start()
        return self

    def remove(self) -> None:
        """Take the card off the reader (close the TCP connection).

        ``after_remove`` (the fixtures pass "wait until pcscd reports the slot empty") runs after a
        card that was on the reader: vpcd takes the next connection from its listen backlog on its
        next poll, so a card placed before pcscd saw the removal would otherwise silently replace the
        old one, which no physical reader can do.
        """
        sock, self._sock = self._sock, None
        was_inserted = self._thread is not None
        if sock is not None:
            _close(sock)
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None
        self.powered.clear()
        if was_inserted and self.after_remove is not None:
            self.after_remove()

    def __enter__(self) -> VirtualCard:
        return self.insert()

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def received(self) -> list[bytes]:
        with self._lock:
            return list(self.apdus)

    # -- the card itself -------------------------------------------------------------------------
    def answer(self, apdu: bytes) -> bytes | None:
        """The response APDU, ``None`` to drop off the field, or ``b""`` to go silent (hang)."""
        if self.pull_on is not None and apdu.startswith(self.pull_on):
            return None
        if self.hang_on is not None and apdu.startswith(self.hang_on):
            return b""
        if apdu == GET_UID or apdu[:4] == GET_UID[:4]:
            sw = self._uid_status.pop(0) if len(self._uid_status) > 1 else self._uid_status[0]
            return (self.uid + sw) if sw == SW_OK else sw
        return self.responses.get(apdu, bytes.fromhex("6D00"))

    def _serve(self, sock: socket.socket) -> None:
        try:
            while True:
                payload = _recv_frame(sock, self.quickack)
                if payload is None:
                    return
                if len(payload) == 1:
                    self._control(sock, payload[0])
                    continue
                with self._lock:
                    self.apdus.append(payload)
                reply = self.answer(payload)
                if reply is None:
                    logger.debug("virtual card pulled on APDU %s", payload.hex())
                    self.pulled.set()
                    _close(sock)
                    return
                if not reply:  # a card (or reader firmware) that stops answering
                    self.hung.set()
                    continue
                sock.sendall(struct.pack(">H", len(reply)) + reply)
        except OSError:
            return  # remove() closed the socket under us

    def _control(self, sock: socket.socket, code: int) -> None:
        self.controls.append(code)
        if code == CTRL_GET_ATR:
            sock.sendall(struct.pack(">H", len(self.atr)) + self.atr)
        elif code in (CTRL_POWER_ON, CTRL_RESET):
            self.powered.set()
        elif code == CTRL_POWER_OFF:
            self.powered.clear()


def _quickack(sock: socket.socket) -> None:
    quickack = getattr(socket, "TCP_QUICKACK", None)
    if quickack is not None:
        sock.setsockopt(socket.IPPROTO_TCP, quickack, 1)


def _recv_exact(sock: socket.socket, n: int, quickack: bool) -> bytes | None:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if quickack:
            _quickack(sock)
        if not chunk:
            return None
        buf += chunk
    return buf


def _recv_frame(sock: socket.socket, quickack: bool = True) -> bytes | None:
    head = _recv_exact(sock, 2, quickack)
    if head is None:
        return None
    (length,) = struct.unpack(">H", head)
    return _recv_exact(sock, length, quickack) if length else b""


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
