"""Helpers for the sync tests: real servers on real sockets, enrolled kiosks, a kiosk process.

* ``live_server`` — the real server app (``app`` fixture, so SQLite *and* PostgreSQL) served by Werkzeug on
  a real TCP port in a thread: fast, and the kiosk talks to it over HTTP exactly as in production.
* :class:`ServerProcess` — ``baodao server --port P`` in a subprocess, for faults that need a process to
  stop and restart (``kill -9`` mid-upload).
* :class:`KioskProcess` — a real kiosk process (``tests/integration/sync/kiosk_driver.py``: the kiosk
  service, its sync agent and its local web app with ``/sim/read``), killable with SIGKILL.
* :func:`seed_centre` / :func:`enrol_token` — a centre with members and cards, and a one-time token.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from tests.conftest import REPO_ROOT, TEST_KEYS

PYTHON = str(Path(sys.executable))
BAODAO = str(Path(sys.executable).with_name("baodao"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 30.0, proc: subprocess.Popen[Any] | None = None) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            if requests.get(url, timeout=2).status_code < 500:
                return
        except requests.RequestException as exc:
            last = exc
        time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer within {timeout} s: {last}")


@dataclass
class LiveServer:
    url: str
    app: Any


@pytest.fixture
def live_server(app: Any) -> Iterator[LiveServer]:
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield LiveServer(f"http://127.0.0.1:{server.server_port}", app)
    server.shutdown()
    thread.join(5)


@dataclass
class Seeded:
    centre_code: str
    centre_id: int
    members: list[int]
    cards: list[str]  # raw UIDs, one per member


def seed_centre(db_url: str, members: int = 5) -> Seeded:
    """A community, centre, unit and members each with one card (keys: ``TEST_KEYS``)."""
    from tests.factories import make_card, make_centre, make_community, make_member, make_unit

    engine = create_engine(db_url)
    with Session(engine) as session:
        community = make_community(session)
        centre = make_centre(session, community, closes_at=None)
        unit = make_unit(session, community)
        ids, cards = [], []
        for _ in range(members):
            member = make_member(session, unit, community)
            _, uid = make_card(session, member)
            ids.append(member.id)
            cards.append(uid)
        session.commit()
        seeded = Seeded(centre.code, centre.id, ids, cards)
    engine.dispose()
    return seeded


def enrol_token(db_url: str, centre_code: str) -> str:
    from datetime import timedelta

    from server.api.enrolment import create_enrol_token

    engine = create_engine(db_url)
    with Session(engine) as session:
        token, _ = create_enrol_token(session, centre_code, ttl=timedelta(hours=1))
        session.commit()
    engine.dispose()
    return token


def server_events(db_url: str) -> list[Any]:
    """Every stored TapEvent row, by kiosk and seq."""
    from server.models import TapEvent

    engine = create_engine(db_url)
    with Session(engine) as session:
        rows = session.scalars(select(TapEvent).order_by(TapEvent.kiosk_id, TapEvent.seq)).all()
        session.expunge_all()
    engine.dispose()
    return list(rows)


def server_env(db_url: str) -> dict[str, str]:
    env = {**os.environ, "BAODAO_DATABASE_URL": db_url, "PYTHONUNBUFFERED": "1"}
    env.update({f"BAODAO_{k}": v for k, v in TEST_KEYS.items()})
    return env


class _Child:
    """A test child process that can be killed (SIGKILL, as a power cut) or stopped politely."""

    proc: subprocess.Popen[bytes] | None = None
    stop_grace_s: float = 10.0

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(self.stop_grace_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None


class ServerProcess(_Child):
    """``baodao server`` in a subprocess; ``start()`` again after ``kill()`` reuses the port."""

    def __init__(self, db_url: str, log_dir: Path, port: int | None = None) -> None:
        self.db_url = db_url
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_dir = log_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        log = open(self.log_dir / f"server-{self.port}-{self.starts}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [BAODAO, "--log-level", "WARNING", "server", "--host", "127.0.0.1", "--port", str(self.port)],
            env=server_env(self.db_url),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
        )
        log.close()
        wait_http(self.url + "/healthz", proc=self.proc)


def write_kiosk_config(path: Path, *, server_url: str, state_dir: Path, ui_port: int, key_hex: str) -> Path:
    path.write_text(
        f'server_url = "{server_url}"\n'
        f'state_dir = "{state_dir}"\n'
        "simulate = true\n\n"
        '[[readers]]\nprofile = "simulator"\nsimulate = true\n\n'
        "[rules]\ndebounce_s = 0\n\n"
        f'[ui]\nhost = "127.0.0.1"\nport = {ui_port}\n\n'
        f'[dev]\ncredential_key = "{key_hex}"\n',
        encoding="utf-8",
    )
    return path


class KioskProcess(_Child):
    """A real kiosk process (service + sync agent + local web app) run by ``kiosk_driver.py``."""

    stop_grace_s = 15.0

    def __init__(self, config: Path, log_dir: Path, *, ui_port: int, skew_s: float = 0.0) -> None:
        self.config = config
        self.log_dir = log_dir
        self.ui_url = f"http://127.0.0.1:{ui_port}"
        self.skew_s = skew_s
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, wait: bool = True) -> None:
        self.starts += 1
        log = open(self.log_dir / f"kiosk-{self.starts}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "tests.integration.sync.kiosk_driver", "--config", str(self.config),
             "--skew-s", str(self.skew_s)],
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
        )  # fmt: skip
        log.close()
        if wait:
            wait_http(self.ui_url + "/healthz", proc=self.proc)

    def tap(self, uid: str, timeout: float = 10.0) -> dict[str, Any]:
        resp = requests.post(self.ui_url + "/sim/read", json={"kind": "card", "value": uid}, timeout=timeout)
        resp.raise_for_status()
        return resp.json()

    def health(self) -> dict[str, Any]:
        return requests.get(self.ui_url + "/healthz", timeout=5).json()


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    path = tmp_path / "logs"
    path.mkdir()
    return path
