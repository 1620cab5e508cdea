"""Events per second accepted by the kiosk API over HTTP (signed, batched), next to the raw ceiling.

    python -m bench.ingest [--events N] [--kiosks K] [--workers W] [--threads T] [--backends B]

For each backend (SQLite, PostgreSQL): the same pre-built, chained events are
1. inserted straight into a fresh database with one driver ``executemany`` of the server's own rows and
   parameter conversion (the raw ceiling; SQLAlchemy Core's ``executemany`` of the same rows is shown
   next to it, as earlier runs used it), then
2. uploaded to ``gunicorn -w W --threads T 'server:create_app()'`` (the production setting of the
   backend, :data:`RECOMMENDED`, unless given) on another fresh database by K client threads (one
   kiosk each, batches of 500, every request signed with a fresh nonce) — validation, chain check,
   bulk insert and commit until the acknowledgement; then until the background recomputers have
   emptied the session queue (``*_with_sessions_*``: all session work included).
With a setting other than ``-w 3`` the upload is also measured with ``-w 3`` (``--compare-workers``).
Progress goes to stderr; the last stdout line is the JSON figures. PostgreSQL is 127.0.0.1:5432 (or
``BAODAO_BENCH_PG_URL``); it is skipped with a note when it does not answer.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
import sqlalchemy as sa

REPO = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("BAODAO_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
KEYS = {
    "BAODAO_SECRET_KEY": "bench-secret-key-0123456789abcdef",
    "BAODAO_CREDENTIAL_KEY": "bench-credential-key-0123456789abcdef",
    "BAODAO_NATIONAL_ID_KEY": "bench-national-id-key-0123456789abcdef",
}
BATCH = 500


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def wait_until_idle(master: int, workers: int, settle_s: float = 1.0, timeout_s: float = 60) -> None:
    """Wait until all ``workers`` have booted and the server uses no CPU for ``settle_s``.

    ``/healthz`` answers as soon as the *first* worker has imported the app; without this the timed
    uploads started while the other workers were still importing, on the same two cores.
    """
    deadline = time.monotonic() + timeout_s
    last: tuple[int, int] | None = None
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{master}/task/{master}/children") as f:
                children = [int(p) for p in f.read().split()]
            ticks = sum(_cpu_ticks(p) for p in [master, *children])
        except OSError:  # no /proc (not Linux): fall back to a fixed pause
            time.sleep(5)
            return
        now = (len(children), ticks)
        if len(children) == workers and now == last:
            return
        last = now
        time.sleep(settle_s)
    log("warning: the server did not settle before the timed run")


@contextmanager
def gunicorn(
    database_url: str, workers: int, extra_env: dict[str, str] | None = None, threads: int = 1
) -> Iterator[str]:
    """``gunicorn -w N [--threads T] 'server:create_app()'`` on a free port; yields the base URL."""
    port = free_port()
    env = {**os.environ, **KEYS, "BAODAO_DATABASE_URL": database_url, "BAODAO_LOG_LEVEL": "WARNING"}
    env.update(extra_env or {})
    cmd = [
        sys.executable, "-m", "gunicorn", "-w", str(workers), "-b", f"127.0.0.1:{port}",
        "--threads", str(threads), "--log-level", "warning", "server:create_app()",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=REPO, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {proc.returncode}")
            try:
                if requests.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("gunicorn did not answer /healthz within 60 s")
            time.sleep(0.2)
        wait_until_idle(proc.pid, workers)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def fresh_database(backend: str, tmp: Path, label: str) -> Iterator[str]:
    """A migrated, empty database; PostgreSQL ones are dropped afterwards."""
    from server.migrate import upgrade

    if backend == "sqlite":
        url = f"sqlite:///{tmp / f'{label}.sqlite3'}"
        upgrade(url)
        yield url
        return
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"baodao_bench_{label}_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = sa.engine.make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def seed(url: str, kiosks: int, members: int) -> tuple[list[dict[str, Any]], list[tuple[int, str]]]:
    """One centre, ``kiosks`` kiosks, ``members`` members with a card each. Same ids on every database."""
    from sqlalchemy.orm import Session

    from protocol.hashing import credential_hash
    from server.models import Community, Credential, Kiosk, Member, ServiceCentre, Unit

    key = KEYS["BAODAO_CREDENTIAL_KEY"].encode()
    engine = sa.create_engine(url)
    with Session(engine) as db, db.begin():
        community = Community(code="BENCH", name="压测社区")
        db.add(community)
        db.flush()
        centre = ServiceCentre(code="BENCH-SC", name="压测中心", community_id=community.id)
        unit = Unit(code="BENCH-U", name="压测单位")
        db.add_all([centre, unit])
        db.flush()
        kiosk_rows = [
            Kiosk(kiosk_uid=f"bench{i}", centre_id=centre.id, community_id=community.id, name=f"k{i}",
                  secret=f"{i:02x}" * 32)
            for i in range(kiosks)
        ]  # fmt: skip
        db.add_all(kiosk_rows)
        member_rows = [
            Member(member_no=f"B{i:06d}", name=f"压测{i}号", unit_id=unit.id, community_id=community.id)
            for i in range(members)
        ]
        db.add_all(member_rows)
        db.flush()
        db.add_all(
            Credential(member_id=m.id, kind="card", value_hash=credential_hash(key, "card", f"{m.id:08X}"))
            for m in member_rows
        )
        db.flush()
        out_kiosks = [{"id": k.id, "uid": k.kiosk_uid, "secret": k.secret} for k in kiosk_rows]
        out_members = [(m.id, credential_hash(key, "card", f"{m.id:08X}")) for m in member_rows]
    engine.dispose()
    return out_kiosks, out_members


def build_events(
    kiosks: list[dict[str, Any]], members: list[tuple[int, str]], per_kiosk: int
) -> dict[str, list]:
    """Chained wire events per kiosk; members tap in turn, two taps a day each, spread over past days."""
    from protocol.chain import GENESIS_HASH, compute_hash
    from protocol.ids import uuid7

    start = datetime.now(UTC) - timedelta(days=per_kiosk // max(1, len(members)) + 2)
    out: dict[str, list] = {}
    for k_index, kiosk in enumerate(kiosks):
        prev, events = GENESIS_HASH, []
        for i in range(per_kiosk):
            member_id, cred = members[(i + k_index * 7) % len(members)]
            at = start + timedelta(seconds=37 * i + k_index)
            event = {
                "event_id": str(uuid7()), "seq": i + 1, "prev_hash": prev, "credential_kind": "card",
                "credential_hash": cred, "member_id": member_id, "direction": "in" if i % 2 == 0 else "out",
                "device_time": at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "device_tz": "Asia/Shanghai",
                "clock_offset_ms": 120,
            }  # fmt: skip
            event["hash"] = prev = compute_hash(prev, {**event, "device_time": at})
            events.append(event)
        out[kiosk["uid"]] = events
    return out


def raw_ceiling(url: str, kiosks: list[dict[str, Any]], events: dict[str, list]) -> tuple[float, float]:
    """The same rows the server would write, inserted into the same table in one transaction.

    Returns (driver, sqlalchemy) events/s. The ceiling is the driver's: one ``cursor.executemany`` of a
    plain ``INSERT`` of every column, of the rows the server's own prepare step makes
    (:func:`server.ingest.prepare`, outside the clock: they are already the driver's parameter tuples;
    the kiosk's ids put back as parameters, as earlier rounds measured it — the server writes them into
    its statement instead) — the server inserts through the driver too, so anything slower would
    flatter the ratio. The engine is the server's own
    (:func:`server.db.make_engine`), so on SQLite the connection has the server's pragmas (foreign keys
    on, WAL, ``synchronous=NORMAL``); the table is the migrated one, with its indexes and triggers. The
    SQLAlchemy Core ``executemany`` of the same rows (what earlier runs used as the ceiling) is measured
    on a second copy for comparison.
    """
    from sqlalchemy.orm import Session

    from protocol.ids import uuid7
    from protocol.messages import EventBatch
    from server.config import DEFAULTS
    from server.db import make_engine
    from server.ingest import IngestSettings, look_up, prepare
    from server.ingest_db import COLUMNS, codec_for, full_row, insert_sql
    from server.models import Kiosk, TapEvent

    now = datetime.now(UTC)
    params: list[tuple[Any, ...]] = []
    natives: list[tuple[Any, ...]] = []  # the same rows as psycopg takes them: what SQLAlchemy converts
    engine = make_engine(url)  # the server's engine settings: on SQLite its pragmas (foreign keys, WAL, …)
    dialect = engine.dialect.name
    settings = IngestSettings.from_config(DEFAULTS)
    with Session(engine) as db:
        by_uid = {k.kiosk_uid: k for k in db.scalars(sa.select(Kiosk))}
        for uid, evs in events.items():
            for i in range(0, len(evs), BATCH):
                batch = EventBatch.model_validate_json(json.dumps({"events": evs[i : i + BATCH]}))
                kiosk, lookups = by_uid[uid], look_up(db, by_uid[uid], batch)
                ids = (kiosk.id, kiosk.centre_id, kiosk.community_id)
                for target, codec in ((params, dialect), (natives, "postgresql")):
                    ready = prepare(batch, lookups, now=now, settings=settings, codec=codec_for(codec))
                    target += [full_row(ids, row) for row in ready.rows]
    started = time.perf_counter()
    with engine.begin() as conn:
        conn.connection.driver_connection.cursor().executemany(insert_sql(dialect, on_conflict=False), params)
    driver = len(params) / (time.perf_counter() - started)
    # A second copy (tap events are append-only): new time-ordered ids, seqs beyond the first copy's.
    # It goes into the fuller table, so this comparison figure is, if anything, a little low.
    copy = [
        {**dict(zip(COLUMNS, row, strict=True)), "event_id": uuid7(), "seq": row[4] + 10**9}
        for row in natives
    ]
    started = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(sa.insert(TapEvent), copy)
    core = len(copy) / (time.perf_counter() - started)
    engine.dispose()
    return driver, core


def upload(base: str, kiosk: dict[str, Any], bodies: list[bytes], errors: list[str]) -> None:
    from protocol.signing import sign_request

    path = "/api/v1/kiosk/events"
    session = requests.Session()
    for body in bodies:
        headers = sign_request(kiosk["uid"], bytes.fromhex(kiosk["secret"]), "POST", path, body)
        response = session.post(
            base + path, data=body, headers={**headers, "Content-Type": "application/json"}
        )
        if response.status_code != 200 or response.json()["chain"] != "ok":
            errors.append(f"{response.status_code} {response.text[:200]}")
            return


def queue_depth(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM session_recompute_queue")).scalar_one())


def http_rate(
    url: str, kiosks: list[dict[str, Any]], events: dict[str, list], workers: int, threads: int = 1
) -> tuple[float, float, int]:
    """(events/s until the last acknowledgement, events/s until every session is recomputed, sessions
    already written when the last acknowledgement arrived).

    Request bodies are serialised before the clock starts (the kiosk has them ready in its outbox);
    signing, with a fresh nonce, stays inside the timed part. The second figure waits for the
    background recomputers to empty the session queue, so it includes all session work. The third
    shows whether the recomputers really stood aside during the burst (0: they did).
    """
    bodies = {
        uid: [json.dumps({"events": evs[i : i + BATCH]}).encode() for i in range(0, len(evs), BATCH)]
        for uid, evs in events.items()
    }
    engine = sa.create_engine(url)
    with gunicorn(url, workers, threads=threads) as base:
        errors: list[str] = []
        threads = [threading.Thread(target=upload, args=(base, k, bodies[k["uid"]], errors)) for k in kiosks]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        acked = time.perf_counter() - started
        with engine.connect() as conn:
            during = int(conn.execute(sa.text("SELECT count(*) FROM service_sessions")).scalar_one())
        deadline = time.monotonic() + 600
        while queue_depth(engine) and time.monotonic() < deadline:
            time.sleep(0.05)
        current = time.perf_counter() - started
        if queue_depth(engine):
            raise RuntimeError("the session queue did not drain within 600 s")
    if errors:
        raise RuntimeError(f"uploads failed: {errors[:3]}")
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT count(*) FROM tap_events")).scalar_one()
        sessions = conn.execute(sa.text("SELECT count(*) FROM service_sessions")).scalar_one()
    engine.dispose()
    total = sum(len(v) for v in events.values())
    if stored != total:
        raise RuntimeError(f"stored {stored} events, sent {total}")
    if not sessions:
        raise RuntimeError("no sessions were computed")
    return total / acked, total / current, during


def pg_available() -> bool:
    try:
        engine = sa.create_engine(PG_ADMIN_URL)
        with engine.connect():
            pass
        engine.dispose()
        return True
    except sa.exc.OperationalError:
        return False


#: Production settings per backend (docs/readme-api.md): gunicorn workers and threads per worker.
RECOMMENDED = {"sqlite": (2, 1), "postgresql": (3, 1)}


def per_backend(spec: str | None, index: int) -> dict[str, int]:
    """``"3"`` (every backend) or ``"sqlite=2,postgresql=3"``; unnamed backends keep :data:`RECOMMENDED`."""
    out = {b: setting[index] for b, setting in RECOMMENDED.items()}
    if spec:
        if "=" not in spec:
            return dict.fromkeys(out, int(spec))
        for part in spec.split(","):
            name, value = part.split("=")
            out[name.strip()] = int(value)
    return out


def measure_http(
    backend: str, tmp: Path, kiosks: list[dict[str, Any]], events: dict[str, list], args: argparse.Namespace,
    workers: int, threads: int, label: str,
) -> tuple[float, float, int]:  # fmt: skip
    with fresh_database(backend, tmp, label) as http_url:
        seed(http_url, args.kiosks, args.members)
        log(f"{backend}: HTTP upload with gunicorn -w {workers} --threads {threads} …")
        return http_rate(http_url, kiosks, events, workers, threads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000, help="events in total")
    parser.add_argument("--kiosks", type=int, default=4, help="kiosks uploading concurrently")
    parser.add_argument("--members", type=int, default=400)
    parser.add_argument(
        "--workers", help="gunicorn workers: N, or per backend like sqlite=2,postgresql=3 (default: those)"
    )
    parser.add_argument("--threads", help="gunicorn threads per worker, same form (default 1)")
    parser.add_argument(
        "--compare-workers", type=int, default=3,
        help="also run a backend with -w N --threads 1 when its setting differs (0: don't)",
    )  # fmt: skip
    parser.add_argument("--backends", default="sqlite,postgresql", help="comma-separated subset")
    args = parser.parse_args()
    workers, threads = per_backend(args.workers, 0), per_backend(args.threads, 1)
    per_kiosk = args.events // args.kiosks
    figures: dict[str, Any] = {"events": per_kiosk * args.kiosks, "batch": BATCH, "kiosks": args.kiosks}
    wanted = args.backends.split(",")
    backends = [b for b in ("sqlite", "postgresql") if b in wanted]
    if "postgresql" in backends and not pg_available():
        backends.remove("postgresql")
        log("PostgreSQL does not answer: PostgreSQL figures skipped")
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        for backend in backends:
            with fresh_database(backend, Path(tmp), "raw") as raw_url:
                kiosks, members = seed(raw_url, args.kiosks, args.members)
                events = build_events(kiosks, members, per_kiosk)
                log(f"{backend}: raw executemany of {figures['events']} events …")
                raw, raw_core = raw_ceiling(raw_url, kiosks, events)
            w, t = workers[backend], threads[backend]
            rate, with_sessions, during = measure_http(backend, Path(tmp), kiosks, events, args, w, t, "http")
            log(
                f"{backend}: {rate:,.0f} events/s acknowledged over HTTP with -w {w} --threads {t} "
                f"({with_sessions:,.0f} events/s until every session was recomputed; {during} sessions written "
                f"during the burst), raw ceiling {raw:,.0f} events/s (SQLAlchemy executemany {raw_core:,.0f}): "
                f"ratio {rate / raw:.2f}"
            )
            figures[f"{backend}_gunicorn_workers"] = w
            figures[f"{backend}_gunicorn_threads"] = t
            figures[f"{backend}_http_events_per_s"] = round(rate)
            figures[f"{backend}_http_with_sessions_events_per_s"] = round(with_sessions)
            figures[f"{backend}_sessions_written_during_burst"] = during
            figures[f"{backend}_raw_events_per_s"] = round(raw)
            figures[f"{backend}_raw_sqlalchemy_events_per_s"] = round(raw_core)
            figures[f"{backend}_http_to_raw_ratio"] = round(rate / raw, 3)
            n = args.compare_workers
            if n and (w, t) != (n, 1):
                rate_n, _, _ = measure_http(backend, Path(tmp), kiosks, events, args, n, 1, "http_cmp")
                log(f"{backend}: {rate_n:,.0f} events/s acknowledged with -w {n}: ratio {rate_n / raw:.2f}")
                figures[f"{backend}_http_w{n}_events_per_s"] = round(rate_n)
                figures[f"{backend}_http_w{n}_to_raw_ratio"] = round(rate_n / raw, 3)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
