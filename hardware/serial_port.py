"""Serial transport shared by the serial drivers, with reconnect.

USB-serial readers get unplugged, and their ``/dev/ttyUSB*`` name changes when they come back (the udev
rules in ``firmware-config/udev/`` give stable ``/dev/baodao/…`` links for that reason). The transport
re-resolves the port on every open, so the same code follows a link, a pty, or a ``match`` rule.
pyserial is only imported here and in the drivers; its exceptions become :mod:`hardware.base` ones.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time

import serial
from serial.tools import list_ports

from hardware.base import CredentialKind, DeviceDisconnected, DeviceNotFound, ReadCallback
from hardware.frames import FrameResult
from hardware.profiles import ReaderProfile
from hardware.reconnect import ReconnectingReader, SessionEnd

logger = logging.getLogger(__name__)
traffic = logging.getLogger("hardware.traffic")

_PARITY = {"N": serial.PARITY_NONE, "E": serial.PARITY_EVEN, "O": serial.PARITY_ODD, "M": serial.PARITY_MARK}
_PARITY["S"] = serial.PARITY_SPACE


def parse_framing(framing: str | None) -> tuple[int, str, float]:
    """``"8N1"`` -> (bytesize, parity, stopbits) as pyserial wants them."""
    text = (framing or "8N1").upper()
    if not re.fullmatch(r"[5-8][NEOMS][12]", text):
        raise ValueError(f"bad framing {framing!r}")
    return int(text[0]), _PARITY[text[1]], float(text[2])


def find_port(match: dict[str, str]) -> str | None:
    """First serial port whose USB attributes match all of ``match`` (vid/pid hex, serial, regexes)."""
    for info in list_ports.comports():
        ok = True
        for key, want in match.items():
            if key in ("vid", "pid"):
                have = getattr(info, key)
                ok = have is not None and f"{have:04x}" == str(want).lower()
            elif key in ("serial_number", "manufacturer", "product", "description", "location"):
                ok = re.search(str(want), str(getattr(info, key) or "")) is not None
            if not ok:
                break
        if ok and match:
            return info.device
    return None


class SerialTransport:
    """One serial port: open/read/write/close; raises DeviceNotFound / DeviceDisconnected."""

    def __init__(
        self,
        port: str | None,
        baud: int,
        framing: str | None = None,
        match: dict[str, str] | None = None,
        read_timeout: float = 0.1,
    ) -> None:
        self.port = port
        self.baud = baud
        self.framing = framing
        self.match = match or {}
        self.read_timeout = read_timeout
        self._serial: serial.Serial | None = None

    @property
    def is_open(self) -> bool:
        return self._serial is not None and self._serial.is_open

    def open(self) -> str:
        device = self.port or find_port(self.match)
        if not device:
            raise DeviceNotFound(f"no serial port matches {self.match} / 找不到匹配的串口")
        bytesize, parity, stopbits = parse_framing(self.framing)
        try:
            self._serial = serial.Serial(
                device,
                self.baud,
                bytesize=bytesize,
                parity=parity,
                stopbits=stopbits,
                timeout=self.read_timeout,
                write_timeout=1.0,
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            raise DeviceNotFound(f"cannot open {device}: {exc} / 无法打开串口") from exc
        return device

    def read(self) -> bytes:
        """Whatever has arrived (waits up to ``read_timeout`` for the first byte)."""
        if self._serial is None:
            raise DeviceDisconnected("port not open")
        try:
            data = self._serial.read(self._serial.in_waiting or 1)
        except (serial.SerialException, OSError, TypeError, AttributeError) as exc:
            # TypeError/AttributeError: pyserial after close() from another thread
            raise DeviceDisconnected(f"read failed: {exc} / 串口读取失败") from exc
        if data:
            traffic.debug("rx %s %s", self.port, data.hex(" "))
        return data

    def write(self, data: bytes) -> None:
        if self._serial is None:
            raise DeviceDisconnected("port not open")
        traffic.debug("tx %s %s", self.port, data.hex(" "))
        try:
            self._serial.write(data)
            self._serial.flush()
        except (serial.SerialException, OSError, TypeError, AttributeError) as exc:
            raise DeviceDisconnected(f"write failed: {exc} / 串口写入失败") from exc

    def reset_input(self) -> None:
        if self._serial is not None:
            with contextlib.suppress(serial.SerialException, OSError):
                self._serial.reset_input_buffer()

    def close(self) -> None:
        s, self._serial = self._serial, None
        if s is not None:
            with contextlib.suppress(serial.SerialException, OSError):
                s.close()


class SerialReader(ReconnectingReader[str]):
    """Base for serial drivers: the reconnect loop is :class:`ReconnectingReader`'s; subclasses handle bytes.

    A stream driver implements :meth:`_feed` (bytes in, :class:`FrameResult` list out, never raising).
    A request/response driver overrides :meth:`_session` instead.
    """

    kind: CredentialKind = CredentialKind.CARD
    needs_baud = True
    needs_device = True

    def __init__(
        self,
        reader_id: str,
        callback: ReadCallback,
        transport: SerialTransport,
        *,
        debounce_ms: int = 0,
    ) -> None:
        super().__init__(reader_id, callback)
        self.transport = transport
        self.debounce_s = debounce_ms / 1000.0
        self._last: tuple[str, float] | None = None
        self._io_lock = threading.Lock()

    @classmethod
    def transport_for(cls, profile: ReaderProfile, port: str | None) -> SerialTransport:
        return SerialTransport(port or profile.port, profile.baud or 9600, profile.framing, profile.match)

    def _wake(self) -> None:
        self.transport.close()

    def _connect(self) -> str:
        return self.transport.open()

    def _disconnect(self, handle: str) -> None:
        self.transport.close()

    def _session(self, handle: str) -> SessionEnd | None:
        while not self._stop.is_set():
            data = self.transport.read()
            if data:
                self._handle(self._feed(data))
        return None

    def _feed(self, data: bytes) -> list[FrameResult]:
        raise NotImplementedError

    def _handle(self, results: list[FrameResult]) -> None:
        for r in results:
            if r.ok:
                self._deliver_debounced(r.value, r.display_name)
            else:
                self._bad_frame(r.value)

    def _deliver_debounced(self, value: str, display_name: str | None = None) -> None:
        """Readers repeat a held card many times a second; pass on the first of each run."""
        now = time.monotonic()
        last = self._last
        self._last = (value, now)
        if last is not None and last[0] == value and now - last[1] < self.debounce_s:
            return
        self._deliver(self.kind, value, display_name)
