"""QR signing keys: Ed25519 private keys that never leave the server, encrypted at rest, rotated by key id.

Why encrypted at rest: a database backup or a read-only SQL injection should not be enough to mint codes
for every member. Each private key is sealed with AES-256-GCM under a key derived (HKDF-SHA256) from the
server secret — ``QR_KEY_SECRET`` if configured, else ``SECRET_KEY`` — with the key id as associated data.
Whoever holds both the database *and* the server secret can still mint; that is the server's trust root.

Rotation with overlap (``rotate_key``): the new key is published to kiosks at once but signs phone codes
only from ``now + lead``, so every kiosk has heard of it (next heartbeat) before a code signed with it is
shown. Old keys stay published for ``overlap`` after that — long enough for codes a phone fetched ahead of
time (``server/qr/phone.py``: a few steps) and for kiosks that sync late. A key that signed badges still
in use is *not* retired by rotation (retiring it would void printed badges); :func:`retire_key` does that
on purpose, e.g. after a compromise, and the badges must be reprinted.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from protocol.qrtoken import generate_signing_key, public_key_b64
from server.models import Credential, QrBadge, QrSigningKey, utcnow

logger = logging.getLogger(__name__)
audit = logging.getLogger("baodao.audit")

#: How long before it signs a new key is published (kiosks heartbeat every minute or so).
DEFAULT_LEAD = timedelta(minutes=10)
#: How long an old key stays published after the new one starts signing.
DEFAULT_OVERLAP = timedelta(days=2)
#: The roster carries at most this many public keys (``RosterDelta.qr_public_keys``).
MAX_PUBLISHED_KEYS = 16
_KEY_ID_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
_NONCE_BYTES = 12


class NoSigningKey(RuntimeError):
    """No key may sign at this moment (all retired, or the only key is not yet active)."""


def sealing_key(config: Mapping[str, Any]) -> bytes:
    """The 256-bit AES key that seals private keys, derived from the configured server secret."""
    raw = config.get("QR_KEY_SECRET") or config["SECRET_KEY"]
    secret = raw if isinstance(raw, bytes) else str(raw).encode()
    if len(secret) < 16:
        raise ValueError("QR_KEY_SECRET / SECRET_KEY must be at least 16 bytes")
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"baodao-qr-signing-key-v1").derive(
        secret
    )


def _seal(seal: bytes, key_id: str, private: Ed25519PrivateKey) -> bytes:
    raw = private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    nonce = os.urandom(_NONCE_BYTES)
    return nonce + AESGCM(seal).encrypt(nonce, raw, key_id.encode())


def unseal(seal: bytes, row: QrSigningKey) -> Ed25519PrivateKey:
    """Decrypt a stored private key (raises ``cryptography.exceptions.InvalidTag`` under a wrong secret)."""
    blob = bytes(row.private_key_enc)
    raw = AESGCM(seal).decrypt(blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], row.key_id.encode())
    return Ed25519PrivateKey.from_private_bytes(raw)


def _new_key_id(session: Session) -> str:
    taken = set(session.scalars(select(QrSigningKey.key_id)).all())
    while True:
        key_id = "K" + "".join(secrets.choice(_KEY_ID_ALPHABET) for _ in range(4))
        if key_id not in taken:
            return key_id


def create_key(session: Session, seal: bytes, *, not_before: datetime) -> QrSigningKey:
    private = generate_signing_key()
    key_id = _new_key_id(session)
    row = QrSigningKey(
        key_id=key_id,
        public_key=public_key_b64(private),
        private_key_enc=_seal(seal, key_id, private),
        not_before=not_before,
        retires_at=None,
    )
    session.add(row)
    session.flush()
    audit.info("qr signing key created", extra={"key_id": key_id, "not_before": not_before.isoformat()})
    return row


def _live(now: datetime) -> Any:
    return or_(QrSigningKey.retires_at.is_(None), QrSigningKey.retires_at > now)


def published_keys(session: Session, now: datetime | None = None) -> list[QrSigningKey]:
    """Keys kiosks must know now: not retired (including a new key that does not sign yet), newest first."""
    now = now or utcnow()
    rows = session.scalars(select(QrSigningKey).where(_live(now)).order_by(QrSigningKey.id.desc())).all()
    if len(rows) > MAX_PUBLISHED_KEYS:
        logger.error(
            "%d QR keys published, the roster carries %d: retire old keys", len(rows), MAX_PUBLISHED_KEYS
        )
    return list(rows[:MAX_PUBLISHED_KEYS])


def signing_key_row(session: Session, now: datetime | None = None) -> QrSigningKey:
    """The key that signs phone codes and new badges now: the newest live key past its ``not_before``."""
    now = now or utcnow()
    row = session.scalars(
        select(QrSigningKey)
        .where(_live(now), QrSigningKey.not_before <= now)
        .order_by(QrSigningKey.not_before.desc(), QrSigningKey.id.desc())
        .limit(1)
    ).first()
    if row is None:
        raise NoSigningKey("no active QR signing key / 没有可用的二维码签名密钥")
    return row


@dataclass(frozen=True)
class Signer:
    key_id: str
    private_key: Ed25519PrivateKey


def signer(session: Session, seal: bytes, now: datetime | None = None) -> Signer:
    row = signing_key_row(session, now)
    return Signer(row.key_id, unseal(seal, row))


def ensure_signing_key(session: Session, seal: bytes, now: datetime | None = None) -> QrSigningKey:
    """The current signing key, creating the first one (active at once) on a fresh installation."""
    now = now or utcnow()
    try:
        return signing_key_row(session, now)
    except NoSigningKey:
        if session.scalars(select(QrSigningKey.id).where(_live(now)).limit(1)).first() is not None:
            raise  # a rotated-in key is pending: do not mint a surprise key beside it
        return create_key(session, seal, not_before=now)


def rotate_key(
    session: Session,
    seal: bytes,
    now: datetime | None = None,
    *,
    lead: timedelta = DEFAULT_LEAD,
    overlap: timedelta = DEFAULT_OVERLAP,
) -> QrSigningKey:
    """Create the next key (signing from ``now + lead``) and schedule older keys to retire after
    ``overlap`` — except keys that signed badges still active, which stay published (see module doc)."""
    now = now or utcnow()
    new = create_key(session, seal, not_before=now + lead)
    badge_keys = set(
        session.scalars(
            select(QrBadge.key_id)
            .join(Credential, Credential.id == QrBadge.credential_id)
            .where(Credential.status == "active")
        ).all()
    )
    for row in session.scalars(select(QrSigningKey).where(QrSigningKey.id != new.id, _live(now))).all():
        if row.key_id in badge_keys:
            logger.warning("QR key %s stays published: active badges were printed with it", row.key_id)
            continue
        if row.retires_at is None or row.retires_at > new.not_before + overlap:
            row.retires_at = new.not_before + overlap
    session.flush()
    audit.info("qr signing key rotated", extra={"key_id": new.key_id})
    return new


def retire_key(session: Session, key_id: str, now: datetime | None = None) -> QrSigningKey:
    """Stop publishing ``key_id`` now: every code signed with it — printed badges included — stops working."""
    now = now or utcnow()
    row = session.scalars(select(QrSigningKey).where(QrSigningKey.key_id == key_id)).one()
    row.retires_at = now
    session.flush()
    audit.warning("qr signing key retired", extra={"key_id": key_id})
    return row
