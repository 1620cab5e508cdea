"""``baodao hw check-config``: validate reader profiles and kiosk configuration files, or refuse.

It lives in the console package because it needs both halves: reader profiles are ``hardware``'s and
kiosk files are ``kiosk``'s, and ``hardware`` may not import ``kiosk``. ``baodao hw`` is ``hardware.cli``'s
group with this command added, so the command people type is unchanged.

A file is validated only by a validator that knows its meaning: ``*.yaml``/``*.yml`` are reader profiles,
``*.toml`` are kiosk configuration files, and the generated profile schema must equal what the code
generates. A file named on the command line that none of these covers is refused (exit 1) rather than
reported "ok"; in a directory walk such files are listed as not checked, and other JSON is checked for
syntax only (and said to be).
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import click

from hardware.cli import hw as hardware_hw
from hardware.profiles import default_config_dir
from hardware.schema import SCHEMA_PATH, schema_text, validate_profile_file
from kiosk.config_check import check_config_file

logger = logging.getLogger(__name__)


class Issue(Protocol):
    file: str
    line: int
    message: str


@dataclass(frozen=True)
class FileIssue:
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


@dataclass
class Report:
    validated: int = 0
    syntax_only: list[Path] = field(default_factory=list)
    not_checked: list[Path] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)


def _is_schema(path: Path) -> bool:
    return path.name == SCHEMA_PATH.name


def _check_schema(path: Path) -> list[Issue]:
    try:
        current = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [FileIssue(str(path), 0, f"cannot read file: {exc} / 无法读取文件")]
    if current != schema_text():
        return [
            FileIssue(
                str(path),
                1,
                "out of date with the drivers' declarations; run `python -m hardware.schema --write`"
                " / 与驱动声明不一致，请重新生成",
            )
        ]
    return []


def _check_json_syntax(path: Path) -> list[Issue]:
    try:
        json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        return [FileIssue(str(path), exc.lineno, f"invalid JSON: {exc.msg} / JSON 格式错误")]
    except (OSError, UnicodeDecodeError) as exc:
        return [FileIssue(str(path), 0, f"cannot read file: {exc} / 无法读取文件")]
    return []


def check_file(path: Path, report: Report, *, named: bool) -> None:
    """Validate one file into ``report``; ``named``: the person asked for this file by name."""
    if path.suffix in (".yaml", ".yml"):
        report.validated += 1
        report.issues += validate_profile_file(path)[1]
    elif path.suffix == ".toml":
        report.validated += 1
        report.issues += check_config_file(path)
    elif path.suffix == ".json" and _is_schema(path):
        report.validated += 1
        report.issues += _check_schema(path)
    elif named:
        report.issues.append(
            FileIssue(
                str(path),
                0,
                "cannot validate this file: check-config knows reader profiles (.yaml) and kiosk "
                "configuration files (.toml) / 无法校验此文件：只能校验读卡器配置（.yaml）和终端配置（.toml）",
            )
        )
    elif path.suffix == ".json":
        report.syntax_only.append(path)
        report.issues += _check_json_syntax(path)
    else:
        report.not_checked.append(path)


def collect(paths: list[Path]) -> Report:
    report = Report()
    for path in paths:
        if path.is_dir():
            for f in sorted(path.rglob("*")):
                if f.is_file():
                    check_file(f, report, named=False)
        elif path.is_file():
            check_file(path, report, named=True)
        else:
            report.issues.append(FileIssue(str(path), 0, "no such file or directory / 文件或目录不存在"))
    return report


@click.command(
    "check-config",
    help="Validate reader profiles (.yaml) and kiosk configuration files (.toml); default: all of "
    "firmware-config/. A named file that cannot be validated is refused. Non-zero exit on any problem. "
    "/ 校验读卡器配置（.yaml）与终端配置（.toml），默认校验 firmware-config/ 全部；无法校验的文件视为错误；"
    "有错误时返回非零。",
)
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
def check_config(paths: tuple[Path, ...]) -> None:
    report = collect(list(paths) or [default_config_dir()])
    for issue in report.issues:
        click.echo(str(issue), err=True)
    if report.syntax_only:
        click.echo(
            f"syntax only: {len(report.syntax_only)} JSON file(s) / 仅检查语法：{len(report.syntax_only)} 个 JSON 文件",
            err=True,
        )
    if report.not_checked:
        click.echo(
            f"not checked: {len(report.not_checked)} other file(s) / 未校验：{len(report.not_checked)} 个其他文件",
            err=True,
        )
    if report.issues:
        n = len(report.issues)
        click.echo(f"{n} problem(s) in {report.validated} file(s) / 共 {n} 处错误", err=True)
        sys.exit(1)
    click.echo(f"ok: {report.validated} file(s) validated / 已校验 {report.validated} 个文件，无错误")


#: ``baodao hw``: the hardware commands plus this one
hw = click.Group(
    name="hw", help=hardware_hw.help, commands={**hardware_hw.commands, "check-config": check_config}
)
