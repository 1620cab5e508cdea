"""Heartbeat: health stored; roster delta, config and commands out; command results back."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from protocol.messages import Presence, RosterDelta
from protocol.version import PROTOCOL_VERSION
from server.models import Credential, Kiosk, KioskCommand, KioskConfig, KioskHeartbeat
from server.roster import roster_delta
from server.sessions.queue import enqueue_members
from server.sessions.store import recompute_sessions
from tests.factories import make_card, make_centre, make_kiosk, make_member, make_tap

from .conftest import health

PATH = "/api/v1/kiosk/heartbeat"


def _beat(signed, kiosk, cursor=None, results=(), **health_kw):  # type: ignore[no-untyped-def]
    body = {
        "device_time": datetime.now(UTC).isoformat(),
        "health": health(**health_kw),
        "roster_cursor": cursor,
        "command_results": list(results),
    }
    response = signed.post(kiosk, PATH, body)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def test_health_is_stored(signed, world, db_session):
    _beat(signed, world.kiosk, outbox_depth=7, clock_offset_ms=-250)
    db_session.expire_all()
    (row,) = db_session.scalars(select(KioskHeartbeat)).all()
    assert row.outbox_depth == 7 and row.clock_offset_ms == -250
    assert row.health["readers"][0]["state"] == "ready"
    kiosk = db_session.get(Kiosk, world.kiosk.id)
    assert kiosk.clock_offset_ms == -250 and kiosk.last_seen_at is not None


def test_roster_full_then_incremental(signed, world, db_session):
    first = _beat(signed, world.kiosk)["roster"]
    assert first["full_resync"] and not first["more"]
    entries = {e["credential_hash"]: e for e in first["upserts"]}
    mine = entries[world.card.value_hash]
    assert mine["member_id"] == world.member.id and mine["credential_kind"] == "card"
    assert mine["masked_name"] != world.member.name and "*" in mine["masked_name"]
    quiet = _beat(signed, world.kiosk, cursor=first["cursor"])["roster"]
    assert not quiet["full_resync"]

    card = db_session.get(Credential, world.card.id)
    card.status, card.revoked_at, card.revoked_reason = "revoked", datetime.now(UTC), "lost"
    from server.models import Community

    newcomer = make_member(db_session, community=db_session.get(Community, world.centre.community_id))
    new_card, _ = make_card(db_session, newcomer)
    db_session.commit()
    delta = _beat(signed, world.kiosk, cursor=quiet["cursor"])["roster"]
    assert not delta["full_resync"]
    assert world.card.value_hash in delta["removals"]
    assert new_card.value_hash in {e["credential_hash"] for e in delta["upserts"]}


def test_roster_pages_a_full_resync(world, db_session):
    for _ in range(4):
        make_card(db_session, world.member)
    db_session.commit()
    kiosk = db_session.get(Kiosk, world.kiosk.id)
    now = datetime.now(UTC)
    seen, cursor, pages = set(), None, 0
    while True:
        delta = roster_delta(db_session, kiosk, cursor, now=now, page=2)
        assert delta.full_resync == (pages == 0)
        seen |= {e.credential_hash for e in delta.upserts}
        cursor, pages = delta.cursor, pages + 1
        if not delta.more:
            break
    assert pages == 3 and len(seen) == 5


def test_commands_are_delivered_until_acknowledged(signed, world, db_session):
    db_session.add(KioskCommand(kiosk_id=world.kiosk.id, name="lock_screen", args={}))
    db_session.add(KioskCommand(kiosk_id=world.kiosk.id, name="show_message", args={"text": "今日闭馆"}))
    db_session.commit()
    first = _beat(signed, world.kiosk)["commands"]
    assert [c["name"] for c in first] == ["lock_screen", "show_message"]
    assert first[1]["args"]["text"] == "今日闭馆"
    resent = _beat(signed, world.kiosk)["commands"]  # the response might have been lost: send again
    assert [c["command_id"] for c in resent] == [c["command_id"] for c in first]
    now = datetime.now(UTC).isoformat()
    results = [
        {"command_id": first[0]["command_id"], "name": "lock_screen", "ok": True, "completed_at": now},
        {
            "command_id": first[1]["command_id"],
            "name": "show_message",
            "ok": False,
            "detail": "no screen",
            "completed_at": now,
        },
    ]
    after = _beat(signed, world.kiosk, results=results)["commands"]
    assert after == []
    db_session.expire_all()
    rows = db_session.scalars(select(KioskCommand).order_by(KioskCommand.id)).all()
    assert [r.status for r in rows] == ["done", "failed"]
    assert rows[1].result["detail"] == "no screen" and rows[0].completed_at is not None


def test_config_is_sent_until_applied(signed, world, db_session):
    db_session.add(KioskConfig(kiosk_id=world.kiosk.id, version=3, body={"debounce_s": 30}))
    db_session.get(Kiosk, world.kiosk.id).desired_config_version = 3
    db_session.commit()
    pending = _beat(signed, world.kiosk)
    assert pending["desired_config_version"] == 3 and pending["config"] == {"debounce_s": 30}
    applied = _beat(signed, world.kiosk, config_version=3, applied_config_version=3)
    assert applied["config"] is None


def test_presence_goes_only_to_kiosks_that_read_it(signed, world, db_session):
    """A protocol-1 kiosk's closed RosterDelta would refuse a ``presence`` field, even ``null``."""
    roster = _beat(signed, world.kiosk, protocol_version=1)["roster"]
    assert "presence" not in roster
    assert RosterDelta.model_validate_json(json.dumps(roster)).presence is None
    roster = _beat(signed, world.kiosk, protocol_version=PROTOCOL_VERSION)["roster"]
    assert roster["presence"] == {
        "centre_id": world.centre.id,
        "as_of": roster["presence"]["as_of"],
        "members": [],
    }


