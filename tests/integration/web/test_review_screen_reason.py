"""A session whose kiosk screen said something the record does not reaches the review queue, with the
screen's words as its reason (protocol.sessionrules.ScreenReason → ``reason.screen_*`` texts)."""

from __future__ import annotations

from sqlalchemy import select

from server.models import ServiceSession, utcnow
from server.sessions.store import recompute_sessions
from tests.factories import make_tap, utc, web_session


def test_the_queue_shows_what_the_kiosk_screen_said(client, db_session, world) -> None:
    side = world.a
    # 2025-03-06 09:00 local: the kiosk (unaware of anything else) showed "签退成功，本次服务 9 分钟", but
    # nothing was open on the server: the tap opens a session, which goes to review
    tap = make_tap(
        db_session, side.kiosk, side.member, utc(2025, 3, 6, 1, 0), direction="out", reason="shown:out:9"
    )
    db_session.flush()
    recompute_sessions(db_session, [side.member.id], now=utcnow())
    db_session.commit()
    row = db_session.scalars(
        select(ServiceSession).where(ServiceSession.check_in_event_id == tap.event_id)
    ).one()
    assert (row.status, row.reason, row.credited_minutes) == ("needs_review", "screen_out", 0)
    web_session(client, world.users["staff_a"])
    page = client.get("/review").get_data(as_text=True)
    assert f'data-session="{row.id}"' in page
    assert "终端显示：签退成功" in page
