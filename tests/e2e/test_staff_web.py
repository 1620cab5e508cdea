"""The staff app in real headless Chromium against a real server process: sign-in, review approve and
adjust with a reason, CSV import with an error. Screenshots go to test-output/web/."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.models import AuditRecord, Correction, ServiceSession
from tests.factories import TEST_PASSWORD
from tests.web_world import build_world

pytestmark = pytest.mark.browser


@pytest.fixture
def staff_site(live_server, e2e_db_url):  # type: ignore[no-untyped-def]
    engine = sa.create_engine(e2e_db_url)
    with Session(engine, expire_on_commit=False) as s:
        world = build_world(s)
    server = live_server(database_url=e2e_db_url)
    yield server, world, engine
    engine.dispose()


@pytest.fixture
def shots(test_output: Path) -> Path:
    folder = test_output / "web"
    folder.mkdir(exist_ok=True)
    return folder


def _login(page, server, username: str, password: str = TEST_PASSWORD) -> None:  # type: ignore[no-untyped-def]
    page.goto(server.url("/login"))
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")


def test_login_wrong_then_right(page, staff_site, shots) -> None:  # type: ignore[no-untyped-def]
    server, _world, _engine = staff_site
    _login(page, server, "staff_a", "wrong password")
    assert "用户名或密码错误" in page.inner_text("[role=alert]")
    page.screenshot(path=str(shots / "login-error.png"))
    _login(page, server, "staff_a")
    page.wait_for_url("**/sessions")
    assert "甲方党员" in page.inner_text("main") and "乙方党员" not in page.inner_text("main")
    page.screenshot(path=str(shots / "sessions-list.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(shots / "sessions-list-phone.png"), full_page=True)
    page.click("#logout")
    page.wait_for_url("**/login")


def test_review_approve_and_adjust_with_reason(page, staff_site, shots) -> None:  # type: ignore[no-untyped-def]
    server, world, engine = staff_site
    _login(page, server, "staff_a")
    page.wait_for_url("**/sessions")
    page.goto(server.url(f"/review/{world.a.closed_session_id}"))
    page.fill("#approve-form input[name=reason]", "签到签退正常")
    page.click("#approve-form button[type=submit]")
    page.wait_for_url("**/review")
    assert "已保存" in page.inner_text(".flash")
    page.screenshot(path=str(shots / "review-queue-after-approve.png"), full_page=True)

    page.click(f'tr[data-session="{world.a.auto_closed_session_id}"] a')
    page.fill("#adjust-form input[name=started_at]", "2025-03-04T09:00")
    page.fill("#adjust-form input[name=ended_at]", "2025-03-04T10:45")
    page.fill("#adjust-form input[name=reason]", "忘记签退,按登记表补正")
    page.screenshot(path=str(shots / "review-adjust-form.png"), full_page=True)
    page.click("#adjust-form button[type=submit]")
    page.wait_for_url("**/review")
    assert "已保存" in page.inner_text(".flash")
    assert f'data-session="{world.a.auto_closed_session_id}"' not in page.content()

    with Session(engine) as s:
        statuses = dict(s.execute(select(ServiceSession.id, ServiceSession.status)).tuples().all())
        minutes = s.get(ServiceSession, world.a.auto_closed_session_id).credited_minutes
        actions = sorted(s.scalars(select(Correction.action)))
        audited = sorted(s.scalars(select(AuditRecord.action)))
    assert statuses[world.a.closed_session_id] == "approved"
    assert statuses[world.a.auto_closed_session_id] == "adjusted" and minutes == 105
    assert actions == ["adjust", "approve"] and audited == ["session.adjust", "session.approve"]


def test_csv_import_shows_line_numbered_error(page, staff_site, shots, tmp_path) -> None:  # type: ignore[no-untyped-def]
    server, world, _engine = staff_site
    csv_path = tmp_path / "党员名单.csv"
    csv_path.write_bytes(
        (
            "党员编号,姓名,单位编码,社区编码,手机号\n"
            f"E0001,周明,{world.a.unit.code},,13700001111\n"
            f"E0002,吴亮,NO-SUCH-UNIT,,\n"
        ).encode("gb18030")
    )
    _login(page, server, "staff_a")
    page.wait_for_url("**/sessions")
    page.goto(server.url("/import"))
    page.set_input_files("input[type=file]", str(csv_path))
    page.click("#upload-form button[type=submit]")
    errors = page.inner_text("#import-errors")
    assert "3" in errors and "NO-SUCH-UNIT" in errors
    assert page.locator("#apply-form").count() == 0
    page.screenshot(path=str(shots / "import-error.png"), full_page=True)

    csv_path.write_bytes(f"党员编号,姓名,单位编码\nE0001,周明,{world.a.unit.code}\n".encode())
    page.set_input_files("input[type=file]", str(csv_path))
    page.click("#upload-form button[type=submit]")
    page.click("#apply-form button[type=submit]")
    assert "导入完成" in page.inner_text("#import-done")
    page.screenshot(path=str(shots / "import-done.png"), full_page=True)
