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

logger = logging.getLogger(__name__)

#: Driver keys a profile may name; :mod:`hardware.registry` maps each to a class.
DRIVER_KEYS: tuple[str, ...] = (
    "pcsc",
    "em4100",
    "serial_line",
    "idcard_sam",
    "camera_qr",
    "keyboard_wedge",
    "simulated",
)


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
    """One reader model's settings, validated. Frozen so a running driver cannot drift from its file."""

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
    options: dict[str, object] = field(default_factory=dict)

    def option(self, key: str, default: object = None) -> object:
        return self.options.get(key, default)


def profile_from_mapping(name: str, data: dict[str, object]) -> ReaderProfile:
    """Build a profile from an already validated mapping (also used by tests and the simulator)."""
    match = data.get("match") or {}
    options = data.get("options") or {}
    setup = data.get("setup_commands") or []
    return ReaderProfile(
        name=name,
        driver=str(data["driver"]),
        reader_id=str(data.get("reader_id") or name),
        description=str(data.get("description") or ""),
        port=None if data.get("port") is None else str(data["port"]),
        match={str(k): str(v) for k, v in dict(match).items()},  # type: ignore[call-overload]
        baud=None if data.get("baud") is None else int(data["baud"]),  # type: ignore[call-overload]
        framing=None if data.get("framing") is None else str(data["framing"]),
        setup_commands=[str(c).replace(" ", "").upper() for c in list(setup)],  # type: ignore[call-overload]
        debounce_ms=int(data.get("debounce_ms") or 0),  # type: ignore[call-overload]
        options=dict(options),  # type: ignore[call-overload]
    )


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
    data, issues = validate_profile_file(path)
    if issues or data is None:
        lines = [str(i) for i in issues]
        raise ProfileError(
            f"invalid reader profile / 读卡器配置无效: {path}\n" + "\n".join(lines),
            lines,
        )
    return profile_from_mapping(path.stem, data)


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
