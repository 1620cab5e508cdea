"""Driver lookup by profile key, derived from the drivers' own declarations.

Every module of the ``hardware`` package is imported and every :class:`hardware.base.Reader` subclass
that declares a ``driver_key`` is a driver (Frigate's detector plugins work the same way). Nothing here
lists the drivers, so a new driver is one new module: its key, its options class and its code together.
A module that cannot be imported (a Python binding or a native library missing on this kiosk) is logged
as an error and reported as unavailable; the other drivers keep working and the kiosk still starts.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
from dataclasses import dataclass

import hardware
from hardware.base import HardwareError, ReadCallback, Reader
from hardware.profiles import ReaderProfile

logger = logging.getLogger(__name__)

#: modules of the package that are not drivers and sit above the registry (they import it)
_FRONT_ENDS = frozenset({"cli"})


class DriverUnavailable(HardwareError):
    """The driver's module (or a native library it needs) could not be imported."""


@dataclass(frozen=True)
class Drivers:
    """What this machine can run: key -> driver class, and the modules that failed to import."""

    classes: dict[str, type[Reader]]
    unavailable: dict[str, str]  # module name -> why

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(sorted(self.classes))

    def unavailable_note(self) -> str:
        """For an 'unknown driver' message: a key may belong to a module that did not load here."""
        if not self.unavailable:
            return ""
        parts = "; ".join(f"{m}: {why}" for m, why in sorted(self.unavailable.items()))
        return f" (not loaded on this machine / 本机未能加载: {parts})"


def _subclasses(cls: type[Reader]) -> list[type[Reader]]:
    out = []
    for sub in cls.__subclasses__():
        out.append(sub)
        out += _subclasses(sub)
    return out


def discover() -> Drivers:
    """Import the package's modules and collect the declared drivers.

    Cheap after the first call (imports are cached by Python), so it is called where needed rather
    than kept in a module global.
    """
    unavailable: dict[str, str] = {}
    for info in pkgutil.iter_modules(hardware.__path__):
        if info.name in _FRONT_ENDS or info.name.startswith("_"):
            continue
        name = f"{hardware.__name__}.{info.name}"
        try:
            importlib.import_module(name)
        except ImportError as exc:
            logger.error("hardware module %s unavailable: %s", name, exc)
            unavailable[name] = str(exc)
    classes: dict[str, type[Reader]] = {}
    for cls in _subclasses(Reader):
        key = cls.__dict__.get("driver_key")
        if not key or not cls.__module__.startswith(f"{hardware.__name__}."):
            continue  # abstract bases, and readers defined outside the package (test doubles)
        if key in classes and classes[key] is not cls:
            raise HardwareError(f"driver key {key!r} declared twice: {classes[key]} and {cls}")
        classes[key] = cls
    return Drivers(classes, unavailable)


def driver_class(key: str) -> type[Reader]:
    """The class registered under ``key``, or :class:`DriverUnavailable`."""
    drivers = discover()
    cls = drivers.classes.get(key)
    if cls is None:
        raise DriverUnavailable(f"unknown driver '{key}' / 未知驱动 '{key}'{drivers.unavailable_note()}")
    return cls


def create_reader(profile: ReaderProfile, callback: ReadCallback, *, port: str | None = None) -> Reader:
    """A ready-to-start reader for ``profile``; ``port`` overrides the profile's port (CLI ``--port``)."""
    return driver_class(profile.driver).from_profile(profile, callback, port)
