"""How long a kiosk back from a week offline needs to upload 10,000 taps (``python -m bench.catchup``).

For each backend (SQLite file; PostgreSQL at ``BAODAO_BENCH_PG_URL`` or the test database's server) it
migrates a fresh database, starts a real ``baodao server`` process, enrols a kiosk, writes 10,000 chained
taps into the kiosk's outbox, and times the kiosk's :class:`kiosk.sync.Uploader` draining it over HTTP
with signing (500-event batches, each acknowledged after the server's commit). Baseline in the same run:
the same HTTP round trips with a 1-event batch, to show what batching buys. Progress goes to stderr; the
last stdout line is one JSON object.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from kiosk.client import KioskClient
from kiosk.enrol import enrol
from kiosk.outbox import Outbox, TapDraft
from kiosk.sync import Uploader
from protocol.hashing import credential_hash

logger = logging.getLogger(__name__)

N_TAPS = int(os.environ.get("BAODAO_BENCH_TAPS", "10000"))
PG_ADMIN = os.environ.get("BAODAO_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
KEY = b"bench-credential-key-0123456789abcdef"


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _fill(outbox: Outbox, n: int, members: list[int]) -> None:
    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=7)
    outbox._db.execute("PRAGMA synchronous=OFF")  # set-up only; what we time is the upload
    for i in range(n):
        m = members[i % len(members)]
        outbox.append(
            TapDraft(
                credential_kind="card",
                credential_hash=credential_hash(KEY, "card", f"{m:08X}"),
                direction="in" if (i // len(members)) % 2 == 0 else "out",
                device_time=start + dt.timedelta(seconds=60 * i),
                device_tz="Asia/Shanghai",
                member_id=m,
            )
        )


def _run(db_url: str, work: Path) -> dict[str, Any]:
    from server.migrate import upgrade
    from tests.integration.sync.conftest import ServerProcess, enrol_token, seed_centre

    upgrade(db_url)
    seeded = seed_centre(db_url, members=50)
    server = ServerProcess(db_url, work)
    server.start()
    try:
        state = work / "kiosk"
        kiosk = enrol(server.url, enrol_token(db_url, seeded.centre_code), state, device_name="bench")
        client = KioskClient(server.url, kiosk.kiosk_id, bytes.fromhex(kiosk.kiosk_secret))
        outbox = Outbox(state / "outbox.sqlite3")
        _fill(outbox, N_TAPS, seeded.members)
        _log(f"  {N_TAPS} taps in the outbox; uploading in batches of 500")
        t0 = time.perf_counter()
        uploaded = Uploader(outbox, client).drain()
        batched_s = time.perf_counter() - t0
        assert uploaded == N_TAPS and outbox.stats().depth == 0, (uploaded, outbox.stats())
        _fill(outbox, 300, seeded.members)
        t0 = time.perf_counter()
        single = Uploader(outbox, client, batch_size=1)
        while single.sync_once() or outbox.stats().depth:
            pass
        single_s = time.perf_counter() - t0
    finally:
        server.stop()
    return {
        "catchup_s": round(batched_s, 2),
        "events_per_s": round(N_TAPS / batched_s),
        "baseline_one_per_request_events_per_s": round(300 / single_s),
    }


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    results: dict[str, Any] = {"taps": N_TAPS, "batch": 500}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "sqlite"
        work.mkdir()
        _log("SQLite: migrating and starting a server process")
        results["sqlite"] = _run(f"sqlite:///{work / 'bench.sqlite3'}", work)
        _log(f"SQLite: {results['sqlite']}")
        admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        name = f"baodao_bench_{uuid.uuid4().hex[:8]}"
        try:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        except sa.exc.OperationalError as exc:
            _log(f"PostgreSQL not available, skipped: {exc.orig}")
            results["postgresql"] = None
        else:
            url = sa.engine.make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)
            try:
                work = Path(tmp) / "pg"
                work.mkdir()
                _log("PostgreSQL: migrating and starting a server process")
                results["postgresql"] = _run(url, work)
                _log(f"PostgreSQL: {results['postgresql']}")
            finally:
                with admin.connect() as conn:
                    conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
