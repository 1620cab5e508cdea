"""Simulated reader for the demo and the kiosk UI tests.

``inject(kind, value)`` delivers a read exactly as a real driver would (worker thread, health counters,
debounce). With ``emulate`` set to a driver key, the value is first encoded into that device's bytes
(an EM4100 frame, a scanner line, key events, a SAM answer) and decoded by the real pure parser, so a
demo exercises the same parsing code as the field. ``unplug()`` / ``replug()`` drive the health states
the kiosk must show for a lost reader.
"""

from __future__ import annotations

import logging
import queue
import typing
from dataclasses import dataclass
from typing import Literal

from hardware.base import CredentialKind, HardwareError, ReadCallback, Reader, ReaderState, options_as
from hardware.frames import FrameResult
from hardware.options import DriverOptions, option
from hardware.profiles import ReaderProfile

logger = logging.getLogger(__name__)

DRIVER_KEY = "simulated"
Emulation = Literal["em4100", "serial_line", "keyboard_wedge", "idcard_sam"]
EMULATIONS: tuple[str, ...] = typing.get_args(Emulation)


@dataclass(frozen=True)
class SimulatedOptions(DriverOptions):
    kind: CredentialKind | None = option(None, help="Accept only this kind of injected read.")
    emulate: Emulation | None = option(None, help="Pass each value through this driver's real parser.")


def _through_parser(emulate: str, kind: CredentialKind, value: str, display_name: str | None) -> FrameResult:
    """Encode ``value`` as the device would send it and decode it with the driver's parser."""
    if emulate == "em4100":
        from hardware.em4100 import Em4100Parser, build_frame

        data = bytes.fromhex(value.rjust(10, "0"))
        results = Em4100Parser(uid_bytes=5 if len(value) > 8 else 4).feed(build_frame(data))
    elif emulate == "serial_line":
        from hardware.line_scanner import LineParser

        results = LineParser(kind).feed(value.encode() + b"\r\n")
    elif emulate == "keyboard_wedge":
        from hardware.keyboard_wedge import WedgeParser, encode_events

        results = WedgeParser().feed(encode_events(value))
    elif emulate == "idcard_sam":
        from hardware.idcard_sam import SamResponseParser, build_response, build_text_block, interpret

        text = build_text_block(display_name or "", value)
        data = len(text).to_bytes(2, "big") + (0).to_bytes(2, "big") + text
        parsed = SamResponseParser().feed(build_response(0x90, data))
        resp = parsed[-1]
        result = interpret(resp) if not isinstance(resp, FrameResult) else resp
        results = [result] if result is not None else []
    else:
        raise HardwareError(f"unknown emulation {emulate!r}")
    return results[-1] if results else FrameResult.bad("nothing decoded")


class SimulatedReader(Reader):
    """Reads arrive by inject(); for the demo and the tests."""

    driver_key = DRIVER_KEY
    Options = SimulatedOptions

    def __init__(
        self,
        reader_id: str,
        callback: ReadCallback,
        *,
        kind: CredentialKind | None = None,
        emulate: str | None = None,
    ) -> None:
        super().__init__(reader_id, callback)
        self.kind = kind
        self.emulate = emulate
        self._queue: queue.Queue[tuple[CredentialKind, str, str | None, str | None] | None] = queue.Queue()
        self._plugged = True

    @classmethod
    def from_profile(
        cls, profile: ReaderProfile, callback: ReadCallback, port: str | None
    ) -> SimulatedReader:
        o = options_as(profile, SimulatedOptions)
        return cls(profile.reader_id, callback, kind=o.kind, emulate=o.emulate)

    def inject(
        self,
        kind: CredentialKind | str,
        value: str,
        display_name: str | None = None,
        read_id: str | None = None,
    ) -> None:
        """Queue one read; raises if this reader does not produce ``kind`` (a wiring bug in a test).

        ``read_id`` travels with the read (:attr:`CredentialRead.read_id`) so its outcome can be found.
        """
        kind = CredentialKind(kind)
        if self.kind is not None and kind is not self.kind:
            raise HardwareError(f"reader {self.reader_id} reads {self.kind.value}, not {kind.value}")
        if not self._plugged:
            logger.info("reader %s unplugged, dropping simulated read", self.reader_id)
            return
        self._queue.put((kind, value, display_name, read_id))

    def unplug(self) -> None:
        self._plugged = False
        self._set_state(ReaderState.CONNECTING, "simulated unplug / 模拟拔出")

    def replug(self) -> None:
        self._plugged = True
        if self._thread is not None and self._thread.is_alive():
            self._set_state(ReaderState.READY)

    def _wake(self) -> None:
        self._queue.put(None)

    def _run(self) -> None:
        if self._plugged:
            self._set_state(ReaderState.READY)
        while not self._stop.is_set():
            item = self._queue.get()
            if item is None:
                continue
            kind, value, name, read_id = item
            if self.emulate:
                result = _through_parser(self.emulate, kind, value, name)
                if not result.ok:
                    self._bad_frame(result.value)
                    continue
                value, name = result.value, result.display_name or name
            self._deliver(kind, value, name, read_id)
