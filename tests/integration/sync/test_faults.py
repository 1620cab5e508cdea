"""End-to-end faults with real processes and sockets: kill -9 of the kiosk, server restarts, a bad network,
a kiosk clock hours off, a week offline. Each asserts: every tap acknowledged to the caller is on the
server exactly once, nothing else is, and the server-side chain verifies."""

from __future__ import annotations

import datetime as dt
import os
import random
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from kiosk.enrol import enrol
from kiosk.outbox import Outbox, TapDraft
from protocol.chain import verify_chain
from protocol.hashing import credential_hash
from tests.conftest import _truncate_all
from tests.factories import TEST_CREDENTIAL_KEY

from .conftest import (
    KioskProcess,
    Seeded,
    ServerProcess,
    enrol_token,
    free_port,
    seed_centre,
    server_events,
    write_kiosk_config,
)
from .proxy import Fault, FaultProxy

pytestmark = pytest.mark.slow

FAST_SYNC = {
    "BAODAO_SYNC_IDLE_S": "0.5",
    "BAODAO_SYNC_BACKOFF_BASE_S": "0.1",
    "BAODAO_SYNC_BACKOFF_CAP_S": "2",
}


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    path = tmp_path / "server.sqlite3"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def pg_url(request: pytest.FixtureRequest) -> str:
    url = request.getfixturevalue("pg_database_url")
    _truncate_all(url)
    return url


@pytest.fixture
def fast_sync_env() -> Iterator[None]:
    old = {k: os.environ.get(k) for k in FAST_SYNC}
    os.environ.update(FAST_SYNC)
    yield
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def _kiosk(
    tmp_path: Path, log_dir: Path, server_url: str, db_url: str, seeded: Seeded, **kw: Any
) -> KioskProcess:
    state = tmp_path / "kiosk-state"
    enrol(server_url, enrol_token(db_url, seeded.centre_code), state, device_name="fault kiosk")
    port = free_port()
    config = write_kiosk_config(
        tmp_path / "kiosk.toml",
        server_url=server_url,
        state_dir=state,
        ui_port=port,
        key_hex=TEST_CREDENTIAL_KEY.hex(),
    )
    return KioskProcess(config, log_dir, ui_port=port, **kw)


