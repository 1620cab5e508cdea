from __future__ import annotations

import datetime as dt
import threading
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.ids import Uuid7Generator, is_uuid7, uuid7, uuid7_time, uuid7_unix_ms


def test_version_variant_and_time() -> None:
    before = dt.datetime.now(dt.UTC)
    value = uuid7()
    after = dt.datetime.now(dt.UTC)
    assert value.version == 7 and value.variant == uuid.RFC_4122 and is_uuid7(value)
    assert before - dt.timedelta(milliseconds=1) <= uuid7_time(value) <= after


def test_monotonic_within_one_millisecond_and_when_clock_steps_back() -> None:
    gen = Uuid7Generator()
    ids = [gen.next(now_ms=1_700_000_000_000) for _ in range(1000)]
    ids.append(gen.next(now_ms=1_600_000_000_000))  # NTP stepped the clock back
    ids.append(gen.next(now_ms=1_700_000_000_001))
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert uuid7_unix_ms(ids[-2]) == 1_700_000_000_000  # held, not gone backwards


def test_monotonic_across_threads() -> None:
    results: list[list[uuid.UUID]] = [[] for _ in range(4)]

    def work(out: list[uuid.UUID]) -> None:
        out.extend(uuid7() for _ in range(2000))

    threads = [threading.Thread(target=work, args=(r,)) for r in results]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [u for r in results for u in r]
    assert len(set(every)) == len(every)
    assert all(r == sorted(r) for r in results)


@given(st.integers(min_value=0, max_value=253_402_300_799_999))  # datetime ends at year 9999
def test_time_round_trip(ms: int) -> None:
    value = Uuid7Generator().next(now_ms=ms)
    assert uuid7_unix_ms(value) == ms
    assert uuid7_time(value).timestamp() * 1000 == pytest.approx(ms, abs=1)
    assert is_uuid7(value)


def test_rejects_non_v7() -> None:
    assert not is_uuid7(uuid.uuid4())
    with pytest.raises(ValueError):
        uuid7_unix_ms(uuid.uuid4())
    with pytest.raises(ValueError):
        uuid7(now_ms=2**48)
