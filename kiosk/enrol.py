"""Enrolment: trade the one-time token an admin printed for this kiosk's identity and secrets.

``baodao kiosk enrol --server URL --token T [--config F]`` posts an :class:`~protocol.messages.EnrolRequest`
(the only unsigned call of the API), then stores the kiosk id, the request-signing secret and the
credential key in the state dir with mode 0600 (:func:`kiosk.config.save_enrolment` writes atomically).
The server's time in the answer seeds the clock offset, so the very first signed request is already
inside the skew window even on a kiosk whose clock is wrong.
"""

from __future__ import annotations

import dataclasses
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


ROTATE_NOT_OFFERED = "key rotation is not offered by this server / 服务器未提供密钥轮换"


def rotate_secret(
    client: KioskClient, state_dir: str | os.PathLike[str], command_id: str | None = None
) -> str:
    """Trade the kiosk's signing secret for a new one and store it; returns a short result text.

    Order matters, because either side may be cut off half-way: the server keeps the old secret valid
    until the new one has signed a request, so the new secret is first written to ``enrolment.json``
    (atomic rename, fsync, 0600) and only then used. A crash before the write leaves the kiosk on its
    old, still valid secret (the admin queues ``rotate_key`` again); a crash after it comes back with
    the new one. Raises :class:`~kiosk.client.ClientError` or :class:`RotationError`.
    """
    state = Path(state_dir)
    current = load_enrolment(state)
    if current is None:
        raise RotationError("kiosk is not enrolled / 终端尚未注册")
    try:
        answer = client.rotate_key(command_id)
    except ServerError as exc:
        if exc.status in (404, 405):
            raise RotationError(ROTATE_NOT_OFFERED) from exc
        raise
    secret = str(answer.get("kiosk_secret") or "")
    if answer.get("kiosk_id") != current.kiosk_id or not _is_hex_secret(secret):
        raise RotationError("server answered without a usable secret / 服务器未返回可用密钥")
    save_enrolment(state, dataclasses.replace(current, kiosk_secret=secret))
    client.use_secret(bytes.fromhex(secret))
    logger.warning(
        "kiosk signing secret rotated (old one valid until %s)", answer.get("previous_secret_valid_until")
    )
    return f"secret rotated; previous valid until {answer.get('previous_secret_valid_until')}"


class RotationError(Exception):
    """The server would not or could not rotate the secret; the kiosk keeps its current one."""


def _is_hex_secret(text: str) -> bool:
    return 32 <= len(text) <= 128 and all(c in "0123456789abcdef" for c in text)
