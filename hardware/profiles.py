"""Reader profiles: the data that says which driver talks to which device, and how.

A profile is one YAML file under ``firmware-config/readers/``; its file stem is its name. Profiles are
data, not code, so a centre can add a reader model without a release — which is why loading always
goes through :mod:`hardware.schema` and refuses a file with any problem instead of guessing.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from hardware.base import HardwareError
from hardware.options import DriverOptions

logger = logging.getLogger(__name__)


def default_config_dir() -> Path:
    """``firmware-config/`` of the checkout, or ``$BAODAO_FIRMWARE_CONFIG`` when set (installed kiosks)."""
    env = os.environ.get("BAODAO_FIRMWARE_CONFIG")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "firmware-config"


def default_profiles_dir() -> Path:
    return default_config_dir() / "readers"


class ProfileError(HardwareError):
    """A profile that cannot be used; ``issues`` holds every ``file:line: problem`` found."""

    def __init__(self, message: str, issues: list[str] | None = None) -> None:
        super().__init__(message)
        self.issues = issues or []


@dataclass(frozen=True)
class ReaderProfile:
    """One reader model's settings, validated. Frozen so a running driver cannot drift from its file.

    ``options`` is an instance of the driver's own options class (``Reader.Options``), so a driver
    reads typed fields instead of guessing at a dictionary.
    """

    name: str
    driver: str
    reader_id: str
    description: str = ""
    port: str | None = None
    match: dict[str, str] = field(default_factory=dict)
    baud: int | None = None
    framing: str | None = None
    setup_commands: list[str] = field(default_factory=list)
    debounce_ms: int = 0
    options: DriverOptions = field(default_factory=DriverOptions)
