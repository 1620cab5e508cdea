"""Configuration layered as defaults → file → environment → explicit overrides.

The file is TOML (``BAODAO_CONFIG=/etc/baodao/server.toml``); environment variables are ``BAODAO_<KEY>``
upper-cased. Explicit overrides (tests, ``create_app({...})``) win over everything.
"""

from __future__ import annotations

import logging
import os
import secrets
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from protocol.flags import DEFAULT_REVIEW_FLAGS, TapFlag

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("BAODAO_VAR_DIR", REPO_ROOT / "var"))

DEFAULTS: dict[str, Any] = {
    "DATABASE_URL": f"sqlite:///{VAR_DIR / 'baodao.sqlite3'}",
    "SECRET_KEY": None,  # generated and kept under var/ when not configured
    "CREDENTIAL_KEY": None,  # deployment-wide key for credential hashes, shared with kiosks at enrolment
    "NATIONAL_ID_KEY": None,  # server-only key for national ID hashes
    "DEFAULT_LOCALE": "zh_CN",
    "TIMEZONE": "Asia/Shanghai",
    "MAX_REQUEST_BYTES": 2 * 1024 * 1024,
    "SIGNATURE_MAX_SKEW_S": 300,
    "ENROL_TOKEN_TTL_S": 24 * 3600,
    "LOG_FORMAT": "json",
    "LOG_LEVEL": "INFO",
    "SESSION_COOKIE_SECURE": False,
}

# ---- review queue: which tap flags send a session to staff review ------------------------------------
# A list of ``protocol.flags.TapFlag`` values (TOML list, or comma-separated in ``BAODAO_REVIEW_FLAGS``);
# ``load_config`` turns it into a ``frozenset[TapFlag]`` and refuses an unknown value at start-up.
DEFAULTS["REVIEW_FLAGS"] = sorted(DEFAULT_REVIEW_FLAGS)


class ConfigError(ValueError):
    """A configuration value the server cannot run with; the message names the key and the value."""


def review_flags(value: str | Iterable[str] | None) -> frozenset[TapFlag]:
    """The configured ``REVIEW_FLAGS`` as flags; an unknown value stops start-up with both languages' text.

    A typo here would silently keep doubtful sessions out of review, so it is an error, not a warning.
    """
    items = value.split(",") if isinstance(value, str) else list(value or ())
    flags: set[TapFlag] = set()
    for item in items:
        name = str(item).strip()
        if not name:
            continue
        try:
            flags.add(TapFlag(name))
        except ValueError:
            known = ", ".join(f.value for f in TapFlag)
            raise ConfigError(
                f"配置项 REVIEW_FLAGS 中的“{name}”不是已知的刷卡标记（可用：{known}）。"
                f" / REVIEW_FLAGS names an unknown tap flag {name!r} (known: {known})."
            ) from None
    return frozenset(flags)


# Ingest and the session recomputer (server/ingest.py, server/sessions/queue.py, server/sqlite_writes.py).
DEFAULTS.update(
    {
        # A tap is flagged clock_drift when its kiosk's measured offset exceeds this, and clock_jump when
        # the offset moved by more than this since the kiosk's previous tap.
        "CLOCK_DRIFT_BOUND_S": 120,
        # A tap whose corrected time lies further ahead of the server's clock is flagged future_time.
        "FUTURE_TOLERANCE_S": 300,
        # The background recomputer of every server process: None means "on unless TESTING".
        "SESSION_RECOMPUTER": None,
        "SESSION_RECOMPUTE_INTERVAL_S": 2.0,
        "SESSION_RECOMPUTE_QUIET_S": 0.5,
        "SESSION_RECOMPUTE_MAX_DEFER_S": 10.0,
        # SQLite: events a process stores between its own WAL checkpoints (outside the write section), and
        # the automatic checkpoint threshold restored after each upload's write section.
        "SQLITE_CHECKPOINT_EVERY_EVENTS": 4000,
        "SQLITE_AUTOCHECKPOINT_PAGES": 1000,
    }
)
_INGEST_INT_KEYS = {
    "CLOCK_DRIFT_BOUND_S",
    "FUTURE_TOLERANCE_S",
    "SQLITE_CHECKPOINT_EVERY_EVENTS",
    "SQLITE_AUTOCHECKPOINT_PAGES",
}
_INGEST_FLOAT_KEYS = {
    "SESSION_RECOMPUTE_INTERVAL_S",
    "SESSION_RECOMPUTE_QUIET_S",
    "SESSION_RECOMPUTE_MAX_DEFER_S",
}

_INT_KEYS = {"MAX_REQUEST_BYTES", "SIGNATURE_MAX_SKEW_S", "ENROL_TOKEN_TTL_S"}
_BOOL_KEYS = {"SESSION_COOKIE_SECURE"}
_SECRET_KEYS = ("SECRET_KEY", "CREDENTIAL_KEY", "NATIONAL_ID_KEY")


def _coerce(key: str, raw: str) -> Any:
    if key in _INT_KEYS or key in _INGEST_INT_KEYS:
        return int(raw)
    if key in _INGEST_FLOAT_KEYS:
        return float(raw)
    if key in _BOOL_KEYS:
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    return raw


def load_config(
    overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Return the effective configuration; see the module docstring for the layering."""
    env = os.environ if environ is None else environ
    config = dict(DEFAULTS)
    path = (overrides or {}).get("CONFIG_FILE") or env.get("BAODAO_CONFIG")
    if path:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
        config.update({k.upper(): v for k, v in data.items()})
    for key in list(DEFAULTS):
        value = env.get(f"BAODAO_{key}")
        if value is not None:
            config[key] = _coerce(key, value)
    if overrides:
        config.update(overrides)
    config["REVIEW_FLAGS"] = review_flags(config["REVIEW_FLAGS"])
    for key in _SECRET_KEYS:
        if not config.get(key):
            config[key] = _persistent_secret(key)
    return config


def _persistent_secret(key: str) -> str:
    """A secret generated once and kept in var/secrets/ so restarts keep sessions and hashes valid."""
    folder = VAR_DIR / "secrets"
    path = folder / key.lower()
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        value = secrets.token_hex(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(value)
        logger.warning("generated %s under %s; set BAODAO_%s in production", key, folder, key)
        return value


def switched_on(value: Any, *, default: bool) -> bool:
    """A boolean setting that may come as text from the environment or a TOML file (``"off"``, ``"0"``…);
    ``None`` means ``default``."""
    if value is None:
        return default
    if isinstance(value, str):
        return value.strip().lower() not in {"0", "false", "no", "off", ""}
    return bool(value)


def key_bytes(config: Mapping[str, Any], name: str) -> bytes:
    """A configured secret as the bytes the hashing functions take (the text's UTF-8 encoding)."""
    value = config[name]
    return value if isinstance(value, bytes) else str(value).encode()
