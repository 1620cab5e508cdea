"""The one interface every reader driver implements.

A driver turns whatever a device speaks (APDUs, serial frames, camera frames, key strokes) into
:class:`CredentialRead` events delivered to a callback. The kiosk only ever sees this module's types;
it never imports pyscard, pyserial or cv2 (see DESIGN.md, "The web layer never touches a device library").
"""

from __future__ import annotations

import abc
import enum
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, TypeVar

from hardware.options import DriverOptions

if TYPE_CHECKING:
    from hardware.profiles import ReaderProfile

logger = logging.getLogger(__name__)


class CredentialKind(enum.StrEnum):
    """What a read identifies. Values are part of the kiosk ↔ server contract."""

    CARD = "card"  # contactless card UID (PC/SC, 125 kHz, keyboard wedge), upper-case hex
    ID_CARD = "id_card"  # Chinese resident ID number; the driver hands over only the number for hashing
    QR = "qr"  # text decoded from a QR code (camera or line scanner)


@dataclass(frozen=True, slots=True)
class CredentialRead:
    """One identification by one reader.

    ``value`` is normalised: card UIDs upper-case hex without separators, ID numbers upper-case
    (trailing X), QR text as decoded. ``monotonic`` is ``time.monotonic()`` at delivery, used for
    latency figures and debounce; wall time is stamped later by the kiosk.
    ``display_name`` is only set by readers that read a name from the credential (ID-card readers).
    """

    kind: CredentialKind
    value: str
    reader_id: str
    monotonic: float = field(default_factory=time.monotonic)
    display_name: str | None = None
    #: Set only on simulated reads, so the one who injected a read can find that read's outcome.
    read_id: str | None = None


class ReaderState(enum.StrEnum):
    STOPPED = "stopped"
    CONNECTING = "connecting"  # device absent or being (re)opened
    READY = "ready"
    ERROR = "error"


@dataclass(slots=True)
class ReaderHealth:
    """What a reader reports in kiosk health (and so in heartbeats)."""

    reader_id: str
    driver: str
    state: ReaderState
    reads: int = 0
    bad_frames: int = 0
    last_error: str | None = None
    extra: dict[str, float | int | str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "reader_id": self.reader_id,
            "driver": self.driver,
            "state": self.state.value,
            "reads": self.reads,
            "bad_frames": self.bad_frames,
            "last_error": self.last_error,
            **self.extra,
        }


ReadCallback = Callable[[CredentialRead], None]
HealthObserver = Callable[[ReaderHealth], None]
OptionsT = TypeVar("OptionsT", bound=DriverOptions)


class HardwareError(Exception):
    """Root of the hardware layer's exceptions; vendor exceptions are converted at the driver boundary."""


class DeviceNotFound(HardwareError):
    pass


class ReadTimeout(HardwareError):
    pass


class ProtocolError(HardwareError):
    """A frame or response that does not follow the device's protocol."""


class DeviceDisconnected(HardwareError):
    pass


