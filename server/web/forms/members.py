"""The member create/edit form (and, beside it, the unit and community forms of the same pages).

The shapes a value must have (a member number, a mainland mobile number) are the CSV import's
(:mod:`server.web.csv_import`), so a member typed in and a member imported are judged alike. A national
ID number typed in is checked, turned into its keyed hash and never kept, not even to refill the form.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session
from wtforms import StringField
from wtforms.validators import DataRequired, Length, Optional, Regexp

from protocol.hashing import id_number_check_digit_ok, national_id_hash
from server.config import key_bytes
from server.models import Community, Member, Unit

from ..csv_import import CODE_RE, MOBILE_RE, normalise_mobile
from .base import IdListField, Msg, StaffForm, TrimmedStringField, WholeNumberField, check

logger = logging.getLogger(__name__)

MEMBER_STATUSES = ("active", "inactive")


def _mobile(value: object) -> object:
    return normalise_mobile(value) if isinstance(value, str) else value


class MemberForm(StaffForm):
    """A member as typed; ``s``, the person's ``scope`` and the ``member`` edited (``None``: new) are given.

    Community staff add members only to their own community: the community typed is ignored for them.
    """

    member_no = TrimmedStringField(
        validators=[
            DataRequired(message=Msg("import.bad_member_no")),
            Regexp(CODE_RE.pattern + r"\Z", message=Msg("import.bad_member_no")),
        ]
    )
    name = TrimmedStringField(
        validators=[
            DataRequired(message=Msg("import.bad_name")),
            Length(max=100, message=Msg("import.bad_name")),
        ]
    )
    unit_id = WholeNumberField(invalid=Msg("members.choose_unit"))
    community_id = WholeNumberField(invalid=Msg("members.choose_community"))
    phone = StringField(
        filters=[_mobile],
        validators=[Optional(), Regexp(MOBILE_RE.pattern + r"\Z", message=Msg("forms.bad_mobile"))],
    )
    national_id = TrimmedStringField()
    status = TrimmedStringField(default="active")

    def __init__(self, *args: Any, s: Session, scope: Any, member: Member | None, **kwargs: Any) -> None:
        self.s, self.scope, self.member = s, scope, member
        self.national_id_hash: str | None = None
        super().__init__(*args, **kwargs)
        if self.scope.role == "community_staff":
            self.community_id.data = self.scope.community_id

    def validate_member_no(self, field: Any) -> None:
        own = self.member.id if self.member else -1
        taken = self.s.scalar(select(Member.id).where(Member.member_no == field.data, Member.id != own))
        check(taken is None, Msg("members.member_no_taken"))

    def validate_unit_id(self, field: Any) -> None:
        check(not field.errors and self.scope.allows(self.s, Unit, field.data), Msg("members.choose_unit"))

    def validate_community_id(self, field: Any) -> None:
        check(
            not field.errors and self.scope.allows(self.s, Community, field.data),
            Msg("members.choose_community"),
        )

    def validate_national_id(self, field: Any) -> None:
        if not field.data:
            return
        check(id_number_check_digit_ok(field.data), Msg("import.bad_national_id"))
        id_hash = national_id_hash(key_bytes(current_app.config, "NATIONAL_ID_KEY"), field.data)
        owner = self.s.scalar(select(Member.id).where(Member.national_id_hash == id_hash))
        check(
            owner is None or (self.member is not None and owner == self.member.id),
            Msg("import.national_id_taken"),
        )
        self.national_id_hash = id_hash

    def validate_status(self, field: Any) -> None:
        check(field.data in MEMBER_STATUSES, Msg("import.bad_status"))

    def validate(self, extra_validators: Any = None) -> bool:
        valid = super().validate(extra_validators)
        self.national_id.data = ""  # the raw number is not kept, not even to refill the form
        self.national_id.raw_data = []
        return valid


def _code_field() -> Any:
    return TrimmedStringField(
        validators=[
            DataRequired(message=Msg("import.bad_code")),
            Regexp(CODE_RE.pattern + r"\Z", message=Msg("import.bad_code")),
        ]
    )


def _name_field(max_length: int) -> Any:
    return TrimmedStringField(
        validators=[
            DataRequired(message=Msg("import.bad_name")),
            Length(max=max_length, message=Msg("import.bad_name")),
        ]
    )


class _CodedForm(StaffForm):
    """A unit or community: a code unique among its kind; ``s`` and the ``row`` edited are given."""

    model: Any = None
    code = _code_field()

    def __init__(self, *args: Any, s: Session, row: Any, **kwargs: Any) -> None:
        self.s, self.row = s, row
        super().__init__(*args, **kwargs)

    def validate_code(self, field: Any) -> None:
        own = self.row.id if self.row is not None else -1
        model = self.model
        taken = self.s.scalar(select(model.id).where(model.code == field.data, model.id != own))
        check(taken is None, Msg("members.code_taken"))


class UnitForm(_CodedForm):
    """A unit and the communities it reports to (ticked boxes; ids outside the list are refused)."""

    model = Unit
    name = _name_field(200)
    community_id = IdListField()


class CommunityForm(_CodedForm):
    model = Community
    name = _name_field(100)
    district = TrimmedStringField(validators=[Length(max=100, message=Msg("import.bad_name"))])
