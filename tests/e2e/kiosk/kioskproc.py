"""A real kiosk process for the browser tests and ``bench.screen_latency``: seeded roster, simulated
readers, a temp state dir, and an enrolment pointing at a server that is not running (so the sync agent
really runs and really fails: the kiosk is offline, as in a centre whose uplink is down).

Data factories rather than fixtures so the benchmark can use them too.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import requests

from kiosk.config import Enrolment, save_enrolment
from kiosk.roster import PinEntry, Roster
from protocol import RosterDelta, RosterEntry, credential_hash, pin_verifier

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[3]
KEY_HEX = "5a" * 32
KEY = bytes.fromhex(KEY_HEX)
STAFF_CARD = "0457AFF0"
STAFF_PIN = "909090"
UNKNOWN_CARD = "04FFFFFFFFFFFF"
NEW_CARD = "04B1D1B1D1B1D1"  # bound by staff in the binding test


@dataclass(frozen=True)
class DemoMember:
    member_id: int
    name: str  # already masked, as the server sends it
    unit: str
    card: str | None = None
    member_no: str | None = None
    pin: str | None = None
    revoked: bool = False


MEMBERS: dict[str, DemoMember] = {
    "in_out": DemoMember(1, "张*明", "区税务局", card="04A1B2C3D4E5F6", member_no="PY00001", pin="2468"),
    "duplicate": DemoMember(2, "李*", "街道办事处", card="04A1B2C3D4E5F7"),
    "revoked": DemoMember(3, "王*华", "区医院", card="04DEADBEEF0001", revoked=True),
    "offline": DemoMember(4, "赵*", "区教育局", card="04C0FFEE000004"),
    "pin": DemoMember(5, "陈*平", "区人社局", member_no="PY00005", pin="1357"),
    "bind": DemoMember(6, "周*文", "区文旅局", member_no="PY00006", pin="1122"),
    "viewport": DemoMember(7, "欧阳*华", "区市场监督管理局", card="04C0FFEE000007"),
}


def bench_card(i: int) -> str:
    return f"05{i:012X}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def seed_roster(state_dir: Path, extra_members: int = 0) -> None:
    """The roster the server would have sent: the named members plus ``extra_members`` card holders."""
    roster = Roster(state_dir / "roster.sqlite3", credential_key=KEY)
    upserts = [
        RosterEntry(
            credential_hash=credential_hash(KEY, "card", m.card),
            credential_kind="card",
            member_id=m.member_id,
            masked_name=m.name,
            unit_name=m.unit,
        )
        for m in MEMBERS.values()
        if m.card
    ]
    upserts += [
        RosterEntry(
            credential_hash=credential_hash(KEY, "card", bench_card(i)),
            credential_kind="card",
            member_id=1000 + i,
            masked_name="测*员",
            unit_name="基准单位",
        )
        for i in range(extra_members)
    ]
    roster.apply_delta(RosterDelta(cursor="e2e-1", full_resync=True, upserts=upserts))
    revoked = [credential_hash(KEY, "card", m.card) for m in MEMBERS.values() if m.revoked and m.card]
    roster.apply_delta(RosterDelta(cursor="e2e-2", removals=revoked))
    roster.upsert_pins(
        [
            PinEntry(m.member_no, m.member_id, pin_verifier(KEY, m.member_no, m.pin), m.name, m.unit)
            for m in MEMBERS.values()
            if m.member_no and m.pin
        ]
    )
    roster.close()


def _q(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


def write_config(root: Path, port: int, *, dead_server: str, debounce_s: float = 2.0) -> Path:
    """A kiosk TOML with simulated readers, staff credentials, fast PIN lockout and the demo panel."""
    state = root / "state"
    lines = [
        f"server_url = {_q(dead_server)}",
        f"state_dir = {_q(str(state))}",
        "simulate = true",
        'language = "zh"',
        "[centre]",
        'name = "濮阳市测试党群服务中心"',
        'code = "SC-E2E"',
        'timezone = "Asia/Shanghai"',
        "[rules]",
        f"debounce_s = {debounce_s}",
        "[ui]",
        'host = "127.0.0.1"',
        f"port = {port}",
        "[staff]",
        f"cards = [{_q(STAFF_CARD)}]",
        f"pin = {_q(STAFF_PIN)}",
        "[pin]",
        "max_failures = 3",
        "lockout_s = 300",
        "[dev]",
        f"credential_key = {_q(KEY_HEX)}",
    ]
    for m in MEMBERS.values():
        if m.card:
            lines += ["[[demo.cards]]", f"label = {_q(m.name + ' ' + m.unit)}", f"value = {_q(m.card)}"]
    lines += ["[[demo.qr]]", 'label = "未登记二维码 Unregistered QR"', 'value = "BD1.demo.not-a-token"']
    path = root / "kiosk.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@dataclass
class KioskProcess:
    """``python -m baodao kiosk --config …`` (the kiosk with its touch screen) in a temp dir."""

    root: Path
    extra_members: int = 0
    debounce_s: float = 2.0
    port: int = field(default_factory=free_port)
    dead_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.root / "kiosk.log"

    def start(self, timeout_s: float = 30.0) -> KioskProcess:
        state = self.root / "state"
        state.mkdir(parents=True, exist_ok=True)
        seed_roster(state, self.extra_members)
        dead = f"http://127.0.0.1:{self.dead_port}"  # nothing listens there: the kiosk is offline
        save_enrolment(
            state,
            Enrolment(
                kiosk_id="kiosk-e2e",
                kiosk_secret="11" * 32,
                credential_key=KEY_HEX,
                server_url=dead,
                centre={"name": "濮阳市测试党群服务中心"},
                heartbeat_interval_s=2,
            ),
        )
        config = write_config(self.root, self.port, dead_server=dead, debounce_s=self.debounce_s)
        env = {**os.environ, "BAODAO_LOG_LEVEL": "INFO"}
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "baodao", "kiosk", "--config", str(config)],
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"kiosk exited with {self.proc.returncode}: {self.log_path.read_text()}")
            try:
                if requests.get(f"{self.url}/healthz", timeout=1).ok:
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"kiosk did not answer /healthz: {self.log_path.read_text()}")

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.terminate()
        try:
            return self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(5)

    def health(self) -> dict[str, object]:
        return requests.get(f"{self.url}/healthz", timeout=5).json()

    def __enter__(self) -> KioskProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
]