class Reader(abc.ABC):
    """A running reader: ``start()`` spawns its worker, reads go to ``callback``, ``stop()`` joins.

    Drivers must never let an exception escape their worker thread: a bad frame is counted in
    ``health().bad_frames`` and logged; a lost device moves the state to CONNECTING and the worker
    re-opens it when it comes back (:class:`hardware.reconnect.ReconnectingReader` owns that loop).

    A concrete driver declares ``driver_key`` (the profile's ``driver:``) and ``Options`` (its typed
    options dataclass) in its own module; :mod:`hardware.registry` finds drivers through these
    declarations, and the profile validator and schema are derived from them.
    """

    #: the key a profile names in ``driver:``; set by each concrete driver, never by a base class
    driver_key: ClassVar[str] = ""
    #: the driver's typed options; ``ReaderProfile.options`` is an instance of it
    Options: ClassVar[type[DriverOptions]] = DriverOptions
    #: the driver needs ``baud`` (serial line speed) in its profile
    needs_baud: ClassVar[bool] = False
    #: the driver opens a device node: its profile needs ``port`` or ``match``
    needs_device: ClassVar[bool] = False

    def __init__(self, reader_id: str, callback: ReadCallback) -> None:
        self.reader_id = reader_id
        self._callback = callback
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._health = ReaderHealth(reader_id=reader_id, driver=self.driver, state=ReaderState.STOPPED)
        self._health_lock = threading.Lock()
        self._observers: list[HealthObserver] = []

    @property
    def driver(self) -> str:
        return self.driver_key or type(self).__name__

    @classmethod
    @abc.abstractmethod
    def from_profile(cls, profile: ReaderProfile, callback: ReadCallback, port: str | None) -> Reader:
        """A ready-to-start reader for ``profile``; ``port`` overrides the profile's device (CLI ``--port``)."""

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._set_state(ReaderState.CONNECTING)
        self._thread = threading.Thread(
            target=self._run_guarded, name=f"reader-{self.reader_id}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake()
        if self._thread is not None:
            self._thread.join(timeout)
        self._set_state(ReaderState.STOPPED)

    def health(self) -> ReaderHealth:
        with self._health_lock:
            return self._snapshot()

    def subscribe(self, observer: HealthObserver) -> Callable[[], None]:
        """Call ``observer`` with the health now and after every state change; returns an unsubscribe.

        Observers run on the thread that changed the state, after the health lock is released, so an
        observer may call :meth:`health` (or anything else) without deadlocking the worker.
        """
        with self._health_lock:
            self._observers.append(observer)
            now = self._snapshot()
        self._notify([observer], now)

        def unsubscribe() -> None:
            with self._health_lock:
                if observer in self._observers:
                    self._observers.remove(observer)

        return unsubscribe

    def _snapshot(self) -> ReaderHealth:
        h = self._health
        return ReaderHealth(
            h.reader_id, h.driver, h.state, h.reads, h.bad_frames, h.last_error, dict(h.extra)
        )

    def _notify(self, observers: list[HealthObserver], health: ReaderHealth) -> None:
        for observer in observers:
            try:
                observer(health)
            except Exception:
                logger.exception("health observer failed for reader %s", self.reader_id)

    # -- for drivers -----------------------------------------------------------------------------
    @abc.abstractmethod
    def _run(self) -> None:
        """Worker loop; return when ``self._stop`` is set."""

    def _wake(self) -> None:  # noqa: B027 - optional hook
        """Interrupt a blocking wait in the worker (close a port, cancel a PC/SC call)."""

    def _run_guarded(self) -> None:
        try:
            self._run()
        except Exception as exc:  # last resort: a driver bug must not kill the kiosk
            logger.exception("reader %s worker died", self.reader_id)
            self._set_state(ReaderState.ERROR, str(exc))

    def _deliver(
        self, kind: CredentialKind, value: str, display_name: str | None = None, read_id: str | None = None
    ) -> None:
        read = CredentialRead(
            kind=kind, value=value, reader_id=self.reader_id, display_name=display_name, read_id=read_id
        )
        with self._health_lock:
            self._health.reads += 1
        try:
            self._callback(read)
        except Exception:
            logger.exception("read callback failed for reader %s", self.reader_id)

    def _bad_frame(self, why: str) -> None:
        with self._health_lock:
            self._health.bad_frames += 1
            self._health.last_error = why
        logging.getLogger("hardware.traffic").warning("reader %s bad frame: %s", self.reader_id, why)

    def _set_state(self, state: ReaderState, error: str | None = None) -> None:
        with self._health_lock:
            changed = self._health.state is not state
            self._health.state = state
            if error is not None:
                self._health.last_error = error
            observers = list(self._observers) if changed else []
            now = self._snapshot() if observers else None
        if now is not None:
            self._notify(observers, now)

    def _note_error(self, message: str) -> None:
        with self._health_lock:
            self._health.last_error = message

    def _count(self, key: str, by: int = 1) -> int:
        """Add to an integer health counter (created at 0) and return its new value."""
        with self._health_lock:
            value = int(self._health.extra.get(key, 0)) + by
            self._health.extra[key] = value
            return value

    def _set_extra(self, key: str, value: float | int | str) -> None:
        with self._health_lock:
            self._health.extra[key] = value


def options_as(profile: ReaderProfile, cls: type[OptionsT]) -> OptionsT:
    """The profile's options as the driver's own class (checked, so no cast is needed)."""
    if not isinstance(profile.options, cls):
        raise HardwareError(
            f"profile {profile.name}: options are {type(profile.options).__name__}, not {cls.__name__}"
            f" / 配置 {profile.name} 的选项类型不符"
        )
    return profile.options
