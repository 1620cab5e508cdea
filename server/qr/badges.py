"""Printed badge codes: a serial bound to a member, long-lived, revocable, lower trust than a phone code.

A badge is a ``credentials`` row of kind ``badge_qr`` whose ``value_hash`` is
``credential_hash(credential_key, "qr", "badge:<serial>")`` — the same value a kiosk computes from a
verified token (``VerifiedToken.credential_value``) — so the roster carries it like a card and its
revocation travels twice: as a roster removal and in the signed revocation list (``server/qr/roster.py``),
which a kiosk checks even before its roster is complete. :class:`~server.models.QrBadge` keeps the serial
and the signing key the badge was printed with.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from protocol.hashing import credential_hash
from protocol.qrtoken import mint_badge_token
from server.models import Credential, Member, QrBadge, QrSigningKey, utcnow

from .keys import signer, unseal

logger = logging.getLogger(__name__)
audit = logging.getLogger("baodao.audit")

_SERIAL_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: serials are read aloud and typed
SERIAL_LENGTH = 10


class BadgeError(ValueError):
    """A badge operation that cannot be done (unknown serial, already revoked, key retired)."""


@dataclass(frozen=True)
class IssuedBadge:
    badge: QrBadge
    credential: Credential
    token: str  # the text to print as a QR code


def badge_value(serial: str) -> str:
    return f"badge:{serial}"


def _new_serial(session: Session) -> str:
    while True:
        serial = "".join(secrets.choice(_SERIAL_ALPHABET) for _ in range(SERIAL_LENGTH))
        if session.scalars(select(QrBadge.id).where(QrBadge.serial == serial)).first() is None:
            return serial


def issue_badge(
    session: Session,
    member: Member,
    *,
    seal: bytes,
    credential_key: bytes,
    issued_by: int | None = None,
    now: datetime | None = None,
) -> IssuedBadge:
    """Create a badge for ``member`` signed with the current key; the caller commits and prints ``token``."""
    now = now or utcnow()
    sign = signer(session, seal, now)
    serial = _new_serial(session)
    credential = Credential(
        member_id=member.id,
        kind="badge_qr",
        value_hash=credential_hash(credential_key, "qr", badge_value(serial)),
        label=serial,
        status="active",
        issued_at=now,
        issued_by=issued_by,
    )
    session.add(credential)
    session.flush()
    badge = QrBadge(
        serial=serial, member_id=member.id, credential_id=credential.id, key_id=sign.key_id, issued_at=now
    )
    session.add(badge)
    session.flush()
    token = mint_badge_token(sign.private_key, sign.key_id, member.id, serial)
    audit.info("qr badge issued", extra={"serial": serial, "member_id": member.id, "by": issued_by})
    return IssuedBadge(badge, credential, token)


def badge_token(session: Session, serial: str, *, seal: bytes, now: datetime | None = None) -> str:
    """The printed text of an existing badge again (a reprint), signed with the key it was issued under."""
    badge = session.scalars(select(QrBadge).where(QrBadge.serial == serial)).first()
    if badge is None:
        raise BadgeError(f"no badge {serial} / 没有此胸卡")
    key = session.scalars(select(QrSigningKey).where(QrSigningKey.key_id == badge.key_id)).one()
    if key.retires_at is not None and key.retires_at <= (now or utcnow()):
        raise BadgeError(
            f"badge {serial} was signed with retired key {key.key_id}: issue a new badge / 请重新制卡"
        )
    return mint_badge_token(unseal(seal, key), key.key_id, badge.member_id, serial)


def revoke_badge(
    session: Session,
    serial: str,
    *,
    reason: str,
    revoked_by: int | None = None,
    now: datetime | None = None,
) -> QrBadge:
    """Withdraw a badge (lost, member left): kiosks refuse it after their next heartbeat."""
    now = now or utcnow()
    badge = session.scalars(select(QrBadge).where(QrBadge.serial == serial)).first()
    if badge is None:
        raise BadgeError(f"no badge {serial} / 没有此胸卡")
    credential = session.get(Credential, badge.credential_id)
    assert credential is not None  # foreign key
    if credential.status == "revoked":
        raise BadgeError(f"badge {serial} is already revoked / 此胸卡已注销")
    credential.status = "revoked"
    credential.revoked_at = now
    credential.revoked_by = revoked_by
    credential.revoked_reason = reason[:200]
    session.flush()
    audit.info("qr badge revoked", extra={"serial": serial, "by": revoked_by, "reason": reason[:200]})
    return badge
