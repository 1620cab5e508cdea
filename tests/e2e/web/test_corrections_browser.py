"""A nonsense adjustment typed into the session page in real headless Chromium: the page comes back with
every error listed and what was typed (the reason, the times) still in the form; nothing is saved.
Screenshot in test-output/web/adjust-errors.png."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.models import Correction
from tests.factories import TEST_PASSWORD
from tests.web_world import build_world

pytestmark = pytest.mark.browser


def test_invalid_adjustment_shows_every_error_and_keeps_the_reason(
    page, live_server, e2e_db_url, test_output: Path
) -> None:  # type: ignore[no-untyped-def]
    engine = sa.create_engine(e2e_db_url)
    with Session(engine, expire_on_commit=False) as s:
        world = build_world(s)
    server = live_server(database_url=e2e_db_url)
    page.goto(server.url("/login"))
    page.fill("input[name=username]", "staff_a")
    page.fill("input[name=password]", TEST_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/sessions")
    page.goto(server.url(f"/review/{world.a.closed_session_id}"))
    form = page.locator("#adjust-form")
    assert form.locator("input[name=started_at]").input_value() == "2025-03-03T09:00"
    # 52 hours ending in 2027 on the taps of 2025-03-03.
    form.locator("input[name=started_at]").fill("2025-03-01T08:00")
    form.locator("input[name=ended_at]").fill("2027-03-03T12:00")
    form.locator("input[name=minutes]").fill("3120")
    form.locator("input[name=reason]").fill("按纸质签到表更正")
    form.locator("button[type=submit]").click()
    errors = page.locator("#adjust-errors li")
    errors.first.wait_for()
    texts = errors.all_inner_texts()
    assert [t.split("（")[0].split("：")[0].split("。")[0] for t in texts] == [
        "时间不能晚于现在",
        "签到时间不能早于 2025-03-02 21:00",
        "签退时间不能晚于 2025-03-03 23:00",
        "时长超过本中心的最长时长 720 分钟",
        "时间超出本记录刷卡的日期",
    ]
    form = page.locator("#adjust-form")
    assert form.locator("input[name=reason]").input_value() == "按纸质签到表更正"
    assert form.locator("input[name=started_at]").input_value() == "2025-03-01T08:00"
    assert form.locator("input[name=ended_at]").input_value() == "2027-03-03T12:00"
    assert form.locator("input[name=minutes]").input_value() == "3120"
    shots = test_output / "web"
    shots.mkdir(exist_ok=True)
    page.screenshot(path=str(shots / "adjust-errors.png"), full_page=True)
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Correction)) == 0
    engine.dispose()
