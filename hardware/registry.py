"""Driver lookup by profile key.

Drivers are imported lazily so that a kiosk without, say, libpcsclite or OpenCV still starts its other
readers: the failing one logs an error and raises :class:`DriverUnavailable` for the caller to report
in health (Frigate's detector plugins work the same way).
"""

from __future__ import annotations

import importlib
import logging

from hardware.base import HardwareError, ReadCallback, Reader
from hardware.profiles import DRIVER_KEYS, ReaderProfile

logger = logging.getLogger(__name__)

DRIVERS: dict[str, str] = {
    "pcsc": "hardware.pcsc:PcscReader",
    "em4100": "hardware.em4100:Em4100Reader",
    "serial_line": "hardware.line_scanner:LineScannerReader",
    "idcard_sam": "hardware.idcard_sam:IdCardSamReader",
    "camera_qr": "hardware.camera:CameraQrReader",
    "keyboard_wedge": "hardware.keyboard_wedge:KeyboardWedgeReader",
    "simulated": "hardware.simulator:SimulatedReader",
}
assert set(DRIVERS) == set(DRIVER_KEYS)


class DriverUnavailable(HardwareError):
    """The driver's module (or a native library it needs) could not be imported."""


def driver_class(key: str) -> type[Reader]:
    """Import and return the class registered under ``key``."""
    target = DRIVERS.get(key)
    if target is None:
        raise DriverUnavailable(f"unknown driver '{key}' / 未知驱动 '{key}'")
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        logger.error("driver %s unavailable: cannot import %s: %s", key, module_name, exc)
        raise DriverUnavailable(f"driver '{key}' unavailable / 驱动不可用: {exc}") from exc
    return getattr(module, class_name)


def create_reader(profile: ReaderProfile, callback: ReadCallback, *, port: str | None = None) -> Reader:
    """A ready-to-start reader for ``profile``; ``port`` overrides the profile's port (CLI ``--port``)."""
    cls = driver_class(profile.driver)
    return cls.from_profile(profile, callback, port)  # type: ignore[attr-defined]
