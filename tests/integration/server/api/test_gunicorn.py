"""Several gunicorn workers, on each database: exactly-once storage and replay refusal across workers.

Nonces and chain heads live in the database, so what one worker accepted another must refuse; this test
proves it with real processes and real sockets rather than trusting the design. Workers per backend are
the production settings (SQLite -w 2, PostgreSQL -w 3); the concurrent re-sends race between a batch
continuing the chain head and one decided event by event across processes (server.ingest.store_batch).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import requests
import sqlalchemy as sa
from sqlalchemy.orm import Session

from bench.ingest import RECOMMENDED, gunicorn
from protocol.signing import sign_request
from tests.conftest import TEST_KEYS
from tests.factories import make_centre, make_kiosk, make_member, make_wire_events

from .conftest import health

pytestmark = pytest.mark.slow
THREADS = 4
ENV = {f"BAODAO_{k}": v for k, v in TEST_KEYS.items()}


def _post(base: str, kiosk: dict, path: str, body: bytes, headers: dict | None = None) -> requests.Response:
    headers = headers or sign_request(kiosk["uid"], bytes.fromhex(kiosk["secret"]), "POST", path, body)
    return requests.post(
        base + path, data=body, headers={**headers, "Content-Type": "application/json"}, timeout=60
    )


def _queue_depth(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM session_recompute_queue")).scalar_one())


def test_concurrent_duplicate_uploads_store_each_event_once(db_url):
    engine = sa.create_engine(db_url)
    with Session(engine) as db:
        centre = make_centre(db, closes_at=None)
        member = make_member(db)
        k = make_kiosk(db, centre)
        kiosk = {"id": k.id, "uid": k.kiosk_uid, "secret": k.secret}
        member_id = member.id
        db.commit()
    events = make_wire_events(
        300, member_id=member_id, step_s=600, start=datetime.now(UTC) - timedelta(hours=60)
    )
    batches = [json.dumps({"events": events[i : i + 50]}).encode() for i in range(0, 300, 50)]
    path = "/api/v1/kiosk/events"
    failures: list[str] = []

    workers, _ = RECOMMENDED[engine.dialect.name]
    with gunicorn(db_url, workers=workers, extra_env=ENV) as base:

        def uploader() -> None:
            for body in batches:  # in order, like a kiosk: every thread re-sends every batch
                response = _post(base, kiosk, path, body)
                if response.status_code != 200:
                    failures.append(response.text[:300])

        threads = [threading.Thread(target=uploader) for _ in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

        beat = json.dumps({"device_time": datetime.now(UTC).isoformat(), "health": health()}).encode()
        hb_path = "/api/v1/kiosk/heartbeat"
        replay = sign_request(kiosk["uid"], bytes.fromhex(kiosk["secret"]), "POST", hb_path, beat)
        barrier = threading.Barrier(8)
        statuses: list[int] = []

        def replayer() -> None:
            barrier.wait()
            statuses.append(_post(base, kiosk, hb_path, beat, headers=replay).status_code)

        replayers = [threading.Thread(target=replayer) for _ in range(8)]
        for t in replayers:
            t.start()
        for t in replayers:
            t.join()

        # Sessions are recomputed by the workers' background recomputers, after the acknowledgements:
        # wait (generously — this is liveness, not speed) until they have emptied the queue.
        deadline = time.monotonic() + 120
        while _queue_depth(engine) and time.monotonic() < deadline:
            time.sleep(0.1)
        drained = _queue_depth(engine) == 0

    assert failures == []
    assert drained, "the background recomputers did not empty the session queue"
    with engine.connect() as conn:
        ids = conn.execute(sa.text("SELECT event_id FROM tap_events")).scalars().all()
        flagged = conn.execute(sa.text("SELECT count(*) FROM tap_events WHERE NOT chain_ok")).scalar_one()
        head = conn.execute(
            sa.text("SELECT last_seq, chain_broken FROM kiosks WHERE id = :id"), {"id": kiosk["id"]}
        ).one()
        sessions = conn.execute(sa.text("SELECT count(*) FROM service_sessions")).scalar_one()
    engine.dispose()
    # PostgreSQL returns UUIDs, SQLite the 32 hex digits SQLAlchemy stores: compare as UUIDs
    assert len(ids) == 300 and {uuid.UUID(str(i)) for i in ids} == {uuid.UUID(e["event_id"]) for e in events}
    assert flagged == 0 and tuple(head) == (300, False)
    assert sessions == 150  # 300 taps ten minutes apart: in/out pairs
    assert sorted(statuses) == [200] + [409] * 7
