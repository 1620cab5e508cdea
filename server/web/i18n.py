"""Chinese-first translations and local time for the staff pages.

A small catalogue (``messages.py``: key → (Chinese, English)) and one function, :func:`t`, rather than
gettext/Flask-Babel: the staff app has a few hundred short strings, two languages, and no translators'
tooling to feed, so a Python dict that a test checks for completeness is simpler to keep right than
``.po``/``.mo`` files and a compile step. Chinese is the default; a person switches per session (and the
choice is remembered on their account).

Times are stored in UTC and shown in the deployment's zone (``TIMEZONE``, Asia/Shanghai by default).
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

from flask import current_app, g, has_request_context, session

from .messages import MESSAGES

logger = logging.getLogger(__name__)

LOCALES = ("zh_CN", "en")
_INDEX = {"zh_CN": 0, "en": 1}


def register_messages(messages: dict[str, tuple[str, str]]) -> None:
    """Add a feature's strings (key → (Chinese, English)); a key may be defined only once."""
    clash = set(messages) & set(MESSAGES)
    if clash:
        raise ValueError(f"message keys defined twice: {sorted(clash)}")
    MESSAGES.update(messages)


def get_locale() -> str:
    """The session's choice, else the signed-in user's saved one, else the deployment default."""
    if has_request_context():
        chosen = session.get("locale")
        if chosen in LOCALES:
            return chosen
        user = g.get("user")
        if user is not None and user.locale in LOCALES:
            return user.locale
        return current_app.config.get("DEFAULT_LOCALE", "zh_CN")
    return "zh_CN"


def t(key: str, locale: str | None = None, **params: object) -> str:
    """The text for ``key`` in the current locale, with ``{name}`` placeholders filled from ``params``.

    An unknown key shows the key itself (and logs), so a missing string is visible but never breaks a page.
    """
    entry = MESSAGES.get(key)
    if entry is None:
        logger.warning("missing message key %r", key)
        text = key
    else:
        text = entry[_INDEX.get(locale or get_locale(), 0)]
    return text.format(**params) if params else text


def zone() -> ZoneInfo:
    name = current_app.config.get("TIMEZONE", "Asia/Shanghai") if has_request_context() else "Asia/Shanghai"
    return ZoneInfo(name)


def local(value: datetime | None) -> datetime | None:
    """An aware datetime in the deployment's zone (None stays None)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(zone())


def fmt_dt(value: datetime | None, with_seconds: bool = False) -> str:
    """``2026-03-01 09:05`` in local time; empty for None."""
    shown = local(value)
    if shown is None:
        return ""
    return shown.strftime("%Y-%m-%d %H:%M:%S" if with_seconds else "%Y-%m-%d %H:%M")


def fmt_input(value: datetime | None) -> str:
    """The value for an ``<input type="datetime-local">`` in local time."""
    shown = local(value)
    return shown.strftime("%Y-%m-%dT%H:%M") if shown else ""


def parse_local(text: str | None) -> datetime | None:
    """A local ``YYYY-MM-DDTHH:MM`` (or with a space) as an aware UTC datetime; None when blank.

    Raises ``ValueError`` for text that is not such a time.
    """
    text = (text or "").strip()
    if not text:
        return None
    parsed = datetime.fromisoformat(text.replace(" ", "T"))
    if parsed.tzinfo is not None:
        return parsed.astimezone(UTC)
    return parsed.replace(tzinfo=zone()).astimezone(UTC)


def local_day_bounds(day: date) -> tuple[datetime, datetime]:
    """The UTC instants at the start of ``day`` and of the next day, local time."""
    start = datetime.combine(day, time(0), tzinfo=zone())
    end = datetime.combine(date.fromordinal(day.toordinal() + 1), time(0), tzinfo=zone())
    return start.astimezone(UTC), end.astimezone(UTC)


def fmt_minutes(minutes: int | None) -> str:
    """``125`` → ``2:05`` (hours:minutes), the way people read service time."""
    if minutes is None:
        return ""
    return f"{minutes // 60}:{minutes % 60:02d}"
