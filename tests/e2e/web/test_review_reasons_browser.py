"""Doubtful taps reach a person: signed uploads through the real kiosk API — a chain gap, an edited event,
a replayed phone QR code, a wild kiosk clock — then the review queue in real Chromium, as community staff,
shows each of those sessions with the flag's words. On SQLite and PostgreSQL; screenshots in test-output/web/.

The server's own recomputer is switched off (``BAODAO_SESSION_RECOMPUTER=off``) and the test drains the
session queue itself after the uploads, so the sessions exist when the page is opened, without waiting.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from sqlalchemy.orm import Session

from protocol.chain import compute_hash
from protocol.flags import TapFlag
from protocol.hashing import credential_hash
from protocol.ids import uuid7
from server.models import Kiosk
from server.sessions.queue import drain_all
from tests.e2e.conftest import LiveServer
from tests.factories import (
    TEST_CREDENTIAL_KEY,
    TEST_PASSWORD,
    make_centre,
    make_kiosk,
    make_member,
    signed_headers,
)
from tests.web_world import World, build_world

pytestmark = pytest.mark.browser

EVENTS = "/api/v1/kiosk/events"
STEP = timedelta(minutes=30)
#: Beyond the clock-drift bound (120 s by default): the kiosk's clock was ten minutes slow.
WILD_OFFSET_MS = 10 * 60 * 1000


@dataclass
class Tap:
    member_id: int
    at: datetime  # the kiosk's device time
    credential: str
    kind: str = "card"
    qr_step: int | None = None
    clock_offset_ms: int = 0


def chain(taps: list[Tap]) -> list[dict[str, Any]]:
    """The taps as one kiosk uploads them: wire form, sequence numbers from 1, each hashed onto the last."""
    prev, events = "0" * 64, []
    for seq, tap in enumerate(taps, start=1):
        event: dict[str, Any] = {
            "event_id": str(uuid7()),
            "seq": seq,
            "prev_hash": prev,
            "credential_kind": tap.kind,
            "credential_hash": tap.credential,
            "member_id": tap.member_id,
            "direction": "in" if seq % 2 else "out",
            "device_time": tap.at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "device_tz": "Asia/Shanghai",
            "clock_offset_ms": tap.clock_offset_ms,
        }
        if tap.qr_step is not None:
            event["qr_step"] = tap.qr_step
        event["hash"] = prev = compute_hash(prev, {**event, "device_time": tap.at})
        events.append(event)
    return events


def upload(server: LiveServer, kiosk: Kiosk, events: list[dict[str, Any]]) -> dict[str, Any]:
    body = json.dumps({"events": events}).encode()
    response = requests.post(
        server.url(EVENTS), data=body, headers=signed_headers(kiosk, "POST", EVENTS, body), timeout=30
    )
    assert response.status_code == 200, response.text
    return response.json()


@dataclass
class Site:
    server: LiveServer
    world: World
    engine: sa.Engine
    kiosks: dict[str, Kiosk]
    members: dict[str, int]


@pytest.fixture
def site(live_server, db_url) -> Iterator[Site]:  # type: ignore[no-untyped-def]
    engine = sa.create_engine(db_url)
    with Session(engine, expire_on_commit=False) as s:
        world = build_world(s)
        centre = make_centre(s, world.a.community, name="甲方第二服务中心", closes_at=None)
        kiosks = {case: make_kiosk(s, centre) for case in ("gap", "edit", "clock", "qr1", "qr2")}
        names = {"gap": "断链党员", "edit": "改动党员", "clock": "时钟党员", "qr": "扫码党员"}
        members = {
            case: make_member(s, world.a.unit, world.a.community, name=name).id
            for case, name in names.items()
        }
        s.commit()
    server = live_server(database_url=db_url, env={"BAODAO_SESSION_RECOMPUTER": "off"})
    yield Site(server, world, engine, kiosks, members)
    engine.dispose()


def _drain(site: Site) -> None:
    with Session(site.engine) as s:
        drain_all(s)
        s.commit()


def _card() -> str:
    return credential_hash(TEST_CREDENTIAL_KEY, "card", secrets.token_hex(4))


def _queue_row(page, server: LiveServer, name: str) -> str:  # type: ignore[no-untyped-def]
    page.goto(server.url(f"/review?member={name}"))
    row = page.locator("table.list tbody tr", has_text=name)
    assert row.count() == 1, page.inner_text("main")
    return row.locator("td.why").inner_text()


def _login(page, server: LiveServer) -> None:  # type: ignore[no-untyped-def]
    page.goto(server.url("/login"))
    page.fill("input[name=username]", "staff_a")
    page.fill("input[name=password]", TEST_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/sessions")


def test_gap_edit_and_replayed_qr_reach_the_review_queue(page, site: Site, test_output: Path) -> None:  # type: ignore[no-untyped-def]
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=6)
    members, kiosks, server = site.members, site.kiosks, site.server

    # a gap: taps 3 and 4 of this kiosk never arrive; the session from taps 5 and 6 follows the break
    card = _card()
    gap = chain([Tap(members["gap"], t0 + i * STEP, card) for i in range(6)])
    assert upload(server, kiosks["gap"], gap[:2])["chain"] == "ok"
    assert upload(server, kiosks["gap"], gap[4:])["chain"] == "gap"

    # an edited event: the check-in's content changed after it was hashed
    edit = chain([Tap(members["edit"], t0 + i * STEP, _card()) for i in range(2)])
    edit[0]["device_tz"] = "Europe/Paris"
    assert upload(server, kiosks["edit"], edit)["chain"] == "broken"

    # a replayed phone code: the code of step 4711 shown at one kiosk, then again at another
    phone = credential_hash(TEST_CREDENTIAL_KEY, "qr", "phone:e2e")
    first = chain([Tap(members["qr"], t0 + i * STEP, phone, "qr", 4711 + i * 60) for i in range(2)])
    again = chain([Tap(members["qr"], t0 + (2 + i) * STEP, phone, "qr", 4711 + i * 90) for i in range(2)])
    upload(server, kiosks["qr1"], first)
    upload(server, kiosks["qr2"], again)
    _drain(site)

    _login(page, server)
    cases = {
        "断链党员": TapFlag.GAP,
        "改动党员": TapFlag.HASH_MISMATCH,
        "扫码党员": TapFlag.QR_REPLAYED,
    }
    for name, flag in cases.items():
        why = _queue_row(page, server, name)
        assert flag.label_zh in why and flag.explain_zh in why, (name, why)
        assert flag.value not in why  # the person reads words, not the stored code
    page.goto(server.url("/review"))
    for name in cases:
        assert name in page.inner_text("main")
    folder = test_output / "web"
    folder.mkdir(exist_ok=True)
    page.screenshot(path=str(folder / "review-reasons.png"), full_page=True)


def test_wild_kiosk_clock_reaches_the_review_queue(page, site: Site) -> None:  # type: ignore[no-untyped-def]
    """A kiosk whose measured clock offset is beyond the drift bound: its session is reviewed as
    ``clock_drift`` (written by ingest when |clock_offset_ms| exceeds the configured bound)."""
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=6)
    card = _card()
    taps = [Tap(site.members["clock"], t0 + i * STEP, card, clock_offset_ms=WILD_OFFSET_MS) for i in range(2)]
    assert upload(site.server, site.kiosks["clock"], chain(taps))["chain"] == "ok"
    _drain(site)

    _login(page, site.server)
    why = _queue_row(page, site.server, "时钟党员")
    assert TapFlag.CLOCK_DRIFT.label_zh in why and TapFlag.CLOCK_DRIFT.explain_zh in why, why
