"""``kiosk.config.apply_live_config``: what a pushed config may change live, and what it refuses."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from kiosk.config import (
    ConfigError,
    apply_live_config,
    config_from_mapping,
    load_applied_config,
    save_applied_config,
)

BASE = config_from_mapping(
    {
        "state_dir": "/tmp/unused",
        "language": "zh",
        "centre": {"name": "文件中的中心", "timezone": "Asia/Shanghai"},
        "rules": {"debounce_s": 60, "closes_at": "21:00"},
        "staff": {"cards": ["0457AFF0"], "pin": "909090"},
    }
)


def test_live_sections_change_and_the_rest_is_kept() -> None:
    new, restart = apply_live_config(
        BASE,
        {
            "language": "en",
            "centre": {"name": "城南中心"},
            "rules": {"debounce_s": 5, "max_session_h": 8},
            "staff": {"card_hashes": ["AB" * 32], "pin": ""},
            "pin": {"max_failures": 4, "lockout_s": 60},
        },
    )
    assert restart == []
    assert (new.language, new.centre_name) == ("en", "城南中心")
    assert new.rules.debounce == dt.timedelta(seconds=5) and new.rules.max_length == dt.timedelta(hours=8)
    assert new.rules.closes_at == dt.time(21, 0)  # not named: kept from the file
    assert new.staff_card_hashes == ("ab" * 32,) and new.staff_pin == "" and new.staff_cards == ("0457AFF0",)
    assert (new.pin_max_failures, new.pin_lockout_s) == (4, 60.0)
    assert (new.state_dir, new.ui_port) == (BASE.state_dir, BASE.ui_port)


def test_closing_time_can_be_cleared_and_the_timezone_moves_the_rules() -> None:
    new, _ = apply_live_config(BASE, {"rules": {"closes_at": None}, "centre": {"timezone": "Asia/Urumqi"}})
    assert new.rules.closes_at is None
    assert new.timezone == "Asia/Urumqi" and str(new.rules.tz) == "Asia/Urumqi"


def test_restart_only_keys_are_reported_not_applied() -> None:
    new, restart = apply_live_config(BASE, {"readers": [], "ui": {"port": 9000}, "language": "en"})
    assert restart == ["readers", "ui"]
    assert new.ui_port == BASE.ui_port and new.language == "en"


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"language": "fr"},
        {"rules": {"debounce_s": -1}},
        {"rules": {"max_session_h": 0}},
        {"rules": {"closes_at": "25:99"}},
        {"rules": "fast"},
        {"centre": {"name": "  "}},
        {"centre": {"timezone": "Mars/Olympus"}},
        {"staff": {"card_hashes": ["not-a-hash"]}},
        {"staff": {"cards": "0457AFF0"}},
        {"pin": {"max_failures": 0}},
    ],
)
def test_invalid_pushes_raise_a_bilingual_error(body: object) -> None:
    with pytest.raises(ConfigError) as err:
        apply_live_config(BASE, body)
    assert any("\u4e00" <= ch <= "\u9fff" for ch in str(err.value))


def test_applied_config_round_trips_privately(tmp_path: Path) -> None:
    assert load_applied_config(tmp_path) is None
    path = save_applied_config(tmp_path, 7, {"language": "en"})
    assert load_applied_config(tmp_path) == (7, {"language": "en"})
    assert path.stat().st_mode & 0o077 == 0
    path.write_text("{not json")
    assert load_applied_config(tmp_path) is None
