"""ID-card SAM driver against a test-side SAM emulator answering on a real pty.

The emulator is written from the protocol description (GA 467 frame layout), not from the driver's
builder functions, so a shared misunderstanding cannot make both sides agree.
"""

import os
import queue
import select
import threading
import time
import tty

import pytest

from hardware.base import CredentialKind, ReaderState
from hardware.registry import create_reader
from hardware.schema import profile_from_mapping

PRE = bytes([0xAA, 0xAA, 0xAA, 0x96, 0x69])


def xor(data):
    x = 0
    for b in data:
        x ^= b
    return x


def answer(sw3, data=b""):
    body = (len(data) + 4).to_bytes(2, "big") + bytes([0, 0, sw3]) + data
    return PRE + body + bytes([xor(body)])


def check_digit(first17):
    w = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    return "10X98765432"[sum(int(d) * k for d, k in zip(first17, w, strict=True)) % 11]


def field(text, n):
    raw = text.encode("utf-16-le")
    return raw + b"\x20\x00" * ((n - len(raw)) // 2)


def base_info(name, number):
    text = (
        field(name, 30)
        + field("1", 2)
        + field("01", 4)
        + field("19491231", 16)
        + field("北京市东城区某街道1号", 70)
        + field(number, 36)
        + field("北京市公安局", 30)
        + field("20200101", 16)
        + field("20400101", 16)
        + field("", 36)
    )
    photo = bytes(range(256)) * 4
    return len(text).to_bytes(2, "big") + len(photo).to_bytes(2, "big") + text + photo


class SamEmulator(threading.Thread):
    def __init__(self, master):
        super().__init__(daemon=True)
        self.master = master
        self.card = None  # (name, number)
        self.status_override = None
        self.corrupt_next = False
        self.noise_before = b""
        self.commands = []
        self.stop = threading.Event()

    def run(self):
        buf = b""
        while not self.stop.is_set():
            r, _, _ = select.select([self.master], [], [], 0.05)
            if not r:
                continue
            try:
                buf += os.read(self.master, 1024)
            except OSError:  # EIO while no one holds the slave side open (yet)
                time.sleep(0.02)
                continue
            while PRE in buf:
                buf = buf[buf.index(PRE) :]
                if len(buf) < 7:
                    break
                n = int.from_bytes(buf[5:7], "big")
                if len(buf) < 7 + n:
                    break
                body, buf = buf[5 : 7 + n], buf[7 + n :]
                assert xor(body[:-1]) == body[-1], "driver sent a bad checksum"
                self.commands.append((body[2], body[3]))
                os.write(self.master, self.noise_before + self.reply(body[2], body[3]))
                self.noise_before = b""

    def reply(self, cmd, para):
        if self.status_override is not None:
            return answer(self.status_override)
        if (cmd, para) == (0x20, 0x01):
            return answer(0x9F, b"\x00" * 4) if self.card else answer(0x80)
        if (cmd, para) == (0x20, 0x02):
            return answer(0x90, b"\x00" * 8) if self.card else answer(0x81)
        if (cmd, para) == (0x30, 0x01) and self.card:
            frame = bytearray(answer(0x90, base_info(*self.card)))
            if self.corrupt_next:
                self.corrupt_next = False
                frame[-1] ^= 0x55
            return bytes(frame)
        return answer(0x21)


@pytest.fixture
def sam():
    master, slave = os.openpty()
    tty.setraw(slave)
    name = os.ttyname(slave)
    os.close(slave)
    emu = SamEmulator(master)
    emu.start()
    emu.port = name
    yield emu
    emu.stop.set()
    emu.join()
    os.close(master)


@pytest.fixture
def reader_on(sam):
    reads = queue.Queue()
    profile = profile_from_mapping(
        "idcard",
        {
            "driver": "idcard_sam",
            "port": sam.port,
            "baud": 115200,
            "debounce_ms": 60000,
            "options": {"poll_interval_ms": 20, "timeout_ms": 300},
        },
    )
    reader = create_reader(profile, reads.put, port=sam.port)
    reader.start()
    yield reader, reads
    reader.stop()


def wait_for(pred, what, limit=10.0):
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


def test_reads_number_and_name_only(sam, reader_on):
    reader, reads = reader_on
    number = "44030619900307001" + check_digit("44030619900307001")
    wait_for(lambda: (0x20, 0x01) in sam.commands, "polling")
    sam.noise_before = b"\x00\x11"
    sam.card = ("李小龙", number)
    r = reads.get(timeout=10)
    assert (r.kind, r.value, r.display_name) == (CredentialKind.ID_CARD, number, "李小龙")
    assert [c for c in sam.commands if c != (0x20, 0x01)][:2] == [(0x20, 0x02), (0x30, 0x01)]
    # the card stays on the reader: no second delivery within the debounce window
    n = len(sam.commands)
    wait_for(lambda: len(sam.commands) > n + 6, "more polls")
    assert reads.empty() and reader.health().reads == 1


def test_bad_checksum_counted_then_read(sam, reader_on):
    reader, reads = reader_on
    number = "11010519491231002" + check_digit("11010519491231002")
    sam.corrupt_next = True
    sam.card = ("王五", number)
    assert reads.get(timeout=10).value == number
    assert reader.health().bad_frames >= 1


def test_sam_status_error_reported_clearly(sam, reader_on):
    reader, _reads = reader_on
    sam.status_override = 0x60
    wait_for(lambda: reader.health().extra.get("sam_status") == "60", "status reported")
    err = reader.health().last_error
    assert "SAM self-test failed" in err and "自检失败" in err
    sam.status_override = None


def test_silent_sam_moves_to_error_and_recovers(sam, reader_on):
    reader, reads = reader_on
    wait_for(lambda: reader.health().state is ReaderState.READY, "ready")
    sam.stop.set()
    sam.join()
    wait_for(lambda: reader.health().state is ReaderState.ERROR, "error after silence")
    assert "无应答" in reader.health().last_error
    sam.stop.clear()
    revived = SamEmulator(sam.master)
    revived.card = ("赵六", "11010519491231002" + check_digit("11010519491231002"))
    revived.start()
    try:
        assert reads.get(timeout=10).display_name == "赵六"
        wait_for(lambda: reader.health().state is ReaderState.READY, "ready again")
    finally:
        revived.stop.set()
        revived.join()
