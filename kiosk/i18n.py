"""The kiosk's texts: gettext catalogues ``kiosk/translations/<locale>/LC_MESSAGES/messages.po``.

One source for everything the kiosk says to a member: the outcome of a tap (``outcome.*``, rendered by
:mod:`kiosk.outcomes` in both languages because the screen shows the other one underneath), the QR
verdicts (``qr.*``) and the screen's own labels (``screen.*``, rendered into the page by
:mod:`kiosk.ui.views`, so ``kiosk.js`` holds no strings). Message ids are symbolic keys with ``{name}``
placeholders, as on the server; ``tests/unit/test_catalogues.py`` checks both catalogues are complete.

Why not Flask-Babel here: the kiosk decides and words an outcome in its service thread, outside any
request, and the page switches language without a round trip, so a per-request locale does not fit.
Babel's own ``Translations`` read from the ``.po`` files (no compile step) are what Flask-Babel would
have used underneath. The catalogue is package data that never changes while the process runs, so
:func:`catalogue` reads it once (about 5 ms).
"""

from __future__ import annotations

import functools
import io
import logging
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

logger = logging.getLogger(__name__)

CATALOGUES = Path(__file__).resolve().parent / "translations"
#: The screen's language codes (``config.language``) → catalogue locales.
LANGUAGES = {"zh": "zh_CN", "en": "en"}
SCREEN_PREFIX = "screen."


class KioskCatalogue:
    """Both languages' texts, read from the ``.po`` files."""

    def __init__(self, directory: Path = CATALOGUES) -> None:
        self.translations: dict[str, Translations] = {}
        self.ids: dict[str, frozenset[str]] = {}
        for language, locale in LANGUAGES.items():
            with (directory / locale / "LC_MESSAGES" / "messages.po").open("rb") as handle:
                catalog = read_po(handle, locale=locale)
            compiled = io.BytesIO()
            write_mo(compiled, catalog)
            compiled.seek(0)
            self.translations[language] = Translations(compiled)
            self.ids[language] = frozenset(str(m.id) for m in catalog if m.id and m.string and not m.fuzzy)

    def text(self, key: str, language: str, **params: object) -> str:
        """``key`` in ``language`` (``zh``/``en``; anything else is Chinese), placeholders filled.

        An unknown key shows itself (and logs): visible, never a crash in the middle of a tap.
        """
        translations = self.translations.get(language, self.translations["zh"])
        found = translations.gettext(key)
        if found == key:
            logger.warning("missing kiosk message %r", key)
        return found.format(**params) if params else found

    def has(self, key: str) -> bool:
        """Is ``key`` a message (for texts looked up by a code, e.g. a QR verdict)?"""
        return key in self.ids["zh"]

    def texts(self, key: str, **params: object) -> tuple[str, str]:
        """(Chinese, English) for ``key`` — an outcome carries both."""
        return self.text(key, "zh", **params), self.text(key, "en", **params)

    def screen(self) -> dict[str, dict[str, str]]:
        """The page's labels, ``{"zh": {name: text}, "en": {…}}`` (ids without the ``screen.`` prefix)."""
        return {
            language: {
                key.removeprefix(SCREEN_PREFIX): self.translations[language].gettext(key)
                for key in ids
                if key.startswith(SCREEN_PREFIX)
            }
            for language, ids in self.ids.items()
        }


@functools.cache
def catalogue() -> KioskCatalogue:
    """The installed catalogue, read on first use (immutable package data, like a module's constants)."""
    return KioskCatalogue()


def texts(key: str, **params: object) -> tuple[str, str]:
    """(Chinese, English) for ``key`` from the installed catalogue."""
    return catalogue().texts(key, **params)


def has_message(key: str) -> bool:
    """Is ``key`` in the installed catalogue?"""
    return catalogue().has(key)


def text(key: str, language: str, **params: object) -> str:
    """``key`` in ``language`` from the installed catalogue."""
    return catalogue().text(key, language, **params)
