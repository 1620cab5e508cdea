"""Backoff that taps cannot undo: the real sync agent of a real kiosk service, taps arriving fast.

With the server down (a refused port), the uploader's attempts must follow the backoff schedule however
many taps arrive; with the server up and the uploader idle, a tap still starts an upload at once. The
jitter is pinned to its maximum (``rng``), so the schedule is exact and attempts can be counted against
what it allows — no wall-clock limit is asserted.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hardware.base import CredentialKind, CredentialRead
from kiosk.config import Enrolment
from kiosk.service import KioskService
from kiosk.sync import SyncAgent
from tests.integration.kiosk.conftest import KEY_HEX, MEMBER_CARD, OTHER_CARD, make_config, seed_roster

from .conftest import free_port
from .scripted_server import ScriptedServer

BASE_S = 0.05
CAP_S = 0.4
TAPS = 100
TAP_EVERY_S = 0.02  # fifty taps a second: ten times the storm that was seen


@pytest.fixture
def service(tmp_path: Path) -> Iterator[KioskService]:
    state = tmp_path / "state"
    state.mkdir()
    seed_roster(state)
    svc = KioskService(make_config(state), start_sync=False)
    yield svc
    svc.stop()


def _agent(service: KioskService, url: str, **options: float) -> SyncAgent:
    enrolment = Enrolment(kiosk_id="K-TEST", kiosk_secret="ab" * 32, credential_key=KEY_HEX, server_url=url)
    agent = SyncAgent(service, enrolment, heartbeat_s=3600.0, **options)
    agent.uploader.rng = lambda: 1.0  # the longest wait of each step: the schedule is exact
    return agent


def _tap(service: KioskService, i: int) -> None:
    uid = MEMBER_CARD if i % 2 else OTHER_CARD
    service.on_read(CredentialRead(kind=CredentialKind.CARD, value=uid, reader_id="sim-card"))


def allowed_attempts(elapsed_s: float) -> int:
    """How many attempts the schedule starts within ``elapsed_s``: one at once, then one after each wait
    ``min(cap, base · 2^(n-1))`` that has fully passed."""
    attempts, waited, n = 1, 0.0, 1
    while True:
        waited += min(CAP_S, BASE_S * 2 ** (n - 1))
        if waited > elapsed_s:
            return attempts
        attempts, n = attempts + 1, n + 1


def test_taps_do_not_end_the_backoff_while_the_server_is_down(service):
    agent = _agent(service, f"http://127.0.0.1:{free_port()}", backoff_base_s=BASE_S, backoff_cap_s=CAP_S)
    started = time.monotonic()
    agent.start()
    try:
        for i in range(TAPS):
            _tap(service, i)
            time.sleep(TAP_EVERY_S)
        attempts = agent.uploader.status.failures  # every attempt failed: refused
        elapsed = time.monotonic() - started
    finally:
        agent.stop()
    assert service.outbox.stats().depth == TAPS  # nothing lost while down
    # +1: the attempt that may be under way while we read. Before the fix: one attempt per tap (100 here,
    # where the schedule allowed 11 in the same run).
    assert 2 <= attempts <= allowed_attempts(elapsed) + 1, (attempts, allowed_attempts(elapsed))


@pytest.fixture
def scripted() -> Iterator[ScriptedServer]:
    server = ScriptedServer()
    yield server
    server.close()


def test_a_tap_wakes_an_idle_uploader(service, scripted):
    """Idle interval of an hour: an upload soon after the tap can only come from the wake."""
    agent = _agent(service, scripted.url, idle_s=3600.0)
    agent.start()
    try:
        _tap(service, 0)
        deadline = time.monotonic() + 60  # liveness only: without the wake it would be an hour
        while agent.uploader.status.uploaded < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        uploaded = agent.uploader.status.uploaded
        status = agent.status()
    finally:
        agent.stop()
    assert uploaded == 1 and scripted.requests >= 1
    # (the scripted server answers a heartbeat with an upload acknowledgement: counted as unusable)
    assert "bad_answers" in status and status["clock_jumps_held"] == 0
    assert service.outbox.stats().depth == 0
