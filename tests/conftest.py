"""Fixtures shared by the whole suite: databases on both backends, the server app, data factories.

Every test that takes ``db_url`` (directly or through ``app``/``db_session``) runs twice: on SQLite and on
PostgreSQL. Each test session migrates one fresh PostgreSQL database (dropped at the end) and one SQLite
template file; each test gets an empty copy. In CI (``CI=true``) a missing PostgreSQL fails the run; locally
it skips with the reason.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

BACKENDS = ("sqlite", "postgresql")
PG_ADMIN_URL = os.environ.get("BAODAO_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() == "true"
TEST_KEYS = {
    "SECRET_KEY": "test-secret-key-0123456789abcdef",
    "CREDENTIAL_KEY": "test-credential-key-0123456789abcdef",
    "NATIONAL_ID_KEY": "test-national-id-key-0123456789abcdef",
}

REPO_ROOT = Path(__file__).resolve().parent.parent
TEST_OUTPUT = REPO_ROOT / "test-output"


def require_service(name: str, why: str) -> None:
    """Fail in CI, skip locally: a test that needs a service must never pass silently without it."""
    message = f"{name} is not available: {why}"
    if IN_CI:
        pytest.fail(message + " (CI=true: services are mandatory)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from server.migrate import upgrade

    path = tmp_path_factory.mktemp("sqlite-template") / "template.sqlite3"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def pg_database_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test session, dropped afterwards."""
    from server.migrate import upgrade

    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            name = f"baodao_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as exc:
        admin.dispose()
        require_service("PostgreSQL", f"{PG_ADMIN_URL}: {exc.orig}")
        raise  # unreachable; require_service raises
    url = sa.engine.make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    yield url
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


def _truncate_all(url: str) -> None:
    from server.models import Base

    engine = sa.create_engine(url)
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
    engine.dispose()


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty, migrated database: SQLite file or PostgreSQL (truncated), one test at a time."""
    if request.param == "sqlite":
        path = tmp_path / "baodao.sqlite3"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("pg_database_url")
    _truncate_all(url)
    return url


@pytest.fixture
def app_config(db_url: str, tmp_path: Path) -> dict[str, object]:
    return {"DATABASE_URL": db_url, "TESTING": True, **TEST_KEYS}


@pytest.fixture
def app(app_config: dict[str, object]):  # type: ignore[no-untyped-def]
    from server import create_app

    application = create_app(app_config)
    yield application
    application.extensions["baodao_db"].dispose()


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    return app.test_client()


@pytest.fixture
def db_session(app):  # type: ignore[no-untyped-def]
    """A session outside any request, committed by the test when it wants data visible to the app."""
    from sqlalchemy.orm import Session

    with Session(app.extensions["baodao_db"].engine, expire_on_commit=False) as session:
        yield session


CHROMIUM = Path("/usr/bin/chromium")  # Debian's; Playwright's own browser download fails here
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def chromium_browser() -> Iterator[object]:
    """One headless Debian Chromium for the whole session, shared by every browser test package."""
    if not CHROMIUM.exists():
        require_service("Chromium", f"{CHROMIUM} is missing (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
    yield browser
    browser.close()
    playwright.stop()


@pytest.fixture(scope="session")
def test_output() -> Path:
    """Where tests leave screenshots and figures for people to look at (kept out of git)."""
    TEST_OUTPUT.mkdir(exist_ok=True)
    return TEST_OUTPUT
