"""What a member sees, in real headless Chromium against the real kiosk process: idle, check-in and
check-out, duplicate, unknown and withdrawn cards, offline, and the PIN keypad with its lockout."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from .conftest import confirmation_after, open_page, press_keys, sim_tap, sim_type
from .kioskproc import MEMBERS, UNKNOWN_CARD, KioskProcess

pytestmark = pytest.mark.browser

LAYOUT_JS = """() => {
  const inside = el => { const r = el.getBoundingClientRect();
    return r.width === 0 || (r.left >= 0 && r.top >= 0 && r.right <= innerWidth + 0.5 && r.bottom <= innerHeight + 0.5); };
  const visible = [...document.querySelectorAll('button, .clock, .prompt-primary, .confirm > div')]
    .filter(el => el.offsetParent !== null && !el.closest('#sim-panel'));
  return {
    overflowX: document.documentElement.scrollWidth > innerWidth,
    overflowY: document.documentElement.scrollHeight > innerHeight,
    outside: visible.filter(el => !inside(el)).map(el => el.id || el.className),
    smallTargets: [...document.querySelectorAll('button')]
      .filter(el => el.offsetParent !== null && !el.closest('#sim-panel'))
      .filter(el => { const r = el.getBoundingClientRect(); return r.height < 56 || r.width < 56; })
      .map(el => el.id || el.textContent),
  };
}"""


def _font_px(page: Any, selector: str) -> float:
    return float(
        page.evaluate(f"parseFloat(getComputedStyle(document.querySelector('{selector}')).fontSize)")
    )


@pytest.mark.parametrize("viewport", ["1080p", "10in"])
def test_idle_screen_shows_centre_time_prompt_and_no_personal_data(
    chromium: Any, kiosk: KioskProcess, shots: Path, viewport: str
) -> None:
    page = open_page(chromium, kiosk.url, viewport)
    try:
        assert page.text_content("#centre-name") == "濮阳市测试党群服务中心"
        assert page.text_content("#prompt-primary") == "请刷卡或出示二维码"
        assert page.text_content("#prompt-secondary") == "Tap your card or show your QR code"
        now = dt.datetime.now(ZoneInfo("Asia/Shanghai"))
        shown = page.text_content("#clock")
        assert shown in {(now - dt.timedelta(minutes=m)).strftime("%H:%M") for m in (0, 1)}
        assert str(now.day) in page.text_content("#date")
        assert page.get_attribute("#net", "data-online") == "false"
        assert "离线" in page.text_content("#net-text")
        body = page.text_content("#screen-idle")
        assert not any(m.name in body for m in MEMBERS.values())  # idle never shows a member
        layout = page.evaluate(LAYOUT_JS)
        assert layout == {"overflowX": False, "overflowY": False, "outside": [], "smallTargets": []}
        assert _font_px(page, ".prompt-primary") >= 30
        page.screenshot(path=str(shots / f"idle-{viewport}.png"))
        page.click("#btn-lang")
        assert page.text_content("#prompt-primary") == "Tap your card or show your QR code"
        assert page.evaluate("document.documentElement.lang") == "en"
        page.screenshot(path=str(shots / f"idle-en-{viewport}.png"))
    finally:
        page.context.close()


def test_tap_checks_in_then_out_with_masked_name_and_duration(page: Any, shots: Path) -> None:
    m = MEMBERS["in_out"]
    first = sim_tap(page, m.card)
    assert (first["kind"], first["colour"], first["head"]) == ("in", "green", "签到")
    assert (first["name"], first["unit"]) == ("张*明", "区税务局")
    assert first["sound"] == "ok"
    page.screenshot(path=str(shots / "confirm-check-in.png"))
    page.wait_for_timeout(2200)  # past the 2 s debounce of this kiosk's config
    second = sim_tap(page, m.card)
    assert (second["kind"], second["colour"], second["head"]) == ("out", "green", "签退")
    assert second["name"] == "张*明"
    assert "本次服务" in second["msg"] and "分钟" in second["msg"]
    page.screenshot(path=str(shots / "confirm-check-out.png"))
    page.wait_for_function("document.getElementById('confirm').hidden", timeout=10_000)
    assert page.evaluate("document.body.dataset.screen") == "idle"


def test_second_tap_within_debounce_is_already_checked_in(page: Any, shots: Path) -> None:
    m = MEMBERS["duplicate"]
    assert sim_tap(page, m.card)["kind"] == "in"
    dup = sim_tap(page, m.card)
    assert (dup["kind"], dup["colour"], dup["head"]) == ("duplicate", "amber", "已签到")
    assert dup["name"] == "李*" and dup["sound"] == "warn"
    page.screenshot(path=str(shots / "confirm-duplicate.png"))


def test_unknown_and_withdrawn_cards_tell_the_member_to_see_staff(
    page: Any, kiosk: KioskProcess, shots: Path
) -> None:
    unknown = confirmation_after(page, lambda: sim_type(page, f"card:{UNKNOWN_CARD}"))
    assert (unknown["kind"], unknown["colour"], unknown["head"]) == ("unknown", "amber", "请联系工作人员")
    assert unknown["name"] == "" and unknown["sound"] == "warn"
    assert (
        "未登记" in unknown["msg"] and "已记录" in unknown["msg"] and "工作人员将核实确认" in unknown["msg"]
    )
    page.screenshot(path=str(shots / "confirm-unknown.png"))
    revoked = sim_tap(page, MEMBERS["revoked"].card)
    assert (revoked["kind"], revoked["colour"]) == ("revoked", "red")
    assert "停用" in revoked["msg"]
    page.screenshot(path=str(shots / "confirm-revoked.png"))


def test_offline_kiosk_still_confirms_and_shows_its_backlog(
    chromium: Any, kiosk: KioskProcess, shots: Path
) -> None:
    page = open_page(chromium, kiosk.url, "10in")
    try:
        assert kiosk.health()["sync"]["online"] is False  # the server it is enrolled with is down
        got = sim_tap(page, MEMBERS["offline"].card)
        assert (got["kind"], got["name"]) == ("in", "赵*")
        layout = page.evaluate(LAYOUT_JS)
        assert layout["outside"] == [] and not layout["overflowX"]
        assert _font_px(page, ".confirm-name") >= 40
        page.screenshot(path=str(shots / "confirm-offline-10in.png"))
        depth = kiosk.health()["outbox"]["depth"]
        assert depth >= 1
        page.wait_for_function(
            "n => document.getElementById('net-text').textContent.includes('待上传 ' + n + ' 条')", arg=depth
        )
        assert "离线" in page.text_content("#net-text")
        page.click("#confirm")
        page.screenshot(path=str(shots / "idle-offline-backlog-10in.png"))
    finally:
        page.context.close()


@pytest.mark.parametrize("viewport", ["1080p", "10in"])
def test_long_name_and_unit_fit_the_confirmation(
    chromium: Any, kiosk: KioskProcess, shots: Path, viewport: str
) -> None:
    page = open_page(chromium, kiosk.url, viewport)
    try:
        got = sim_tap(page, MEMBERS["viewport"].card)
        assert got["name"] == "欧阳*华" and got["kind"] in ("in", "duplicate", "out")
        layout = page.evaluate(LAYOUT_JS)
        assert layout["outside"] == [] and not layout["overflowX"] and not layout["overflowY"]
        page.screenshot(path=str(shots / f"confirm-long-unit-{viewport}.png"))
    finally:
        page.context.close()


def test_pin_keypad_checks_in_and_locks_out_after_repeated_failures(page: Any, shots: Path) -> None:
    page.click("#btn-keypad")
    assert page.evaluate("document.body.dataset.screen") == "keypad"
    assert page.evaluate(LAYOUT_JS)["smallTargets"] == []
    m = MEMBERS["pin"]
    press_keys(page, m.member_no)
    assert page.text_content("#value-member") == m.member_no
    page.click("#field-pin")
    press_keys(page, m.pin)
    assert page.text_content("#value-pin") == "●" * len(m.pin)  # never the digits
    page.screenshot(path=str(shots / "keypad.png"))
    got = confirmation_after(page, lambda: page.click("#keys .key[data-key='ok']"))
    assert (got["kind"], got["head"], got["name"]) == ("in", "签到", "陈*平")
    page.wait_for_function("document.body.dataset.screen === 'idle'")

    page.click("#confirm")
    page.click("#btn-keypad")
    kinds = []
    for _ in range(3):  # this kiosk locks a member number after 3 wrong PINs
        page.click("#field-member")
        while page.text_content("#value-member"):
            page.click("#keys .key[data-key='del']")
        press_keys(page, "PY09999")
        page.click("#field-pin")
        press_keys(page, "0000")
        kinds.append(confirmation_after(page, lambda: page.click("#keys .key[data-key='ok']"))["kind"])
        page.click("#confirm")  # touching the message dismisses it
    assert kinds == ["pin_wrong", "pin_wrong", "pin_locked"]
    assert "尝试次数过多" in page.text_content("#keypad-hint")
    page.screenshot(path=str(shots / "keypad-lockout.png"))
    page.click("#field-pin")
    press_keys(page, "0000")
    again = confirmation_after(page, lambda: page.click("#keys .key[data-key='ok']"))
    assert again["kind"] == "pin_locked"  # still locked, even with another try