def test_presence_names_the_centre_where_a_member_is_open(signed, world, db_session):
    from server.models import Community

    community = db_session.get(Community, world.centre.community_id)
    other = make_centre(db_session, community, name="西街党群服务中心", closes_at=None)
    there = make_kiosk(db_session, other)
    now = datetime.now(UTC)
    checked_in = make_tap(db_session, there, world.member, now - timedelta(minutes=10))
    db_session.flush()
    recompute_sessions(db_session, [world.member.id], now=now)
    db_session.commit()
    presence = Presence.model_validate_json(json.dumps(_beat(signed, world.kiosk)["roster"]["presence"]))
    (member,) = presence.members
    assert member.member_id == world.member.id and member.last_tap_at == checked_in.effective_time
    assert member.open is not None and member.last_toggle_here is None
    assert (member.open.centre_id, member.open.centre_name) == (other.id, "西街党群服务中心")
    assert member.open.started_at == checked_in.effective_time
    assert member.open.until == checked_in.effective_time + timedelta(minutes=other.max_session_minutes)

    # a tap still waiting for its recompute is not reflected: last_tap_at stays where the sessions are
    make_tap(db_session, there, world.member, now - timedelta(minutes=2))
    enqueue_members(db_session, {world.member.id: now - timedelta(minutes=2)}, now=now)
    db_session.commit()
    presence = Presence.model_validate_json(json.dumps(_beat(signed, world.kiosk)["roster"]["presence"]))
    (member,) = presence.members
    assert member.last_tap_at == checked_in.effective_time and member.open is not None


def test_presence_counts_a_session_opened_by_a_tap_the_server_resolved(signed, world, db_session):
    """A member of this kiosk's roster taps at another community's kiosk that does not carry them: the
    server resolves the card (``resolved_member_id``) and opens the session there, and this kiosk hears
    of it, so a tap here is an amber check-in rather than a check-out."""
    elsewhere = make_centre(db_session, name="南关党群服务中心", closes_at=None)  # another community
    there = make_kiosk(db_session, elsewhere)
    now = datetime.now(UTC)
    tapped = make_tap(
        db_session,
        there,
        None,
        now - timedelta(minutes=10),
        direction="unknown",
        resolved_member_id=world.member.id,
        flags="outside_roster",
    )
    db_session.flush()
    recompute_sessions(db_session, [world.member.id], now=now)
    db_session.commit()
    presence = Presence.model_validate_json(json.dumps(_beat(signed, world.kiosk)["roster"]["presence"]))
    (member,) = presence.members
    assert member.member_id == world.member.id and member.last_tap_at == tapped.effective_time
    assert member.open is not None
    assert (member.open.centre_id, member.open.centre_name) == (elsewhere.id, "南关党群服务中心")
