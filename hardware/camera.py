"""Camera QR reader: OpenCV capture (device index, video file or RTSP URL) + :func:`hardware.qr.decode`.

A code held in front of the camera is seen in dozens of frames; it is delivered once and suppressed
while it stays in view and for ``repeat_suppress_ms`` after it was last seen, so a member holding a
phone up does not check in and straight out again. Frames per second and frames where a symbol was
found but not decoded go into health, because a dirty lens or a bad focus shows there first.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from hardware import qr
from hardware.base import CredentialKind, DeviceNotFound, ReadCallback, options_as
from hardware.options import DriverOptions, option
from hardware.profiles import ReaderProfile
from hardware.reconnect import ReconnectingReader, SessionEnd

logger = logging.getLogger(__name__)

DRIVER_KEY = "camera_qr"


@dataclass(frozen=True)
class CameraQrOptions(DriverOptions):
    source: str | int = option(help="Device index, video file or rtsp:// URL.")
    width: int | None = option(None, minimum=1, help="Capture width asked of the camera.")
    height: int | None = option(None, minimum=1, help="Capture height asked of the camera.")
    repeat_suppress_ms: int | None = option(
        None,
        minimum=0,
        help="A code stays suppressed this long after last seen (default: debounce_ms or 3000).",
    )
    decode_every: int = option(1, minimum=1, help="Decode every n-th frame.")
    loop: bool = option(False, help="Replay a video file (tests, demos).")
    realtime: bool = option(False, help="Play a video file at its own frame rate.")


def parse_source(source: str | int) -> str | int:
    """``0`` / ``"0"`` -> device index; anything else (path, rtsp://…) as is."""
    if isinstance(source, int):
        return source
    text = str(source).strip()
    return int(text) if text.isdigit() else text


class RepeatFilter:
    """Passes a text the first time it is seen in a run of sightings; pure apart from the clock passed in."""

    def __init__(self, suppress_s: float) -> None:
        self.suppress_s = suppress_s
        self._seen: dict[str, float] = {}

    def admit(self, text: str, now: float) -> bool:
        last = self._seen.get(text)
        self._seen[text] = now
        if len(self._seen) > 256:
            self._seen = {k: v for k, v in self._seen.items() if now - v < self.suppress_s}
        return last is None or now - last >= self.suppress_s


class CameraQrReader(ReconnectingReader[cv2.VideoCapture]):
    """OpenCV capture (device, video file or RTSP) decoded with zxing-cpp."""

    driver_key = DRIVER_KEY
    Options = CameraQrOptions
    reconnect_delay = 1.0
    lost_message = "camera stopped delivering frames / 摄像头无画面"

    def __init__(
        self,
        reader_id: str,
        callback: ReadCallback,
        source: str | int,
        *,
        width: int | None = None,
        height: int | None = None,
        repeat_suppress_ms: int = 3000,
        decode_every: int = 1,
        loop: bool = False,
        realtime: bool = False,
    ) -> None:
        super().__init__(reader_id, callback)
        self.source = parse_source(source)
        self.width = width
        self.height = height
        self.filter = RepeatFilter(repeat_suppress_ms / 1000.0)
        self.decode_every = max(1, decode_every)
        self.loop = loop
        self.realtime = realtime
        self._frames = 0
        self._failures = 0
        self._empty = 0

    @classmethod
    def from_profile(cls, profile: ReaderProfile, callback: ReadCallback, port: str | None) -> CameraQrReader:
        o = options_as(profile, CameraQrOptions)
        suppress = o.repeat_suppress_ms if o.repeat_suppress_ms is not None else profile.debounce_ms or 3000
        return cls(
            profile.reader_id,
            callback,
            port if port is not None else o.source,
            width=o.width,
            height=o.height,
            repeat_suppress_ms=suppress,
            decode_every=o.decode_every,
            loop=o.loop,
            realtime=o.realtime,
        )

    @property
    def is_file(self) -> bool:
        return isinstance(self.source, str) and "://" not in self.source and Path(self.source).is_file()

    def _describe(self, handle: cv2.VideoCapture) -> str:
        return repr(self.source)

    def _disconnect(self, handle: cv2.VideoCapture) -> None:
        handle.release()

    def _connect(self) -> cv2.VideoCapture:
        cap = cv2.VideoCapture(self.source)
        if not cap.isOpened():
            cap.release()
            raise DeviceNotFound(f"cannot open camera source {self.source!r} / 无法打开摄像头")
        if self.width:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
        if self.height:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        return cap

    def process_frame(self, frame: np.ndarray, now: float) -> list[str]:
        """Decode one frame and deliver new codes; returns what was delivered (also used by tests)."""
        try:
            outcome = qr.decode_detailed(frame)
        except Exception as exc:  # a decoder bug must not stop the camera
            self._bad_frame(f"decoder error: {exc}")
            return []
        if outcome.failures and not outcome.texts:
            self._failures += 1
            self._bad_frame("QR symbol found but not decodable")
            self._set_extra("decode_failures", self._failures)
        if not outcome.texts:
            self._empty += 1
        delivered = []
        for text in outcome.texts:
            if self.filter.admit(text, now):
                self._deliver(CredentialKind.QR, text)
                delivered.append(text)
        return delivered

    def _session(self, cap: cv2.VideoCapture) -> SessionEnd | None:
        if self._capture(cap):  # a video file that ended and does not loop
            self._set_extra("end_of_file", 1)
            return SessionEnd.FINISHED
        return None if self._stop.is_set() else SessionEnd.LOST

    def _capture(self, cap: cv2.VideoCapture) -> bool:
        """Read frames until stop or failure; True when a non-looping file reached its end."""
        file_fps = cap.get(cv2.CAP_PROP_FPS) if self.is_file else 0.0
        window_start, window_frames = time.monotonic(), 0
        n = 0
        while not self._stop.is_set():
            ok, frame = cap.read()
            if not ok or frame is None:
                elapsed = time.monotonic() - window_start
                if window_frames and elapsed > 0:
                    self._set_extra("fps", round(window_frames / elapsed, 1))
                if self.is_file:
                    if self.loop:
                        cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                        continue
                    return True
                return False
            n += 1
            self._frames += 1
            window_frames += 1
            now = time.monotonic()
            if n % self.decode_every == 0:
                self.process_frame(frame, now)
            if now - window_start >= 1.0:
                self._set_extra("fps", round(window_frames / (now - window_start), 1))
                window_start, window_frames = now, 0
            self._set_extra("frames", self._frames)
            self._set_extra("frames_without_code", self._empty)
            if self.realtime and file_fps > 0:
                self._stop.wait(1.0 / file_fps)
        return False
