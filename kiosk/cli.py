"""``baodao kiosk``: run a kiosk, send it a simulated read, enrol it.

``baodao kiosk --config FILE`` and ``baodao kiosk run --config FILE`` run the kiosk service and its local
web app (127.0.0.1:8100 unless the config says otherwise) until SIGTERM or Ctrl-C.
``baodao kiosk tap card:04A1B2C3D4E5F6`` posts one read to a running kiosk in simulation mode.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from pathlib import Path
from typing import Any

import click
import requests

from kiosk.config import ConfigError, KioskConfig, load_config

logger = logging.getLogger(__name__)

DEFAULT_URL = "http://127.0.0.1:8100"

_config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Kiosk config file (TOML). 终端配置文件(TOML)。",
)


def run_kiosk(config: KioskConfig, *, host: str | None = None, port: int | None = None) -> None:
    """Start the service and serve the local app until SIGTERM / SIGINT; then stop everything cleanly."""
    from werkzeug.serving import make_server

    from kiosk.app import create_app
    from kiosk.service import KioskService

    service = KioskService(config)
    service.start()
    server = make_server(host or config.ui_host, port or config.ui_port, create_app(service), threaded=True)
    server.daemon_threads = True  # type: ignore[attr-defined] - SSE clients must not block shutdown

    def shutdown(signum: int, _frame: Any) -> None:
        logger.info("signal %s: stopping kiosk", signum)
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    logger.info("kiosk UI on http://%s:%s (simulate=%s)", server.host, server.port, config.simulate)
    try:
        server.serve_forever()
    finally:
        service.stop()


def _load(config_path: Path | None) -> KioskConfig:
    if config_path is None:
        raise click.UsageError("--config FILE is required / 需要 --config 配置文件")
    try:
        return load_config(config_path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group(
    name="kiosk",
    invoke_without_command=True,
    help="Run or manage a kiosk. Without a subcommand: run it. / 运行或管理签到终端;不带子命令即运行终端。",
)
@_config_option
@click.pass_context
def kiosk(ctx: click.Context, config_path: Path | None) -> None:
    if ctx.invoked_subcommand is None:
        run_kiosk(_load(config_path))


@kiosk.command(
    name="run",
    short_help="Run the kiosk. 运行终端。",
    help="Run the kiosk service and its local UI. / 运行终端服务与本地界面。",
)
@_config_option
@click.option("--host", default=None, help="Override the UI host. 覆盖界面监听地址。")
@click.option("--port", type=int, default=None, help="Override the UI port. 覆盖界面端口。")
def run_cmd(config_path: Path | None, host: str | None, port: int | None) -> None:
    run_kiosk(_load(config_path), host=host, port=port)


@kiosk.command(
    name="tap",
    short_help="Send one simulated read. 发送一次模拟刷卡。",
    help="Send one simulated read, e.g. card:04A1B2C3D4E5F6, to a running kiosk in simulation mode. "
    "/ 向模拟模式下运行的终端发送一次模拟刷卡,例如 card:04A1B2C3D4E5F6。",
)
@click.argument("read")
@click.option("--url", default=DEFAULT_URL, show_default=True, help="Kiosk UI address. 终端界面地址。")
@click.option("--reader", "reader_id", default=None, help="Simulated reader id. 模拟读卡器编号。")
def tap_cmd(read: str, url: str, reader_id: str | None) -> None:
    kind, sep, value = read.partition(":")
    if not sep or not value or kind not in ("card", "id_card", "qr"):
        raise click.BadParameter(
            "expected KIND:VALUE with KIND card, id_card or qr / 格式应为 KIND:VALUE(card、id_card 或 qr)",
            param_hint="READ",
        )
    body: dict[str, Any] = {"kind": kind, "value": value}
    if reader_id:
        body["reader_id"] = reader_id
    try:
        resp = requests.post(f"{url.rstrip('/')}/sim/read", json=body, timeout=10)
    except requests.RequestException as exc:
        raise click.ClickException(f"kiosk not reachable at {url} / 无法连接终端: {exc}") from exc
    try:
        data = resp.json()
    except ValueError:
        data = {"message": resp.text[:200]}
    if resp.status_code >= 400:
        raise click.ClickException(
            f"{resp.status_code}: {data.get('message', '')} / {data.get('message_zh', '')}".strip()
        )
    click.echo(json.dumps(data, ensure_ascii=False))
    if resp.status_code == 200:
        click.echo(f"{data.get('message_zh', '')} / {data.get('message_en', '')}", err=True)


# --- enrol ----------------------------------------------------------------------------------------
# `baodao kiosk enrol --server URL --token T` belongs to the sync engineer (kiosk/enrol.py). It registers
# itself here when that module exists; it should store the result with kiosk.config.save_enrolment().
def _attach_enrol() -> None:
    try:
        from kiosk import enrol  # type: ignore[attr-defined]
    except ImportError:
        return
    command = getattr(enrol, "enrol_cmd", None)
    if isinstance(command, click.Command):
        kiosk.add_command(command, name="enrol")
    else:  # pragma: no cover - a wiring mistake, not a runtime condition
        logger.error("kiosk.enrol has no click command enrol_cmd")


_attach_enrol()
