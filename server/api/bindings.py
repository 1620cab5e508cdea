"""``POST /api/v1/kiosk/bindings``: card bindings staff made at a kiosk become server credentials.

At the kiosk, staff in maintenance mode read an unknown card and pick the member; the kiosk commits the
binding to its outbox, makes the card work locally at once, and uploads it here (``kiosk/sync.py``). The
server decides whether the binding stands:

* the member must exist, be active, and be in this kiosk's roster scope (its community or a unit paired
  with it) — a kiosk cannot hand out credentials for people it does not serve;
* only ``card`` and ``id_card`` can be bound (a QR badge is issued by the server, a PIN is set by staff);
* a card already *active* for another member is refused — moving a card is a decision for the staff web
  app (revoke there first), not for whoever holds a kiosk;
* the same card already active for the same member is accepted without a second credential.

Idempotent by ``binding_id``: each binding, accepted or refused, is stored in ``kiosk_bindings``, so a
re-sent binding (the answer was lost) comes back in ``duplicates`` if it was accepted and again in
``rejected`` with the same code if it was refused — never applied twice and never audited twice. Every
binding is an audit record: the kiosk, the staff reference recorded in the binding, device time.

``credential_hash`` is stored as sent: it is ``protocol.hashing.credential_hash(credential_key, kind, uid)``
computed by the kiosk with the deployment's credential key (handed out at enrolment), i.e. exactly the
``value_hash`` the server itself would store for that card. The server never sees the raw UID.

The wire messages are defined here because ``protocol/`` has none for bindings yet; they should move to
``protocol/messages/`` (the kiosk builds the same shape in ``StoredBinding.to_wire()``).
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from protocol.messages.bindings import BindingAck, BindingBatch, BindingRejection, CardBinding
from server.db import get_db
from server.models import AuditRecord, Credential, Kiosk, KioskBinding, Member
from server.roster import member_in_scope

from . import auth as kiosk_auth
from . import bp
from .errors import ApiError, parse_body

logger = logging.getLogger(__name__)
audit_log = logging.getLogger("baodao.audit")

#: The kiosk sends at most 100 per request (``Outbox.pending_bindings(100)``).
#: Credential kinds staff may bind at a kiosk (wire kind → database kind).
BINDABLE_KINDS = {"card": "card", "id_card": "id_card"}
_MAX_INT4 = 2**31 - 1

#: Rejection code → (English, Chinese) message shown to staff.
REJECTIONS: dict[str, tuple[str, str]] = {
    "unknown_member": ("no such member", "党员不存在"),
    "member_inactive": ("this member is not active", "该党员已停用"),
    "member_out_of_scope": (
        "this member is not in this kiosk's community or its paired units",
        "该党员不属于本终端所在社区或结对单位",
    ),
    "unsupported_kind": (
        "only cards and ID cards can be bound at a kiosk",
        "终端上只能绑定卡片或身份证",
    ),
    "card_bound_to_other": (
        "this card is already bound to another member; withdraw it in the staff app first",
        "此卡已绑定其他党员,请先在管理后台解除绑定",
    ),
    "binding_id_conflict": (
        "this binding id was already used by another kiosk",
        "绑定编号已被其他终端使用",
    ),
}


_AUDIT_REASONS = {"already_bound": "card already bound to this member"}


def _rejection(binding_id: uuid.UUID, code: str) -> BindingRejection:
    message, message_zh = REJECTIONS[code]
    return BindingRejection(id=binding_id, code=code, message=message, message_zh=message_zh)


def _decide(db: Session, kiosk: Kiosk, item: CardBinding) -> tuple[str | None, Credential | None]:
    """``(rejection code or None, existing active credential of the same member or None)``."""
    kind = BINDABLE_KINDS.get(str(item.credential_kind))
    if kind is None:
        return "unsupported_kind", None
    member = db.get(Member, item.member_id) if item.member_id <= _MAX_INT4 else None
    if member is None:
        return "unknown_member", None
    if member.status != "active":
        return "member_inactive", None
    if not member_in_scope(db, kiosk, member):
        return "member_out_of_scope", None
    holder = db.scalars(
        select(Credential).where(
            Credential.kind == kind,
            Credential.value_hash == item.credential_hash,
            Credential.status == "active",
        )
    ).first()
    if holder is not None and holder.member_id != member.id:
        return "card_bound_to_other", None
    return None, holder


def _audit(db: Session, kiosk: Kiosk, item: CardBinding, row: KioskBinding, now: datetime) -> None:
    accepted = row.status == "accepted"
    db.add(
        AuditRecord(
            at=now,
            user_id=None,
            action="kiosk_card_bound" if accepted else "kiosk_card_binding_rejected",
            object_type="kiosk_binding",
            object_id=str(item.binding_id),
            community_id=kiosk.community_id,
            before=None,
            after={
                "kiosk": kiosk.kiosk_uid,
                "staff_ref": item.staff_ref,
                "member_id": item.member_id,
                "credential_kind": str(item.credential_kind),
                "credential_id": row.credential_id,
                "device_time": item.device_time.isoformat(),
                "device_tz": item.device_tz,
                "code": row.code,
            },
            reason=_AUDIT_REASONS.get(row.code or "") if accepted else REJECTIONS[row.code or ""][0],
        )
    )


def apply_bindings(db: Session, kiosk: Kiosk, batch: BindingBatch, now: datetime) -> BindingAck:
    """Decide, store and audit each binding in order (the caller commits)."""
    accepted: list[uuid.UUID] = []
    duplicates: list[uuid.UUID] = []
    rejected: list[BindingRejection] = []
    uids = [item.binding_id for item in batch.bindings]
    known = {
        row.binding_uid: row
        for row in db.scalars(select(KioskBinding).where(KioskBinding.binding_uid.in_(uids))).all()
    }
    for item in batch.bindings:
        previous = known.get(item.binding_id)
        if previous is not None:
            if previous.kiosk_id != kiosk.id:
                rejected.append(_rejection(item.binding_id, "binding_id_conflict"))
            elif previous.status == "accepted":
                duplicates.append(item.binding_id)
            else:
                rejected.append(_rejection(item.binding_id, previous.code or "unknown_member"))
            continue
        code, existing = _decide(db, kiosk, item)
        credential_id = existing.id if existing is not None else None
        if code is None and existing is None:
            credential = Credential(
                member_id=item.member_id,
                kind=BINDABLE_KINDS[str(item.credential_kind)],
                value_hash=item.credential_hash,
                label=f"kiosk {kiosk.kiosk_uid}"[:64],
                status="active",
                issued_at=now,
            )
            db.add(credential)
            db.flush()
            credential_id = credential.id
        row = KioskBinding(
            binding_uid=item.binding_id,
            kiosk_id=kiosk.id,
            community_id=kiosk.community_id,
            member_id=item.member_id,
            credential_kind=str(item.credential_kind),
            credential_hash=item.credential_hash,
            credential_id=credential_id,
            staff_ref=item.staff_ref,
            device_time=item.device_time,
            device_tz=item.device_tz,
            received_at=now,
            status="accepted" if code is None else "rejected",
            code=code if code is not None else ("already_bound" if existing is not None else None),
        )
        db.add(row)
        db.flush()
        known[item.binding_id] = row
        _audit(db, kiosk, item, row, now)
        if code is None:
            accepted.append(item.binding_id)
        else:
            rejected.append(_rejection(item.binding_id, code))
            audit_log.warning("kiosk %s binding %s refused: %s", kiosk.kiosk_uid, item.binding_id, code)
    return BindingAck(accepted=accepted, duplicates=duplicates, rejected=rejected)


@bp.post("/kiosk/bindings")
def upload_bindings():  # type: ignore[no-untyped-def]
    db = get_db(current_app).session
    assert db is not None
    for attempt in (1, 2):
        kiosk = kiosk_auth.authenticate_kiosk(db)
        try:
            batch = parse_body(BindingBatch)
        except ApiError:
            db.rollback()  # nothing of a refused request stays, its nonce included
            raise
        try:
            ack = apply_bindings(db, kiosk, batch, kiosk_auth._now())
            db.commit()
        except IntegrityError:
            # Another request bound the same card or stored the same binding id between our reads and
            # our insert (a kiosk retrying while its first request was still running): decide again on
            # the committed state, which turns the race into a duplicate or a clear refusal.
            db.rollback()
            if attempt == 2:
                raise
            logger.info("binding upload from kiosk %s raced another request; retrying", kiosk.kiosk_uid)
            continue
        return current_app.response_class(ack.to_json_bytes(), status=200, mimetype="application/json")
    raise AssertionError("unreachable")
