"""The card forms of a member's credential page: bind a card, revoke a credential, replace a card.

A card UID's shape is judged by ``cards.card_hash`` (the one reading of a typed UID, also used by
manual entry); the forms call it so the person sees the problem next to the UID field. Whether a card
is already in use is the binding's answer (it needs the database row lock of the transaction) and is
put next to the same field by the view.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from wtforms.validators import DataRequired, Length

from .base import Msg, StaffForm, TrimmedStringField, check

logger = logging.getLogger(__name__)

REASON_MAX = 200


def _uid_field() -> Any:
    return TrimmedStringField(validators=[DataRequired(message=Msg("cards.bad_uid"))])


def _reason_field(required: bool) -> Any:
    length = Length(max=REASON_MAX, message=Msg("forms.reason_too_long", n=REASON_MAX))
    if required:
        return TrimmedStringField(validators=[DataRequired(message=Msg("cards.reason_required")), length])
    return TrimmedStringField(validators=[length])


class _UidForm(StaffForm):
    """A form with a card UID; ``read_uid`` is ``cards.card_hash`` (raises ``ValueError`` with the
    person's message for a malformed UID), passed in because the cards module builds these forms."""

    def __init__(self, *args: Any, read_uid: Callable[[str], object], **kwargs: Any) -> None:
        self.read_uid = read_uid
        super().__init__(*args, **kwargs)

    def validate_uid(self, field: Any) -> None:
        try:
            self.read_uid(field.data or "")
        except ValueError as exc:
            check(False, str(exc))


class BindCardForm(_UidForm):
    uid = _uid_field()
    reason = _reason_field(required=False)


class RevokeForm(StaffForm):
    reason = _reason_field(required=True)


class ReplaceCardForm(_UidForm):
    uid = _uid_field()
    reason = _reason_field(required=True)
