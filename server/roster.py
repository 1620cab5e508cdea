"""The roster a kiosk keeps for offline recognition: credential hash → member id, masked name, unit.

Which members: those reporting to the kiosk's community plus the members of units paired with it
(双报到), active members with active credentials only. Names are masked here (:func:`protocol.masking.
mask_name`), so an unmasked name never leaves the server for a kiosk.

Which credentials: card, ID card, static badge QR (sent as kind ``qr``) and PIN. Rotating phone QR codes
are not in the roster — they are verified by signature. **PIN verifiers are included**: a
``pin`` credential's ``value_hash`` is :func:`protocol.hashing.pin_verifier` (PBKDF2 of the PIN, salted
per member with the credential key), never the argon2 hash the web app keeps in ``members.pin_hash``.
Without it a member who forgot the card could not check in while the kiosk is offline; with it, whoever
steals a kiosk *and* its credential key can brute-force that member's PIN in hours — the trade-off is
written out in ``pin_verifier``'s docstring, and PIN taps carry low trust.

Presence (protocol 2): the heartbeat view adds which roster members have a session open where
(:mod:`server.presence`) for kiosks that read it.

QR material: every delta carries the complete set of published QR public keys and revoked
badge serials (:func:`server.qr.roster.qr_roster_material`), so a kiosk verifies codes offline with
what the server publishes now.

Cursor (opaque to the kiosk, ``r1.<full>.<since>`` in microseconds since the epoch):

* incremental: every credential whose row or whose member's row changed after ``since``
  (``updated_at``, bumped by the ORM on every update) is sent as an upsert if it is still in scope,
  else as a removal. ``since`` is set to "now minus :data:`CURSOR_LAG`", so a transaction that was
  still committing when the cursor was made is picked up by the next heartbeat (upserts are idempotent).
* full resync: when the kiosk has no cursor (first start, ``resync_roster`` command), when the cursor is
  unreadable, when more changed than fits one page, and every :data:`FULL_RESYNC_EVERY` — which also
  carries changes that bump no ``updated_at`` (a unit renamed, a unit paired or unpaired). Pages of
  :data:`protocol.messages.heartbeat.MAX_ROSTER_PAGE` entries ordered by credential id; the first says
  ``full_resync``, all but the last say ``more`` (cursor ``r1f.<full>.<after id>``).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import false, or_, select
from sqlalchemy.orm import Session

from protocol.masking import mask_name
from protocol.messages import RosterDelta, RosterEntry
from protocol.messages.heartbeat import MAX_ROSTER_PAGE
from server.models import Credential, Kiosk, Member, Unit, UnitCommunity
from server.qr.roster import qr_roster_material

logger = logging.getLogger(__name__)

CURSOR_LAG = timedelta(seconds=60)
FULL_RESYNC_EVERY = timedelta(hours=24)
#: Credential kind in the database → kind on the wire (phone QR is absent on purpose, see above).
ROSTER_KINDS = {"card": "card", "id_card": "id_card", "badge_qr": "qr", "pin": "pin"}

_CURSOR = re.compile(r"r1\.(\d{1,20})\.(\d{1,20})")
_FULL_CURSOR = re.compile(r"r1f\.(\d{1,20})\.(\d{1,20})")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _us(value: datetime) -> int:
    return (value - _EPOCH) // timedelta(microseconds=1)


def _at(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def _columns() -> tuple[Any, ...]:
    return (
        Credential.id,
        Credential.kind,
        Credential.value_hash,
        Credential.status,
        Member.id.label("member_id"),
        Member.name,
        Member.status.label("member_status"),
        Member.community_id,
        Member.unit_id,
        Unit.name.label("unit_name"),
    )


def _base() -> Any:
    return (
        select(*_columns())
        .join(Member, Member.id == Credential.member_id)
        .join(Unit, Unit.id == Member.unit_id)
    )


def _paired_units(db: Session, community_id: int) -> set[int]:
    return set(db.scalars(select(UnitCommunity.unit_id).where(UnitCommunity.community_id == community_id)))


@dataclass(frozen=True, slots=True)
class RosterScope:
    """Whose credentials a kiosk of ``community_id`` carries: the members reporting to that community and
    the members of units paired with it. The one definition, used for the roster itself, for bindings
    made at a kiosk and by ingest (a tap of a member outside it is flagged ``outside_roster``)."""

    community_id: int
    paired_units: frozenset[int]

    def covers(self, community_id: int, unit_id: int) -> bool:
        return community_id == self.community_id or unit_id in self.paired_units

    def clause(self) -> Any:
        """:meth:`covers` as a SQL condition on ``Member``."""
        paired = Member.unit_id.in_(self.paired_units) if self.paired_units else false()
        return or_(Member.community_id == self.community_id, paired)


def roster_scope(db: Session, community_id: int) -> RosterScope:
    """The :class:`RosterScope` of the kiosks of ``community_id``."""
    return RosterScope(community_id, frozenset(_paired_units(db, community_id)))


def member_in_scope(db: Session, kiosk: Kiosk, member: Member) -> bool:
    """Is ``member`` someone this kiosk's roster carries (its community, or a unit paired with it)?
    Staff at a kiosk may bind cards only for them (server/api/bindings.py)."""
    return roster_scope(db, kiosk.community_id).covers(member.community_id, member.unit_id)


def _in_scope(row: Any, scope: RosterScope) -> bool:
    return (
        row.status == "active"
        and row.member_status == "active"
        and row.kind in ROSTER_KINDS
        and scope.covers(row.community_id, row.unit_id)
    )


def _entry(row: Any) -> RosterEntry:
    return RosterEntry(
        credential_hash=row.value_hash,
        credential_kind=ROSTER_KINDS[row.kind],
        member_id=row.member_id,
        masked_name=(mask_name(row.name) or "*")[:32],
        unit_name=(row.unit_name or "-")[:100],
    )


def _qr_fields(db: Session, now: datetime) -> dict[str, Any]:
    """QR public keys and revoked badge serials, complete sets on every page.

    Always sent rather than only when changed: the server keeps no per-kiosk copy to compare with, the
    sets are small (a few keys, revoked badges of published keys only), and a kiosk that lost its QR
    store catches up on the very next heartbeat.
    """
    keys, revoked = qr_roster_material(db, now)
    return {"qr_public_keys": keys, "revoked_badges": revoked}


def _full_page(
    db: Session, kiosk: Kiosk, full_us: int, after_id: int, page: int, now: datetime
) -> RosterDelta:
    scope = roster_scope(db, kiosk.community_id).clause()
    rows = db.execute(
        _base()
        .where(
            Credential.id > after_id,
            Credential.status == "active",
            Credential.kind.in_(ROSTER_KINDS),
            Member.status == "active",
            scope,
        )
        .order_by(Credential.id)
        .limit(page + 1)
    ).all()
    more = len(rows) > page
    rows = rows[:page]
    # After the last page, "since" is the resync's start minus the lag: edits made while paging come next.
    cursor = f"r1f.{full_us}.{rows[-1].id}" if more else f"r1.{full_us}.{_us(_at(full_us) - CURSOR_LAG)}"
    return RosterDelta(
        cursor=cursor,
        full_resync=after_id == 0,
        more=more,
        upserts=[_entry(r) for r in rows],
        removals=[],
        **_qr_fields(db, now),
    )


def roster_delta(
    db: Session, kiosk: Kiosk, cursor: str | None, *, now: datetime, page: int = MAX_ROSTER_PAGE
) -> RosterDelta:
    """What the kiosk must change in its roster, given the cursor of the last delta it applied."""
    full_match = _FULL_CURSOR.fullmatch(cursor or "")
    if full_match:
        full_us, after_id = int(full_match[1]), int(full_match[2])
        if now - _at(full_us) <= FULL_RESYNC_EVERY:
            return _full_page(db, kiosk, full_us, after_id, page, now)
    match = _CURSOR.fullmatch(cursor or "")
    if match is None or now - _at(int(match[1])) > FULL_RESYNC_EVERY or int(match[2]) > _us(now):
        return _full_page(db, kiosk, _us(now), 0, page, now)
    full_us, since = int(match[1]), _at(int(match[2]))
    changed = db.execute(
        _base()
        .where(or_(Credential.updated_at > since, Member.updated_at > since))
        .where(Credential.kind.in_(ROSTER_KINDS))
        .order_by(Credential.id)
        .limit(page + 1)
    ).all()
    if len(changed) > page:
        logger.info("roster for kiosk %s: too many changes, full resync", kiosk.kiosk_uid)
        return _full_page(db, kiosk, _us(now), 0, page, now)
    scope = roster_scope(db, kiosk.community_id)
    upserts = [_entry(r) for r in changed if _in_scope(r, scope)]
    kept = {e.credential_hash for e in upserts}
    removals = sorted({r.value_hash for r in changed if not _in_scope(r, scope)} - kept)
    return RosterDelta(
        cursor=f"r1.{full_us}.{_us(now - CURSOR_LAG)}",
        full_resync=False,
        upserts=upserts,
        removals=removals,
        **_qr_fields(db, now),
    )
