"""Kiosk configuration (a TOML file given with ``--config``) and the enrolment record in the state dir.

Example (every key optional; the values shown are the defaults)::

    server_url = "http://127.0.0.1:8000"
    state_dir = "var/kiosk"          # outbox, roster, PIN guard, enrolment; relative to the config file
    simulate = false                 # true: every reader becomes a simulator; POST /sim/read is enabled
    language = "zh"                  # "zh" or "en": the touch UI's default

    [centre]                         # shown on the idle screen until enrolment supplies the real one
    name = "党群服务中心"
    code = ""
    timezone = "Asia/Shanghai"

    [[readers]]                      # a reader profile from firmware-config/readers/ (name or path)
    profile = "rdm6300"
    port = "/dev/ttyUSB0"            # optional override
    simulate = false                 # this reader only

    [rules]
    debounce_s = 60
    max_session_h = 12
    closes_at = "21:00"              # local time; omit for a centre that never closes

    [outbox]
    capacity = 200000
    min_free_mb = 64
    purge_acked_after_days = 7

    [ui]
    host = "127.0.0.1"
    port = 8100

    [staff]                          # who opens maintenance mode
    card_hashes = []                 # credential hashes of staff cards (production)
    cards = []                       # raw card UIDs, hashed at start (demo / tests only)
    pin = ""                         # staff PIN at the keypad with member number "0" (demo / tests only)

    [pin]
    max_failures = 5
    lockout_s = 300

    [dev]
    credential_key = ""              # hex; only used before enrolment (demo / tests)

Why the enrolment result is a separate file: the config is provisioned by people (and may sit in a repo),
the kiosk secret and credential key are secrets written once by ``baodao kiosk enrol`` with 0600 perms.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import os
import secrets
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from protocol.sessionrules import CentreRules

logger = logging.getLogger(__name__)

ENROLMENT_FILE = "enrolment.json"
LOCAL_KEY_FILE = "local-credential.key"


class ConfigError(ValueError):
    """A kiosk config that cannot be used; the message says where, in English and Chinese."""


@dataclass(frozen=True)
class ReaderConfig:
    profile: str
    port: str | None = None
    simulate: bool = False


@dataclass(frozen=True)
class KioskConfig:
    server_url: str = "http://127.0.0.1:8000"
    state_dir: Path = Path("var/kiosk")
    simulate: bool = False
    language: str = "zh"
    centre_name: str = "党群服务中心"
    centre_code: str = ""
    timezone: str = "Asia/Shanghai"
    readers: tuple[ReaderConfig, ...] = ()
    rules: CentreRules = field(default_factory=CentreRules)
    capacity: int = 200_000
    min_free_bytes: int = 64 * 1024 * 1024
    purge_acked_after_s: float = 7 * 86400.0
    ui_host: str = "127.0.0.1"
    ui_port: int = 8100
    staff_card_hashes: tuple[str, ...] = ()
    staff_cards: tuple[str, ...] = ()
    staff_pin: str = ""
    pin_max_failures: int = 5
    pin_lockout_s: float = 300.0
    dev_credential_key: bytes | None = None
    source: Path | None = None

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def _section(data: dict[str, Any], name: str) -> dict[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"[{name}] must be a table / [{name}] 必须是表")
    return value


def _parse_time(text: str) -> dt.time:
    try:
        return dt.time.fromisoformat(text)
    except ValueError as exc:
        raise ConfigError(f"rules.closes_at must be HH:MM, got {text!r} / 闭馆时间格式应为 HH:MM") from exc


def config_from_mapping(data: dict[str, Any], base_dir: Path | None = None) -> KioskConfig:
    """Build a config from parsed TOML; relative ``state_dir`` is resolved against ``base_dir``."""
    base_dir = base_dir or Path.cwd()
    centre, rules, outbox, ui = (_section(data, n) for n in ("centre", "rules", "outbox", "ui"))
    staff, pin, dev = (_section(data, n) for n in ("staff", "pin", "dev"))
    try:
        tz_name = str(centre.get("timezone", "Asia/Shanghai"))
        tz = ZoneInfo(tz_name)
        readers = tuple(
            ReaderConfig(str(r["profile"]), r.get("port"), bool(r.get("simulate", False)))
            for r in data.get("readers", [])
        )
        closes = rules.get("closes_at")
        rule_set = CentreRules(
            debounce=dt.timedelta(seconds=float(rules.get("debounce_s", 60))),
            max_length=dt.timedelta(hours=float(rules.get("max_session_h", 12))),
            closes_at=_parse_time(str(closes)) if closes else None,
            tz=tz,
        )
        key_hex = str(dev.get("credential_key", "") or "")
        state_dir = Path(str(data.get("state_dir", "var/kiosk")))
        language = str(data.get("language", "zh"))
        if language not in ("zh", "en"):
            raise ConfigError(f"language must be zh or en, got {language!r} / 语言只能是 zh 或 en")
        return KioskConfig(
            server_url=str(data.get("server_url", "http://127.0.0.1:8000")).rstrip("/"),
            state_dir=state_dir if state_dir.is_absolute() else base_dir / state_dir,
            simulate=bool(data.get("simulate", False)),
            language=language,
            centre_name=str(centre.get("name", "党群服务中心")),
            centre_code=str(centre.get("code", "")),
            timezone=tz_name,
            readers=readers,
            rules=rule_set,
            capacity=int(outbox.get("capacity", 200_000)),
            min_free_bytes=int(float(outbox.get("min_free_mb", 64)) * 1024 * 1024),
            purge_acked_after_s=float(outbox.get("purge_acked_after_days", 7)) * 86400,
            ui_host=str(ui.get("host", "127.0.0.1")),
            ui_port=int(ui.get("port", 8100)),
            staff_card_hashes=tuple(str(h) for h in staff.get("card_hashes", [])),
            staff_cards=tuple(str(c) for c in staff.get("cards", [])),
            staff_pin=str(staff.get("pin", "")),
            pin_max_failures=int(pin.get("max_failures", 5)),
            pin_lockout_s=float(pin.get("lockout_s", 300)),
            dev_credential_key=bytes.fromhex(key_hex) if key_hex else None,
        )
    except ConfigError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"invalid kiosk config / 终端配置无效: {exc}") from exc


# -- config pushed by the server (heartbeat) ----------------------------------------------------------
APPLIED_CONFIG_FILE = "applied-config.json"
#: Sections of a pushed config the kiosk applies while running (same shapes as in the TOML file).
LIVE_KEYS = frozenset({"language", "centre", "rules", "staff", "pin", "message"})
#: Sections that only take effect at the next start; a push naming them is reported, not half-applied.
RESTART_KEYS = frozenset({"server_url", "state_dir", "simulate", "readers", "outbox", "ui", "dev"})


def apply_live_config(base: KioskConfig, body: Any) -> tuple[KioskConfig, list[str]]:
    """``base`` with the live-changeable parts of a pushed config ``body`` applied.

    ``body`` has the TOML file's shape (``{"language": "en", "rules": {"debounce_s": 30}, …}``); every
    value is checked before anything changes, so a bad push raises :class:`ConfigError` and the kiosk
    keeps running as it was. Returns the new config and the keys that need a restart (not applied).
    """
    if not isinstance(body, dict):
        raise ConfigError("pushed config must be an object / 下发的配置必须是对象")
    needs_restart = sorted(k for k in body if k in RESTART_KEYS)
    unknown = sorted(k for k in body if k not in LIVE_KEYS and k not in RESTART_KEYS)
    if unknown:
        logger.warning("pushed config has keys this kiosk does not know: %s", unknown)
    centre, rules, staff, pin = (_section(body, n) for n in ("centre", "rules", "staff", "pin"))
    changes: dict[str, Any] = {}
    try:
        if "language" in body:
            language = body["language"]
            if language not in ("zh", "en"):
                raise ConfigError(f"language must be zh or en, got {language!r} / 语言只能是 zh 或 en")
            changes["language"] = language
        tz_name = str(centre.get("timezone", base.timezone))
        tz = ZoneInfo(tz_name)
        if "name" in centre:
            name = str(centre["name"]).strip()
            if not name:
                raise ConfigError("centre.name must not be empty / 中心名称不能为空")
            changes["centre_name"] = name[:64]
        changes["timezone"] = tz_name
        closes_at = base.rules.closes_at
        if "closes_at" in rules:
            closes_at = _parse_time(str(rules["closes_at"])) if rules["closes_at"] else None
        debounce = base.rules.debounce
        if "debounce_s" in rules:
            debounce = dt.timedelta(seconds=float(rules["debounce_s"]))
        max_length = base.rules.max_length
        if "max_session_h" in rules:
            max_length = dt.timedelta(hours=float(rules["max_session_h"]))
        changes["rules"] = CentreRules(debounce=debounce, max_length=max_length, closes_at=closes_at, tz=tz)
        if "card_hashes" in staff:
            changes["staff_card_hashes"] = tuple(_hex64(h) for h in _list(staff["card_hashes"]))
        if "cards" in staff:
            changes["staff_cards"] = tuple(str(c) for c in _list(staff["cards"]))
        if "pin" in staff:
            changes["staff_pin"] = str(staff["pin"] or "")
        if "max_failures" in pin:
            changes["pin_max_failures"] = int(pin["max_failures"])
        if "lockout_s" in pin:
            changes["pin_lockout_s"] = float(pin["lockout_s"])
        if changes.get("pin_max_failures", 1) < 1 or changes.get("pin_lockout_s", 1) <= 0:
            raise ConfigError("pin.max_failures and pin.lockout_s must be positive / PIN 限制必须为正数")
    except ConfigError:
        raise
    except (KeyError, TypeError, ValueError) as exc:  # ZoneInfoNotFoundError is a KeyError
        raise ConfigError(f"invalid pushed config / 下发的配置无效: {exc}") from exc
    return dataclasses.replace(base, **changes), needs_restart


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise ConfigError("expected a list / 应为列表")
    return value


def _hex64(value: Any) -> str:
    text = str(value).lower()
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise ConfigError(f"staff.card_hashes: not a credential hash: {value!r} / 不是凭证哈希")
    return text


def save_applied_config(state_dir: str | os.PathLike[str], version: int, body: Any) -> Path:
    """Persist the pushed config the kiosk now runs (atomic), so a restart comes back with it."""
    path = Path(state_dir) / APPLIED_CONFIG_FILE
    data = {"version": int(version), "body": body}
    _write_private(path, json.dumps(data, ensure_ascii=False, sort_keys=True).encode())
    return path


def load_applied_config(state_dir: str | os.PathLike[str]) -> tuple[int, dict[str, Any]] | None:
    """``(version, body)`` of the last applied pushed config, or ``None`` (none yet, or unreadable)."""
    path = Path(state_dir) / APPLIED_CONFIG_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return int(data["version"]), dict(data["body"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        logger.error("%s unreadable (%s); running the file's config", path, exc)
        return None


def load_config(path: str | os.PathLike[str]) -> KioskConfig:
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found / 找不到配置文件: {p}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML / 不是有效的 TOML: {exc}") from exc
    cfg = config_from_mapping(data, p.resolve().parent)
    return KioskConfig(**{**cfg.__dict__, "source": p.resolve()})


# -- enrolment record ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Enrolment:
    """What ``baodao kiosk enrol`` got from the server (``protocol.messages.EnrolResponse``) + the URL."""

    kiosk_id: str
    kiosk_secret: str  # hex
    credential_key: str  # hex
    server_url: str
    centre: dict[str, Any] = field(default_factory=dict)
    heartbeat_interval_s: int = 30
    enrolled_at: str = ""

    @property
    def credential_key_bytes(self) -> bytes:
        return bytes.fromhex(self.credential_key)


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` readable by the owner only, atomically (temp file, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def save_enrolment(state_dir: str | os.PathLike[str], enrolment: Enrolment) -> Path:
    path = Path(state_dir) / ENROLMENT_FILE
    _write_private(path, json.dumps(enrolment.__dict__, ensure_ascii=False, indent=2).encode())
    logger.info("kiosk enrolment saved: kiosk %s at %s", enrolment.kiosk_id, enrolment.server_url)
    return path


def load_enrolment(state_dir: str | os.PathLike[str]) -> Enrolment | None:
    """The stored enrolment, or ``None`` when the kiosk was never enrolled."""
    path = Path(state_dir) / ENROLMENT_FILE
    if not path.exists():
        return None
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        logger.warning("%s is readable by others (mode %o); fixing to 0600", path, mode)
        os.chmod(path, 0o600)
    data = json.loads(path.read_text(encoding="utf-8"))
    return Enrolment(**data)


#: Sync pacing options operators and the fault tests set from the environment (``SyncAgent`` keyword →
#: variable); read here, with the other configuration, not by the sync module.
SYNC_PACING_ENV = {
    "idle_s": "BAODAO_SYNC_IDLE_S",
    "backoff_base_s": "BAODAO_SYNC_BACKOFF_BASE_S",
    "backoff_cap_s": "BAODAO_SYNC_BACKOFF_CAP_S",
    "heartbeat_s": "BAODAO_HEARTBEAT_S",
}


def sync_pacing_from_env(environ: Any = None) -> dict[str, float]:
    """The :data:`SYNC_PACING_ENV` options set in ``environ`` (default: the process environment)."""
    env = os.environ if environ is None else environ
    return {key: float(env[name]) for key, name in SYNC_PACING_ENV.items() if env.get(name)}


def credential_key_for(config: KioskConfig, enrolment: Enrolment | None) -> tuple[bytes, str]:
    """The credential key to hash reads with, and where it came from.

    Enrolled: the server's key (the roster was built with it). Not enrolled: the config's dev key (demo,
    tests) or else a random key kept in the state dir — every card is then simply unknown, which is
    the truth for a kiosk that has no roster yet.
    """
    if enrolment is not None:
        return enrolment.credential_key_bytes, "enrolment"
    if config.dev_credential_key:
        return config.dev_credential_key, "config"
    path = Path(config.state_dir) / LOCAL_KEY_FILE
    if not path.exists():
        _write_private(path, secrets.token_hex(32).encode())
    return bytes.fromhex(path.read_text().strip()), "local"
