"""The admin forms of a kiosk's page: push a configuration, queue a command.

A configuration is JSON typed into a text box; the form reads it and judges it with the wire contract's
``ConfigBody`` (the kiosk accepts exactly that), and says in the person's language what is wrong — where
the JSON breaks, that it is not an object, that it is too large — never the parser's own text.
A command is judged by the wire model ``Command`` too, so a bad one is refused here, not at delivery.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError
from wtforms import TextAreaField
from wtforms.validators import DataRequired, Length

from protocol.ids import uuid7
from protocol.messages import Command
from protocol.messages.common import ConfigBody
from server.models.kiosks import COMMAND_NAMES

from .base import Msg, StaffForm, TrimmedStringField, check

logger = logging.getLogger(__name__)

REASON_MAX = 200
MESSAGE_MAX = 200
MESSAGE_SECONDS = 60
_CONFIG = TypeAdapter(ConfigBody)


def _reason() -> Any:
    return TrimmedStringField(
        validators=[Length(max=REASON_MAX, message=Msg("forms.reason_too_long", n=REASON_MAX))]
    )


class ConfigForm(StaffForm):
    """``config`` holds the judged body once the form is valid."""

    body = TextAreaField(validators=[DataRequired(message=Msg("forms.config_not_object"))])
    reason = _reason()

    def validate_body(self, field: Any) -> None:
        try:
            value = json.loads(field.data)
        except json.JSONDecodeError as exc:
            check(False, Msg("forms.config_not_json", line=exc.lineno, col=exc.colno))
        check(isinstance(value, dict), Msg("forms.config_not_object"))
        try:
            self.config: dict[str, Any] = _CONFIG.validate_python(value)
        except ValidationError:
            check(False, Msg("forms.config_too_large"))


class RevokeKioskForm(StaffForm):
    """Revoking a kiosk always says why (it is in the audit trail)."""

    reason = TrimmedStringField(
        validators=[
            DataRequired(message=Msg("fleet.reason_required")),
            Length(max=REASON_MAX, message=Msg("forms.reason_too_long", n=REASON_MAX)),
        ]
    )


class CommandForm(StaffForm):
    """``args`` holds the command's arguments once the form is valid."""

    name = TrimmedStringField()
    text = TrimmedStringField(
        validators=[Length(max=MESSAGE_MAX, message=Msg("forms.message_too_long", n=MESSAGE_MAX))]
    )

    def validate_name(self, field: Any) -> None:
        check(field.data in COMMAND_NAMES, Msg("forms.command_unknown"))

    def validate_text(self, field: Any) -> None:
        if self.name.data == "show_message":
            check(bool(field.data), Msg("forms.message_required"))

    def validate_form(self) -> None:
        if self.messages:
            return
        self.args: dict[str, Any] = (
            {"text": self.text.data, "seconds": MESSAGE_SECONDS} if self.name.data == "show_message" else {}
        )
        try:  # the wire model: a bad command is refused here rather than at delivery
            Command(command_id=uuid7(), name=self.name.data, args=self.args, issued_at=datetime.now(UTC))
        except ValidationError:
            self.add_error(str(Msg("forms.command_invalid")), "name")
