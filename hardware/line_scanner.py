"""Serial readers that send one code per line: 2D barcode/QR scanners and simple RFID readers.

Scanners end a code with CR, LF or CR LF depending on a setting in their manual; we accept all three
(an empty line between CR and LF is simply ignored). A line longer than ``max_line`` is a stuck or
misconfigured scanner, not a code: it is dropped up to the next terminator and counted as a bad frame.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from hardware.base import CredentialKind, ReadCallback, options_as
from hardware.frames import FrameResult
from hardware.options import DriverOptions, option
from hardware.profiles import ReaderProfile
from hardware.serial_port import SerialReader, SerialTransport

logger = logging.getLogger(__name__)

DRIVER_KEY = "serial_line"


@dataclass(frozen=True)
class LineScannerOptions(DriverOptions):
    kind: CredentialKind = option(CredentialKind.QR, help="What a line holds.")
    max_line: int = option(4096, minimum=1, help="Longer lines are dropped and counted as bad frames.")
    strip_prefix: str = option("", help="Removed from the start of each line (scanner prefixes).")
    uppercase: bool = option(False, help="Upper-case QR text (card UIDs always are).")
    encoding: str = option("utf-8", help="How the scanner encodes text.")


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_HEX_UID = re.compile(r"^[0-9A-F]+$")


def normalise_line(
    raw: bytes,
    kind: CredentialKind,
    *,
    encoding: str = "utf-8",
    strip_prefix: str = "",
    uppercase: bool = False,
) -> FrameResult:
    """One line (without terminator) -> result. Pure; never raises."""
    try:
        text = raw.decode(encoding)
    except (UnicodeDecodeError, LookupError) as exc:
        return FrameResult.bad(f"undecodable line: {exc}")
    text = _CONTROL.sub("", text).strip()
    if strip_prefix and text.startswith(strip_prefix):
        text = text[len(strip_prefix) :].strip()
    if not text:
        return FrameResult.bad("empty code")
    if kind is CredentialKind.CARD:
        uid = text.replace(":", "").replace(" ", "").replace("-", "").upper()
        if not _HEX_UID.match(uid) or len(uid) % 2:
            return FrameResult.bad(f"not a hex UID: {text[:40]!r}")
        return FrameResult.good(uid)
    if kind is CredentialKind.ID_CARD or uppercase:
        text = text.upper()
    return FrameResult.good(text)


class LineParser:
    """Bytes in any chunking -> one result per non-empty line; never raises."""

    def __init__(
        self,
        kind: CredentialKind = CredentialKind.QR,
        *,
        max_line: int = 4096,
        encoding: str = "utf-8",
        strip_prefix: str = "",
        uppercase: bool = False,
    ) -> None:
        self.kind = kind
        self.max_line = max_line
        self.encoding = encoding
        self.strip_prefix = strip_prefix
        self.uppercase = uppercase
        self._buf = bytearray()
        self._overflow = False

    def reset(self) -> None:
        self._buf.clear()
        self._overflow = False

    def feed(self, data: bytes) -> list[FrameResult]:
        out: list[FrameResult] = []
        for line, complete in self._split(data):
            if not complete:
                out.append(FrameResult.bad(f"line longer than {self.max_line} bytes"))
                continue
            if not line.strip(b" \t\x00"):
                continue  # the empty line between CR and LF, or idle padding
            out.append(
                normalise_line(
                    line,
                    self.kind,
                    encoding=self.encoding,
                    strip_prefix=self.strip_prefix,
                    uppercase=self.uppercase,
                )
            )
        return out

    def _split(self, data: bytes) -> list[tuple[bytes, bool]]:
        lines: list[tuple[bytes, bool]] = []
        for b in data:
            if b in (0x0A, 0x0D):
                if self._overflow:
                    self._overflow = False  # already reported when it began
                else:
                    lines.append((bytes(self._buf), True))
                self._buf.clear()
                continue
            if self._overflow:
                continue
            self._buf.append(b)
            if len(self._buf) > self.max_line:
                self._buf.clear()
                self._overflow = True
                lines.append((b"", False))
        return lines


class LineScannerReader(SerialReader):
    """QR/barcode scanners and RFID readers sending one code per line."""

    driver_key = DRIVER_KEY
    Options = LineScannerOptions

    def __init__(
        self,
        reader_id: str,
        callback: ReadCallback,
        transport: SerialTransport,
        *,
        kind: CredentialKind = CredentialKind.QR,
        debounce_ms: int = 0,
        max_line: int = 4096,
        encoding: str = "utf-8",
        strip_prefix: str = "",
        uppercase: bool = False,
    ) -> None:
        super().__init__(reader_id, callback, transport, debounce_ms=debounce_ms)
        self.kind = kind
        self.parser = LineParser(
            kind, max_line=max_line, encoding=encoding, strip_prefix=strip_prefix, uppercase=uppercase
        )

    @classmethod
    def from_profile(
        cls, profile: ReaderProfile, callback: ReadCallback, port: str | None
    ) -> LineScannerReader:
        o = options_as(profile, LineScannerOptions)
        return cls(
            profile.reader_id,
            callback,
            cls.transport_for(profile, port),
            kind=o.kind,
            debounce_ms=profile.debounce_ms,
            max_line=o.max_line,
            encoding=o.encoding,
            strip_prefix=o.strip_prefix,
            uppercase=o.uppercase,
        )

    def _feed(self, data: bytes) -> list[FrameResult]:
        return self.parser.feed(data)

    def _on_close(self) -> None:
        self.parser.reset()
