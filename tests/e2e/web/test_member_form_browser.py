"""A member form with several mistakes typed in real headless Chromium: the page comes back with every
error next to its field and in the summary, in Chinese, what was typed still there (but the national ID),
and nothing saved; fixed, it saves. Screenshot in test-output/web/member-form-errors.png."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.models import Member
from tests.factories import TEST_PASSWORD
from tests.web_world import build_world

pytestmark = pytest.mark.browser


def test_member_form_with_several_errors(page, live_server, e2e_db_url, test_output: Path) -> None:  # type: ignore[no-untyped-def]
    engine = sa.create_engine(e2e_db_url)
    with Session(engine, expire_on_commit=False) as s:
        world = build_world(s)
        members = s.scalar(select(func.count()).select_from(Member))
    server = live_server(database_url=e2e_db_url)
    page.goto(server.url("/login"))
    page.fill("input[name=username]", "staff_a")
    page.fill("input[name=password]", TEST_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/sessions")
    page.goto(server.url("/members/new"))
    form = page.locator("#member-form")
    form.locator("input[name=member_no]").fill(world.a.member.member_no)  # taken
    form.locator("input[name=name]").fill("")  # missing
    form.locator("input[name=phone]").fill("1381234567")  # ten digits
    form.locator("input[name=national_id]").fill("110105194912310021")  # wrong check digit
    form.locator("button[type=submit]").click()
    page.locator("#member-errors li").first.wait_for()
    assert page.locator("#member-errors li").all_inner_texts() == [
        "党员编号已被使用。",
        "名称为空或过长。",
        "手机号应为 11 位中国大陆手机号码（以 13–19 开头）。",
        "身份证号格式或校验位不正确。",
    ]
    form = page.locator("#member-form")
    beside = {
        name: form.locator(f"label:has(input[name={name}]) small.error").all_inner_texts()
        for name in ("member_no", "name", "phone", "national_id")
    }
    assert beside == {
        "member_no": ["党员编号已被使用。"],
        "name": ["名称为空或过长。"],
        "phone": ["手机号应为 11 位中国大陆手机号码（以 13–19 开头）。"],
        "national_id": ["身份证号格式或校验位不正确。"],
    }
    assert form.locator("input[name=member_no]").input_value() == world.a.member.member_no
    assert form.locator("input[name=phone]").input_value() == "1381234567"
    assert form.locator("input[name=national_id]").input_value() == ""
    assert form.locator("input[name=phone]").get_attribute("aria-invalid") == "true"
    shots = test_output / "web"
    shots.mkdir(exist_ok=True)
    page.screenshot(path=str(shots / "member-form-errors.png"), full_page=True)
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(Member)) == members
    form.locator("input[name=member_no]").fill("M-7001")
    form.locator("input[name=name]").fill("新党员")
    form.locator("input[name=phone]").fill("138 1234 5679")
    form.locator("button[type=submit]").click()
    page.wait_for_url("**/members/*")
    with Session(engine) as s:
        saved = s.scalar(select(Member).where(Member.member_no == "M-7001"))
        assert saved is not None and saved.phone == "13812345679" and saved.name == "新党员"
    engine.dispose()
