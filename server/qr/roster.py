"""What a kiosk needs to verify QR codes offline, for the heartbeat's roster delta.

``qr_roster_material(session)`` returns the public keys by key id (all published keys, including one that
will start signing soon — see ``server/qr/keys.py``) and the serials of revoked badges. Badges printed
with a key that is no longer published are left out: a kiosk refuses them already (unknown key), and the
list stays well under ``MAX_REVOKED_BADGES`` for years.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from protocol.messages.heartbeat import MAX_REVOKED_BADGES
from server.models import Credential, QrBadge, utcnow

from .keys import published_keys

logger = logging.getLogger(__name__)


def qr_roster_material(session: Session, now: datetime | None = None) -> tuple[dict[str, str], list[str]]:
    """``(public_keys_by_kid, revoked_badge_serials)`` for ``RosterDelta.qr_public_keys`` / ``revoked_badges``.

    Both are complete sets (the kiosk replaces what it had); serials are sorted so the heartbeat can
    compare them cheaply and send ``None`` when nothing changed.
    """
    now = now or utcnow()
    keys = {row.key_id: row.public_key for row in published_keys(session, now)}
    if not keys:
        return {}, []
    rows = (
        session.execute(
            select(QrBadge.serial)
            .join(Credential, Credential.id == QrBadge.credential_id)
            .where(Credential.status == "revoked", QrBadge.key_id.in_(list(keys)))
            .order_by(Credential.revoked_at.desc())
            .limit(MAX_REVOKED_BADGES + 1)
        )
        .scalars()
        .all()
    )
    if len(rows) > MAX_REVOKED_BADGES:
        # Keep the most recently revoked; the oldest are likeliest thrown away. Rotating and retiring the
        # key (reprinting its badges) empties the list for good.
        logger.error("more than %d revoked badges: rotate and retire the QR key", MAX_REVOKED_BADGES)
        rows = rows[:MAX_REVOKED_BADGES]
    serials = sorted(rows)
    return keys, serials
