"""`baodao demo` (what `make demo` runs) as a person would use it: start, tap a demo card, Ctrl-C, run again."""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(url: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"demo exited early with {proc.returncode}"
        try:
            response = requests.get(url, timeout=1)
            if response.status_code == 200:
                return response.json()
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url} never answered")


def _run_demo(var_dir: Path) -> tuple[subprocess.Popen[bytes], int, int]:
    server_port, kiosk_port = _free_port(), _free_port()
    env = {**os.environ, "BAODAO_VAR_DIR": str(var_dir), "BAODAO_HEARTBEAT_S": "1"}
    env.pop("BAODAO_DATABASE_URL", None)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "baodao",
            "demo",
            "--server-port",
            str(server_port),
            "--kiosk-port",
            str(kiosk_port),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    return proc, server_port, kiosk_port


def _stop(proc: subprocess.Popen[bytes]) -> str:
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out.decode(errors="replace")
    return out.decode(errors="replace")


def test_demo_runs_taps_and_stops_cleanly_twice(tmp_path):
    proc, server_port, kiosk_port = _run_demo(tmp_path)
    try:
        health = _wait_for(f"http://127.0.0.1:{server_port}/healthz", proc)
        assert health["database"]["backend"] == "sqlite"
        _wait_for(f"http://127.0.0.1:{kiosk_port}/healthz", proc)
        with open(tmp_path / "demo" / "credentials.csv", encoding="utf-8") as fh:
            members = list(csv.DictReader(fh))
        with open(tmp_path / "demo" / "accounts.csv", encoding="utf-8") as fh:
            accounts = list(csv.DictReader(fh))
        in_roster = [m for m in members if m["at_demo_kiosk"] == "yes"]
        assert in_roster, "no demo member reports to the demo kiosk's community"
        assert len(members) == 200 and {a["role"] for a in accounts} >= {"admin", "community_staff"}

        # The roster reaches the kiosk by heartbeat; until then the card is (correctly) unknown.
        deadline, outcome = time.monotonic() + 60, {}
        while time.monotonic() < deadline:
            tap = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "baodao",
                    "kiosk",
                    "tap",
                    f"card:{in_roster[0]['card_uid']}",
                    "--url",
                    f"http://127.0.0.1:{kiosk_port}",
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            outcome = json.loads(tap.stdout.splitlines()[0])
            if outcome["kind"] == "in":
                break
            time.sleep(1.5)
        assert outcome["kind"] == "in", outcome
        assert "*" in outcome["masked_name"]
    finally:
        output = _stop(proc)
    assert "http://127.0.0.1:" in output and "admin" in output

    again, server_port, _ = _run_demo(tmp_path)  # idempotent: same var/, nothing duplicated
    try:
        _wait_for(f"http://127.0.0.1:{server_port}/healthz", again)
    finally:
        _stop(again)
    with open(tmp_path / "demo" / "credentials.csv", encoding="utf-8") as fh:
        assert [row["card_uid"] for row in csv.DictReader(fh)] == [m["card_uid"] for m in members]
