"""Time-ordered unique ids (UUIDv7, RFC 9562).

Every TapEvent is named by its kiosk before the server has ever seen it, so ids must be unique without
coordination; they must also sort by creation time so the server's event tables stay append-mostly
(good B-tree locality, natural partitioning by time). UUIDv7 gives both: 48 bits of Unix milliseconds
then 74 bits of randomness.

Within one process ids are strictly increasing even when several are made in the same millisecond or
the wall clock steps backwards (NTP correction): the 74 "random" bits then act as a counter seeded
randomly (RFC 9562 §6.2, method 2), and the timestamp is held at the last value until the clock passes
it again. Ordering across kiosks is only as good as their clocks, which is why events also carry
``seq`` and a measured clock offset.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import time
import uuid

logger = logging.getLogger(__name__)

_TAIL_BITS = 74
_TAIL_MAX = (1 << _TAIL_BITS) - 1
_MS_MAX = (1 << 48) - 1
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class Uuid7Generator:
    """Holds the last (millisecond, tail) so ids never go backwards. One per process (:func:`uuid7`);
    tests make their own to control time without disturbing it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = -1
        self._last_tail = 0

    def next(self, now_ms: int | None = None) -> uuid.UUID:
        ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
        if not 0 <= ms <= _MS_MAX:
            raise ValueError(f"timestamp out of UUIDv7 range: {ms} ms")
        with self._lock:
            if ms > self._last_ms:
                # Fresh millisecond: random tail with the top bit clear, leaving 2**73 increments of
                # headroom before the counter could overflow within one millisecond.
                tail = int.from_bytes(os.urandom(10), "big") & (_TAIL_MAX >> 1)
            else:
                ms = self._last_ms
                tail = self._last_tail + 1
                if tail > _TAIL_MAX:  # practically unreachable; borrow the next millisecond
                    ms += 1
                    tail = 0
            self._last_ms, self._last_tail = ms, tail
        return _assemble(ms, tail)


def _assemble(ms: int, tail: int) -> uuid.UUID:
    rand_a = tail >> 62  # 12 bits
    rand_b = tail & ((1 << 62) - 1)
    value = (ms << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b
    return uuid.UUID(int=value)


_generator = Uuid7Generator()


def uuid7(now_ms: int | None = None) -> uuid.UUID:
    """A new UUIDv7, strictly greater than every earlier one from this process.

    ``now_ms`` (Unix milliseconds) is for tests and replays; normally the wall clock is used.
    """
    return _generator.next(now_ms)


def is_uuid7(value: uuid.UUID) -> bool:
    """True when ``value`` has version 7 and the RFC 9562 variant."""
    return value.version == 7 and value.variant == uuid.RFC_4122


def uuid7_unix_ms(value: uuid.UUID) -> int:
    """The Unix millisecond timestamp embedded in a UUIDv7."""
    if not is_uuid7(value):
        raise ValueError(f"not a UUIDv7: {value}")
    return value.int >> 80


def uuid7_time(value: uuid.UUID) -> dt.datetime:
    """The creation time embedded in a UUIDv7, as an aware UTC datetime (millisecond precision)."""
    return _EPOCH + dt.timedelta(milliseconds=uuid7_unix_ms(value))
