"""``baodao demo``: one command that brings up a whole demo city on this machine.

It migrates and seeds an SQLite database under ``var/`` (idempotent), starts the central server and one kiosk
(enrolled at the first centre, simulated readers), writes the logins and every demo member's card UID to
``var/demo/accounts.csv`` and ``var/demo/credentials.csv``, prints the URLs, and stops both on Ctrl-C.
The server and the kiosk are separate processes, as in the field, talking HTTP with signed requests.
"""

from __future__ import annotations

import csv
import logging
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import click
import requests

logger = logging.getLogger(__name__)

DEMO_CENTRE = "PY-HL-001-C1"
STAFF_CARD = "5A5A0001"
STAFF_PIN = "8888"


def _var_dir() -> Path:
    from server.config import VAR_DIR

    return Path(VAR_DIR)


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise click.ClickException(f"{url} exited with status {proc.returncode} / 进程已退出")
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise click.ClickException(f"{url} did not become healthy in {timeout:.0f} s / 服务未能启动")


def _seed(database_url: str) -> tuple[list, list]:  # type: ignore[type-arg]
    from server import create_app
    from server.config import key_bytes
    from server.demo_seed import seed_demo
    from server.migrate import upgrade

    upgrade(database_url)
    app = create_app({"DATABASE_URL": database_url})
    db = app.extensions["baodao_db"]
    with db.begin() as session:
        accounts, credentials = seed_demo(session, key_bytes(app.config, "CREDENTIAL_KEY"))
    db.dispose()
    return accounts, credentials


def _write_csvs(folder: Path, accounts: list, credentials: list, server_url: str, kiosk_url: str) -> None:  # type: ignore[type-arg]
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "accounts.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["kind", "url", "username", "password", "role", "scope"])
        for a in accounts:
            writer.writerow(["staff web", server_url, a.username, a.password, a.role, a.scope])
        writer.writerow(
            ["kiosk staff card", kiosk_url, f"card:{STAFF_CARD}", "", "kiosk maintenance", DEMO_CENTRE]
        )
        writer.writerow(["kiosk staff PIN", kiosk_url, "0", STAFF_PIN, "kiosk maintenance", DEMO_CENTRE])
    with open(folder / "credentials.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(
            ["member_no", "name", "unit", "community", "card_uid", "at_demo_kiosk", "tap_command"]
        )
        for c in credentials:
            at_kiosk = "yes" if c.in_first_centre_roster else "no"
            tap = f"baodao kiosk tap card:{c.card_uid}"
            writer.writerow([c.member_no, c.name, c.unit, c.community, c.card_uid, at_kiosk, tap])


def _kiosk_config(folder: Path, server_url: str, kiosk_port: int, credentials: list) -> Path:  # type: ignore[type-arg]
    path = folder / "kiosk.toml"
    panel = "".join(
        f'[[demo.cards]]\nlabel = "{c.name} {c.member_no}"\nvalue = "{c.card_uid}"\n\n'
        for c in [c for c in credentials if c.in_first_centre_roster][:8]
    )
    path.write_text(
        f'server_url = "{server_url}"\n'
        'state_dir = "kiosk-state"\n'
        "simulate = true\n"
        'language = "zh"\n\n'
        "[centre]\n"
        'name = "华龙区胜利路社区党群服务中心"\n'
        f'code = "{DEMO_CENTRE}"\n\n'
        '[[readers]]\nprofile = "rdm6300"\nsimulate = true\n\n'
        '[[readers]]\nprofile = "usb-camera"\nsimulate = true\n\n'
        '[rules]\ndebounce_s = 60\nmax_session_h = 12\ncloses_at = "21:00"\n\n'
        f'[ui]\nhost = "127.0.0.1"\nport = {kiosk_port}\n\n'
        f'[staff]\ncards = ["{STAFF_CARD}"]\npin = "{STAFF_PIN}"\n\n' + panel,
        encoding="utf-8",
    )
    return path


