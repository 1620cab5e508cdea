"""Keyboard-wedge readers: USB HID devices that "type" the UID followed by Enter.

We read the device's own ``/dev/input/eventN`` (ideally its stable ``/dev/input/by-id/…-event-kbd``
link) as raw ``struct input_event`` records instead of taking typed characters from the focused window.
Evdev key codes name physical key positions, which is what the HID reader sends, so the result does not
depend on the keyboard layout configured on the kiosk, and with ``grab`` the digits never reach the
browser. Being plain records from a file descriptor, the same code reads a FIFO in the tests.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import select
import stat
import struct
from dataclasses import dataclass
from typing import Literal

from hardware.base import CredentialKind, DeviceDisconnected, DeviceNotFound, ReadCallback, options_as
from hardware.frames import FrameResult
from hardware.options import DriverOptions, option
from hardware.profiles import ReaderProfile
from hardware.reconnect import ReconnectingReader, SessionEnd

logger = logging.getLogger(__name__)

DRIVER_KEY = "keyboard_wedge"


@dataclass(frozen=True)
class KeyboardWedgeOptions(DriverOptions):
    input_format: Literal["hex", "decimal"] = option("hex", help="decimal: the 32-bit UID as 10 digits.")
    byte_order: Literal["msb", "lsb"] = option("msb", help="lsb: the wedge types the UID reversed.")
    kind: CredentialKind = option(CredentialKind.CARD, help="What the typed line holds.")
    grab: bool = option(True, help="Take the device exclusively, so the digits never reach the browser.")


# struct input_event on 64-bit Linux: struct timeval (2 x long), __u16 type, __u16 code, __s32 value
EVENT_FORMAT = "llHHi"
EVENT_SIZE = struct.calcsize(EVENT_FORMAT)
EV_KEY = 0x01
KEY_PRESS = 1
EVIOCGRAB = 0x40044590  # _IOW('E', 0x90, int)

KEY_ENTER, KEY_KPENTER = 28, 96
#: evdev key code -> character, main row digits, keypad digits and A-F
KEYCODES: dict[int, str] = {
    2: "1",
    3: "2",
    4: "3",
    5: "4",
    6: "5",
    7: "6",
    8: "7",
    9: "8",
    10: "9",
    11: "0",
    79: "1",
    80: "2",
    81: "3",
    75: "4",
    76: "5",
    77: "6",
    71: "7",
    72: "8",
    73: "9",
    82: "0",
    30: "A",
    48: "B",
    46: "C",
    32: "D",
    18: "E",
    33: "F",
}
_IGNORED = frozenset({42, 54, 29, 97, 56, 100, 58, 69})  # shifts, ctrls, alts, caps lock, num lock


def encode_events(text: str, *, enter: bool = True) -> bytes:
    """input_event records a wedge would produce for ``text`` (press + release per key)."""
    reverse = {}
    for code, ch in KEYCODES.items():
        reverse.setdefault(ch, code)
    out = b""
    for ch in text.upper():
        code = reverse[ch]
        out += struct.pack(EVENT_FORMAT, 0, 0, EV_KEY, code, 1) + struct.pack(
            EVENT_FORMAT, 0, 0, EV_KEY, code, 0
        )
    if enter:
        out += struct.pack(EVENT_FORMAT, 0, 0, EV_KEY, KEY_ENTER, 1) + struct.pack(
            EVENT_FORMAT, 0, 0, EV_KEY, KEY_ENTER, 0
        )
    return out


def normalise_uid(typed: str, input_format: str = "hex", byte_order: str = "msb") -> FrameResult:
    """What the wedge typed -> upper-case hex UID. Decimal wedges type the 32-bit UID as 10 digits."""
    if not typed:
        return FrameResult.bad("empty line")
    if input_format == "decimal":
        if not typed.isdigit():
            return FrameResult.bad(f"non-digit in decimal UID {typed[:32]!r}")
        n = int(typed)
        size = max(4, (n.bit_length() + 7) // 8)
        raw = n.to_bytes(size, "big")
    else:
        if len(typed) % 2:
            return FrameResult.bad(f"odd number of hex digits {typed[:32]!r}")
        try:
            raw = bytes.fromhex(typed)
        except ValueError:
            return FrameResult.bad(f"not hex {typed[:32]!r}")
    if byte_order == "lsb":
        raw = raw[::-1]
    return FrameResult.good(raw.hex().upper())


class WedgeParser:
    """input_event bytes in any chunking -> one result per Enter; never raises."""

    def __init__(self, input_format: str = "hex", byte_order: str = "msb", max_len: int = 64) -> None:
        self.input_format = input_format
        self.byte_order = byte_order
        self.max_len = max_len
        self._buf = bytearray()
        self._typed: list[str] = []
        self._junk = False

    def reset(self) -> None:
        self._buf.clear()
        self._typed.clear()
        self._junk = False

    def feed(self, data: bytes) -> list[FrameResult]:
        out: list[FrameResult] = []
        self._buf += data
        usable = len(self._buf) - len(self._buf) % EVENT_SIZE
        for _sec, _usec, etype, code, value in struct.iter_unpack(EVENT_FORMAT, bytes(self._buf[:usable])):
            if etype != EV_KEY or value != KEY_PRESS:
                continue  # EV_SYN, EV_MSC scan codes, releases, auto-repeat
            if code in (KEY_ENTER, KEY_KPENTER):
                if self._junk:
                    out.append(FrameResult.bad("unexpected keys in UID"))
                elif self._typed:
                    out.append(normalise_uid("".join(self._typed), self.input_format, self.byte_order))
                self._typed.clear()
                self._junk = False
            elif code in KEYCODES and len(self._typed) < self.max_len:
                self._typed.append(KEYCODES[code])
            elif code not in _IGNORED:
                self._junk = True
        del self._buf[:usable]
        return out


class KeyboardWedgeReader(ReconnectingReader[int]):
    """USB HID reader that types the UID, read from its own input event device."""

    driver_key = DRIVER_KEY
    Options = KeyboardWedgeOptions
    needs_device = True
    reconnect_delay = 0.5

    def __init__(
        self,
        reader_id: str,
        callback: ReadCallback,
        device: str,
        *,
        input_format: str = "hex",
        byte_order: str = "msb",
        kind: CredentialKind = CredentialKind.CARD,
        grab: bool = True,
    ) -> None:
        super().__init__(reader_id, callback)
        self.device = device
        self.kind = kind
        self.grab = grab
        self.parser = WedgeParser(input_format, byte_order)

    @classmethod
    def from_profile(
        cls, profile: ReaderProfile, callback: ReadCallback, port: str | None
    ) -> KeyboardWedgeReader:
        o = options_as(profile, KeyboardWedgeOptions)
        device = port or profile.port
        if not device:
            raise DeviceNotFound("keyboard wedge needs a device path / 键盘模拟读卡器须指定设备路径")
        return cls(
            profile.reader_id,
            callback,
            device,
            input_format=o.input_format,
            byte_order=o.byte_order,
            kind=o.kind,
            grab=o.grab,
        )

    def _describe(self, handle: int) -> str:
        return self.device

    def _connect(self) -> int:
        try:
            fd = os.open(self.device, os.O_RDONLY | os.O_NONBLOCK)
        except OSError as exc:
            raise DeviceNotFound(f"cannot open {self.device}: {exc} / 无法打开输入设备") from exc
        if self.grab and stat.S_ISCHR(os.fstat(fd).st_mode):
            try:
                fcntl.ioctl(fd, EVIOCGRAB, 1)
            except OSError as exc:
                logger.warning("reader %s: cannot grab %s: %s", self.reader_id, self.device, exc)
        return fd

    def _session(self, fd: int) -> SessionEnd | None:
        while not self._stop.is_set():
            ready, _, _ = select.select([fd], [], [], 0.1)
            if not ready:
                continue
            try:
                data = os.read(fd, EVENT_SIZE * 64)
            except BlockingIOError:
                continue
            except OSError as exc:  # ENODEV when the device is unplugged
                raise DeviceDisconnected(
                    f"{self.device}: {errno.errorcode.get(exc.errno or 0, exc)}"
                ) from exc
            if not data:
                raise DeviceDisconnected(f"{self.device}: end of input / 输入结束")
            for r in self.parser.feed(data):
                if r.ok:
                    self._deliver(self.kind, r.value)
                else:
                    self._bad_frame(r.value)
        return None

    def _disconnect(self, fd: int) -> None:
        with contextlib.suppress(OSError):
            os.close(fd)

    def _on_close(self) -> None:
        self.parser.reset()
