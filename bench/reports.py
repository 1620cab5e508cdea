"""Report and review-queue latency on a city year of data (``python -m bench.reports``).

Seeds a fresh PostgreSQL database (``BAODAO_BENCH_PG_URL``'s server) with 77 communities (one centre and
one kiosk each), 500 units, 13,000 members and ~1 million service sessions spread over one year, each
with its check-in tap event (a ``TapFlag`` on a few, as a drifting clock would leave them). Rows are
streamed with COPY, which is what keeps seeding near a minute on two cores. Then it times, through the
Flask app (test client: routing, scope, query, template), the monthly per-unit hours report for the whole
city (admin) and for one community's staff, and the review-queue page — p50/p95 over repeated requests.
It also times, as the admin, three ways of counting the review queue for its pager (the generic
``count(*)`` over the queue's ``OR``, the two summed index-friendly counts the page uses, and a count
capped at 1,001 rows) so the choice stays backed by a measurement.
Progress goes to stderr; the last stdout line is one JSON object.

``BAODAO_BENCH_REUSE=1`` keeps an already seeded database (migrating it to the head) and only measures:
for iterating on queries without paying the seeding minute each time.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import sqlalchemy as sa

from protocol.flags import TapFlag

PG_ADMIN = os.environ.get("BAODAO_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
N_COMMUNITIES = 77
N_UNITS = 500
N_MEMBERS = int(os.environ.get("BAODAO_BENCH_MEMBERS", "13000"))
SESSIONS_PER_MEMBER = int(os.environ.get("BAODAO_BENCH_SESSIONS_PER_MEMBER", "77"))  # ~1M in all
YEAR = 2025
REPEATS = int(os.environ.get("BAODAO_BENCH_REPEATS", "20"))
KEYS = {
    "SECRET_KEY": "bench-secret-key-0123456789abcdef",
    "CREDENTIAL_KEY": "bench-credential-key-0123456789abcdef",
    "NATIONAL_ID_KEY": "bench-national-id-key-0123456789abcdef",
}
SHANGHAI = timedelta(hours=8)


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


BENCH_DB = "baodao_bench_reports"


def _seeded_database() -> str | None:
    """The URL of an already seeded bench database, migrated to the head, or None if there is none."""
    from server.migrate import upgrade

    url = sa.engine.make_url(PG_ADMIN).set(database=BENCH_DB).render_as_string(hide_password=False)
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            n = conn.exec_driver_sql("SELECT count(*) FROM service_sessions").scalar() or 0
    except sa.exc.SQLAlchemyError:
        return None
    finally:
        engine.dispose()
    if n < N_MEMBERS:
        return None
    upgrade(url)
    _log(f"reusing {BENCH_DB}: {n} sessions")
    return url


def _fresh_database() -> str:
    from server.migrate import upgrade

    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    name = BENCH_DB
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    url = sa.engine.make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    return url


def _copy(cur: psycopg.Cursor[Any], table: str, columns: tuple[str, ...], rows: Any) -> int:
    n = 0
    with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
            n += 1
    return n


def seed(url: str) -> dict[str, Any]:
    """The city: ids are assigned here (1-based) so sessions can refer to them without reading back."""
    rnd = random.Random(2025)
    dsn = sa.engine.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    now = datetime.now(UTC)
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        _copy(cur, "communities", ("id", "code", "name", "created_at"),
              ((c, f"C{c:03d}", f"第{c}社区", now) for c in range(1, N_COMMUNITIES + 1)))  # fmt: skip
        _copy(cur, "service_centres",
              ("id", "community_id", "code", "name", "timezone", "debounce_seconds", "max_session_minutes", "created_at"),
              ((c, c, f"SC{c:03d}", f"第{c}党群服务中心", "Asia/Shanghai", 60, 720, now)
               for c in range(1, N_COMMUNITIES + 1)))  # fmt: skip
        _copy(cur, "kiosks",
              ("id", "kiosk_uid", "centre_id", "community_id", "name", "secret", "status", "enrolled_at", "last_seq",
               "last_hash", "chain_broken", "desired_config_version", "applied_config_version"),
              ((c, f"K{c:03d}", c, c, f"终端{c}", "00" * 32, "active", now, 0, "0" * 64, False, 0, 0)
               for c in range(1, N_COMMUNITIES + 1)))  # fmt: skip
        _copy(cur, "units", ("id", "code", "name", "created_at"),
              ((u, f"U{u:04d}", f"报到单位{u}", now) for u in range(1, N_UNITS + 1)))  # fmt: skip
        unit_community = {u: (u - 1) % N_COMMUNITIES + 1 for u in range(1, N_UNITS + 1)}
        _copy(cur, "unit_communities", ("unit_id", "community_id", "since"),
              ((u, c, now) for u, c in unit_community.items()))  # fmt: skip
        members = []
        for m in range(1, N_MEMBERS + 1):
            unit = rnd.randint(1, N_UNITS)
            members.append((m, unit, unit_community[unit]))
        _copy(cur, "members", ("id", "member_no", "name", "unit_id", "community_id", "status", "created_at", "updated_at"),
              ((m, f"M{m:06d}", f"党员{m}", u, c, "active", now, now) for m, u, c in members))  # fmt: skip
        _copy(cur, "users", ("username", "display_name", "password_hash", "role", "community_id", "locale",
                              "active", "failed_logins", "created_at"),
              [("bench_admin", "admin", "x", "admin", None, "zh_CN", True, 0, now),
               ("bench_staff", "staff", "x", "community_staff", 1, "zh_CN", True, 0, now)])  # fmt: skip
        for table in ("communities", "service_centres", "kiosks", "units", "members"):
            cur.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
            )
        conn.commit()
        _log(f"seed: {N_COMMUNITIES} communities, {N_UNITS} units, {N_MEMBERS} members")

        seq = [0] * (N_COMMUNITIES + 1)
        year_start = datetime(YEAR, 1, 1, tzinfo=UTC) - SHANGHAI
        sessions: list[tuple[Any, ...]] = []
        statuses = ["closed"] * 95 + ["auto_closed"] * 2 + ["needs_review", "approved", "adjusted"]
        started = time.monotonic()

        def taps() -> Any:
            for i, (m, unit, community) in enumerate(members):
                for _ in range(SESSIONS_PER_MEMBER):
                    day = rnd.randrange(365)
                    start = year_start + timedelta(days=day, minutes=rnd.randrange(8 * 60, 19 * 60))
                    status = statuses[rnd.randrange(100)]
                    minutes = 0 if status == "auto_closed" else rnd.randrange(30, 240)
                    seq[community] += 1
                    event = uuid.UUID(int=rnd.getrandbits(128), version=4)
                    flags = TapFlag.CLOCK_DRIFT.value if rnd.random() < 0.003 else None
                    sessions.append((event.hex, m, unit, community, community, event, start,
                                     None if status == "auto_closed" else start + timedelta(minutes=minutes),
                                     status, minutes, "kiosk", start))  # fmt: skip
                    yield (event, community, community, community, seq[community], "0" * 64, "0" * 64, "card",
                           "0" * 64, m, "in", start, "Asia/Shanghai", 0, start, start, True, flags)  # fmt: skip
                if i % 2000 == 1999:
                    _log(f"seed: taps for {i + 1}/{N_MEMBERS} members ({time.monotonic() - started:.0f} s)")

        n_taps = _copy(cur, "tap_events",
                       ("event_id", "kiosk_id", "centre_id", "community_id", "seq", "prev_hash", "hash",
                        "credential_kind", "credential_hash", "member_id", "direction", "device_time", "device_tz",
                        "clock_offset_ms", "effective_time", "received_at", "chain_ok", "flags"), taps())  # fmt: skip
        conn.commit()
        _log(f"seed: {n_taps} tap events ({time.monotonic() - started:.0f} s); sessions next")
        n_sessions = _copy(cur, "service_sessions",
                           ("key", "member_id", "unit_id", "centre_id", "community_id", "check_in_event_id",
                            "started_at", "ended_at", "status", "credited_minutes", "source", "updated_at"),
                           iter(sessions))  # fmt: skip
        conn.commit()
        _log(f"seed: {n_sessions} sessions ({time.monotonic() - started:.0f} s); analysing")
        conn.autocommit = True
        cur.execute("VACUUM ANALYZE")
    return {"sessions": n_sessions, "tap_events": n_taps}


def _time(client: Any, url: str) -> dict[str, float]:
    for _ in range(2):  # warm caches and the template
        assert client.get(url).status_code == 200, url
    samples = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        response = client.get(url)
        samples.append((time.perf_counter() - t0) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    samples.sort()
    return {
        "p50_ms": round(statistics.median(samples), 1),
        "p95_ms": round(samples[int(0.95 * (len(samples) - 1))], 1),
    }


def measure(url: str) -> dict[str, Any]:
    from server import create_app
    from server.models import User

    app = create_app({"DATABASE_URL": url, **KEYS})
    engine = app.extensions["baodao_db"].engine
    results: dict[str, Any] = {}
    with sa.orm.Session(engine) as s:
        users = {u.username: u for u in s.scalars(sa.select(User))}
    for who in ("bench_admin", "bench_staff"):
        client = app.test_client()
        user = users[who]
        with client.session_transaction() as sess:
            sess["uid"] = user.id
            sess["stamp"] = (user.password_changed_at or user.created_at).isoformat()
        role = "admin" if who == "bench_admin" else "staff"
        for name, path in (
            ("monthly_unit_report", f"/reports/hours?group=unit&year={YEAR}&month=6"),
            ("review_queue", "/review"),
        ):
            figures = _time(client, path)
            _log(f"{name} as {role}: {figures}")
            results[f"{name}_{role}_p50_ms"] = figures["p50_ms"]
            results[f"{name}_{role}_p95_ms"] = figures["p95_ms"]
    results.update(_queue_counts(app, users["bench_admin"]))
    engine.dispose()
    return results


def _queue_counts(app: Any, admin: Any) -> dict[str, Any]:
    """The three ways of counting the admin's review queue, timed on the same data (p50 of REPEATS)."""
    from server.web.review import queue_clause, queue_count
    from server.web.scope import scope_for
    from server.web.sessions_view import apply_filters, session_rows

    scope = scope_for(admin)
    engine = app.extensions["baodao_db"].engine
    results: dict[str, Any] = {}
    with app.test_request_context("/review"), sa.orm.Session(engine) as s:
        rows = apply_filters(session_rows(scope).where(queue_clause()))
        strategies = {
            "generic": lambda: s.scalar(sa.select(sa.func.count()).select_from(rows.subquery())),
            "split": lambda: queue_count(s, scope),
            "capped_1001": lambda: s.scalar(
                sa.select(sa.func.count()).select_from(rows.limit(1001).subquery())
            ),
        }
        for name, run in strategies.items():
            run()  # warm
            samples = []
            for _ in range(REPEATS):
                t0 = time.perf_counter()
                n = run()
                samples.append((time.perf_counter() - t0) * 1000)
            results[f"queue_count_{name}_p50_ms"] = round(statistics.median(samples), 1)
            results[f"queue_count_{name}_rows"] = n
            _log(f"queue count {name}: {n} rows, p50 {results[f'queue_count_{name}_p50_ms']} ms")
    if results["queue_count_generic_rows"] != results["queue_count_split_rows"]:
        raise SystemExit("the split queue count disagrees with the generic count")
    return results


def main() -> None:
    t0 = time.monotonic()
    url = _seeded_database() if os.environ.get("BAODAO_BENCH_REUSE") == "1" else None
    if url is None:
        url = _fresh_database()
        counts = seed(url)
        seed_s: float | None = round(time.monotonic() - t0, 1)
        _log(f"seeded in {seed_s:.0f} s")
    else:
        counts, seed_s = {}, None  # reused: seeding not measured in this run
    figures = measure(url)
    print(json.dumps({"members": N_MEMBERS, "communities": N_COMMUNITIES, **counts,
                      "seed_s": seed_s, **figures, "target_ms": 300}))  # fmt: skip


if __name__ == "__main__":
    main()
