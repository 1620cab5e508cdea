"""Server-side commands: ``baodao server``, ``baodao db …``, ``baodao admin …``, ``baodao audit …``."""

from __future__ import annotations

import logging
import sys

import click

from .qr.cli import qr_group

logger = logging.getLogger(__name__)


def _app():  # type: ignore[no-untyped-def]
    from . import create_app

    return create_app()


@click.command("server")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on. 监听地址。")
@click.option("--port", default=8000, show_default=True, type=int, help="Port to listen on. 监听端口。")
@click.option(
    "--migrate/--no-migrate",
    default=True,
    show_default=True,
    help="Upgrade the database before serving. 启动前升级数据库结构。",
)
def server_cmd(host: str, port: int, migrate: bool) -> None:
    """Run the central server (development server; use gunicorn in production, see README).

    运行中心服务器(开发用服务器;生产环境请用 gunicorn,见 README)。数据库由 BAODAO_DATABASE_URL 指定,
    默认为 var/ 下的 SQLite。
    """
    from .config import ConfigError, load_config
    from .migrate import upgrade

    try:
        config = load_config()
    except ConfigError as exc:  # a bad setting is a message for the operator, not a traceback
        raise click.ClickException(str(exc)) from None
    if migrate:
        upgrade(config["DATABASE_URL"])
    app = _app()
    click.echo(f"baodao server on http://{host}:{port}/  (database: {app.extensions['baodao_db'].backend})")
    app.run(host=host, port=port, threaded=True, use_reloader=False)


@click.group("db")
def db_group() -> None:
    """Database schema management. 数据库结构管理。"""


@db_group.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="Target revision. 目标版本。")
def db_upgrade(revision: str) -> None:
    """Apply migrations up to REVISION (BAODAO_DATABASE_URL). 将数据库迁移到指定版本。"""
    from .config import load_config
    from .migrate import upgrade

    url = load_config()["DATABASE_URL"]
    upgrade(url, revision)
    click.echo(f"database at {revision}: {_redact(url)}")


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@click.group("admin")
def admin_group() -> None:
    """Administration: users, kiosk enrolment tokens, QR codes. 管理:用户、终端注册令牌、二维码。"""


admin_group.add_command(qr_group)


@admin_group.command("create-user")
@click.argument("username")
@click.option(
    "--role",
    type=click.Choice(["admin", "community_staff", "unit_secretary", "auditor"]),
    default="admin",
    show_default=True,
    help="Role. 角色。",
)
@click.option(
    "--community", "community_code", help="Community code (community staff). 社区编码(社区工作人员)。"
)
@click.option("--unit", "unit_code", help="Unit code (unit secretary). 单位编码(单位书记)。")
@click.option("--name", "display_name", help="Display name. 显示名称。")
@click.option(
    "--password",
    prompt=True,
    hide_input=True,
    confirmation_prompt=True,
    help="Password (prompted when omitted). 密码(省略时提示输入)。",
)
def create_user(
    username: str,
    role: str,
    community_code: str | None,
    unit_code: str | None,
    display_name: str | None,
    password: str,
) -> None:
    """Create a staff account with a role and scope. 创建带角色与范围的工作人员账号。"""
    from .accounts import AccountError
    from .accounts import create_user as do_create

    app = _app()
    try:
        with app.app_context(), app.extensions["baodao_db"].begin() as session:
            user = do_create(
                session,
                username=username,
                password=password,
                role=role,
                community_code=community_code,
                unit_code=unit_code,
                display_name=display_name,
            )
            click.echo(f"created user {user.username} ({user.role})")
    except AccountError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)


@admin_group.command("enrol-token")
@click.option("--centre", "centre_code", required=True, help="Service centre code. 服务中心编码。")
@click.option(
    "--ttl-hours",
    default=24.0,
    show_default=True,
    type=click.FloatRange(min=0.01, max=24 * 30),
    help="Hours until the token expires. 令牌有效小时数。",
)
def enrol_token(centre_code: str, ttl_hours: float) -> None:
    """Make a one-time kiosk enrolment token for a centre (shown once).

    为服务中心生成一次性终端注册令牌(仅显示一次)。在终端上运行:
    baodao kiosk enrol --server URL --token TOKEN
    """
    from datetime import timedelta

    from .api.enrolment import EnrolTokenError, create_enrol_token

    app = _app()
    try:
        with app.app_context(), app.extensions["baodao_db"].begin() as session:
            token, row = create_enrol_token(session, centre_code, ttl=timedelta(hours=ttl_hours))
            expires = row.expires_at.isoformat(timespec="seconds")
    except EnrolTokenError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    click.echo(token)
    click.echo(f"centre {centre_code}; expires {expires} (UTC) / 过期时间", err=True)


@click.group("audit")
def audit_group() -> None:
    """Proofs anyone can run on the stored records. 对已存记录的核验。"""


@audit_group.command("verify-chain")
@click.option("--kiosk", "kiosk_uid", help="Only this kiosk (its kiosk id). 仅核验该终端（终端编号）。")
def verify_chain_cmd(kiosk_uid: str | None) -> None:
    """Recompute every kiosk's hash chain from the stored events; report gaps and breaks with their
    positions. Exit status 0 when every chain is intact, 1 when any is not, 2 for an unknown kiosk.

    根据已存的刷卡记录重新计算每台终端的哈希链，报告缺失与断裂及其位置。全部完整时退出码为 0，
    有问题时为 1，终端不存在时为 2。
    """
    from .chain_audit import kiosks_to_verify, verify_kiosks

    app = _app()
    with app.app_context(), app.extensions["baodao_db"].begin() as session:
        kiosks = kiosks_to_verify(session, kiosk_uid)
        if kiosk_uid is not None and not kiosks:
            click.echo(f"未找到终端 {kiosk_uid} / no kiosk {kiosk_uid}", err=True)
            sys.exit(2)

        step = max(1, len(kiosks) // 50)  # about fifty progress lines however large the fleet

        def progress(done: int, total: int, report: object) -> None:
            if done % step == 0 or done == total:
                click.echo(f"[{done}/{total}] 已核验 / verified {getattr(report, 'kiosk_uid', '')}", err=True)

        reports = verify_kiosks(session, kiosks, progress)
    for report in reports:
        head = f"{report.kiosk_uid} ({report.name}): {report.events} 条记录 / events"
        if report.ok:
            click.echo(f"{head} — 哈希链完整 / chain intact")
            continue
        click.echo(
            f"{head} — {len(report.gaps)} 处缺失、{len(report.breaks)} 处断裂 / "
            f"{len(report.gaps)} gaps, {len(report.breaks)} breaks"
        )
        for finding in report.findings:
            zh, en = finding.describe()
            click.echo(f"  {zh} / {en}")
    bad = sum(1 for r in reports if not r.ok)
    click.echo(
        f"共核验 {len(reports)} 台终端，{bad} 台有问题 / verified {len(reports)} kiosks, {bad} with problems"
    )
    sys.exit(1 if bad else 0)
