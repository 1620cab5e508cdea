"""Start, stop and restart the real Debian ``pcscd`` with only the vpcd virtual reader configured.

pcscd is started with ``-c`` pointing at a private ``reader.conf.d`` so the test readers do not depend
on what else the machine has configured, and so a test can restart it *without* the reader (the
reader "unplugged") and with it again. pcsc-lite 1.9 ignores ``PCSCLITE_CSOCK_NAME`` on the daemon
side, so the socket is the system one (``/run/pcscd/pcscd.comm``): a pcscd we did not start makes
these tests refuse to run rather than fight over it.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from smartcard import scard

logger = logging.getLogger(__name__)

VPCD_DRIVER = Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so")
VPCD_READER = "Virtual PCD 00 00"
PID_FILE = Path("/run/pcscd/pcscd.pid")
#: vpcd's channel id is its TCP port (0x8C7B = 35963); /dev/null = listen instead of connecting out.
VPCD_CONF = f"""FRIENDLYNAME "Virtual PCD"
DEVICENAME   /dev/null:0x8C7B
LIBPATH      {VPCD_DRIVER}
CHANNELID    0x8C7B
"""


def missing_reason() -> str | None:
    """Why pcscd + vpcd cannot be used here, or None."""
    if shutil.which("pcscd") is None and not Path("/usr/sbin/pcscd").exists():
        return "pcscd not installed (apt-get install pcscd)"
    if not VPCD_DRIVER.exists():
        return f"vpcd driver {VPCD_DRIVER} missing (apt-get install vsmartcard-vpcd)"
    pid = foreign_pcscd_pid()
    if pid is not None:
        return f"another pcscd (pid {pid}) owns /run/pcscd/pcscd.comm; stop it to run the PC/SC tests"
    return None


def foreign_pcscd_pid() -> int | None:
    try:
        pid = int(PID_FILE.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def list_readers() -> list[str]:
    hr, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if hr != scard.SCARD_S_SUCCESS:
        return []
    try:
        hr, names = scard.SCardListReaders(ctx, [])
        return list(names) if hr == scard.SCARD_S_SUCCESS else []
    finally:
        scard.SCardReleaseContext(ctx)


def wait_card_absent(reader: str = VPCD_READER, timeout: float = 10.0) -> bool:
    """Block until pcscd reports ``reader`` without a card (True), or pcscd/the reader is gone (False)."""
    hr, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if hr != scard.SCARD_S_SUCCESS:
        return False
    try:
        state = scard.SCARD_STATE_UNAWARE
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            hr, result = scard.SCardGetStatusChange(ctx, 500, [(reader, state)])
            if hr == scard.SCARD_E_TIMEOUT:
                continue
            if hr != scard.SCARD_S_SUCCESS:
                return False
            state = result[0][1] & ~scard.SCARD_STATE_CHANGED
            if state & scard.SCARD_STATE_EMPTY:
                return True
        raise RuntimeError(f"pcscd still reports a card in {reader} after {timeout} s")
    finally:
        scard.SCardReleaseContext(ctx)


class PcscdService:
    """One pcscd process in the foreground; ``with_reader=False`` starts it with no reader at all."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.conf_with = workdir / "reader.conf.d"
        self.conf_without = workdir / "reader.conf.d-empty"
        self.conf_with.mkdir(parents=True, exist_ok=True)
        self.conf_without.mkdir(parents=True, exist_ok=True)
        (self.conf_with / "vpcd").write_text(VPCD_CONF)
        self.log_path = workdir / "pcscd.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.with_reader = True
        self.starts = 0

    def start(self, *, with_reader: bool = True, timeout: float = 15.0) -> None:
        self.with_reader = with_reader
        conf = self.conf_with if with_reader else self.conf_without
        pcscd = shutil.which("pcscd") or "/usr/sbin/pcscd"
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen([pcscd, "--foreground", "-c", str(conf)], stdout=log, stderr=log)
        log.close()
        self.starts += 1
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"pcscd exited with {self.proc.returncode}; see {self.log_path}")
            readers = list_readers()
            if (VPCD_READER in readers) if with_reader else _service_up():
                return
            time.sleep(0.05)
        raise RuntimeError(f"pcscd did not come up within {timeout} s; see {self.log_path}")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def restart(self, *, with_reader: bool = True) -> None:
        self.stop()
        self.start(with_reader=with_reader)

    def ensure(self) -> None:
        """Running with the vpcd reader (tests leave it in whatever state their fault needed)."""
        if self.proc is None or self.proc.poll() is not None or not self.with_reader:
            self.restart(with_reader=True)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def _service_up() -> bool:
    hr, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if hr == scard.SCARD_S_SUCCESS:
        scard.SCardReleaseContext(ctx)
        return True
    return False
