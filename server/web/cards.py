"""Cards: bind, revoke (with a reason) and replace a member's card; the member's credential history.

A card UID typed (or read by a desk reader acting as a keyboard) by staff is normalised and stored only as
``credential_hash(CREDENTIAL_KEY, "card", uid)`` — the value a kiosk computes from the same card — plus a
masked label (``…3B1C``) so staff can tell cards apart. The raw UID never reaches the database, the audit
trail or a log line. Revoked credentials are kept (they are the history); a replacement revokes the old
card and points it at the new one (``replaced_by_id``). The database allows one *active* credential per
value, so binding a card that is active elsewhere is refused with a message, not an error page.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, abort, current_app, flash, g, redirect, render_template, url_for
from sqlalchemy import select
from sqlalchemy.orm import Session

from protocol.hashing import CredentialValueError, credential_hash, normalise_card_uid
from server.config import key_bytes
from server.models import Credential, Member, User, utcnow

from . import audit
from .common import db
from .forms.cards import BindCardForm, ReplaceCardForm, RevokeForm
from .i18n import t
from .scope import current_scope, require_write

logger = logging.getLogger(__name__)
bp = Blueprint("web_cards", __name__)

CREDENTIAL_FIELDS = ("kind", "label", "status", "revoked_at", "revoked_reason", "replaced_by_id")


class CardError(ValueError):
    """A card operation refused; the message is shown to the person."""


def card_label(uid: str) -> str:
    """What staff see of a card: its last four hex digits (enough to tell two cards of a member apart)."""
    return "…" + uid[-4:]


def card_hash(uid: str) -> tuple[str, str]:
    """The stored hash and the masked label of a UID as typed; raises :class:`CardError` if malformed."""
    try:
        normal = normalise_card_uid(uid)
    except CredentialValueError:
        raise CardError(t("cards.bad_uid")) from None
    return credential_hash(key_bytes(current_app.config, "CREDENTIAL_KEY"), "card", normal), card_label(
        normal
    )


def bind_card(s: Session, member: Member, uid: str, *, reason: str | None = None) -> Credential:
    """Add an active card credential for ``member`` (audited); refuses a card active on anyone."""
    value_hash, label = card_hash(uid)
    taken = s.scalar(
        select(Credential.id).where(
            Credential.kind == "card", Credential.value_hash == value_hash, Credential.status == "active"
        )
    )
    if taken is not None:
        raise CardError(t("cards.in_use"))
    row = Credential(
        member_id=member.id,
        kind="card",
        value_hash=value_hash,
        label=label,
        issued_by=_uid(),
        issued_at=utcnow(),
    )
    s.add(row)
    s.flush()
    audit.record(
        s,
        action="card.bind",
        object_type="credential",
        object_id=row.id,
        after={"member_id": member.id, **audit.snapshot(row, CREDENTIAL_FIELDS)},
        reason=reason,
        community_id=member.community_id,
    )
    return row


def revoke_credential(s: Session, member: Member, row: Credential, reason: str) -> None:
    """Mark a credential revoked (kept as history). Badges go through ``server.qr.badges.revoke_badge``."""
    if row.status == "revoked":
        raise CardError(t("cards.already_revoked"))
    before = audit.snapshot(row, CREDENTIAL_FIELDS)
    if row.kind == "badge_qr" and row.label:
        from server.qr.badges import BadgeError, revoke_badge

        try:
            revoke_badge(s, row.label, reason=reason, revoked_by=_uid())
        except BadgeError:  # a badge credential without a QrBadge row: revoke the credential itself
            _revoke_row(row, reason)
    else:
        _revoke_row(row, reason)
    s.flush()
    audit.record(
        s,
        action="credential.revoke",
        object_type="credential",
        object_id=row.id,
        before=before,
        after=audit.snapshot(row, CREDENTIAL_FIELDS),
        reason=reason,
        community_id=member.community_id,
    )


def _revoke_row(row: Credential, reason: str) -> None:
    row.status, row.revoked_at, row.revoked_by, row.revoked_reason = "revoked", utcnow(), _uid(), reason


def _uid() -> int | None:
    return g.user.id if g.get("user") is not None else None


def _credential(s: Session, member: Member, credential_id: int) -> Credential:
    """The member's credential (404 if it belongs to someone else: the member is already scope-checked)."""
    row = s.scalar(
        select(Credential).where(Credential.id == credential_id, Credential.member_id == member.id)
    )
    if row is None:
        abort(404)
    return row


