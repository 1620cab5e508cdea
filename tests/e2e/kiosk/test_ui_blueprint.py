"""The screen's blueprint without a browser: sounds are real WAV files, staff endpoints refuse outside
maintenance mode, the demo panel exists only in simulation mode, registration is idempotent."""

from __future__ import annotations

import io
import json
import re
import struct
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kiosk.app import create_app
from kiosk.config import load_config
from kiosk.service import KioskService
from kiosk.ui import register_ui
from kiosk.ui.sounds import SOUNDS, wav_bytes

from .kioskproc import STAFF_CARD, seed_roster, write_config


@pytest.mark.parametrize("name", sorted(SOUNDS))
def test_sounds_are_short_audible_wav_files(name: str) -> None:
    with wave.open(io.BytesIO(wav_bytes(name))) as wav:
        assert (wav.getnchannels(), wav.getsampwidth()) == (1, 2)
        seconds = wav.getnframes() / wav.getframerate()
        frames = wav.readframes(wav.getnframes())
    assert 0.1 < seconds < 0.6
    peak = max(abs(s) for s in struct.unpack(f"<{len(frames) // 2}h", frames))
    assert peak > 8000


def _service(tmp_path: Path, simulate: bool) -> KioskService:
    (tmp_path / "state").mkdir()
    seed_roster(tmp_path / "state")
    path = write_config(tmp_path, 8100, dead_server="http://127.0.0.1:9")
    if not simulate:
        path.write_text(path.read_text().replace("simulate = true", "simulate = false"))
    return KioskService(load_config(path), start_sync=False)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[tuple[Any, KioskService]]:
    service = _service(tmp_path, simulate=True)
    service.start()
    app = register_ui(create_app(service))
    yield app.test_client(), service
    service.stop()


def test_register_ui_is_idempotent(client: tuple[Any, KioskService]) -> None:
    c, _ = client
    assert register_ui(c.application) is c.application  # a second call must not raise
    page = c.get("/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'id="sim-panel"' in html and "/ui/static/kiosk.js" in html
    assert c.get("/ui/sounds/ok.wav").mimetype == "audio/wav"
    assert c.get("/ui/sounds/nope.wav").status_code == 404


def test_the_page_carries_the_catalogue_texts(client: tuple[Any, KioskService]) -> None:
    """The screen's labels are the kiosk catalogue's ``screen.*`` messages rendered into the page."""
    c, _ = client
    html = c.get("/").get_data(as_text=True)
    texts = json.loads(re.search(r"window\.BAODAO_I18N = (\{.*?\});</script>", html).group(1))  # type: ignore[union-attr]
    assert texts["zh"]["prompt"] == "请刷卡或出示二维码"
    assert texts["en"]["prompt"] == "Tap your card or show your QR code"
    assert texts["zh"].keys() == texts["en"].keys() and len(texts["zh"]) >= 40
    assert "请刷卡" not in c.get("/ui/static/kiosk.js").get_data(as_text=True)  # no copy in the script


def test_staff_endpoints_refuse_outside_maintenance(client: tuple[Any, KioskService]) -> None:
    c, service = client
    for method, url in (
        ("get", "/ui/api/maintenance"),
        ("post", "/ui/api/sync-now"),
        ("post", "/ui/api/binding/cancel"),
    ):
        resp = getattr(c, method)(url)
        assert resp.status_code == 403, url
        assert resp.get_json()["message_zh"] == "仅限维护模式"
    service.enter_maintenance()
    health = c.get("/ui/api/maintenance").get_json()
    assert health["readers"][0]["reader_id"] == "sim" and health["roster_size"] == 4
    sync = c.post("/ui/api/sync-now")
    assert sync.status_code == 409 and sync.get_json()["code"] == "not_enrolled"  # no sync agent here
    service.start_binding()
    assert c.post("/ui/api/binding/cancel").get_json()["mode"] == "maintenance"


def test_demo_entries_list_config_cards_and_staff_card(client: tuple[Any, KioskService]) -> None:
    c, _ = client
    entries = c.get("/ui/api/demo").get_json()["entries"]
    values = {e["value"] for e in entries}
    assert STAFF_CARD in values and "04A1B2C3D4E5F6" in values
    assert {e["kind"] for e in entries} == {"card", "qr"}


def test_no_simulator_outside_simulation_mode(tmp_path: Path) -> None:
    service = _service(tmp_path, simulate=False)
    try:
        c = register_ui(create_app(service)).test_client()
        assert 'id="sim-panel"' not in c.get("/").get_data(as_text=True)
        assert c.get("/ui/api/demo").status_code == 404
    finally:
        service.stop()
