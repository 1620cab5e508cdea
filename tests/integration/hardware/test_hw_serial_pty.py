"""Serial drivers (EM4100, line scanner) through real pyserial on pseudo-terminals.

The pty is reached through a symlink, like a /dev/baodao/… udev link, so "unplug" (master closed, link
removed) and "replug" (a new pty behind the same link) exercise the real reconnect path.
"""

import os
import queue
import time
import tty
from pathlib import Path

import pytest

from hardware.base import ReaderState
from hardware.em4100 import build_frame
from hardware.registry import create_reader
from hardware.schema import profile_from_mapping


class LinkedPty:
    def __init__(self, link: Path) -> None:
        self.link = link
        self.master = -1
        self.plug()

    def plug(self) -> None:
        self.master, slave = os.openpty()
        tty.setraw(slave)
        name = os.ttyname(slave)
        os.close(slave)
        if self.link.is_symlink():
            self.link.unlink()
        self.link.symlink_to(name)

    def unplug(self) -> None:
        os.close(self.master)
        self.master = -1
        self.link.unlink()

    def write(self, data: bytes) -> None:
        os.write(self.master, data)

    def close(self) -> None:
        if self.master >= 0:
            os.close(self.master)


def wait_for(pred, what: str, limit: float = 10.0):
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


@pytest.fixture
def pty(tmp_path):
    p = LinkedPty(tmp_path / "reader")
    yield p
    p.close()


@pytest.fixture
def run_reader():
    started = []

    def start(mapping, link):
        reads = queue.Queue()
        profile = profile_from_mapping("t", {**mapping, "port": str(link)})  # a serial profile names its port
        reader = create_reader(profile, reads.put, port=str(link))
        reader.start()
        started.append(reader)
        wait_for(lambda: reader.health().state is ReaderState.READY, "reader ready")
        return reader, reads

    yield start
    for r in started:
        r.stop()


def drain(reads, n):
    return [reads.get(timeout=10) for _ in range(n)]


def test_em4100_noise_split_frames_bad_checksum(pty, run_reader):
    reader, reads = run_reader({"driver": "em4100", "baud": 9600, "debounce_ms": 0}, pty.link)
    a = build_frame(bytes.fromhex("6200E3A58B"))
    b = build_frame(bytes.fromhex("0102030405"))
    bad = bytearray(b)
    bad[11:13] = b"00"
    pty.write(b"\x00\xff\x13" + a[:6])
    time.sleep(0.05)  # let the reader see a partial frame
    pty.write(a[6:] + bytes(bad) + b)
    got = drain(reads, 2)
    assert [r.value for r in got] == ["6200E3A58B", "0102030405"]
    assert all(r.reader_id == "t" for r in got)
    wait_for(lambda: reader.health().bad_frames >= 2, "noise and bad checksum counted")


def test_em4100_debounces_a_held_tag(pty, run_reader):
    reader, reads = run_reader({"driver": "em4100", "baud": 9600, "debounce_ms": 5000}, pty.link)
    frame = build_frame(bytes.fromhex("0A0B0C0D0E"))
    pty.write(frame * 5 + build_frame(bytes.fromhex("0000000001")))
    got = drain(reads, 2)
    assert [r.value for r in got] == ["0A0B0C0D0E", "0000000001"]
    assert reader.health().reads == 2


def test_line_scanner_qr_and_overflow(pty, run_reader):
    reader, reads = run_reader(
        {"driver": "serial_line", "baud": 115200, "options": {"kind": "qr", "max_line": 64}}, pty.link
    )
    pty.write(b"BD1.first\r\n" + b"x" * 200 + b"\r\nBD1.sec")
    time.sleep(0.05)
    pty.write(b"ond\n")
    assert [r.value for r in drain(reads, 2)] == ["BD1.first", "BD1.second"]
    assert reader.health().bad_frames == 1


@pytest.mark.slow
def test_reconnect_when_pty_goes_away_and_comes_back(pty, run_reader):
    reader, reads = run_reader({"driver": "em4100", "baud": 9600}, pty.link)
    pty.write(build_frame(bytes.fromhex("1111111111")))
    assert reads.get(timeout=10).value == "1111111111"
    pty.unplug()
    wait_for(lambda: reader.health().state is ReaderState.CONNECTING, "disconnect noticed")
    assert reader.health().extra["connected"] == 0
    pty.plug()
    wait_for(lambda: reader.health().state is ReaderState.READY, "reopened")
    pty.write(build_frame(bytes.fromhex("2222222222")))
    assert reads.get(timeout=10).value == "2222222222"
    assert reader.health().extra["disconnects"] >= 1
