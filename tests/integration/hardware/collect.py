"""Helpers for reader tests: wait for the next read or a state instead of sleeping a fixed time."""

from __future__ import annotations

import queue
import time

from hardware.base import CredentialRead, Reader, ReaderState


class ReadCollector:
    """A reader callback that queues reads, so a test waits for the next one instead of sleeping."""

    def __init__(self) -> None:
        self.queue: queue.Queue[CredentialRead] = queue.Queue()
        self.all: list[CredentialRead] = []

    def __call__(self, read: CredentialRead) -> None:
        self.all.append(read)
        self.queue.put(read)

    def next(self, timeout: float = 10.0) -> CredentialRead:
        try:
            return self.queue.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no read delivered within {timeout} s") from None

    def none_within(self, seconds: float) -> bool:
        try:
            read = self.queue.get(timeout=seconds)
        except queue.Empty:
            return True
        self.queue.put(read)
        return False


def wait_for_state(reader: Reader, state: ReaderState, timeout: float = 15.0) -> None:
    """Wait (a liveness bound, not a speed assertion) until the reader reports ``state``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if reader.health().state == state:
            return
        time.sleep(0.02)
    raise AssertionError(f"reader state is {reader.health().state}, expected {state} ({reader.health()})")
