"""Kiosk test set-up: configs, a roster with known cards, a controllable clock, running services."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path
from typing import Any

import pytest

from kiosk.config import KioskConfig, config_from_mapping
from kiosk.roster import PinEntry, Roster
from protocol import RosterDelta, RosterEntry, credential_hash, pin_verifier

KEY_HEX = "6b" * 32
KEY = bytes.fromhex(KEY_HEX)
MEMBER_CARD = "04A1B2C3D4E5F6"
OTHER_CARD = "04A1B2C3D4E5F7"
REVOKED_CARD = "04DEADBEEF0001"
STAFF_CARD = "0457AFF0"
UNKNOWN_CARD = "04FFFFFFFFFFFF"


def config_mapping(state_dir: Path, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "state_dir": str(state_dir),
        "simulate": True,
        "centre": {"name": "测试党群服务中心", "code": "SC-T"},
        "dev": {"credential_key": KEY_HEX},
        "staff": {"cards": [STAFF_CARD], "pin": "909090"},
        "pin": {"max_failures": 3, "lockout_s": 300},
    }
    data.update(overrides)
    return data


def make_config(state_dir: Path, **overrides: Any) -> KioskConfig:
    return config_from_mapping(config_mapping(state_dir, **overrides))


def seed_roster(state_dir: Path) -> None:
    """Member 1 (张*明) has MEMBER_CARD and PIN M001/2468; member 2 has OTHER_CARD; REVOKED_CARD withdrawn."""
    roster = Roster(state_dir / "roster.sqlite3", credential_key=KEY)

    def entry(uid: str, member_id: int, name: str, unit: str) -> RosterEntry:
        return RosterEntry(
            credential_hash=credential_hash(KEY, "card", uid),
            credential_kind="card",
            member_id=member_id,
            masked_name=name,
            unit_name=unit,
        )

    roster.apply_delta(
        RosterDelta(
            cursor="c1",
            full_resync=True,
            upserts=[
                entry(MEMBER_CARD, 1, "张*明", "区税务局"),
                entry(OTHER_CARD, 2, "李*", "街道办事处"),
                entry(REVOKED_CARD, 3, "王*华", "区医院"),
            ],
        )
    )
    roster.apply_delta(RosterDelta(cursor="c2", removals=[credential_hash(KEY, "card", REVOKED_CARD)]))
    roster.upsert_pins([PinEntry("M001", 1, pin_verifier(KEY, "M001", "2468"), "张*明", "区税务局")])
    roster.close()


class FakeClock:
    """A settable wall clock for the check-in rules (device time); monotonic time stays real."""

    def __init__(self, start: dt.datetime) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> dt.datetime:
        with self._lock:
            return self._now

    def advance(self, **kw: float) -> None:
        with self._lock:
            self._now += dt.timedelta(**kw)


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    d = tmp_path / "kiosk-state"
    d.mkdir()
    seed_roster(d)
    return d


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(dt.datetime(2025, 3, 3, 1, 0, tzinfo=dt.UTC))
