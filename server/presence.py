"""Presence for a kiosk's heartbeat: which of its roster's members have a session open, and where.

Why: a kiosk decides offline what a tap means and tells the member at once. Without this it knew only
its own taps, so a member who checked in at centre B and came back to A was told "签退成功，本次服务 9
分钟" while the server opened a new session at A. With it the kiosk runs the server's rules
(:func:`protocol.sessionrules.step`) on the server's state plus its own later taps, and says what the
server will record.

The state comes from the stored sessions (what the engine computed from every tap it had), not from a
run of the engine per heartbeat: three indexed queries per heartbeat instead of loading a week of taps.

* ``last_tap_at``: the member's latest tap *that the stored sessions reflect*. Taps still waiting in the
  recompute queue (:mod:`server.sessions.queue`) are left out, so the kiosk replays its own such taps on
  top instead of trusting sessions that do not include them yet.
* ``open``: the member's session with no end (status open, or in review while still open), its start
  from the check-in tap and its limit from its centre's rules.
* ``last_toggle_here``: the latest check-in or check-out tap at the kiosk's centre (debounce).

Only members with a tap in the last ``quiet gap`` (the longest maximum session plus the longest debounce,
:func:`server.sessions.window.quiet_gap`) are listed: nothing of an older member's state survives, so a
kiosk treats an absent member as one with nothing open. A staff correction does not change the engine's
state (it changes credit, not roles), so sessions are read through their taps, not their corrected times.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, aliased

from protocol.messages import MemberPresence, Presence, PresenceSession
from protocol.messages.heartbeat import MAX_PRESENCE
from server.models import (
    Kiosk,
    Member,
    RecomputeQueueEntry,
    ServiceCentre,
    ServiceSession,
    TapEvent,
)
from server.roster import roster_scope
from server.sessions.store import SESSION_DIRECTIONS, SESSION_TIMES, centre_rules
from server.sessions.window import quiet_gap

logger = logging.getLogger(__name__)


def presence_for(db: Session, kiosk: Kiosk, *, now: datetime) -> Presence:
    """The complete presence of ``kiosk``'s roster members as of ``now``."""
    centres = {c.id: c for c in db.scalars(select(ServiceCentre)).all()}
    cutoff = now - quiet_gap(centre_rules(c) for c in centres.values())
    queued = aliased(RecomputeQueueEntry)
    # A tap's member is the kiosk's, or the one the server resolved for a credential the kiosk did not
    # know (server.ingest): the same choice the session store makes.
    tap_member = func.coalesce(TapEvent.member_id, TapEvent.resolved_member_id)
    last_taps = db.execute(
        select(tap_member, func.max(TapEvent.effective_time))
        .join(Member, Member.id == tap_member)
        .outerjoin(queued, queued.member_id == tap_member)
        .where(
            roster_scope(db, kiosk.community_id).clause(),
            TapEvent.direction.in_(SESSION_DIRECTIONS),
            TapEvent.effective_time >= max(cutoff, SESSION_TIMES[0]),
            TapEvent.effective_time < SESSION_TIMES[1],
            or_(queued.since.is_(None), TapEvent.effective_time < queued.since),
        )
        .group_by(tap_member)
    ).all()
    if len(last_taps) > MAX_PRESENCE:  # never a heartbeat that fails validation: keep the most recent
        logger.warning(
            "presence for kiosk %s: %d members, sending %d", kiosk.kiosk_uid, len(last_taps), MAX_PRESENCE
        )
        last_taps = sorted(last_taps, key=lambda r: r[1], reverse=True)[:MAX_PRESENCE]
    last_at = {member_id: at for member_id, at in last_taps}
    if not last_at:
        return Presence(centre_id=kiosk.centre_id, as_of=now, members=[])
    members = sorted(last_at)
    check_in = aliased(TapEvent)
    check_out = aliased(TapEvent)
    open_rows = db.execute(
        select(ServiceSession.member_id, ServiceSession.centre_id, check_in.effective_time)
        .join(check_in, check_in.event_id == ServiceSession.check_in_event_id)
        .where(
            ServiceSession.member_id.in_(members),
            ServiceSession.source == "kiosk",
            ServiceSession.ended_at.is_(None),
        )
    ).all()
    toggles = db.execute(
        select(ServiceSession.member_id, check_in.effective_time, check_out.effective_time)
        .join(check_in, check_in.event_id == ServiceSession.check_in_event_id)
        .outerjoin(check_out, check_out.event_id == ServiceSession.check_out_event_id)
        .where(
            ServiceSession.member_id.in_(members),
            ServiceSession.centre_id == kiosk.centre_id,
            ServiceSession.source == "kiosk",
            check_in.effective_time >= cutoff,
        )
    ).all()
    last_toggle: dict[int, datetime] = {}
    for member_id, started, ended in toggles:
        latest = max(t for t in (started, ended) if t is not None)
        if latest <= last_at[member_id] and (member_id not in last_toggle or latest > last_toggle[member_id]):
            last_toggle[member_id] = latest
    opened: dict[int, PresenceSession] = {}
    for member_id, centre_id, started in open_rows:
        centre = centres.get(centre_id)
        if centre is None or started > last_at[member_id]:
            continue
        until, reason = centre_rules(centre).limit(started)
        opened[member_id] = PresenceSession(
            centre_id=centre_id,
            centre_name=centre.name[:100] or "-",
            started_at=started,
            until=until,
            until_reason=reason,
        )
    logger.debug("presence for kiosk %s: %d members, %d open", kiosk.kiosk_uid, len(members), len(opened))
    return Presence(
        centre_id=kiosk.centre_id,
        as_of=now,
        members=[
            MemberPresence(
                member_id=m,
                last_tap_at=last_at[m],
                last_toggle_here=last_toggle.get(m),
                open=opened.get(m),
            )
            for m in members
        ],
    )


__all__ = ["presence_for"]
