"""QR credentials: signing keys, printed badges, token uses (replay detection), one-time links.

Why these tables: the *private* half of a signing key must stay on the server (kiosks get only public keys
through the roster), so it is stored here, encrypted at rest with a key derived from the server secret
(``server/qr/keys.py``). A badge's revocation lives on its ``credentials`` row — one source of truth for
the roster — while :class:`QrBadge` remembers which serial and signing key were printed. Token uses are
remembered by fingerprint so the same code arriving from two kiosks is flagged for staff, and login links
are remembered so each works once.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, LargeBinary, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, utcnow


class QrSigningKey(Base):
    """One Ed25519 key pair. Signs phone codes from ``not_before``; published to kiosks until ``retires_at``.

    ``private_key_enc`` is AES-256-GCM ciphertext (nonce first) bound to ``key_id`` as associated data, so
    a database dump alone cannot mint codes and a ciphertext cannot be moved under another key id.
    """

    __tablename__ = "qr_signing_keys"
    id: Mapped[int] = mapped_column(primary_key=True)
    key_id: Mapped[str] = mapped_column(String(8), unique=True)
    public_key: Mapped[str] = mapped_column(String(43))
    private_key_enc: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    not_before: Mapped[datetime]
    retires_at: Mapped[datetime | None]


class QrBadge(Base):
    """A printed badge: serial → member, and the key it was signed with (retiring that key voids it)."""

    __tablename__ = "qr_badges"
    id: Mapped[int] = mapped_column(primary_key=True)
    serial: Mapped[str] = mapped_column(String(16), unique=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    credential_id: Mapped[int] = mapped_column(ForeignKey("credentials.id"), unique=True)
    key_id: Mapped[str] = mapped_column(String(8))
    issued_at: Mapped[datetime] = mapped_column(default=utcnow)


class QrTokenUse(Base):
    """One QR tap seen by the server, keyed by token fingerprint: the same phone code (or badge within
    minutes) from two kiosks is a copied picture, flagged ``qr_replayed`` / ``badge_elsewhere``."""

    __tablename__ = "qr_token_uses"
    __table_args__ = (Index("ix_qr_token_uses_fingerprint", "fingerprint", "seen_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(8))  # "phone" or "badge"
    kiosk_id: Mapped[int] = mapped_column(ForeignKey("kiosks.id"))
    event_id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True)
    qr_step: Mapped[int | None] = mapped_column(BigInteger)
    seen_at: Mapped[datetime]
    replay_of: Mapped[uuid.UUID | None] = mapped_column(Uuid)  # the earlier event at another kiosk


class QrLoginLink(Base):
    """A one-time login link for the member's phone page: signed, expiring, and usable once."""

    __tablename__ = "qr_login_links"
    id: Mapped[int] = mapped_column(primary_key=True)
    nonce: Mapped[str] = mapped_column(String(64), unique=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
