"""``baodao hw``: find readers, watch reads live (``check-config`` is added by :mod:`baodao.check_config`,
which can also read kiosk files).

These are the commands an installer runs at a kiosk with a new reader in hand, so output is one line
per fact, errors are ``file:line: problem``, and help is in English and Chinese.
"""

from __future__ import annotations

import glob
import logging
import queue
import sys
import time
from pathlib import Path

import click

from hardware.base import CredentialKind, CredentialRead, HardwareError, Reader, ReaderState
from hardware.profiles import ProfileError
from hardware.schema import load_profile

logger = logging.getLogger(__name__)


@click.group(name="hw", help="Card readers and cameras. / 读卡器与摄像头。")
def hw() -> None:
    pass


@hw.command(
    "probe", help="List serial ports, video devices and PC/SC readers. / 列出串口、摄像头和 PC/SC 读卡器。"
)
def probe() -> None:
    from serial.tools import list_ports

    ports = list(list_ports.comports())
    click.echo(f"serial ports / 串口: {len(ports)}")
    for p in ports:
        vidpid = f"{p.vid:04x}:{p.pid:04x}" if p.vid is not None and p.pid is not None else "-"
        click.echo(f"  {p.device}\t{vidpid}\t{p.description}")
    for link in sorted(glob.glob("/dev/baodao/*")):
        click.echo(f"  {link} -> {Path(link).resolve()}")
    videos = sorted(glob.glob("/dev/video*"))
    click.echo(f"video devices / 摄像头: {len(videos)}")
    for v in videos:
        name = Path(f"/sys/class/video4linux/{Path(v).name}/name")
        click.echo(f"  {v}\t{name.read_text().strip() if name.exists() else ''}")
    try:
        from smartcard.System import readers

        names = [str(r) for r in readers()]
        click.echo(f"PC/SC readers / PC/SC 读卡器: {len(names)}")
        for n in names:
            click.echo(f"  {n}")
    except Exception as exc:  # pyscard missing, or pcscd not running
        click.echo(f"PC/SC readers / PC/SC 读卡器: unavailable / 不可用 ({exc})")


def format_read(r: CredentialRead) -> str:
    """One output line; ID numbers and names are masked (a terminal is not a place for them)."""
    value = r.value
    if r.kind is CredentialKind.ID_CARD and len(value) > 10:
        value = value[:6] + "*" * (len(value) - 10) + value[-4:]
    name = ""
    if r.display_name:
        name = "\t" + (r.display_name[0] + "*" * (len(r.display_name) - 1))
    return f"{r.reader_id}\t{r.kind.value}\t{value}{name}"


READY_WAIT_S = 5.0


def _wait_ready(reader: Reader, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if reader.health().state is ReaderState.READY:
            return True
        time.sleep(0.02)
    return False


@hw.command(
    "listen",
    help="Print each read live, one line per read, until Ctrl-C. / 实时打印每次读卡，按 Ctrl-C 结束。",
)
@click.option("--profile", "profile_name", required=True, help="Profile name or path. / 配置名或路径。")
@click.option(
    "--port", default=None, help="Override the profile's port or camera source. / 覆盖端口或视频源。"
)
def listen(profile_name: str, port: str | None) -> None:
    from hardware.registry import create_reader

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    try:
        profile = load_profile(profile_name)
    except ProfileError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)
    reads: queue.Queue[CredentialRead] = queue.Queue()
    try:
        reader = create_reader(profile, reads.put, port=port)
    except HardwareError as exc:
        click.echo(f"cannot start reader / 无法启动读卡器: {exc}", err=True)
        sys.exit(2)
    reader.start()
    if not _wait_ready(reader, READY_WAIT_S):
        click.echo(f"waiting for the reader ({reader.health().state.value}) / 等待读卡器就绪", err=True)
    # Say "listening" only once the device is open: a read before that would be lost to the person (and
    # pyserial flushes the input buffer when it opens a port).
    click.echo(
        f"listening on {profile.name} ({profile.driver}); Ctrl-C to stop / 正在监听，按 Ctrl-C 结束", err=True
    )
    try:
        while True:
            try:
                r = reads.get(timeout=0.5)
            except queue.Empty:
                continue
            click.echo(format_read(r))
            sys.stdout.flush()
    except KeyboardInterrupt:
        pass
    finally:
        reader.stop()
        h = reader.health()
        click.echo(f"reads={h.reads} bad_frames={h.bad_frames} state={h.state.value}", err=True)