def _ensure_enrolled(database_url: str, server_url: str, state_dir: Path) -> None:
    from kiosk.config import load_enrolment
    from kiosk.enrol import enrol
    from server import create_app
    from server.api.enrolment import create_enrol_token

    if load_enrolment(state_dir) is not None:
        return
    app = create_app({"DATABASE_URL": database_url})
    db = app.extensions["baodao_db"]
    with db.begin() as session:
        token, _row = create_enrol_token(session, DEMO_CENTRE, ttl=timedelta(minutes=10))
    db.dispose()
    enrol(server_url, token, state_dir, device_name="demo kiosk")


def _spawn(args: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    log = open(log_path, "ab")  # noqa: SIM115 - lives as long as the child
    return subprocess.Popen(
        [sys.executable, "-m", "baodao", *args],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 10
    for proc in procs:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@click.command("demo")
@click.option("--server-port", default=8000, show_default=True, help="Central server port. 中心服务器端口。")
@click.option("--kiosk-port", default=8100, show_default=True, help="Kiosk UI port. 终端界面端口。")
def demo(server_port: int, kiosk_port: int) -> None:
    """Seed a demo city under var/ and run the server and one simulated kiosk until Ctrl-C.

    在 var/ 下生成演示城市数据(可重复运行),启动中心服务器和一台模拟签到终端,按 Ctrl-C 同时停止。
    """
    var = _var_dir()
    demo_dir = var / "demo"
    demo_dir.mkdir(parents=True, exist_ok=True)
    database_url = os.environ.get("BAODAO_DATABASE_URL") or f"sqlite:///{var / 'baodao.sqlite3'}"
    server_url, kiosk_url = f"http://127.0.0.1:{server_port}", f"http://127.0.0.1:{kiosk_port}"

    click.echo("migrating and seeding the demo city … / 正在初始化演示数据 …", err=True)
    accounts, credentials = _seed(database_url)
    _write_csvs(demo_dir, accounts, credentials, server_url, kiosk_url)
    config_path = _kiosk_config(demo_dir, server_url, kiosk_port, credentials)

    env = {**os.environ, "BAODAO_DATABASE_URL": database_url, "BAODAO_VAR_DIR": str(var)}
    procs: list[subprocess.Popen[bytes]] = []
    stopping = False

    def _on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _on_signal)
    try:
        server = _spawn(["server", "--port", str(server_port), "--no-migrate"], env, demo_dir / "server.log")
        procs.append(server)
        _wait_healthy(f"{server_url}/healthz", server)
        _ensure_enrolled(database_url, server_url, demo_dir / "kiosk-state")
        kiosk = _spawn(["kiosk", "--config", str(config_path)], env, demo_dir / "kiosk.log")
        procs.append(kiosk)
        _wait_healthy(f"{kiosk_url}/healthz", kiosk)

        click.echo(f"\n  central server 中心服务器:  {server_url}/")
        click.echo(f"  kiosk 签到终端:            {kiosk_url}/")
        click.echo("\n  logins 登录账号 (password 密码: see below):")
        for a in accounts:
            click.echo(f"    {a.username:<12} {a.password:<20} {a.role:<16} {a.scope}")
        click.echo(f"    kiosk staff card 终端管理卡: {STAFF_CARD}   staff PIN 管理密码: 0 / {STAFF_PIN}")
        sample = next(c for c in credentials if c.in_first_centre_roster)
        click.echo(f"\n  try 试一试:  baodao kiosk tap card:{sample.card_uid}   ({sample.name})")
        click.echo(
            f"  accounts and cards 账号与卡号: {demo_dir / 'accounts.csv'}, {demo_dir / 'credentials.csv'}"
        )
        click.echo(f"  logs 日志: {demo_dir / 'server.log'}, {demo_dir / 'kiosk.log'}")
        click.echo("\n  Ctrl-C stops both 按 Ctrl-C 停止\n")
        while not stopping:
            for proc, name in ((server, "server"), (kiosk, "kiosk")):
                if proc.poll() is not None:
                    raise click.ClickException(
                        f"the {name} exited ({proc.returncode}); see its log in {demo_dir}"
                    )
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        click.echo("stopping … / 正在停止 …", err=True)
        _stop(procs)
        click.echo("stopped / 已停止", err=True)