def _wait_drained(kiosk: KioskProcess, timeout: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    health: dict[str, Any] = {}
    while time.monotonic() < deadline:
        health = kiosk.health()
        if health["outbox"]["depth"] == 0:
            return health
        time.sleep(0.2)
    raise AssertionError(f"outbox not drained: {health.get('outbox')} sync={health.get('sync')}")


def _assert_exactly_once(db_url: str, acknowledged: set[str]) -> list[Any]:
    rows = server_events(db_url)
    ids = [str(r.event_id) for r in rows]
    assert len(ids) == len(set(ids)), "duplicate events on the server"
    missing = acknowledged - set(ids)
    assert not missing, f"{len(missing)} acknowledged taps missing on the server"
    assert [r.seq for r in rows] == list(range(1, len(rows) + 1)), "seq has holes or repeats"
    assert all(r.chain_ok for r in rows), [r.flags for r in rows if not r.chain_ok][:5]
    wire = [
        {
            "event_id": str(r.event_id), "seq": r.seq, "prev_hash": r.prev_hash, "hash": r.hash,
            "credential_kind": r.credential_kind, "credential_hash": r.credential_hash, "qr_step": r.qr_step,
            "badge_serial": r.badge_serial, "member_id": r.member_id, "direction": r.direction,
            "device_time": r.device_time, "device_tz": r.device_tz, "clock_offset_ms": r.clock_offset_ms,
            "trust": r.trust, "reason": r.reason,
        }
        for r in rows
    ]  # fmt: skip
    result = verify_chain(wire)
    assert result.ok, result.first_break
    return rows


class Tapper:
    """Taps cards on a kiosk's /sim/read from a thread; keeps the event ids the kiosk confirmed."""

    def __init__(self, kiosk: KioskProcess, cards: list[str]) -> None:
        self.kiosk = kiosk
        self.cards = cards
        self.acknowledged: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(15)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                outcome = self.kiosk.tap(random.choice(self.cards), timeout=5)
            except (requests.RequestException, ValueError):
                time.sleep(0.02)  # the kiosk is dead or restarting: this tap was never confirmed
                continue
            if outcome.get("recorded") and outcome.get("event_id"):
                self.acknowledged.add(outcome["event_id"])


def test_kill_9_loop_loses_and_duplicates_nothing(
    pg_url: str, tmp_path: Path, log_dir: Path, fast_sync_env: None
) -> None:
    seeded = seed_centre(pg_url, members=4)
    server = ServerProcess(pg_url, log_dir)
    server.start()
    kiosk = _kiosk(tmp_path, log_dir, server.url, pg_url, seeded)
    tapper = Tapper(kiosk, seeded.cards)
    rng = random.Random(3)
    try:
        tapper.start()
        for _ in range(50):
            kiosk.start()
            time.sleep(rng.uniform(0.2, 0.8))
            kiosk.kill()
        tapper.stop()
        kiosk.start()
        _wait_drained(kiosk)
    finally:
        tapper.stop()
        kiosk.stop()
        server.stop()
    assert kiosk.starts == 51
    assert len(tapper.acknowledged) >= 50, "too few taps got through to test anything"
    rows = _assert_exactly_once(pg_url, tapper.acknowledged)
    assert len(rows) >= len(tapper.acknowledged)


def test_server_restart_and_a_bad_network_lose_and_duplicate_nothing(
    sqlite_url: str, tmp_path: Path, log_dir: Path, fast_sync_env: None
) -> None:
    seeded = seed_centre(sqlite_url, members=4)
    server = ServerProcess(sqlite_url, log_dir)
    server.start()
    proxy = FaultProxy(server.port, delay_s=0.3, cut_bytes=60)
    faults = [Fault.PASS, Fault.CUT_RESPONSE, Fault.DROP, Fault.PASS, Fault.DELAY, Fault.CUT_REQUEST]
    kiosk = _kiosk(tmp_path, log_dir, proxy.url, sqlite_url, seeded)  # enrolled through a good network
    proxy.plan = lambda n: faults[n % len(faults)]
    tapper = Tapper(kiosk, seeded.cards)
    try:
        kiosk.start()
        tapper.start()
        time.sleep(4)
        server.kill()  # mid-upload
        time.sleep(1.5)
        server.start()
        time.sleep(4)
        tapper.stop()
        time.sleep(1)
        proxy.plan = None
        proxy.fault = Fault.PASS
        health = _wait_drained(kiosk)
    finally:
        tapper.stop()
        kiosk.stop()
        server.stop()
        proxy.close()
    assert proxy.counters.faults >= 10
    assert health["sync"]["duplicates"] > 0, "no response was lost after commit: the fault did not happen"
    assert len(tapper.acknowledged) >= 20
    _assert_exactly_once(sqlite_url, tapper.acknowledged)


def test_kiosk_clock_hours_off_is_measured_and_corrected(
    sqlite_url: str, tmp_path: Path, log_dir: Path, fast_sync_env: None
) -> None:
    skew_s = -5 * 3600 - 42
    seeded = seed_centre(sqlite_url, members=2)
    server = ServerProcess(sqlite_url, log_dir)
    server.start()
    kiosk = _kiosk(tmp_path, log_dir, server.url, sqlite_url, seeded, skew_s=skew_s)
    acknowledged = set()
    try:
        kiosk.start()
        deadline = time.monotonic() + 60
        while kiosk.health()["clock_offset_ms"] == 0 and time.monotonic() < deadline:
            kiosk.tap(seeded.cards[0])  # each tap wakes the sync agent: the exchange measures the offset
            time.sleep(0.3)
        offset = kiosk.health()["clock_offset_ms"]
        for uid in seeded.cards:
            acknowledged.add(kiosk.tap(uid)["event_id"])
        _wait_drained(kiosk)
    finally:
        kiosk.stop()
        server.stop()
    assert abs(offset + skew_s * 1000) < 2000, offset
    rows = {str(r.event_id): r for r in _assert_exactly_once(sqlite_url, acknowledged)}
    for event_id in acknowledged:
        row = rows[event_id]
        assert abs(row.clock_offset_ms + skew_s * 1000) < 2000
        assert abs((row.device_time - row.received_at).total_seconds() - skew_s) < 60
        assert abs((row.effective_time - row.received_at).total_seconds()) < 30


def test_a_week_offline_with_10000_taps_catches_up(
    pg_url: str, tmp_path: Path, log_dir: Path, fast_sync_env: None
) -> None:
    seeded = seed_centre(pg_url, members=20)
    server = ServerProcess(pg_url, log_dir)
    server.start()
    kiosk = _kiosk(tmp_path, log_dir, server.url, pg_url, seeded)
    week_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=7)
    outbox = Outbox(tmp_path / "kiosk-state" / "outbox.sqlite3")
    outbox._db.execute("PRAGMA synchronous=OFF")  # set-up speed only; the kiosk process reopens with FULL
    ids = set()
    for i in range(10_000):  # the taps a busy centre records in a week with no network
        member = i % len(seeded.members)
        stored = outbox.append(
            TapDraft(
                credential_kind="card",
                credential_hash=credential_hash(TEST_CREDENTIAL_KEY, "card", seeded.cards[member]),
                direction="in" if (i // len(seeded.members)) % 2 == 0 else "out",
                device_time=week_ago + dt.timedelta(seconds=60 * i),
                device_tz="Asia/Shanghai",
                member_id=seeded.members[member],
            )
        )
        ids.add(stored.event_id)
    outbox.close()
    try:
        kiosk.start()
        health = _wait_drained(kiosk, timeout=300)
    finally:
        kiosk.stop()
        server.stop()
    assert health["sync"]["uploaded"] == 10_000
    rows = _assert_exactly_once(pg_url, ids)
    assert len(rows) == 10_000
