"""`hw listen` as a process on a pty, and `hw probe`: one line per read, upper-case hex, stops on Ctrl-C."""

import os
import signal
import subprocess
import sys
import tty

import pytest
from click.testing import CliRunner

from baodao.check_config import hw
from hardware.em4100 import build_frame

CMD = [sys.executable, "-m", "baodao", "--log-level", "WARNING", "hw"]  # the command people type


@pytest.mark.timeout(60)  # a hang guard: readline() would otherwise block the whole suite
def test_listen_prints_reads_until_interrupted():
    master, slave = os.openpty()
    tty.setraw(slave)
    port = os.ttyname(slave)
    os.close(slave)
    proc = subprocess.Popen(
        [*CMD, "listen", "--profile", "rdm6300", "--port", port],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert "listening" in proc.stderr.readline()
        os.write(master, build_frame(bytes.fromhex("00e3a58b62")))
        line = proc.stdout.readline()
        assert line.split("\t") == ["rfid-125k", "card", "00E3A58B62\n"]
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0 and "reads=1" in err
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)


def test_listen_unknown_profile_fails():
    r = CliRunner().invoke(hw, ["listen", "--profile", "no-such-reader"])
    assert r.exit_code == 2 and "找不到读卡器配置" in r.output


def test_probe_lists_sections_and_help_is_bilingual():
    r = CliRunner().invoke(hw, ["probe"])
    assert r.exit_code == 0
    assert "serial ports / 串口" in r.output and "video devices" in r.output and "PC/SC" in r.output
    h = CliRunner().invoke(hw, ["--help"])
    assert "读卡器" in h.output and "check-config" in h.output
