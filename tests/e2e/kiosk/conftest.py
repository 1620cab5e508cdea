"""Browser fixtures: one real kiosk process per module, Debian's Chromium through Playwright, and helpers
that tap through the on-page simulator and read back what the screen shows."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .kioskproc import KioskProcess

VIEWPORTS = {"1080p": {"width": 1920, "height": 1080}, "10in": {"width": 1280, "height": 800}}


@pytest.fixture(scope="session")
def chromium(chromium_browser: Any) -> Any:
    """The session's one Chromium (tests/conftest.py): Playwright's sync API allows one per thread."""
    return chromium_browser


@pytest.fixture(scope="module")
def kiosk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KioskProcess]:
    proc = KioskProcess(tmp_path_factory.mktemp("kiosk-e2e")).start()
    yield proc
    code = proc.stop()
    assert code == 0, proc.log_path.read_text()[-3000:]


@pytest.fixture
def shots(test_output: Path) -> Path:
    out = test_output / "kiosk"
    out.mkdir(parents=True, exist_ok=True)
    return out


def open_page(browser: Any, url: str, viewport: str = "1080p") -> Any:
    """A fresh page on the kiosk screen, connected to the event stream and showing the state."""
    context = browser.new_context(viewport=VIEWPORTS[viewport], locale="zh-CN")
    page = context.new_page()
    page.goto(url + "/")
    page.wait_for_function("document.body.dataset.stream === 'open'")
    page.wait_for_function("document.getElementById('centre-name').textContent.trim().length > 0")
    return page


@pytest.fixture
def page(chromium: Any, kiosk: KioskProcess) -> Iterator[Any]:
    p = open_page(chromium, kiosk.url)
    yield p
    p.context.close()


CONFIRM_JS = """() => {
  const c = document.getElementById('confirm');
  const text = id => document.getElementById(id).textContent;
  return {n: c.dataset.n, kind: c.dataset.kind, colour: c.dataset.colour, hidden: c.hidden,
          head: text('confirm-head'), name: text('confirm-name'), unit: text('confirm-unit'),
          msg: text('confirm-msg'), sub: text('confirm-sub'), sound: document.body.dataset.sound};
}"""


def confirmation_after(page: Any, action: Any) -> dict[str, Any]:
    """Run ``action`` (a tap) and return the *next* confirmation the screen paints."""
    before = page.evaluate("document.getElementById('confirm').dataset.n || ''")
    action()
    page.wait_for_function(
        "prev => { const c = document.getElementById('confirm');"
        " return !c.hidden && c.dataset.n && c.dataset.n !== prev; }",
        arg=before,
    )
    return page.evaluate(CONFIRM_JS)


def open_simulator(page: Any) -> None:
    if page.is_hidden("#sim-body"):
        page.click("#sim-toggle")
    page.wait_for_selector("#sim-entries .sim-btn")


def sim_tap(page: Any, value: str) -> dict[str, Any]:
    """Tap a demo card on the simulator panel and return the confirmation it produced."""
    open_simulator(page)
    return confirmation_after(page, lambda: page.click(f"#sim-entries .sim-btn[data-value='{value}']"))


def sim_type(page: Any, read: str) -> None:
    """Send ``kind:value`` through the simulator's free-text field (no wait)."""
    open_simulator(page)
    page.fill("#sim-value", read)
    page.click("#sim-form button")


def press_keys(page: Any, keys: str, container: str = "#keys") -> None:
    """Touch the on-screen keys one by one (letters through the ABC page)."""
    for ch in keys:
        if ch.isalpha() and container == "#keys":
            if page.locator("#keys .key[data-key='abc']").count():
                page.click("#keys .key[data-key='abc']")
            page.click(f"#keys .key[data-key='{ch}']")
            page.click("#keys .key[data-key='num']")
        else:
            page.click(f"{container} .key[data-key='{ch}']")
