"""The review queue's pager total (two summed counts) equals the queue as defined, in every scope and filter.

The page counts its queue in two halves (``review.queue_count``) instead of ``count(*)`` over the rows'
query; this checks that total against the definition — review statuses, or an open/closed session with a
tap at either end carrying a configured review flag (``DEFAULT_REVIEW_FLAGS``) — computed here in Python from the stored rows.
"""

from __future__ import annotations

import re

from sqlalchemy import select

from protocol.flags import DEFAULT_REVIEW_FLAGS, parse_flags
from server.models import ServiceSession, TapEvent, utcnow
from server.sessions.store import recompute_sessions
from tests.factories import make_member, make_tap, utc, web_session

TOTAL_RE = re.compile(r"共 (\d+) 条")


def _queue_ids(s, member_ids: set[int] | None = None, **where) -> set[int]:  # type: ignore[no-untyped-def]
    flags = dict(s.execute(select(TapEvent.event_id, TapEvent.flags)).tuples().all())
    ids = set()
    for row in s.scalars(select(ServiceSession)):
        if any(getattr(row, k) != v for k, v in where.items()):
            continue
        if member_ids is not None and row.member_id not in member_ids:
            continue
        taps = [flags.get(e) or "" for e in (row.check_in_event_id, row.check_out_event_id) if e]
        flagged = any(e.flag in DEFAULT_REVIEW_FLAGS for t in taps for e in parse_flags(t))
        if row.status in ("needs_review", "auto_closed") or (row.status in ("open", "closed") and flagged):
            ids.add(row.id)
    return ids


def _total(client, query: str = "") -> int:  # type: ignore[no-untyped-def]
    page = client.get(f"/review{query}").get_data(as_text=True)
    match = TOTAL_RE.search(page)
    assert match, page[:500]
    return int(match.group(1))


def test_pager_total_matches_the_queue_definition(client, db_session, world) -> None:
    a = world.a
    other = make_member(db_session, a.unit, a.community, name="甲方党员二")
    day = 5
    # both ends flagged (counted once), only the check-out flagged, flags that do not queue, no flag
    for flag_in, flag_out in (
        ("gap", "clock_drift,gap"),
        (None, "clock_drift"),
        ("reader_retry", "unknown_member:9"),
        (None, None),
    ):
        make_tap(db_session, a.kiosk, other, utc(2025, 3, day, 1, 0), direction="in", flags=flag_in)
        make_tap(db_session, a.kiosk, other, utc(2025, 3, day, 3, 0), direction="out", flags=flag_out)
        day += 1
    recompute_sessions(db_session, [other.id], now=utcnow())
    db_session.commit()

    both_ends = _queue_ids(db_session, {other.id}, status="closed")
    assert len(both_ends) == 2  # the precondition: two closed sessions queued only by their flags

    web_session(client, world.users["admin"])
    assert _total(client) == len(_queue_ids(db_session))
    assert _total(client, "?status=closed") == len(_queue_ids(db_session, status="closed"))
    assert _total(client, "?status=auto_closed") == len(_queue_ids(db_session, status="auto_closed"))
    assert _total(client, f"?centre_id={world.b.centre.id}") == len(
        _queue_ids(db_session, centre_id=world.b.centre.id)
    )
    assert _total(client, f"?member={other.member_no}") == len(_queue_ids(db_session, {other.id}))

    web_session(client, world.users["staff_a"])
    assert _total(client) == len(_queue_ids(db_session, community_id=a.community.id))
    assert _total(client, f"?member={world.b.member.member_no}") == 0

    web_session(client, world.users["sec_a"])
    assert _total(client) == len(_queue_ids(db_session, unit_id=a.unit.id))


def test_member_page_links_to_cards_and_timeline(client, world) -> None:
    web_session(client, world.users["staff_a"])
    member_id = world.a.member.id
    page = client.get(f"/members/{member_id}").get_data(as_text=True)
    assert f'href="/members/{member_id}/cards"' in page
    assert f'href="/members/{member_id}/timeline"' in page
    assert client.get(f"/members/{member_id}/cards").status_code == 200
