"""The server-side commands as a person types them: `baodao db upgrade` on an empty database of each backend,
`baodao admin create-user`, `baodao admin enrol-token`."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.migration import MigrationContext
from click.testing import CliRunner

from baodao.cli import main
from server.migrate import current_head, downgrade
from server.models import Community, EnrolmentToken, ServiceCentre, User
from tests.conftest import TEST_KEYS


def _env(db_url: str) -> dict[str, str]:
    return {"BAODAO_DATABASE_URL": db_url, **{f"BAODAO_{k}": v for k, v in TEST_KEYS.items()}}


def test_db_upgrade_builds_an_empty_database(db_url):
    downgrade(db_url, "base")  # the fixture's database, emptied
    result = CliRunner().invoke(main, ["db", "upgrade"], env=_env(db_url))
    assert result.exit_code == 0, result.output
    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == current_head()
    engine.dispose()


def test_admin_commands_create_scoped_users_and_enrolment_tokens(db_url, db_session):
    community = Community(code="C-1", name="测试社区")
    db_session.add(community)
    db_session.flush()
    db_session.add(ServiceCentre(code="SC-1", name="中心", community_id=community.id))
    db_session.commit()
    runner = CliRunner()
    ok = runner.invoke(
        main,
        [
            "admin",
            "create-user",
            "wang",
            "--role",
            "community_staff",
            "--community",
            "C-1",
            "--password",
            "long enough password",
        ],
        env=_env(db_url),
    )
    assert ok.exit_code == 0, ok.output
    bad = runner.invoke(
        main,
        ["admin", "create-user", "li", "--role", "community_staff", "--password", "long enough password"],
        env=_env(db_url),
    )
    assert bad.exit_code == 2 and "社区" in bad.output
    token = runner.invoke(main, ["admin", "enrol-token", "--centre", "SC-1"], env=_env(db_url))
    assert token.exit_code == 0, token.output
    db_session.expire_all()
    user = db_session.scalar(sa.select(User).where(User.username == "wang"))
    assert user is not None and user.community_id == community.id and user.password_hash.startswith("$argon2")
    assert db_session.scalar(sa.select(sa.func.count()).select_from(EnrolmentToken)) == 1
