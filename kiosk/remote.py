"""Remote management of a kiosk: the commands it obeys and the config the server pushes to it.

Why a module of its own: both arrive through the heartbeat agent (``kiosk.heartbeat``) rather than from
the touch screen or a reader, both change what the screen shows for everyone, and both must be applied
exactly or not at all — a command either runs and says so, or is left to the sync agent (``None``); a
pushed config is checked in full, persisted, and only then takes effect, so the version the kiosk
reports as applied is always the one it runs.

:class:`RemoteControl` holds the screen lock and the temporary message; :class:`ConfigPush` holds the
applied version, the keys that need a restart and the standing message, and hands the new
:class:`~kiosk.config.KioskConfig` to the service through ``install`` (the service owns the config).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from kiosk.config import KioskConfig, apply_live_config, load_applied_config, save_applied_config
from kiosk.context import KioskContext

logger = logging.getLogger(__name__)
audit = logging.getLogger("kiosk.audit")


class RemoteControl:
    """``lock_screen``, ``unlock_screen``, ``show_message`` and ``restart_readers``."""

    def __init__(self, context: KioskContext) -> None:
        self._lock = context.lock
        self._readers = context.readers
        self._feed = context.feed
        self.locked = False
        self.lock_text: tuple[str, str] | None = None
        self._message: dict[str, Any] | None = None

    def lock(self, text_zh: str | None = None, text_en: str | None = None) -> None:
        with self._lock:
            self.locked = True
            self.lock_text = (text_zh or "终端暂停使用", text_en or "This kiosk is locked")
        audit.warning("kiosk locked")
        self._feed.publish_state()

    def unlock(self) -> None:
        with self._lock:
            self.locked, self.lock_text = False, None
        audit.warning("kiosk unlocked")
        self._feed.publish_state()

    def show_message(self, text: str, text_en: str | None = None, seconds: float = 30.0) -> None:
        with self._lock:
            self._message = {"text": text, "text_en": text_en or "", "until": time.time() + seconds}
        self._feed.publish_state()

    def current_message(self) -> dict[str, Any] | None:
        """The commanded message while it lasts (dropped once expired). Call with the lock held."""
        message = self._message
        if message is not None and message["until"] < time.time():
            self._message = message = None
        return message

    def handle_command(self, name: str, args: dict[str, Any] | None = None) -> tuple[bool, str] | None:
        """Apply a remote command this service owns; ``None`` for ones it does not (sync agent's)."""
        args = args or {}
        if name == "lock_screen":
            self.lock(args.get("text"), args.get("text_en"))
            return True, "locked"
        if name == "unlock_screen":
            self.unlock()
            return True, "unlocked"
        if name == "show_message":
            self.show_message(str(args.get("text", "")), args.get("text_en"), float(args.get("seconds", 30)))
            return True, "shown"
        if name == "restart_readers":
            self._readers.restart()
            self._feed.publish_state()
            return True, f"{len(self._readers.readers)} readers restarted"
        return None


class ConfigPush:
    """The pushed config the kiosk runs: applied on top of the config *file*, persisted first.

    ``install(new_config)`` is called with the context's lock held and swaps the service's config and
    everything derived from it. ``context.live.config`` when this is made is the config *file*'s: a
    pushed config is applied on top of it, never on top of the previous push.
    """

    def __init__(self, context: KioskContext, *, install: Callable[[KioskConfig], None]) -> None:
        self._base_config = context.live.config
        self._lock = context.lock
        self._feed = context.feed
        self._install_hook = install
        self.version = 0
        self.needs_restart: list[str] = []
        self.message: dict[str, str] | None = None
        self.centre_name: str | None = None

    def apply(self, version: int, body: Mapping[str, Any], state_dir: Path) -> None:
        """Apply a config pushed by the server (the heartbeat agent calls this); raise if it is invalid.

        What can change without a restart changes now: rules, language, centre name, staff settings, PIN
        policy and a standing message. Keys that need a restart (readers, ports, server URL) are kept in
        ``needs_restart`` for health instead of half-applied. The body is applied on top of the config
        file, not of the previous push, so removing a key from the next push reverts it. It is persisted
        before it takes effect, so a restart comes back with the same settings.
        """
        version = int(version)
        new_config, needs_restart = apply_live_config(self._base_config, body)
        message = standing_message(body.get("message"))
        save_applied_config(state_dir, version, body)
        self._install(version, body, new_config, needs_restart, message)
        audit.info("config version %d applied (restart needed for: %s)", version, needs_restart or "nothing")
        self._feed.publish_state()

    def restore(self, state_dir: Path) -> None:
        """Re-apply the last pushed config at start (the heartbeat will not send it again)."""
        stored = load_applied_config(state_dir)
        if stored is None:
            return
        version, body = stored
        try:
            new_config, needs_restart = apply_live_config(self._base_config, body)
            message = standing_message(body.get("message"))
        except (ValueError, TypeError) as exc:
            logger.error("stored config %d no longer applies (%s); running the file's config", version, exc)
            return
        self._install(version, body, new_config, needs_restart, message)
        logger.info("restored pushed config version %d", version)

    def _install(
        self,
        version: int,
        body: Mapping[str, Any],
        new_config: KioskConfig,
        needs_restart: list[str],
        message: dict[str, str] | None,
    ) -> None:
        centre = body.get("centre")
        with self._lock:
            self._install_hook(new_config)
            self.version = version
            self.needs_restart = needs_restart
            self.message = message
            named = isinstance(centre, Mapping) and "name" in centre
            self.centre_name = new_config.centre_name if named else None


def standing_message(value: Any) -> dict[str, str] | None:
    """``message`` of a pushed config: a text, or ``{"text", "text_en"}``; shown until the next push."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = {"text": value}
    if not isinstance(value, Mapping) or not isinstance(value.get("text"), str) or not value["text"].strip():
        raise ValueError("message must be a text or {text, text_en} / message 应为文字或 {text, text_en}")
    text_en = value.get("text_en") or ""
    if not isinstance(text_en, str):
        raise ValueError("message.text_en must be a text / message.text_en 应为文字")
    return {"text": value["text"][:200], "text_en": text_en[:200]}
