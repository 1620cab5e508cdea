"""What every form of the staff app and the phone page shares.

*CSRF, one way.* Every unsafe request to a staff (``web_*``) or phone-page view is checked by
``server.web.csrf.check_csrf`` in the blueprints' ``before_request`` hooks, before any view runs — also
for the few posts that have no form class (the language switch, sign-out). A form checking the token a
second time would only add a second error path with its own message, so :class:`StaffForm` sets
``meta.csrf = False``; templates still send ``csrf_token`` with the ``csrf()`` macro.

*Messages.* Every validator gets its message from the catalogue (:class:`Msg`, looked up with ``t`` when
the error is raised, so a form class defined at import time speaks the language of the request). The
texts WTForms writes itself where no message can be passed (e.g. a number that is not one) are avoided
by the fields below; as a second line, the form's locale is the person's, so any WTForms text left would
come from WTForms' own Chinese catalogue, never in English on a Chinese page.

*Every error, what was typed.* A field's errors are all kept (validators do not stop at the first
unless the value is missing); :attr:`StaffForm.messages` lists every message in the order found for the
summary above a form, and fields re-render from ``raw_data``, so a wrong value stays as it was typed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from flask import g
from flask_wtf import FlaskForm
from wtforms import Field, IntegerField, StringField
from wtforms.i18n import get_translations
from wtforms.validators import ValidationError
from wtforms.widgets import DateTimeLocalInput

from ..i18n import fmt_input, get_locale, parse_local, t

logger = logging.getLogger(__name__)


class Msg:
    """A catalogue message, rendered with :func:`t` when the error is raised (in the request's locale).

    WTForms formats some messages with ``%``; ours use ``{name}`` placeholders, filled here instead.
    ``locale`` picks the language where a page has its own choice of it (the phone page).
    """

    def __init__(self, key: str, *, locale: Callable[[], str] | None = None, **params: object) -> None:
        self.key = key
        self.locale = locale
        self.params = params

    def __str__(self) -> str:
        return t(self.key, self.locale() if self.locale else None, **self.params)

    def __mod__(self, _values: object) -> str:
        return str(self)


class StaffForm(FlaskForm):
    """A form of the staff app or phone page; see the module text for CSRF, messages and errors."""

    class Meta:
        csrf = False

        def get_translations(self, form: Any) -> Any:
            """WTForms' own catalogue in the person's language, for any text of WTForms' own.

            Kept for the request: finding the ``.mo`` file costs ~0.3 ms of file-system look-ups, more
            than the rest of building and validating a form.
            """
            locale = form.locale()
            cache = g.setdefault("wtforms_translations", {})
            if locale not in cache:
                cache[locale] = get_translations([locale, "zh"])
            return cache[locale]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.form_errors_found: list[str] = []
        self._order: list[str] = []

    def locale(self) -> str:
        """The language of the page (the staff app's choice; the phone page has its own)."""
        return get_locale()

    def validate(self, extra_validators: Any = None) -> bool:
        """Run every field's validators, then :meth:`validate_form` (rules across fields)."""
        super().validate(extra_validators)
        for f in self:
            f.errors = [str(e) for e in f.errors]
            self._order.extend(f.errors)
        self.validate_form()
        return not self.messages

    def validate_form(self) -> None:
        """Rules that need several fields; add problems with :meth:`add_error`."""

    def add_error(self, message: str, *fields: str, first: bool = False) -> None:
        """A problem found across fields: listed once (``first``: at the top of the list), and shown next
        to the last field it is about; the other fields named are marked as wrong."""
        if first:
            self._order.insert(0, message)
        else:
            self._order.append(message)
        if fields:
            target = self[fields[-1]]
            target.errors = [*target.errors, message]
            for name in fields[:-1]:
                self[name].flagged = True  # marked as wrong, the message stands under the last one
        else:
            self.form_errors_found.append(message)

    @property
    def messages(self) -> list[str]:
        """Every error message, in the order found (for the summary above the form)."""
        return list(self._order)


class WholeNumberField(IntegerField):
    """A whole number with the catalogue's message when the text is not one (WTForms' own is English)."""

    def __init__(self, *args: Any, invalid: Msg, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.invalid = invalid

    def process_formdata(self, valuelist: list[Any]) -> None:
        text = valuelist[0].strip() if valuelist and isinstance(valuelist[0], str) else ""
        if not text:
            self.data = None
            return
        try:
            self.data = int(text)
        except ValueError:
            self.data = None
            raise ValueError(str(self.invalid)) from None


class LocalDateTimeField(Field):
    """A ``datetime-local`` input read in the deployment's zone as an aware UTC datetime (``None`` blank).

    WTForms' ``DateTimeLocalField`` gives naive datetimes and English errors; ours is ``parse_local``,
    the one reading of a typed local time.
    """

    widget = DateTimeLocalInput()

    def __init__(self, *args: Any, invalid: Msg, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.invalid = invalid

    def process_formdata(self, valuelist: list[Any]) -> None:
        text = valuelist[0] if valuelist else ""
        try:
            self.data = parse_local(text)
        except ValueError:
            self.data = None
            raise ValueError(str(self.invalid)) from None

    def _value(self) -> str:
        if self.raw_data:
            return str(self.raw_data[0])
        return fmt_input(self.data) if isinstance(self.data, datetime) else ""

    @property
    def typed(self) -> str:
        """The text as typed (stripped), empty when nothing was sent."""
        return str(self.raw_data[0]).strip() if self.raw_data else ""


class IdListField(Field):
    """Every value of a repeated field (ticked boxes, ``name=session_id`` many times) that is a row id."""

    def process_formdata(self, valuelist: list[Any]) -> None:
        self.data = {int(v) for v in valuelist if isinstance(v, str) and v.isdigit()}


class TrimmedStringField(StringField):
    """A text field whose value is stripped of surrounding spaces (what every text field here wants)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("filters", [])
        kwargs["filters"] = [*kwargs["filters"], _strip]
        super().__init__(*args, **kwargs)


def _strip(value: object) -> object:
    return value.strip() if isinstance(value, str) else value


def check(condition: bool, message: Msg | str) -> None:
    """Raise a validation error with ``message`` unless ``condition`` (for inline ``validate_<field>``)."""
    if not condition:
        raise ValidationError(str(message))
