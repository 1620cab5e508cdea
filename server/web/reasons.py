"""What a person reads for a doubtful tap (its flags) and for a session that needs review (its reason).

Every page and export that shows a flag or a session reason goes through :func:`tap_flags` and
:func:`session_reason`, so a reviewer reads the same words on the queue, the session detail, the member
timeline and in a spreadsheet — never the stored code. Flag texts come from the one vocabulary,
:class:`protocol.flags.TapFlag`; session reason texts are the catalogue's ``reason.<value>`` (label) and
``reason.<value>.explain`` (sentence) keys, so a feature that adds a reason adds its two keys and is shown
like the others. A stored value that has no text (an old row, a reason added by a newer server) is shown as
it is, marked as unknown, rather than hidden: a person should still see that something was doubtful.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from protocol.flags import parse_flags

from .i18n import get_locale, has_message, t

logger = logging.getLogger(__name__)

#: Between items of one cell in an export (a full-width semicolon reads right in Chinese and English).
EXPORT_SEPARATOR = "；"


@dataclass(frozen=True, slots=True)
class Shown:
    """One flag or reason as a person reads it: a short label, the sentence behind it, the stored code."""

    code: str
    label: str
    explanation: str
    known: bool


def tap_flags(stored: str | None, locale: str | None = None) -> list[Shown]:
    """The flags of a stored ``tap_events.flags`` value, in stored order, in ``locale`` (default: the
    person's). A flag's detail (``unknown_member:4711``) follows its label."""
    locale = locale or get_locale()
    shown = []
    for entry in parse_flags(stored):
        if entry.flag is None:
            label = t("flags.unknown", locale, code=entry.raw)
            shown.append(Shown(entry.raw, label, t("flags.unknown_explain", locale), known=False))
            continue
        label = entry.flag.label(locale)
        if entry.detail:
            label += t("flags.detail", locale, detail=entry.detail)
        shown.append(Shown(entry.raw, label, entry.flag.explain(locale), known=True))
    return shown


def merged_flags(stored: Iterable[str | None], locale: str | None = None) -> list[Shown]:
    """The flags of several taps (a session's check-in and check-out), each code once."""
    seen: dict[str, Shown] = {}
    for value in stored:
        for item in tap_flags(value, locale):
            seen.setdefault(item.code, item)
    return list(seen.values())


def session_reason(reason: str | None, locale: str | None = None) -> Shown | None:
    """Why a session is in review (``service_sessions.reason``) as a person reads it; None for no reason.

    A reason may carry a detail after a colon, as flags do (``name:detail``); the detail follows the label.
    """
    if not reason:
        return None
    locale = locale or get_locale()
    name, _, detail = reason.partition(":")
    if not has_message(f"reason.{name}"):
        logger.info("session reason %r has no text", reason)
        label = t("review.unknown_reason", locale, code=reason)
        return Shown(reason, label, t("review.unknown_reason_explain", locale), known=False)
    label = t(f"reason.{name}", locale)
    if detail:
        label += t("flags.detail", locale, detail=detail)
    explain_key = f"reason.{name}.explain"
    explanation = t(explain_key, locale) if has_message(explain_key) else ""
    return Shown(reason, label, explanation, known=True)


def export_text(items: Iterable[Shown | None]) -> str:
    """The labels of ``items`` for one spreadsheet cell (the sentences would not fit a column)."""
    return EXPORT_SEPARATOR.join(item.label for item in items if item is not None)
