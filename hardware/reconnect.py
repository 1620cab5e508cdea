"""The one supervised open → session → close → retry loop that every device driver runs.

Serial readers, the keyboard wedge, the camera and PC/SC all lose their device in the field (unplugged,
pcscd restarted, an RTSP stream dropped) and must come back by themselves without restarting the kiosk.
The loop, its health reporting and its pauses live here once, so each driver only says how to open its
device, what a session does, and how to close it:

* state CONNECTING while (re)opening, READY once open (or when the session says so, for PC/SC, which
  is READY only while a matching reader is present), back to CONNECTING with the reason when lost;
* health extras ``connected`` (0/1), ``disconnects`` (sessions that ended by losing the device) and
  ``reconnects`` (times the loop went round again);
* pauses with ``Event.wait`` so ``stop()`` returns at once, and no exception leaves the worker.
"""

from __future__ import annotations

import abc
import enum
import logging
from typing import Generic, TypeVar

from hardware.base import DeviceNotFound, HardwareError, Reader, ReaderState

logger = logging.getLogger(__name__)

H = TypeVar("H")


class SessionEnd(enum.Enum):
    """How a session ended when it returned instead of raising."""

    LOST = "lost"  # the device stopped delivering; reopen it
    FINISHED = "finished"  # nothing more will come (a video file at its end): idle until stopped


class ReconnectingReader(Reader, Generic[H]):
    """A reader whose worker is :meth:`_supervise`: subclasses implement the three device steps.

    ``H`` is whatever :meth:`_connect` returns (a file descriptor, a capture, a PC/SC context).
    """

    reconnect_delay: float = 0.5
    #: set READY as soon as the device is open; False when the session decides (PC/SC)
    ready_on_connect: bool = True
    #: what the health says when a session returns :attr:`SessionEnd.LOST` without an exception
    lost_message: str = "device stopped answering / 设备无响应"

    @abc.abstractmethod
    def _connect(self) -> H:
        """Open the device; raise :class:`DeviceNotFound` while it is absent."""

    @abc.abstractmethod
    def _session(self, handle: H) -> SessionEnd | None:
        """Use the open device until stop (return None), loss (raise a HardwareError) or an end."""

    @abc.abstractmethod
    def _disconnect(self, handle: H) -> None:
        """Close the device; must not raise."""

    def _on_close(self) -> None:
        """Forget per-connection state (partial frames): bytes before and after a reconnect never match."""

    def _describe(self, handle: H) -> str:
        return str(handle)

    def _run(self) -> None:
        self._supervise()

    def _supervise(self) -> None:
        first = True
        while not self._stop.is_set():
            if not first:
                self._count("reconnects")
            first = False
            self._set_state(ReaderState.CONNECTING)
            try:
                handle = self._connect()
            except DeviceNotFound as exc:
                self._set_extra("connected", 0)
                self._set_state(ReaderState.CONNECTING, str(exc))
                self._stop.wait(self.reconnect_delay)
                continue
            except HardwareError as exc:
                logger.warning("reader %s cannot open its device: %s", self.reader_id, exc)
                self._set_extra("connected", 0)
                self._set_state(ReaderState.CONNECTING, str(exc))
                self._stop.wait(self.reconnect_delay)
                continue
            logger.info("reader %s opened %s", self.reader_id, self._describe(handle))
            # Counters first, state last: whoever sees the new state also sees counters that agree.
            self._set_extra("connected", 1)
            if self.ready_on_connect:
                self._set_state(ReaderState.READY)
            end: SessionEnd | None = None
            try:
                end = self._session(handle)
            except HardwareError as exc:
                if not self._stop.is_set():
                    logger.warning("reader %s lost its device: %s", self.reader_id, exc)
                    self._lost(str(exc))
            except Exception as exc:  # a library surprise must not end the worker
                if not self._stop.is_set():
                    logger.exception("reader %s: unexpected error in session", self.reader_id)
                    self._lost(f"{type(exc).__name__}: {exc}")
            finally:
                self._disconnect(handle)
                self._set_extra("connected", 0)
                self._on_close()
            if end is SessionEnd.FINISHED:
                self._stop.wait()
                return
            if end is SessionEnd.LOST and not self._stop.is_set():
                self._lost(self.lost_message)
            self._stop.wait(self.reconnect_delay)

    def _lost(self, why: str) -> None:
        self._set_extra("connected", 0)
        self._count("disconnects")
        self._set_state(ReaderState.CONNECTING, why)
