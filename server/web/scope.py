"""The one place that turns the signed-in user into query filters (DESIGN.md "User" roles and scopes).

* admin — everything, read and write;
* auditor — everything, read-only;
* community staff — their community (its members, centres, sessions, taps; units paired with it), write;
* unit secretary — their unit's members and those members' sessions and taps, read-only; the communities
  their unit is paired with (and those communities' centres) for orientation.

Views never build an unscoped query for people-facing data: lists add :meth:`Scope.clause` for the model,
single objects come from :meth:`Scope.get_or_404`. An object outside the scope is answered 404 (not 403),
so editing an id in a URL or a form field does not even reveal that the object exists. Writing by a
read-only role is 403 (:func:`require_write`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import abort, g
from sqlalchemy import ColumnElement, false, select, true
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
