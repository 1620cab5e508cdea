from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.localtime import format_local, local_date, local_day_bounds, local_range_bounds


def test_local_day_starts_at_shanghai_midnight():
    start, end = local_day_bounds(date(2026, 3, 1))
    assert start == datetime(2026, 2, 28, 16, 0, tzinfo=UTC)
    assert end == datetime(2026, 3, 1, 16, 0, tzinfo=UTC)


def test_early_morning_tap_belongs_to_the_local_day():
    tap = datetime(2026, 2, 28, 23, 30, tzinfo=UTC)  # 07:30 on 1 March in Shanghai
    assert local_date(tap) == date(2026, 3, 1)
    assert format_local(tap) == "2026-03-01 07:30"


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError, match="naive"):
        local_date(datetime(2026, 3, 1, 8, 0))


def test_range_must_not_end_before_start():
    with pytest.raises(ValueError):
        local_range_bounds(date(2026, 3, 2), date(2026, 3, 1))


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)))
def test_every_instant_falls_in_exactly_its_local_day(instant):
    start, end = local_day_bounds(local_date(instant))
    assert start <= instant < end
    assert end - start == (end - start).__class__(days=1)
