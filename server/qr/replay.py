"""Replay detection on ingest: the same QR code arriving from two kiosks is a copied picture.

One kiosk cannot see a screenshot used at another kiosk, so the server remembers every QR tap by
fingerprint (:class:`~server.models.QrTokenUse`) and flags the later one for staff:

* phone code — fingerprint of (credential hash, step): the code was shown at two different kiosks
  (any time apart) → :attr:`~protocol.flags.TapFlag.QR_REPLAYED`;
* badge — fingerprint of the serial: the same badge at another kiosk within :data:`BADGE_ELSEWHERE_WINDOW`
  → :attr:`~protocol.flags.TapFlag.BADGE_ELSEWHERE` (a photocopied badge, or two people with one badge).

Tap events are append-only, so the flag must be on the row *before* it is inserted: the ingest's store
step calls :func:`flag_qr_replays` with a dict per QR tap just before the insert. Whichever event arrives second is
flagged and ``replay_of`` names the first, so staff see both. The fingerprint is built from event fields
(credential hash rather than member id) so it works even for an event whose member the kiosk did not know.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import MutableMapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from protocol.flags import TapFlag, join_flags
from server.models import QrTokenUse

logger = logging.getLogger(__name__)
audit = logging.getLogger("baodao.audit")

BADGE_ELSEWHERE_WINDOW = timedelta(minutes=10)
#: The flag of a second sighting, by fingerprint kind.
REPLAY_FLAGS = {"phone": TapFlag.QR_REPLAYED, "badge": TapFlag.BADGE_ELSEWHERE}


def event_fingerprint(row: MutableMapping[str, Any]) -> tuple[str, str] | None:
    """``(kind, fingerprint)`` of a QR tap row, ``None`` for anything else."""
    if str(row.get("credential_kind")) != "qr":
        return None
    if row.get("qr_step") is not None:
        basis = f"phone:{row['credential_hash']}:{int(row['qr_step'])}"
        kind = "phone"
    elif row.get("badge_serial"):
        basis, kind = f"badge:{row['badge_serial']}", "badge"
    else:
        return None
    return kind, hashlib.sha256(basis.encode()).hexdigest()[:32]


def _add_flag(row: MutableMapping[str, Any], flag: TapFlag) -> None:
    row["flags"] = join_flags([row.get("flags") or "", flag])


def flag_qr_replays(session: Session, kiosk_id: int, rows: Sequence[MutableMapping[str, Any]]) -> int:
    """Record the QR taps among ``rows`` (the ingest's insert dicts, one kiosk) and add a replay flag to
    those already seen at another kiosk. Runs in the caller's transaction; returns how many were flagged."""
    mine: list[tuple[MutableMapping[str, Any], str, str]] = []
    for row in rows:
        fp = event_fingerprint(row)
        if fp is not None:
            mine.append((row, fp[0], fp[1]))
    if not mine:
        return 0
    oldest = min(_time(row) for row, _, _ in mine) - BADGE_ELSEWHERE_WINDOW
    earlier = session.scalars(
        select(QrTokenUse)
        .where(
            QrTokenUse.fingerprint.in_({fp for _, _, fp in mine}),
            QrTokenUse.kiosk_id != kiosk_id,
            or_(QrTokenUse.kind == "phone", QrTokenUse.seen_at >= oldest),
        )
        .order_by(QrTokenUse.seen_at)
    ).all()
    by_fp: dict[str, list[QrTokenUse]] = {}
    for use in earlier:
        by_fp.setdefault(use.fingerprint, []).append(use)
    flagged = 0
    for row, kind, fp in mine:
        at = _time(row)
        match = next(
            (
                u
                for u in by_fp.get(fp, [])
                if kind == "phone" or abs(u.seen_at - at) <= BADGE_ELSEWHERE_WINDOW
            ),
            None,
        )
        if match is not None:
            _add_flag(row, REPLAY_FLAGS[kind])
            flagged += 1
            audit.warning(
                "qr code seen at two kiosks",
                extra={"event_id": str(row["event_id"]), "replay_of": str(match.event_id), "kind": kind},
            )
        session.add(
            QrTokenUse(
                fingerprint=fp,
                kind=kind,
                kiosk_id=kiosk_id,
                event_id=_uuid(row["event_id"]),
                qr_step=row.get("qr_step"),
                seen_at=at,
                replay_of=None if match is None else match.event_id,
            )
        )
    session.flush()
    return flagged


def replays(session: Session, since: datetime | None = None, limit: int = 200) -> list[QrTokenUse]:
    """Flagged uses (newest first) for a staff page: ``event_id`` and ``replay_of`` are the two taps."""
    query = select(QrTokenUse).where(QrTokenUse.replay_of.is_not(None))
    if since is not None:
        query = query.where(QrTokenUse.seen_at >= since)
    return list(session.scalars(query.order_by(QrTokenUse.seen_at.desc()).limit(limit)).all())


def _time(row: MutableMapping[str, Any]) -> datetime:
    return row.get("effective_time") or row["device_time"]


def _uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
