"""``baodao admin qr …`` through click's CliRunner, against the configured database (both backends)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from protocol import qrtoken
from protocol.hashing import credential_hash
from protocol.qrtoken import load_public_key_b64
from server.cli import admin_group
from server.models import AuditRecord, Community, Credential, QrBadge, QrSigningKey, utcnow
from server.qr.login import link_is_valid
from server.qr.roster import qr_roster_material
from tests.conftest import TEST_KEYS
from tests.factories import TEST_CREDENTIAL_KEY, make_member


@pytest.fixture
def cli(db_url: str, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Runs ``baodao admin …`` configured the way an admin's shell is: by BAODAO_* variables."""
    monkeypatch.delenv("BAODAO_CONFIG", raising=False)
    monkeypatch.setenv("BAODAO_DATABASE_URL", db_url)
    for key, value in TEST_KEYS.items():
        monkeypatch.setenv(f"BAODAO_{key}", value)
    runner = CliRunner()

    def run(*args: str, ok: bool = True):  # type: ignore[no-untyped-def]
        result = runner.invoke(admin_group, ["qr", *args], catch_exceptions=False)
        assert (result.exit_code == 0) == ok, result.output
        return result

    return run


@pytest.fixture
def member(db_session):  # type: ignore[no-untyped-def]
    row = make_member(db_session)
    db_session.commit()
    return row


def _audit_actions(db_session) -> list[str]:  # type: ignore[no-untyped-def]
    db_session.expire_all()
    return [a.action for a in db_session.scalars(select(AuditRecord).order_by(AuditRecord.id))]


def test_help_is_bilingual(cli):
    text = cli("--help").output
    for command in ("rotate-key", "issue-badge", "revoke-badge", "login-link"):
        assert command in text
    assert "二维码" in text
    assert "注销原因" in cli("revoke-badge", "--help").output


def test_rotate_key_creates_the_first_key_then_rotates_with_lead(cli, db_session):
    first = cli("rotate-key").stdout.strip()
    db_session.expire_all()
    (row,) = db_session.scalars(select(QrSigningKey)).all()
    assert row.key_id == first and row.not_before <= utcnow()  # signs at once on a fresh install

    second = cli("rotate-key", "--lead-minutes", "15", "--overlap-hours", "1").stdout.strip()
    assert second != first
    db_session.expire_all()
    rows = {r.key_id: r for r in db_session.scalars(select(QrSigningKey))}
    assert rows[second].not_before > utcnow() + timedelta(minutes=14)
    assert rows[first].retires_at == rows[second].not_before + timedelta(hours=1)
    assert set(qr_roster_material(db_session)[0]) == {first, second}
    assert _audit_actions(db_session) == ["qr_key_created", "qr_key_rotated"]


def test_issue_then_revoke_a_badge(cli, member, db_session, tmp_path):
    svg = tmp_path / "badge.svg"
    serial, token = cli("issue-badge", "--member", member.member_no, "--svg", str(svg)).stdout.split()
    assert svg.read_text(encoding="utf-8").startswith("<svg")

    keys, revoked = qr_roster_material(db_session)
    public = {kid: load_public_key_b64(b64) for kid, b64 in keys.items()}
    verified = qrtoken.verify_token(token, public, utcnow())
    assert verified.member_ref == member.id and verified.badge_serial == serial and revoked == []
    db_session.expire_all()
    badge = db_session.scalars(select(QrBadge).where(QrBadge.serial == serial)).one()
    cred = db_session.get(Credential, badge.credential_id)
    assert cred.kind == "badge_qr" and cred.member_id == member.id
    assert cred.value_hash == credential_hash(TEST_CREDENTIAL_KEY, "qr", verified.credential_value)

    assert "revoked" in cli("revoke-badge", serial.lower(), "--reason", "lost / 遗失").stdout
    db_session.expire_all()
    cred = db_session.get(Credential, badge.credential_id)
    assert cred.status == "revoked" and cred.revoked_reason == "lost / 遗失"
    assert qr_roster_material(db_session)[1] == [serial]
    with pytest.raises(qrtoken.RevokedBadge):
        qrtoken.verify_token(token, public, utcnow(), revoked_badges={serial})

    again = cli("revoke-badge", serial, "--reason", "twice", ok=False)
    assert again.exit_code == 2 and "already revoked" in again.stderr and "已注销" in again.stderr
    assert _audit_actions(db_session) == ["qr_badge_issued", "qr_badge_revoked"]


def test_unknown_member_and_unknown_badge_are_clear_errors(cli, db_session):
    missing = cli("issue-badge", "--member", "NOPE", ok=False)
    assert missing.exit_code == 2 and "NOPE" in missing.stderr and "党员编号不存在" in missing.stderr
    assert cli("login-link", "--member", "NOPE", ok=False).exit_code == 2
    unknown = cli("revoke-badge", "ZZZZZZZZZZ", "--reason", "x", ok=False)
    assert "没有此胸卡" in unknown.stderr
    db_session.expire_all()
    assert db_session.scalars(select(Credential)).all() == []


def test_login_link_prints_a_one_time_link_that_opens_the_phone_page(cli, member, app, client, db_session):
    link = cli(
        "login-link", "--member", member.member_no, "--base-url", "https://baodao.example/"
    ).stdout.strip()
    assert link.startswith("https://baodao.example/m/link/")
    token = link.rsplit("/", 1)[1]
    assert link_is_valid(db_session, token, app.config["SECRET_KEY"], app.config)
    assert client.get(f"/m/link/{token}").status_code == 200
    assert client.get("/m/link/" + token[:-2] + "xx").status_code == 410
    assert _audit_actions(db_session) == ["qr_login_link_created"]


def test_issue_badge_refuses_an_inactive_member(cli, db_session):
    gone = make_member(db_session, status="inactive")
    db_session.commit()
    result = cli("issue-badge", "--member", gone.member_no, ok=False)
    assert "停用" in result.stderr
    assert db_session.get(Community, gone.community_id) is not None
