"""The fleet page and a report with its chart in real headless Chromium against a real server process.
Screenshots go to test-output/web/."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from server.models import Kiosk
from tests.factories import TEST_PASSWORD
from tests.web_world import build_world

pytestmark = pytest.mark.browser


@pytest.fixture
def site(live_server, e2e_db_url):  # type: ignore[no-untyped-def]
    engine = sa.create_engine(e2e_db_url)
    with Session(engine, expire_on_commit=False) as s:
        world = build_world(s)
        kiosk = s.get(Kiosk, world.a.kiosk.id)
        kiosk.last_seen_at, kiosk.clock_offset_ms, kiosk.software_version = datetime.now(UTC), 95_000, "0.3.1"
        kiosk.health = {
            "readers": [{"reader_id": "pcsc0", "driver": "pcsc", "state": "ready"}],
            "camera": {"state": "ready"},
            "outbox_depth": 3,
            "oldest_unsynced_age_s": 42,
        }
        s.commit()
    yield live_server(database_url=e2e_db_url), world
    engine.dispose()


@pytest.fixture
def shots(test_output: Path) -> Path:
    folder = test_output / "web"
    folder.mkdir(exist_ok=True)
    return folder


def _login(page, server, username: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(server.url("/login"))
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", TEST_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/sessions")


def test_fleet_page_shows_health_and_alerts(page, site, shots) -> None:  # type: ignore[no-untyped-def]
    server, world = site
    _login(page, server, "admin1")
    page.click("nav >> text=终端管理")
    page.wait_for_url("**/fleet/")
    row = page.locator(f"tr[data-kiosk='{world.a.kiosk.id}']")
    assert "在线" in row.inner_text() and "0.3.1" in row.inner_text()
    assert row.locator("[data-alert=clock]").is_visible()
    other = page.locator(f"tr[data-kiosk='{world.b.kiosk.id}']")
    assert "从未连接" in other.inner_text()
    page.screenshot(path=str(shots / "fleet.png"), full_page=True)
    row.locator("a").click()
    page.wait_for_url(f"**/fleet/{world.a.kiosk.id}")
    page.fill("textarea[name=body]", '{"debounce_seconds": 30}')
    page.click("text=下发配置 >> nth=-1")
    assert "已下发配置版本 1" in page.inner_text("[role=status]")
    assert page.inner_text("#config-versions") == "0/1"
    page.screenshot(path=str(shots / "fleet-kiosk.png"), full_page=True)


def test_report_with_chart(page, site, shots) -> None:  # type: ignore[no-untyped-def]
    server, _world = site
    _login(page, server, "staff_a")
    page.goto(server.url("/reports/hours?group=unit&year=2025&month=3"))
    chart = page.locator("#chart-top svg")
    assert chart.is_visible()
    box = chart.bounding_box()
    assert box is not None and box["width"] > 300 and box["height"] > 100
    bars = chart.locator("rect")
    assert bars.count() == 1 and "甲方单位: 2小时" in (bars.first.text_content() or "")
    assert "甲方单位" in page.inner_text("#report-table") and "乙方" not in page.inner_text("main")
    page.screenshot(path=str(shots / "report-hours.png"), full_page=True)
    page.click("text=服务中心活跃时段")
    assert page.locator("#chart-heat svg rect").count() == 7 * 24
    page.screenshot(path=str(shots / "report-activity.png"), full_page=True)
