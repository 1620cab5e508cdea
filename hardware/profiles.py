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


def profile_from_mapping(name: str, data: dict[str, object]) -> ReaderProfile:
    """A profile from a mapping shaped like the YAML file (tests, the simulator, the kiosk's stand-ins).

    Checked by the same rules as a file; raises :class:`ProfileError` listing every problem.
    """
    from hardware.schema import profile_from_data

    return profile_from_data(name, data, f"<{name}>")


def load_profile(name_or_path: str | os.PathLike[str]) -> ReaderProfile:
    """Load a profile by name (file stem under ``firmware-config/readers/``) or by path.

    Raises :class:`ProfileError` listing every problem (a kiosk must not start a half-understood reader).
    """
    from hardware.schema import validate_profile_file  # schema imports this module's constants

    text = str(name_or_path)
    path = Path(text)
    if not (path.suffix in (".yaml", ".yml") or os.sep in text or path.exists()):
        path = default_profiles_dir() / f"{text}.yaml"
    if not path.is_file():
        raise ProfileError(
            f"reader profile not found / 找不到读卡器配置: {name_or_path} ({path})",
            [f"{path}:0: file not found / 文件不存在"],
        )
    profile, issues = validate_profile_file(path)
    if issues or profile is None:
        lines = [str(i) for i in issues]
        raise ProfileError(
            f"invalid reader profile / 读卡器配置无效: {path}\n" + "\n".join(lines),
            lines,
        )
    return profile


def list_profiles(directory: str | os.PathLike[str] | None = None) -> list[ReaderProfile]:
    """All valid profiles in the directory, sorted by name; invalid ones are logged and left out."""
    root = Path(directory) if directory is not None else default_profiles_dir()
    out: list[ReaderProfile] = []
    for path in sorted([*root.glob("*.yaml"), *root.glob("*.yml")]):
        try:
            out.append(load_profile(path))
        except ProfileError as exc:
            logger.error("skipping reader profile %s: %s", path, "; ".join(exc.issues) or exc)
    return out
