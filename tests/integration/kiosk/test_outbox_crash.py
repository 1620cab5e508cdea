"""kill -9 of a process appending to the outbox, over and over: nothing confirmed is ever lost.

A writer subprocess prints each tap only after ``Outbox.append`` returned. We SIGKILL it at a random
moment (usually mid-append, since it appends in a tight loop), restart it on the same file, and repeat.
At the end: each printed tap is in the file with the seq it was given, ``seq`` runs 1..N without holes,
the whole chain verifies from genesis, and the pending count matches the rows not acknowledged.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from kiosk.outbox import Outbox
from protocol import GENESIS_HASH, verify_chain

REPO = Path(__file__).resolve().parents[3]
KILLS = 60


def _run_and_kill(path: Path, rng: random.Random) -> list[tuple[int, str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.kiosk.outbox_writer", str(path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    want = rng.randint(1, 40)
    confirmed: list[tuple[int, str]] = []
    assert proc.stdout is not None
    while len(confirmed) < want:
        line = proc.stdout.readline()
        if not line:
            break
        seq, event_id = line.split()
        confirmed.append((int(seq), event_id))
    os.kill(proc.pid, signal.SIGKILL)
    for line in proc.stdout:  # lines written before the kill landed are confirmed too
        seq, event_id = line.split()
        confirmed.append((int(seq), event_id))
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    return confirmed


@pytest.mark.slow
def test_kill_9_loop_loses_nothing_and_chain_verifies(tmp_path):
    path = tmp_path / "outbox.sqlite3"
    rng = random.Random(20250303)
    confirmed: dict[str, int] = {}
    for _ in range(KILLS):
        confirmed.update({e: s for s, e in _run_and_kill(path, rng)})

    box = Outbox(path)
    stored = box.all_taps()
    head_seq, head_hash = box.head()
    pending = box.pending(10**6)
    stats = box.stats()
    box.close()

    assert len(confirmed) >= KILLS
    by_id = {t.event_id: t.seq for t in stored}
    assert {e: by_id.get(e) for e in confirmed} == confirmed
    assert [t.seq for t in stored] == list(range(1, head_seq + 1))
    assert head_hash == stored[-1].hash
    result = verify_chain([t.to_wire() for t in stored], start_prev_hash=GENESIS_HASH, start_seq=1)
    assert result.ok, result.first_break and result.first_break.describe()
    assert result.verified == len(stored)
    assert stats.depth == len(pending) == sum(1 for t in stored if t.acked_at is None)
    assert stats.acked == len(stored) - len(pending) > 0
