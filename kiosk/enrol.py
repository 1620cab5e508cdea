"""Enrolment: trade the one-time token an admin printed for this kiosk's identity and secrets.

``baodao kiosk enrol --server URL --token T [--config F]`` posts an :class:`~protocol.messages.EnrolRequest`
(the only unsigned call of the API), then stores the kiosk id, the request-signing secret and the
credential key in the state dir with mode 0600 (:func:`kiosk.config.save_enrolment` writes atomically).
The server's time in the answer seeds the clock offset, so the very first signed request is already
inside the skew window even on a kiosk whose clock is wrong.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import platform
from pathlib import Path

import click

from kiosk.client import OFFSET_FILE, ClientError, ClockOffset, KioskClient, ServerError
from kiosk.config import ConfigError, Enrolment, KioskConfig, load_config, load_enrolment, save_enrolment
from protocol.messages import EnrolRequest

logger = logging.getLogger(__name__)


class EnrolError(Exception):
    """Enrolment failed; the message is for the person installing the kiosk (English and Chinese)."""


def _software_version() -> str:
    try:
        from importlib.metadata import version

        return version("baodao")
    except Exception:  # pragma: no cover - bare checkout
        return "0.0.0"


def enrol(
    server_url: str,
    token: str,
    state_dir: str | os.PathLike[str],
    *,
    device_name: str | None = None,
    force: bool = False,
    client: KioskClient | None = None,
) -> Enrolment:
    """Enrol this kiosk and save the result; refuses to overwrite an enrolment unless ``force``."""
    state = Path(state_dir)
    if not force and load_enrolment(state) is not None:
        raise EnrolError(
            f"already enrolled (see {state}); use --force to replace / 该终端已注册,如需重新注册请加 --force"
        )
    offset = ClockOffset(state / OFFSET_FILE)
    client = client or KioskClient(server_url, offset=offset)
    request = EnrolRequest(
        token=token,
        device_name=(device_name or platform.node() or "kiosk")[:100],
        software_version=_software_version(),
    )
    try:
        answer = client.enrol(request)
    except ServerError as exc:
        raise EnrolError(
            f"server refused enrolment ({exc.code}): {exc.error.message if exc.error else exc} / "
            f"服务器拒绝注册:{exc.error.message_zh if exc.error else exc.code}"
        ) from exc
    except ClientError as exc:
        raise EnrolError(f"cannot reach the server: {exc} / 无法连接服务器") from exc
    finally:
        client.close()
    enrolment = Enrolment(
        kiosk_id=answer.kiosk_id,
        kiosk_secret=answer.kiosk_secret,
        credential_key=answer.credential_key,
        server_url=server_url.rstrip("/"),
        centre=answer.centre.model_dump(mode="json"),
        heartbeat_interval_s=answer.heartbeat_interval_s,
        enrolled_at=dt.datetime.now(dt.UTC).isoformat(),
    )
    save_enrolment(state, enrolment)
    logger.info("enrolled as kiosk %s at centre %s", answer.kiosk_id, answer.centre.name)
    return enrolment


@click.command("enrol")
@click.option("--server", "server_url", required=True, help="Server base URL. 服务器地址。")
@click.option("--token", required=True, help="One-time enrolment token. 一次性注册令牌。")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Kiosk config (for its state dir). 终端配置文件(用于确定状态目录)。",
)
@click.option("--state-dir", type=click.Path(file_okay=False), default=None, help="State dir. 状态目录。")
@click.option("--name", "device_name", default=None, help="Device name shown to staff. 设备名称。")
@click.option("--force", is_flag=True, help="Replace an existing enrolment. 覆盖已有注册。")
def enrol_cmd(
    server_url: str,
    token: str,
    config_path: str | None,
    state_dir: str | None,
    device_name: str | None,
    force: bool,
) -> None:
    """Enrol this kiosk with the server. 向服务器注册本终端。"""
    try:
        config = load_config(config_path) if config_path else KioskConfig()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    target = Path(state_dir) if state_dir else config.state_dir
    try:
        result = enrol(server_url, token, target, device_name=device_name, force=force)
    except EnrolError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"enrolled as kiosk {result.kiosk_id} at {result.centre.get('name', '?')} / "
        f"已注册为终端 {result.kiosk_id}({result.centre.get('name', '?')})"
    )
