"""The local kiosk app as a real process (``baodao kiosk run``): health, simulated reads through the
simulator reader, the state endpoint, the server-sent event stream, and ``baodao kiosk tap``."""

from __future__ import annotations

import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from kiosk.app import create_app
from kiosk.service import KioskService

from .conftest import MEMBER_CARD, UNKNOWN_CARD, config_mapping, make_config

REPO = Path(__file__).resolve().parents[3]
BAODAO = Path(sys.executable).with_name("baodao")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _toml(data: dict) -> str:
    lines, tables = [], []
    for key, value in data.items():
        if isinstance(value, dict):
            tables.append((key, value))
        else:
            lines.append(f"{key} = {json.dumps(value, ensure_ascii=False)}")
    for name, table in tables:
        lines.append(f"[{name}]")
        lines += [f"{k} = {json.dumps(v, ensure_ascii=False)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def kiosk_url(tmp_path_factory):
    from .conftest import seed_roster

    root = tmp_path_factory.mktemp("kiosk-app")
    state = root / "state"
    state.mkdir()
    seed_roster(state)
    port = _free_port()
    config = root / "kiosk.toml"
    config.write_text(_toml(config_mapping(state, ui={"host": "127.0.0.1", "port": port})), encoding="utf-8")
    log = (root / "kiosk.log").open("w")
    proc = subprocess.Popen([str(BAODAO), "kiosk", "--config", str(config)], cwd=REPO, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if requests.get(f"{url}/healthz", timeout=1).ok:
                break
        except requests.ConnectionError:
            pass
        if proc.poll() is not None:
            pytest.fail(f"kiosk exited: {(root / 'kiosk.log').read_text()}")
        time.sleep(0.1)
    else:
        pytest.fail("kiosk did not answer /healthz")
    yield url
    proc.terminate()
    assert proc.wait(15) == 0, (root / "kiosk.log").read_text()


class SseReader(threading.Thread):
    """Reads ``GET /events`` into a queue of (event, data) pairs."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.events: queue.Queue[tuple[str, dict]] = queue.Queue()
        self.response = requests.get(f"{url}/events", stream=True, timeout=30)

    def run(self) -> None:
        event = None
        try:
            for raw in self.response.iter_lines(chunk_size=1, decode_unicode=True):
                if raw.startswith("event: "):
                    event = raw[7:]
                elif raw.startswith("data: ") and event:
                    self.events.put((event, json.loads(raw[6:])))
        except (requests.RequestException, AttributeError, ValueError):
            return  # the test closed the stream

    def next_tap(self, timeout: float = 10) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            kind, data = self.events.get(timeout=max(0.01, deadline - time.monotonic()))
            if kind == "tap":
                return data


def test_healthz(kiosk_url):
    health = requests.get(f"{kiosk_url}/healthz", timeout=5).json()
    assert health["status"] == "ok"
    assert {"outbox", "readers", "roster_size", "locked"} <= set(health)
    assert health["roster_size"] == 2 and health["locked"] is False
    assert health["readers"][0]["driver"] == "simulated" and health["readers"][0]["state"] == "ready"


def test_sim_read_reaches_state_and_event_stream(kiosk_url):
    sse = SseReader(kiosk_url)
    assert sse.response.headers["Content-Type"].startswith("text/event-stream")
    sse.start()
    first_kind, first = sse.events.get(timeout=10)
    assert first_kind == "state" and first["centre_name"] == "测试党群服务中心"
    resp = requests.post(f"{kiosk_url}/sim/read", json={"kind": "card", "value": MEMBER_CARD}, timeout=10)
    assert resp.status_code == 200
    outcome = resp.json()
    assert (outcome["kind"], outcome["masked_name"], outcome["recorded"]) == ("in", "张*明", True)
    streamed = sse.next_tap()
    assert streamed["n"] == outcome["n"] and streamed["kind"] == "in"
    state = requests.get(f"{kiosk_url}/api/state", timeout=5).json()
    assert state["last_outcome"]["event_id"] == outcome["event_id"]
    assert state["state"]["today_count"] >= 1
    # The stream is left open (daemon thread): closing a streamed response makes urllib3 drain it until
    # the next keepalive; the kiosk's shutdown at module end ends it.


def test_unknown_card_is_recorded(kiosk_url):
    before = requests.get(f"{kiosk_url}/healthz", timeout=5).json()["outbox"]["last_seq"]
    outcome = requests.post(
        f"{kiosk_url}/sim/read", json={"kind": "card", "value": UNKNOWN_CARD}, timeout=10
    ).json()
    assert (outcome["kind"], outcome["colour"], outcome["recorded"]) == ("unknown", "amber", True)
    after = requests.get(f"{kiosk_url}/healthz", timeout=5).json()["outbox"]
    assert after["last_seq"] == before + 1 == outcome["seq"]


def test_bad_sim_requests(kiosk_url):
    assert requests.post(f"{kiosk_url}/sim/read", json={"kind": "card"}, timeout=5).status_code == 400
    assert (
        requests.post(f"{kiosk_url}/sim/read", json={"kind": "pin", "value": "1"}, timeout=5).status_code
        == 400
    )


def test_pin_endpoint(kiosk_url):
    resp = requests.post(f"{kiosk_url}/api/pin", json={"member_no": "M404", "pin": "0000"}, timeout=10)
    assert resp.status_code == 200 and resp.json()["kind"] == "pin_wrong"
    assert requests.post(f"{kiosk_url}/api/pin", json={}, timeout=5).status_code == 400


def test_tap_command(kiosk_url):
    out = subprocess.run(
        [str(BAODAO), "kiosk", "tap", "card:04FFFFFFFFFF01", "--url", kiosk_url],
        capture_output=True, text=True, timeout=60, cwd=REPO, env={**os.environ},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.splitlines()[-1])["kind"] == "unknown"
    bad = subprocess.run(
        [str(BAODAO), "kiosk", "tap", "nonsense", "--url", kiosk_url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode != 0 and "KIND:VALUE" in bad.stderr


def test_sim_read_is_404_without_simulation(tmp_path):
    svc = KioskService(make_config(tmp_path, simulate=False), start_sync=False)
    svc.start()
    try:
        client = create_app(svc).test_client()
        assert client.post("/sim/read", json={"kind": "card", "value": MEMBER_CARD}).status_code == 404
        assert client.get("/healthz").json["readers"] == []
    finally:
        svc.stop()
