"""RDM6300-style 125 kHz EM4100 readers on a serial port.

Frame (RDM6300 datasheet): ``02`` · 10 ASCII hex (version/customer byte + 32-bit tag id) · 2 ASCII hex
checksum (XOR of the 5 data bytes) · ``03``, 14 bytes at 9600 8N1, repeated while the tag is in the field.
The UART line picks up noise when a reader is powered or unplugged, and a read() can end mid-frame,
so the parser resynchronises on every ``02`` rather than trusting fixed offsets.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

from hardware.base import CredentialKind, ProtocolError, ReadCallback, options_as
from hardware.frames import FrameResult
from hardware.options import DriverOptions, option
from hardware.profiles import ReaderProfile
from hardware.serial_port import SerialReader, SerialTransport

logger = logging.getLogger(__name__)

DRIVER_KEY = "em4100"


@dataclass(frozen=True)
class Em4100Options(DriverOptions):
    uid_bytes: Literal[4, 5] = option(5, help="5: version byte + 32-bit id; 4 keeps only the printed number.")


STX = 0x02
ETX = 0x03
FRAME_LEN = 14
_HEX = frozenset(b"0123456789ABCDEFabcdef")


def build_frame(data: bytes) -> bytes:
    """The frame a reader sends for 5 data bytes (used by tests, the simulator and the bench)."""
    if len(data) != 5:
        raise ValueError("EM4100 data is 5 bytes")
    chk = 0
    for b in data:
        chk ^= b
    return bytes([STX]) + data.hex().upper().encode() + f"{chk:02X}".encode() + bytes([ETX])


def parse_frame(frame: bytes, uid_bytes: int = 5) -> str:
    """One complete frame -> upper-case hex UID; raises :class:`ProtocolError` on any defect."""
    if len(frame) != FRAME_LEN:
        raise ProtocolError(f"frame length {len(frame)} != {FRAME_LEN}")
    if frame[0] != STX or frame[-1] != ETX:
        raise ProtocolError("missing STX/ETX")
    body = frame[1:13]
    if not all(b in _HEX for b in body):
        raise ProtocolError(f"non-hex characters in frame: {body!r}")
    data = bytes.fromhex(body[:10].decode())
    want = int(body[10:12].decode(), 16)
    chk = 0
    for b in data:
        chk ^= b
    if chk != want:
        raise ProtocolError(f"checksum {want:02X} != computed {chk:02X}")
    return data[-uid_bytes:].hex().upper()


class Em4100Parser:
    """Stateful splitter: bytes in any chunking -> results, resyncing on STX; never raises."""

    def __init__(self, uid_bytes: int = 5) -> None:
        self.uid_bytes = uid_bytes
        self._buf = bytearray()

    def reset(self) -> None:
        self._buf.clear()

    def feed(self, data: bytes) -> list[FrameResult]:
        out: list[FrameResult] = []
        self._buf += data
        buf = self._buf
        while buf:
            start = buf.find(STX)
            if start < 0:
                out.append(FrameResult.bad(f"{len(buf)} bytes of noise"))
                buf.clear()
                break
            if start > 0:
                out.append(FrameResult.bad(f"{start} bytes of noise"))
                del buf[:start]
            # STX cannot occur inside a frame (the body is ASCII hex), so a second one means the first
            # frame was cut short
            nxt = buf.find(STX, 1, FRAME_LEN)
            if nxt > 0:
                out.append(FrameResult.bad(f"truncated frame ({nxt} bytes)"))
                del buf[:nxt]
                continue
            if len(buf) < FRAME_LEN:
                break  # wait for the rest
            frame = bytes(buf[:FRAME_LEN])
            try:
                out.append(FrameResult.good(parse_frame(frame, self.uid_bytes)))
                del buf[:FRAME_LEN]
            except ProtocolError as exc:
                out.append(FrameResult.bad(str(exc)))
                del buf[:1]  # resync on the next STX
        return out


class Em4100Reader(SerialReader):
    """RDM6300-style 125 kHz EM4100 module on a serial port."""

    driver_key = DRIVER_KEY
    Options = Em4100Options
    kind = CredentialKind.CARD

    def __init__(
        self,
        reader_id: str,
        callback: ReadCallback,
        transport: SerialTransport,
        *,
        debounce_ms: int = 500,
        uid_bytes: int = 5,
    ) -> None:
        super().__init__(reader_id, callback, transport, debounce_ms=debounce_ms)
        self.parser = Em4100Parser(uid_bytes)

    @classmethod
    def from_profile(cls, profile: ReaderProfile, callback: ReadCallback, port: str | None) -> Em4100Reader:
        o = options_as(profile, Em4100Options)
        return cls(
            profile.reader_id,
            callback,
            cls.transport_for(profile, port),
            debounce_ms=profile.debounce_ms,
            uid_bytes=o.uid_bytes,
        )

    def _feed(self, data: bytes) -> list[FrameResult]:
        return self.parser.feed(data)

    def _on_close(self) -> None:
        self.parser.reset()
