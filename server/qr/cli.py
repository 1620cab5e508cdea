"""``baodao admin qr …``: the QR administration commands from a shell (keys, badges, one-time login links).

Thin wrappers over :mod:`server.qr.keys`, :mod:`server.qr.badges` and :mod:`server.qr.login`: each command
opens the configured database (``BAODAO_DATABASE_URL``), does one thing in one transaction, writes an
audit record (the admin at the shell has no staff account, so ``user_id`` is empty and the reason says
"cli"), and prints what a person needs: the new key id, the badge text to print, the link to send.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import click
from sqlalchemy import select
from sqlalchemy.orm import Session

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "http://127.0.0.1:8000"


@contextmanager
def _session() -> Iterator[tuple[Any, Session]]:
    """The app (for its config) and one transaction, committed on success; the engine is disposed after.

    No session recomputer thread: a one-shot admin command has no queue to drain."""
    from server import create_app

    app = create_app({"SESSION_RECOMPUTER": False})
    try:
        with app.app_context(), app.extensions["baodao_db"].begin() as session:
            yield app, session
    finally:
        app.extensions["baodao_db"].dispose()


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


def _member(session: Session, member_no: str) -> Any:
    from server.models import Member

    member = session.scalars(select(Member).where(Member.member_no == member_no)).one_or_none()
    if member is None:
        _fail(f"no member with number {member_no!r} / 党员编号不存在")
    if member.status != "active":
        _fail(f"member {member_no} is not active / 该党员已停用")
    return member


def _audit(session: Session, action: str, object_type: str, object_id: str, **kw: Any) -> None:
    from server.models import AuditRecord, utcnow

    session.add(
        AuditRecord(
            at=utcnow(), user_id=None, action=action, object_type=object_type, object_id=object_id, **kw
        )
    )


@click.group("qr")
def qr_group() -> None:
    """Member QR codes: signing keys, printed badges, phone login links. 党员二维码:签名密钥、胸卡、手机登录链接。"""


@qr_group.command("rotate-key")
@click.option(
    "--lead-minutes",
    default=10.0,
    show_default=True,
    type=click.FloatRange(min=0, max=24 * 60),
    help="Publish the new key this long before it signs (kiosks must hear of it first). "
    "新密钥提前发布的分钟数(先让终端获知)。",
)
@click.option(
    "--overlap-hours",
    default=48.0,
    show_default=True,
    type=click.FloatRange(min=0, max=24 * 90),
    help="How long older keys stay published after the new one starts signing. "
    "新密钥启用后旧密钥继续发布的小时数。",
)
def rotate_key_cmd(lead_minutes: float, overlap_hours: float) -> None:
    """Create the next QR signing key; older keys retire after the overlap (keys of active badges stay).

    生成下一个二维码签名密钥;旧密钥在重叠期后停用(仍有有效胸卡的密钥保留)。
    On a fresh installation the first key is created, active at once. 新安装时创建首个密钥并立即启用。
    """
    from server.models import utcnow

    from .keys import published_keys, rotate_key, sealing_key

    with _session() as (app, session):
        seal = sealing_key(app.config)
        now = utcnow()
        first = not published_keys(session, now)
        if first:
            from .keys import create_key

            row = create_key(session, seal, not_before=now)
        else:
            row = rotate_key(
                session,
                seal,
                now,
                lead=timedelta(minutes=lead_minutes),
                overlap=timedelta(hours=overlap_hours),
            )
        _audit(
            session,
            "qr_key_created" if first else "qr_key_rotated",
            "qr_signing_key",
            row.key_id,
            after={"not_before": row.not_before.isoformat()},
            reason="cli",
        )
        retiring = [
            (k.key_id, k.retires_at.isoformat(timespec="seconds"))
            for k in published_keys(session, now)
            if k.retires_at is not None
        ]
        key_id, starts = row.key_id, row.not_before.isoformat(timespec="seconds")
    click.echo(key_id)
    click.echo(f"signs from {starts} (UTC) / 启用时间", err=True)
    for old, until in retiring:
        click.echo(f"{old} retires at {until} (UTC) / 停用时间", err=True)


@qr_group.command("issue-badge")
@click.option("--member", "member_no", required=True, help="Member number. 党员编号。")
@click.option(
    "--svg",
    "svg_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the QR code as an SVG file for printing. 同时输出可打印的 SVG 二维码文件。",
)
def issue_badge_cmd(member_no: str, svg_path: Path | None) -> None:
    """Issue a printed badge for a member; prints the serial and the text to print as a QR code.

    为党员制作胸卡:输出胸卡序列号及需打印成二维码的文本。Badges carry low trust. 胸卡信任级别较低。
    """
    from server.config import key_bytes

    from .badges import issue_badge
    from .keys import ensure_signing_key, sealing_key

    with _session() as (app, session):
        member = _member(session, member_no)
        seal = sealing_key(app.config)
        ensure_signing_key(session, seal)
        issued = issue_badge(
            session, member, seal=seal, credential_key=key_bytes(app.config, "CREDENTIAL_KEY")
        )
        _audit(
            session,
            "qr_badge_issued",
            "qr_badge",
            issued.badge.serial,
            community_id=member.community_id,
            after={"member_id": member.id, "key_id": issued.badge.key_id},
            reason="cli",
        )
        serial, token = issued.badge.serial, issued.token
    if svg_path is not None:
        from .render import qr_svg

        svg_path.write_text(qr_svg(token, title=f"baodao badge {serial}"), encoding="utf-8")
    click.echo(serial)
    click.echo(token)
    click.echo(f"badge {serial} for member {member_no} / 胸卡已签发", err=True)


@qr_group.command("revoke-badge")
@click.argument("serial")
@click.option("--reason", required=True, help="Why (lost, member left…). 注销原因(遗失、党员调离等)。")
def revoke_badge_cmd(serial: str, reason: str) -> None:
    """Withdraw a printed badge; kiosks refuse it after their next heartbeat.

    注销胸卡;终端在下次心跳后拒绝该胸卡。
    """
    from .badges import BadgeError, revoke_badge

    try:
        with _session() as (_app, session):
            badge = revoke_badge(session, serial.strip().upper(), reason=reason)
            from server.models import Member

            member = session.get(Member, badge.member_id)
            _audit(
                session,
                "qr_badge_revoked",
                "qr_badge",
                badge.serial,
                community_id=None if member is None else member.community_id,
                before={"status": "active"},
                after={"status": "revoked"},
                reason=f"cli: {reason}"[:500],
            )
            serial = badge.serial
    except BadgeError as exc:
        _fail(str(exc))
    click.echo(f"revoked {serial} / 已注销")


@qr_group.command("login-link")
@click.option("--member", "member_no", required=True, help="Member number. 党员编号。")
@click.option(
    "--base-url",
    envvar="BAODAO_PUBLIC_URL",
    default=DEFAULT_BASE_URL,
    show_default=True,
    help="The server's public address (env BAODAO_PUBLIC_URL). 服务器对外地址。",
)
def login_link_cmd(member_no: str, base_url: str) -> None:
    """Print a one-time link that logs a member onto the phone QR page (works once, expires in 24 h).

    生成一次性手机二维码页面登录链接(仅可使用一次,24 小时内有效),发送给党员。
    """
    from .login import create_login_link

    with _session() as (app, session):
        member = _member(session, member_no)
        token = create_login_link(session, member, app.config["SECRET_KEY"], app.config)
        _audit(
            session,
            "qr_login_link_created",
            "member",
            str(member.id),
            community_id=member.community_id,
            reason="cli",
        )
    click.echo(f"{base_url.rstrip('/')}/m/link/{token}")
