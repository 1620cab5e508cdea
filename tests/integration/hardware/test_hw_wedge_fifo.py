"""Keyboard-wedge driver reading raw input_event records from a FIFO standing in for /dev/input/eventN."""

import os
import queue
import time

import pytest

from hardware.base import ReaderState
from hardware.keyboard_wedge import encode_events
from hardware.registry import create_reader
from hardware.schema import profile_from_mapping


def wait_for(pred, what, limit=10.0):
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "event7"
    os.mkfifo(path)
    return path


def test_decimal_wedge_and_reopen_after_writer_leaves(fifo):
    reads = queue.Queue()
    profile = profile_from_mapping(
        "wedge", {"driver": "keyboard_wedge", "port": str(fifo), "options": {"input_format": "decimal"}}
    )
    reader = create_reader(profile, reads.put)
    reader.start()
    try:
        fd = os.open(fifo, os.O_WRONLY)
        data = encode_events("0012345678")
        os.write(fd, data[:30])
        os.write(fd, data[30:])
        assert reads.get(timeout=10).value == "00BC614E"
        os.close(fd)  # device gone
        wait_for(lambda: reader.health().state is ReaderState.CONNECTING, "end of input noticed")
        fd = os.open(fifo, os.O_WRONLY)  # device back
        os.write(fd, encode_events("4294967295"))
        assert reads.get(timeout=10).value == "FFFFFFFF"
        os.close(fd)
    finally:
        reader.stop()
    assert reader.health().reads == 2
