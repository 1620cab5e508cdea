"""Sign-in and password change of the staff app.

Sign-in says only that the pair is wrong, never which half (an attacker learns nothing about accounts);
its fields are only checked for being filled in. The password change reports every problem at once:
a wrong current password, a new one too short, a confirmation that differs, a new one equal to the old.
Rate limits and lockout stay in the view (they count attempts, not form problems).
"""

from __future__ import annotations

import logging
from typing import Any

from wtforms import PasswordField
from wtforms.validators import DataRequired, EqualTo, Length

from server.passwords import MIN_PASSWORD_LENGTH, verify_password

from .base import Msg, StaffForm, TrimmedStringField, check

logger = logging.getLogger(__name__)


class SignInForm(StaffForm):
    username = TrimmedStringField(validators=[DataRequired(message=Msg("forms.username_required"))])
    password = PasswordField(validators=[DataRequired(message=Msg("forms.password_required"))])


class PasswordForm(StaffForm):
    """The signed-in ``user``'s new password; the current one proves it is them."""

    current_password = PasswordField(validators=[DataRequired(message=Msg("auth.wrong_current"))])
    new_password = PasswordField(
        validators=[
            DataRequired(message=Msg("auth.too_short", n=MIN_PASSWORD_LENGTH)),
            Length(min=MIN_PASSWORD_LENGTH, message=Msg("auth.too_short", n=MIN_PASSWORD_LENGTH)),
        ]
    )
    confirm_password = PasswordField(validators=[EqualTo("new_password", message=Msg("auth.mismatch"))])

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        self.user = user
        super().__init__(*args, **kwargs)

    def validate_current_password(self, field: Any) -> None:
        check(verify_password(self.user.password_hash, field.data), Msg("auth.wrong_current"))

    def validate_new_password(self, field: Any) -> None:
        check(field.data != self.current_password.data, Msg("auth.same_password"))
