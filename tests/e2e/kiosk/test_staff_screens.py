"""Staff at the kiosk, in real headless Chromium: the maintenance screen (staff card and staff PIN), sync
now, card binding end to end, and remote commands (lock, message, unlock) appearing on screen."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import confirmation_after, open_page, press_keys, sim_tap, sim_type
from .kioskproc import MEMBERS, NEW_CARD, STAFF_CARD, STAFF_PIN, KioskProcess, free_port, seed_roster

pytestmark = pytest.mark.browser

HEALTH_JS = """() => Object.fromEntries([...document.querySelectorAll('#health dd')]
  .map(dd => [dd.dataset.key, dd.textContent]))"""


def _open_maintenance_with_card(page: Any) -> None:
    open_sim = page.is_hidden("#sim-body")
    if open_sim:
        page.click("#sim-toggle")
    page.click(f"#sim-entries .sim-btn[data-value='{STAFF_CARD}']")
    page.wait_for_function("document.body.dataset.screen === 'maintenance'")
    page.wait_for_function("document.body.dataset.healthLoaded === 'true'")


def _exit_maintenance(page: Any) -> None:
    page.click("#maint-exit")
    page.wait_for_function("document.body.dataset.screen === 'idle'")


def test_staff_card_opens_maintenance_with_health_and_sync_now(
    page: Any, kiosk: KioskProcess, shots: Path
) -> None:
    _open_maintenance_with_card(page)
    health = page.evaluate(HEALTH_JS)
    truth = kiosk.health()
    assert health["readers"] == "sim: ready"
    assert health["cameras"] == "无"
    assert health["outbox"] == str(truth["outbox"]["depth"])
    assert health["kiosk"] == "kiosk-e2e"
    assert health["software"] == truth["software_version"]
    assert health["last_sync"] == "从未"  # the server it is enrolled with never answered
    assert health["network"].startswith("离线")
    assert "kiosk.toml #" in health["config"]
    assert health["clock_offset"].endswith(" ms")
    page.screenshot(path=str(shots / "maintenance.png"))
    page.click("#btn-sync")
    page.wait_for_function("document.getElementById('maint-note').textContent === '已请求同步'")
    _exit_maintenance(page)
    assert kiosk.health()["mode"] == "idle"


def test_staff_pin_opens_maintenance(page: Any, kiosk: KioskProcess) -> None:
    page.click("#btn-keypad")
    press_keys(page, "0")
    page.click("#field-pin")
    press_keys(page, STAFF_PIN)
    page.click("#keys .key[data-key='ok']")
    page.wait_for_function("document.body.dataset.screen === 'maintenance'")
    assert kiosk.health()["mode"] == "maintenance"
    _exit_maintenance(page)


def test_binding_mode_binds_a_new_card_that_then_checks_in(
    page: Any, kiosk: KioskProcess, shots: Path
) -> None:
    before = confirmation_after(page, lambda: sim_type(page, f"card:{NEW_CARD}"))
    assert before["kind"] == "unknown"  # not bound yet
    page.click("#confirm")
    _open_maintenance_with_card(page)
    page.click("#btn-bind")
    page.wait_for_function("document.getElementById('screen-binding').dataset.stage === 'wait'")
    assert page.evaluate("document.body.dataset.screen") == "binding"
    page.screenshot(path=str(shots / "binding-wait.png"))
    sim_type(page, f"card:{NEW_CARD}")
    page.wait_for_function("document.getElementById('screen-binding').dataset.stage === 'pick'")
    target = MEMBERS["bind"]
    press_keys(page, target.member_no, container="#bind-keys")
    page.wait_for_function(
        "id => { const b = [...document.querySelectorAll('#bind-results button')];"
        " return b.length === 1 && b[0].dataset.memberId === id; }",
        arg=str(target.member_id),
    )
    page.screenshot(path=str(shots / "binding-pick.png"))
    page.click("#bind-results button")
    assert target.name in page.text_content("#bind-confirm-text")
    page.screenshot(path=str(shots / "binding-confirm.png"))
    bound = confirmation_after(page, lambda: page.click("#bind-yes"))
    assert (bound["kind"], bound["colour"], bound["name"]) == ("bound", "green", target.name)
    page.screenshot(path=str(shots / "binding-saved.png"))
    page.wait_for_function("document.body.dataset.screen === 'maintenance'")
    assert kiosk.health()["outbox"]["bindings_pending"] >= 1  # on its way to the server
    page.click("#confirm")
    _exit_maintenance(page)
    after = confirmation_after(page, lambda: sim_type(page, f"card:{NEW_CARD}"))
    assert (after["kind"], after["name"], after["unit"]) == ("in", target.name, target.unit)


# -- remote commands: the heartbeat calls KioskService.handle_command; here the test calls it ----------
@pytest.fixture
def in_process_kiosk(tmp_path: Path) -> Iterator[tuple[Any, str]]:
    """The service and app in this process (no sync agent), so the test can play the heartbeat's part."""
    from werkzeug.serving import make_server

    from kiosk.app import create_app
    from kiosk.config import load_config
    from kiosk.service import KioskService
    from kiosk.ui import register_ui

    from .kioskproc import write_config

    port = free_port()
    (tmp_path / "state").mkdir()
    seed_roster(tmp_path / "state")
    config = load_config(write_config(tmp_path, port, dead_server="http://127.0.0.1:9"))
    service = KioskService(config, start_sync=False)
    service.start()
    server = make_server("127.0.0.1", port, register_ui(create_app(service)), threaded=True)
    server.daemon_threads = True  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield service, f"http://127.0.0.1:{port}"
    server.shutdown()
    service.stop()


def test_remote_lock_message_and_unlock_show_on_screen(
    chromium: Any, in_process_kiosk: tuple[Any, str], shots: Path
) -> None:
    service, url = in_process_kiosk
    page = open_page(chromium, url)
    try:
        assert service.handle_command("lock_screen", {"text": "系统维护中,请稍候"}) == (True, "locked")
        page.wait_for_function("document.body.dataset.screen === 'locked'")
        assert page.text_content("#lock-primary") == "系统维护中,请稍候"
        page.screenshot(path=str(shots / "locked.png"))
        got = sim_tap(page, MEMBERS["in_out"].card)  # a tap while locked is recorded, and says so
        assert (got["kind"], got["colour"]) == ("locked", "red")
        page.click("#confirm")
        service.handle_command("unlock_screen", {})
        page.wait_for_function("document.body.dataset.screen === 'idle'")
        service.handle_command(
            "show_message", {"text": "今天下午三点闭馆", "text_en": "Closing at 3 pm today"}
        )
        page.wait_for_function("document.getElementById('message').textContent === '今天下午三点闭馆'")
        page.screenshot(path=str(shots / "idle-message.png"))
        page.click("#btn-lang")
        assert page.text_content("#message") == "Closing at 3 pm today"
    finally:
        page.context.close()
