"""The one reconnect loop (hardware/reconnect.py), seen through a keyboard wedge on a FIFO.

The same loop runs the serial drivers, the wedge, the camera and PC/SC; their own tests cover each
device. Here: the state sequence observers see, that observers run outside the health lock, the
counters, and that stop() ends the worker while it waits out a long reconnect pause.
"""

import os
import queue
import threading

from hardware.base import ReaderHealth, ReaderState
from hardware.keyboard_wedge import KeyboardWedgeReader, encode_events
from hardware.reconnect import ReconnectingReader
from tests.integration.hardware.collect import wait_for_state


class StateLog:
    """An observer that records states and reads the reader's health from inside the callback."""

    def __init__(self, reader: KeyboardWedgeReader) -> None:
        self.reader = reader
        self.states: list[ReaderState] = []
        self.changed = queue.Queue()

    def __call__(self, health: ReaderHealth) -> None:
        self.reader.health()  # would deadlock if observers were called under the health lock
        self.states.append(health.state)
        self.changed.put(health.state)

    def wait(self, state: ReaderState) -> None:
        while self.changed.get(timeout=15) is not state:
            pass


def test_states_and_counters_through_absent_present_lost_and_back(tmp_path):
    path = tmp_path / "event3"
    reads = queue.Queue()
    reader = KeyboardWedgeReader("wedge", reads.put, str(path))
    assert isinstance(reader, ReconnectingReader)
    reader.reconnect_delay = 0.05
    log = StateLog(reader)
    unsubscribe = reader.subscribe(log)
    assert log.states == [ReaderState.STOPPED]  # a new subscriber hears the current state at once
    reader.start()
    try:
        wait_for_state(reader, ReaderState.CONNECTING)
        _wait(lambda: "cannot open" in (reader.health().last_error or ""))
        os.mkfifo(path)  # the device appears
        log.wait(ReaderState.READY)
        assert reader.health().extra["connected"] == 1
        fd = os.open(path, os.O_WRONLY)
        os.write(fd, encode_events("04A1B2C3"))
        assert reads.get(timeout=10).value == "04A1B2C3"
        os.close(fd)  # the device goes away
        log.wait(ReaderState.CONNECTING)
        health = reader.health()
        assert health.extra["connected"] == 0 and health.extra["disconnects"] == 1
        assert "end of input" in (health.last_error or "")
        log.wait(ReaderState.READY)  # reopened by itself
        assert reader.health().extra["reconnects"] >= 1
    finally:
        reader.stop()
    assert log.states[-1] is ReaderState.STOPPED
    unsubscribe()
    reader.start()
    reader.stop()
    assert log.states.count(ReaderState.STOPPED) == 2  # nothing heard after unsubscribing


def test_stop_interrupts_a_long_reconnect_pause(tmp_path):
    reader = KeyboardWedgeReader("wedge", lambda r: None, str(tmp_path / "absent"))
    reader.reconnect_delay = 3600.0
    reader.start()
    wait_for_state(reader, ReaderState.CONNECTING)
    _wait(lambda: reader.health().last_error is not None)
    worker = reader._thread
    reader.stop()
    assert worker is not None and not worker.is_alive()  # Event.wait, not sleep: stop() ended it
    assert reader.health().state is ReaderState.STOPPED


def _wait(pred) -> None:
    done = threading.Event()
    for _ in range(1500):
        if pred():
            return
        done.wait(0.01)
    raise AssertionError("condition never became true")
