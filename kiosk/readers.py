"""The kiosk's readers: built from the config's profiles through ``hardware.registry``, started, restarted,
and reported in health — including the ones that could not even be created.

A reader whose profile is broken or whose driver cannot load (no libpcsclite, no camera library) is
listed with state ``error`` and its reason instead of stopping the kiosk: the other readers keep working
and staff see what is wrong on the maintenance screen (Frigate's detector plugins behave the same).

In simulation mode (``simulate = true`` in the config, or per reader) a configured reader is replaced by
a :class:`hardware.simulator.SimulatedReader` with the same reader id; with no readers configured the
``simulator`` profile is used. ``POST /sim/read`` injects into these, so a simulated read runs the
same worker-thread → callback path as a real one.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from hardware.base import HardwareError, ReadCallback, Reader
from hardware.profiles import ProfileError, ReaderProfile
from hardware.registry import create_reader
from hardware.schema import load_profile
from hardware.simulator import SimulatedReader
from kiosk.config import KioskConfig, ReaderConfig

logger = logging.getLogger(__name__)


class ReaderSet:
    def __init__(self, config: KioskConfig, callback: ReadCallback) -> None:
        self.config = config
        self.callback = callback
        self.readers: list[Reader] = []
        self.failures: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def _configured(self) -> list[ReaderConfig]:
        if self.config.readers:
            return list(self.config.readers)
        if self.config.simulate:
            return [ReaderConfig("simulator", None, True)]
        return []

    def _build(self) -> tuple[list[Reader], list[dict[str, Any]]]:
        readers: list[Reader] = []
        failures: list[dict[str, Any]] = []
        for rc in self._configured():
            simulate = self.config.simulate or rc.simulate
            try:
                profile: ReaderProfile | None = load_profile(rc.profile)
            except ProfileError as exc:
                if not simulate:
                    logger.error("reader profile %s unusable: %s", rc.profile, exc)
                    failures.append(_failure(rc.profile, "unknown", exc))
                    continue
                profile = None
            if profile is None or (simulate and profile.driver != SimulatedReader.driver_key):
                # A stand-in with the configured reader's id (or the profile's name when the profile
                # itself cannot be loaded here), so simulated reads look like that reader's.
                reader_id = profile.reader_id if profile is not None else rc.profile
                readers.append(SimulatedReader(reader_id, self.callback))
                continue
            try:
                readers.append(create_reader(profile, self.callback, port=rc.port))
            except HardwareError as exc:
                logger.error(
                    "reader %s (%s) could not be created: %s", profile.reader_id, profile.driver, exc
                )
                failures.append(_failure(profile.reader_id, profile.driver, exc))
        return readers, failures

    def start(self) -> None:
        with self._lock:
            self.readers, self.failures = self._build()
            for reader in self.readers:
                reader.start()
        logger.info("%d readers started, %d failed", len(self.readers), len(self.failures))

    def stop(self) -> None:
        with self._lock:
            readers, self.readers = self.readers, []
        for reader in readers:
            try:
                reader.stop()
            except Exception:
                logger.exception("reader %s did not stop cleanly", reader.reader_id)

    def restart(self) -> None:
        self.stop()
        self.start()

    def health(self) -> list[dict[str, Any]]:
        with self._lock:
            readers, failures = list(self.readers), list(self.failures)
        return [r.health().as_dict() for r in readers] + failures

    def simulator_for(self, kind: str, reader_id: str | None = None) -> SimulatedReader | None:
        """A simulated reader that accepts ``kind`` (and has ``reader_id`` when given)."""
        with self._lock:
            readers = list(self.readers)
        for reader in readers:
            if not isinstance(reader, SimulatedReader):
                continue
            if reader_id is not None and reader.reader_id != reader_id:
                continue
            if reader.kind is None or reader.kind.value == kind:
                return reader
        return None


def _failure(reader_id: str, driver: str, exc: Exception) -> dict[str, Any]:
    return {
        "reader_id": reader_id,
        "driver": driver,
        "state": "error",
        "reads": 0,
        "bad_frames": 0,
        "last_error": str(exc)[:300],
    }
