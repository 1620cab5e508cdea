"""Chain verification from the fleet page in real headless Chromium against a real server process.
Screenshots go to test-output/web/ (fleet-chain.png, fleet-chain-kiosk.png)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from server import create_app
from tests.chain_cases import build_chain_cases
from tests.conftest import TEST_KEYS
from tests.factories import TEST_PASSWORD
from tests.web_world import build_world

pytestmark = pytest.mark.browser


@pytest.fixture
def site(live_server, e2e_db_url):  # type: ignore[no-untyped-def]
    app = create_app({"DATABASE_URL": e2e_db_url, "TESTING": True, **TEST_KEYS})  # to upload the chains
    engine = sa.create_engine(e2e_db_url)
    with Session(engine, expire_on_commit=False) as s:
        build_world(s)
        cases = build_chain_cases(app.test_client(), s)
    app.extensions["baodao_db"].dispose()
    yield live_server(database_url=e2e_db_url), cases
    engine.dispose()


def test_verify_chains_from_the_fleet_page(page, site, test_output: Path) -> None:  # type: ignore[no-untyped-def]
    server, cases = site
    shots = test_output / "web"
    shots.mkdir(exist_ok=True)
    page.goto(server.url("/login"))
    page.fill("input[name=username]", "admin1")
    page.fill("input[name=password]", TEST_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/sessions")
    page.goto(server.url("/fleet/"))
    page.click("#verify-chains")
    page.wait_for_url("**/fleet/chain")
    assert page.locator(f"tr[data-kiosk='{cases.intact.id}']").get_attribute("data-chain") == "ok"
    broken = page.locator(f"tr[data-kiosk='{cases.gapped_edited.id}']")
    assert broken.get_attribute("data-chain") == "broken"
    assert "第 4 条（序号 6）：记录缺失，缺少序号 4–5" in broken.inner_text()
    assert broken.locator("li").count() == 2
    page.screenshot(path=str(shots / "fleet-chain.png"), full_page=True)
    page.goto(server.url(f"/fleet/{cases.deleted.id}"))
    page.click("#verify-chain")
    page.wait_for_url(f"**/fleet/{cases.deleted.id}/chain")
    assert "共核验 1 台终端，1 台有问题。" in page.inner_text("#chain-summary")
    page.set_viewport_size({"width": 390, "height": 800})  # a phone
    page.screenshot(path=str(shots / "fleet-chain-kiosk.png"), full_page=True)