def _back(member: Member) -> Any:
    return redirect(url_for("web_cards.history", member_id=member.id))


@bp.get("/members/<int:member_id>/cards")
def history(member_id: int) -> Any:
    scope = current_scope()
    return _history(scope.get_or_404(db(), Member, member_id), scope)


def _history(member: Member, scope: Any, refused: tuple[str, int | None, Any] | None = None) -> Any:
    """The page; after a refused form (its action, its credential, the form), with its errors (400)."""
    s = db()
    rows = list(
        s.scalars(select(Credential).where(Credential.member_id == member.id).order_by(Credential.id.desc()))
    )
    labels = {r.id: r.label for r in rows}
    user_ids = {u for r in rows for u in (r.issued_by, r.revoked_by) if u}
    names = dict(s.execute(select(User.id, User.display_name).where(User.id.in_(user_ids))).tuples().all())

    def form_for(action: str, credential_id: int | None = None) -> Any:
        if refused is not None and refused[:2] == (action, credential_id):
            return refused[2]
        if action == "revoke":
            return RevokeForm(formdata=None)
        cls = BindCardForm if action == "bind" else ReplaceCardForm
        return cls(formdata=None, read_uid=card_hash)

    page = render_template(
        "cards/history.html",
        member=member,
        rows=rows,
        labels=labels,
        names=names,
        can_write=scope.can_write,
        form_for=form_for,
    )
    return (page, 400) if refused is not None else page


@bp.post("/members/<int:member_id>/cards")
def bind(member_id: int) -> Any:
    scope = require_write()
    s = db()
    member = scope.get_or_404(s, Member, member_id)
    form = BindCardForm(read_uid=card_hash)
    if form.validate():
        try:
            row = bind_card(s, member, form.uid.data, reason=form.reason.data or None)
        except CardError as exc:
            s.rollback()
            form.add_error(str(exc), "uid")
        else:
            s.commit()
            flash(t("cards.bound", label=row.label), "ok")
            return _back(member)
    return _history(member, scope, ("bind", None, form))


@bp.post("/members/<int:member_id>/cards/<int:credential_id>/revoke")
def revoke(member_id: int, credential_id: int) -> Any:
    scope = require_write()
    s = db()
    member = scope.get_or_404(s, Member, member_id)
    row = _credential(s, member, credential_id)
    form = RevokeForm()
    if form.validate():
        try:
            revoke_credential(s, member, row, form.reason.data)
        except CardError as exc:
            s.rollback()
            form.add_error(str(exc), "reason")
        else:
            s.commit()
            flash(t("cards.revoked", label=row.label or row.kind), "ok")
            return _back(member)
    return _history(member, scope, ("revoke", credential_id, form))


@bp.post("/members/<int:member_id>/cards/<int:credential_id>/replace")
def replace(member_id: int, credential_id: int) -> Any:
    """Revoke a (lost, broken) card and bind its successor in one transaction."""
    scope = require_write()
    s = db()
    member = scope.get_or_404(s, Member, member_id)
    old = _credential(s, member, credential_id)
    form = ReplaceCardForm(read_uid=card_hash)
    if form.validate():
        try:
            if old.kind != "card":
                raise CardError(t("cards.bad_uid"))
            revoke_credential(s, member, old, form.reason.data)
            new = bind_card(s, member, form.uid.data, reason=form.reason.data)
            old.replaced_by_id = new.id
        except CardError as exc:
            s.rollback()
            form.add_error(str(exc), "uid")
        else:
            s.commit()
            flash(t("cards.replaced", old=old.label, new=new.label), "ok")
            return _back(member)
    return _history(member, scope, ("replace", credential_id, form))
