"""Chinese-first translations (Flask-Babel over gettext catalogues) and local time for people's pages.

Every string a person reads on the server — staff pages, the member's phone page, exports' labels, error
pages — is a message of the gettext catalogues ``server/translations/<locale>/LC_MESSAGES/messages.po``
(``zh_CN`` complete and the default, ``en``). Message ids are symbolic (``nav.sessions``), so the
templates and views call :func:`t` with a key; ``t`` is a thin wrapper over the Flask-Babel translations of
the person's locale and fills ``{name}`` placeholders. The locale is chosen by :func:`get_locale`, which is
Flask-Babel's ``locale_selector``: the session's choice, else the signed-in account's saved one, else the
deployment default.

The ``.po`` files are read by the running app (:class:`CatalogueDomain`, each locale on first use), not
compiled to ``.mo`` first: a fresh clone has nothing to build and nothing to get out of step (docs/NOTES.md
has the cost).
``tests/unit/test_catalogues.py`` checks that every key used exists in both catalogues and the Chinese.

Times are stored in UTC and shown in the deployment's zone (``TIMEZONE``, Asia/Shanghai by default).
"""

from __future__ import annotations

import io
import logging
from datetime import UTC, date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import flask_babel
from babel import Locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations
from flask import Flask, current_app, g, has_request_context, session

logger = logging.getLogger(__name__)

LOCALES = ("zh_CN", "en")
CATALOGUES = Path(__file__).resolve().parents[1] / "translations"
DOMAIN = "messages"


def read_catalogue(path: Path, locale: str) -> tuple[Translations, frozenset[str]]:
    """The translations of one ``.po`` file and the ids it defines (fuzzy entries count as missing)."""
    with path.open("rb") as handle:
        catalog = read_po(handle, locale=locale)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    ids = frozenset(str(m.id) for m in catalog if m.id and m.string and not m.fuzzy)
    return Translations(compiled, domain=DOMAIN), ids


class CatalogueDomain(flask_babel.Domain):
    """A Flask-Babel domain that holds the catalogues it read from the ``.po`` files (one per app).

    Flask-Babel's own domain loads compiled ``.mo`` files; reading the ``.po`` (the file people edit and
    review) removes a build step a fresh clone or a deployment could miss.
    """

    def __init__(self, directory: Path = CATALOGUES, locales: tuple[str, ...] = LOCALES) -> None:
        super().__init__(translation_directories=[str(directory)], domain=DOMAIN)
        self.directory = directory
        self.locales = locales
        self.default = locales[0]
        self._parsed = {Locale.parse(locale): locale for locale in locales}
        self._loaded: dict[str, tuple[Translations, frozenset[str]]] = {}

    def _catalogue(self, locale: str) -> tuple[Translations, frozenset[str]]:
        """Read on first use (about 20 ms a locale), so an app that never shows English never reads it.
        Two requests racing here both read the same file and store equal results: no lock needed."""
        loaded = self._loaded.get(locale)
        if loaded is None:
            path = self.directory / locale / "LC_MESSAGES" / f"{DOMAIN}.po"
            loaded = self._loaded[locale] = read_catalogue(path, locale)
        return loaded

    def translations(self, locale: str | None) -> Translations:
        """The catalogue of ``locale``; the default's for a locale we do not offer."""
        return self._catalogue(str(locale) if locale in self.locales else self.default)[0]

    def get_translations(self) -> Translations | NullTranslations:
        """Flask-Babel's ``gettext`` and Jinja's ``_()``: the catalogue of Flask-Babel's current locale
        (which our :func:`get_locale` chose, or ``force_locale`` set)."""
        return self.translations(self._parsed.get(flask_babel.get_locale()))

    def has(self, key: str) -> bool:
        """Is ``key`` a message? The default catalogue is complete (a test checks), so it decides."""
        return key in self._catalogue(self.default)[1]


def init_i18n(app: Flask) -> CatalogueDomain:
    """Attach Flask-Babel with the catalogue domain and our locale choice to ``app``, and ``t`` /
    ``get_locale`` to its templates (idempotent: the staff pages and the phone page both call it)."""
    babel = app.extensions.get("babel")
    if babel is not None:
        return babel.instance.domain_instance
    domain = CatalogueDomain()
    babel_ext = flask_babel.Babel()
    babel_ext.domain_instance = domain  # replaces Flask-Babel's cached .mo domain
    babel_ext.init_app(
        app,
        default_locale=app.config.get("DEFAULT_LOCALE", "zh_CN"),
        default_timezone=app.config.get("TIMEZONE", "Asia/Shanghai"),
        locale_selector=get_locale,
    )
    app.add_template_global(t, "t")
    app.add_template_global(get_locale, "get_locale")
    return domain


def catalogue() -> CatalogueDomain:
    """The current app's catalogue domain."""
    return current_app.extensions["babel"].instance.domain_instance


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


def has_message(key: str) -> bool:
    """Is ``key`` a message of the catalogue (for texts looked up by a stored code, e.g. a reason)?"""
    return catalogue().has(key)


def t(key: str, locale: str | None = None, **params: object) -> str:
    """The text for ``key`` in ``locale`` (default: the person's), ``{name}`` placeholders filled from
    ``params``.

    An unknown key shows the key itself (and logs), so a missing string is visible but never breaks a page.
    """
    domain = catalogue()
    text = domain.translations(locale or get_locale()).gettext(key)
    if text == key and not domain.has(key):
        logger.warning("missing message key %r", key)
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
