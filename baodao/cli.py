"""``baodao`` console script. Subcommand groups are imported lazily so ``baodao hw`` works on a machine
without the server's database drivers and ``baodao server`` does not load OpenCV."""

from __future__ import annotations

import importlib
import os

import click

from .logs import configure_logging

# name -> (module, attribute, one-line help in English and Chinese)
_SUBCOMMANDS: dict[str, tuple[str, str, str]] = {
    "server": ("server.cli", "server_cmd", "Run the central server. 运行中心服务器。"),
    "db": ("server.cli", "db_group", "Database migrations. 数据库迁移。"),
    "admin": ("server.cli", "admin_group", "Users and enrolment tokens. 用户与注册令牌。"),
    "audit": (
        "server.cli",
        "audit_group",
        "Verify stored records, e.g. hash chains. 核验已存记录（如哈希链）。",
    ),
    "kiosk": ("kiosk.cli", "kiosk", "Run or manage a kiosk. 运行或管理签到终端。"),
    "hw": (
        "baodao.check_config",
        "hw",
        "Readers: check profiles and kiosk files, probe, listen. 读卡器:校验配置与终端文件、探测、监听。",
    ),
    "demo": (
        "baodao.demo",
        "demo",
        "Seed a demo city and run server + kiosk. 生成演示数据并运行服务器与终端。",
    ),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_SUBCOMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in _SUBCOMMANDS:
            return None
        module, attr, _help = _SUBCOMMANDS[name]
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, _SUBCOMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands 命令"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup)
@click.option(
    "--log-level",
    default=lambda: os.environ.get("BAODAO_LOG_LEVEL", "INFO"),
    show_default="INFO",
    help="Logging level. 日志级别。",
)
@click.option(
    "--log-format",
    type=click.Choice(["json", "text"]),
    default=lambda: os.environ.get("BAODAO_LOG_FORMAT", "text"),
    show_default="text",
    help="Log line format. 日志格式。",
)
@click.version_option(package_name="baodao")
def main(log_level: str, log_format: str) -> None:
    """baodao (报到): kiosk check-in and service-hours records for community service centres.

    报到:社区党群服务中心的刷卡签到与服务时长记录系统。
    """
    configure_logging(log_level, log_format)
