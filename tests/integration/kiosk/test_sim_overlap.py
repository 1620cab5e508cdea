"""``POST /sim/read`` under overlapping reads: each answer is its own read's outcome.

The real kiosk app on a real threaded HTTP server, the real service and simulated reader; many reads
of different cards at once. Proof of ownership comes from the outbox: the event each answer names was
recorded for the very card that request sent.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from werkzeug.serving import make_server

from kiosk.app import create_app
from kiosk.service import KioskService
from protocol import credential_hash

from .conftest import KEY, MEMBER_CARD, OTHER_CARD, make_config

READS = 12


@pytest.fixture
def kiosk(state_dir: Path) -> Iterator[tuple[str, KioskService]]:
    service = KioskService(make_config(state_dir), start_sync=False)
    service.start()
    server = make_server("127.0.0.1", 0, create_app(service), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", service
    server.shutdown()
    thread.join(5)
    service.stop()


def _hash_of_event(state_dir: Path, event_id: str) -> str:
    db = sqlite3.connect(state_dir / "outbox.sqlite3")
    try:
        row = db.execute("SELECT credential_hash FROM taps WHERE event_id = ?", (event_id,)).fetchone()
    finally:
        db.close()
    assert row is not None, event_id
    return str(row[0])


def test_overlapping_reads_each_get_their_own_outcome(kiosk, state_dir):
    url, _ = kiosk
    cards = [MEMBER_CARD, OTHER_CARD] + [f"04EE{i:010X}" for i in range(READS - 2)]
    barrier = threading.Barrier(len(cards))
    answers: dict[str, dict] = {}

    def read(uid: str) -> None:
        barrier.wait()
        answers[uid] = requests.post(
            f"{url}/sim/read", json={"kind": "card", "value": uid}, timeout=30
        ).json()

    threads = [threading.Thread(target=read, args=(uid,)) for uid in cards]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({a["event_id"] for a in answers.values()}) == len(cards), answers
    assert answers[MEMBER_CARD]["masked_name"] == "张*明" and answers[OTHER_CARD]["masked_name"] == "李*"
    for uid, answer in answers.items():
        assert _hash_of_event(state_dir, answer["event_id"]) == credential_hash(KEY, "card", uid), uid
