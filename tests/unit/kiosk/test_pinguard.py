"""PIN lockout: per member number and kiosk-wide, growing, and surviving a restart."""

from __future__ import annotations

from kiosk.pinguard import PinGuard, PinPolicy


class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


def test_lockout_after_max_failures_and_expiry(tmp_path):
    clock = Clock()
    guard = PinGuard(tmp_path / "g.sqlite3", PinPolicy(max_failures=3, lockout_s=60), clock=clock)
    for _ in range(2):
        assert not guard.record_failure("M1").locked
    assert not guard.check("M1").locked
    third = guard.record_failure("M1")
    assert third.locked and third.retry_after_s == 60
    assert guard.check("M1").locked
    assert not guard.check("M2").locked  # other members unaffected
    clock.t += 61
    assert not guard.check("M1").locked


def test_lockout_doubles(tmp_path):
    clock = Clock()
    guard = PinGuard(
        tmp_path / "g.sqlite3", PinPolicy(max_failures=2, lockout_s=60, max_lockout_s=1000), clock=clock
    )
    guard.record_failure("M1")
    assert guard.record_failure("M1").retry_after_s == 60
    clock.t += 61
    guard.record_failure("M1")
    assert guard.record_failure("M1").retry_after_s == 120


def test_success_resets_member_counter(tmp_path):
    clock = Clock()
    guard = PinGuard(tmp_path / "g.sqlite3", PinPolicy(max_failures=3), clock=clock)
    guard.record_failure("M1")
    guard.record_failure("M1")
    guard.record_success("M1")
    assert guard.check("M1").failures == 0
    assert not guard.record_failure("M1").locked


def test_kiosk_wide_lock_stops_walking_member_numbers(tmp_path):
    clock = Clock()
    guard = PinGuard(tmp_path / "g.sqlite3", PinPolicy(max_failures=5, kiosk_max_failures=4), clock=clock)
    for i in range(3):
        assert not guard.record_failure(f"M{i}").locked
    assert guard.record_failure("M9").locked
    assert guard.check("someone-new").locked


def test_lockout_survives_restart(tmp_path):
    clock = Clock()
    path = tmp_path / "g.sqlite3"
    guard = PinGuard(path, PinPolicy(max_failures=2), clock=clock)
    guard.record_failure("M1")
    guard.record_failure("M1")
    guard.close()
    again = PinGuard(path, PinPolicy(max_failures=2), clock=clock)
    assert again.check("M1").locked
