"""Browser-test fixtures: a real server process on a free port, and headless Debian Chromium via Playwright.

``live_server`` is a factory so other features reuse it with their own database and settings::

    def test_fleet(live_server, e2e_db_url, page):
        server = live_server(database_url=e2e_db_url, env={"BAODAO_SOMETHING": "1"})
        page.goto(server.url("/fleet"))

The server runs ``baodao server --no-migrate`` (the database is migrated by the fixture that made it) with
the test keys, is awaited on ``GET /healthz``, and is terminated at the end of the test; its output goes to
a log file whose tail is shown if it does not come up.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.conftest import REPO_ROOT, TEST_KEYS

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
STARTUP_WAIT_S = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LiveServer:
    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def url(self, path: str = "/") -> str:
        return self.base_url + path


def _wait_healthy(server: LiveServer) -> None:
    deadline = time.monotonic() + STARTUP_WAIT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            break
        try:
            if requests.get(server.url("/healthz"), timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    tail = server.log_path.read_text(errors="replace")[-3000:]
    pytest.fail(f"server did not become healthy on {server.base_url}:\n{tail}")


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[Callable[..., LiveServer]]:
    """Factory: ``live_server(database_url=..., env={...})`` starts a server and returns a :class:`LiveServer`."""
    started: list[LiveServer] = []

    def start(*, database_url: str, env: Mapping[str, str] | None = None) -> LiveServer:
        port = free_port()
        var_dir = tmp_path / f"var-{port}"
        var_dir.mkdir()
        environment = {
            **os.environ,
            "BAODAO_DATABASE_URL": database_url,
            "BAODAO_VAR_DIR": str(var_dir),
            **{f"BAODAO_{k}": v for k, v in TEST_KEYS.items()},
            **(env or {}),
        }
        log_path = tmp_path / f"server-{port}.log"
        log = log_path.open("wb")
        process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from baodao.cli import main; main()",
                "server",
                "--no-migrate",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            cwd=REPO_ROOT,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        server = LiveServer(f"http://127.0.0.1:{port}", process, log_path)
        started.append(server)
        _wait_healthy(server)
        return server

    yield start
    for server in started:
        server.process.terminate()
        try:
            server.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


@pytest.fixture
def e2e_db_url(tmp_path: Path, sqlite_template: Path) -> str:
    """A fresh, migrated SQLite database file for one browser test (a server process can open it)."""
    path = tmp_path / "e2e.sqlite3"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture(scope="session")
def browser(chromium_browser):  # type: ignore[no-untyped-def]
    """The session's one Chromium (tests/conftest.py): Playwright's sync API allows one per thread."""
    return chromium_browser


@pytest.fixture
def page(browser):  # type: ignore[no-untyped-def]
    context = browser.new_context(
        locale="zh-CN", timezone_id="Asia/Shanghai", viewport={"width": 1280, "height": 900}
    )
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()
