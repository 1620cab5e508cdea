"""The one place that turns the signed-in user into query filters (DESIGN.md "User" roles and scopes).

* admin — everything, read and write;
* auditor — everything, read-only;
* community staff — their community (its members, centres, sessions, taps; units paired with it), write;
  and every session, tap and correction at their community's centres, *whoever the member is*: a member
  of another community who served here (居住地社区报到 or an errand) is seen through
  :meth:`Scope.timeline_member_or_404` — the timeline shows that member's taps and sessions at this
  community's centres only; the member's details (phone, unit, sessions elsewhere) stay out of reach,
  and the member is not listed among this community's members;
* unit secretary — their unit's members and those members' sessions and taps, read-only; the communities
  their unit is paired with (and those communities' centres) for orientation.

Views never build an unscoped query for people-facing data: lists add :meth:`Scope.clause` for the model,
single objects come from :meth:`Scope.get_or_404`. Manual entry at a centre of one's own accepts any
member found by exact member number or a card they hold (:meth:`Scope.on_roster` tells the page whether
to show the full name, or a masked one and ask for confirmation). An object outside the scope is
answered 404 (not 403), so editing an id in a URL or a form field does not even reveal that the object
exists. Writing by a read-only role is 403 (:func:`require_write`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import abort, g
from sqlalchemy import ColumnElement, exists, false, select, true
from sqlalchemy.orm import Session

from server.models import (
    Community,
    Correction,
    Kiosk,
    Member,
    ServiceCentre,
    ServiceSession,
    TapEvent,
    Unit,
    UnitCommunity,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")
WRITE_ROLES = ("admin", "community_staff")


@dataclass(frozen=True)
class Scope:
    """What one user may see; built from the user by :func:`scope_for`."""

    role: str
    community_id: int | None = None
    unit_id: int | None = None

    @property
    def sees_all(self) -> bool:
        return self.role in ("admin", "auditor")

    @property
    def can_write(self) -> bool:
        return self.role in WRITE_ROLES

    def _unit_communities(self) -> Any:
        return select(UnitCommunity.community_id).where(UnitCommunity.unit_id == self.unit_id)

    def _community_units(self) -> Any:
        return select(UnitCommunity.unit_id).where(UnitCommunity.community_id == self.community_id)

    def clause(self, model: type) -> ColumnElement[bool]:
        """A WHERE clause limiting ``model`` rows to this scope (``true()`` for admin and auditor).

        Unknown models are refused for scoped roles (``false()``) so a new page shows nothing rather than
        everything until someone decides its scope here.
        """
        if self.sees_all:
            return true()
        if self.role == "community_staff":
            cid = self.community_id
            if model in (Member, ServiceSession, TapEvent, Correction, Kiosk, ServiceCentre):
                return model.community_id == cid
            if model is Community:
                return Community.id == cid
            if model is Unit:
                return Unit.id.in_(self._community_units())
            if model is UnitCommunity:
                return UnitCommunity.community_id == cid
        elif self.role == "unit_secretary":
            uid = self.unit_id
            if model in (Member, ServiceSession):
                return model.unit_id == uid
            if model in (TapEvent, Correction):
                return model.member_id.in_(select(Member.id).where(Member.unit_id == uid))
            if model is Unit:
                return Unit.id == uid
            if model is Community:
                return Community.id.in_(self._unit_communities())
            if model is ServiceCentre:
                return ServiceCentre.community_id.in_(self._unit_communities())
            if model is UnitCommunity:
                return UnitCommunity.unit_id == uid
        return false()

    def get_or_404(self, db: Session, model: type[T], ident: Any) -> T:
        """The object with primary key ``ident`` if this scope may see it, else abort 404."""
        pk = model.__mapper__.primary_key[0]  # type: ignore[attr-defined]
        obj = db.scalar(select(model).where(pk == ident, self.clause(model)))
        if obj is None:
            abort(404)
        return obj

    def served_here(self) -> ColumnElement[bool]:
        """Members with a tap or a session at this scope's centres, whatever their own community.

        For community staff only (everyone else sees members exactly by :meth:`clause`). Correlated
        ``EXISTS`` tests, so checking one member reads that member's rows through the member indexes
        rather than every session of the community.
        """
        if self.role != "community_staff":
            return false()
        cid = self.community_id
        return exists().where(
            ServiceSession.member_id == Member.id, ServiceSession.community_id == cid
        ) | exists().where(TapEvent.member_id == Member.id, TapEvent.community_id == cid)

    def timeline_member_or_404(self, db: Session, member_id: int) -> tuple[Member, bool]:
        """The member whose timeline is asked for and whether their whole record is in scope.

        ``(member, True)`` for a member of the scope (:meth:`clause`); ``(member, False)`` for a member of
        another community who served at this scope's centres — the caller then shows nothing of the member
        but the taps, sessions and corrections that :meth:`clause` allows (those at this scope's centres);
        404 otherwise, as for any object outside the scope.
        """
        member = db.scalar(select(Member).where(Member.id == member_id, self.clause(Member)))
        if member is not None:
            return member, True
        member = db.scalar(select(Member).where(Member.id == member_id, self.served_here()))
        if member is None:
            abort(404)
        return member, False

    def on_roster(self, db: Session, member: Member) -> bool:
        """Whether ``member`` is one of this scope's own (full name and record), not a visitor."""
        return self.allows(db, Member, member.id)

    def allows(self, db: Session, model: type, ident: Any) -> bool:
        """Whether the object with primary key ``ident`` is in scope (for ids taken from a form field)."""
        if ident is None:
            return False
        pk = model.__mapper__.primary_key[0]  # type: ignore[attr-defined]
        return db.scalar(select(pk).where(pk == ident, self.clause(model))) is not None


def scope_for(user: Any) -> Scope:
    return Scope(role=user.role, community_id=user.community_id, unit_id=user.unit_id)


def current_scope() -> Scope:
    """The signed-in user's scope (views are login-protected, so ``g.user`` is set)."""
    user = g.get("user")
    if user is None:
        abort(401)
    return scope_for(user)


def require_write() -> Scope:
    """The current scope, or 403 for read-only roles (auditor, unit secretary)."""
    scope = current_scope()
    if not scope.can_write:
        abort(403)
    return scope
