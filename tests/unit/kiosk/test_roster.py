"""Offline roster: deltas (upserts, removals as revoked, full resync, cursor), lookups, PIN verifiers."""

from __future__ import annotations

import pytest

from kiosk.roster import PinEntry, Roster
from protocol import RosterDelta, RosterEntry, credential_hash, pin_verifier

KEY = b"k" * 32


def _entry(uid: str, member_id: int, name: str = "张*明", unit: str = "测试单位") -> RosterEntry:
    return RosterEntry(
        credential_hash=credential_hash(KEY, "card", uid),
        credential_kind="card",
        member_id=member_id,
        masked_name=name,
        unit_name=unit,
    )


@pytest.fixture
def roster(tmp_path):
    r = Roster(tmp_path / "roster.sqlite3", credential_key=KEY)
    yield r
    r.close()


def test_upsert_lookup_and_cursor(roster):
    roster.apply_delta(
        RosterDelta(cursor="c1", upserts=[_entry("04A1B2C3", 1), _entry("04A1B2C4", 2, "李*")])
    )
    hit = roster.lookup(credential_hash(KEY, "card", "04:a1:b2:c3"))
    assert hit is not None and hit.member_id == 1 and hit.masked_name == "张*明" and not hit.revoked
    assert roster.lookup("0" * 64) is None
    assert roster.cursor == "c1"
    assert roster.size() == 2


def test_upsert_moves_a_card_to_another_member(roster):
    roster.apply_delta(RosterDelta(cursor="c1", upserts=[_entry("04A1B2C3", 1)]))
    roster.apply_delta(RosterDelta(cursor="c2", upserts=[_entry("04A1B2C3", 9, "王*")]))
    hit = roster.lookup(credential_hash(KEY, "card", "04A1B2C3"))
    assert (hit.member_id, hit.masked_name) == (9, "王*")


def test_removal_becomes_revoked_and_upsert_restores(roster):
    e = _entry("04A1B2C3", 1)
    roster.apply_delta(RosterDelta(cursor="c1", upserts=[e]))
    roster.apply_delta(RosterDelta(cursor="c2", removals=[e.credential_hash]))
    assert roster.lookup(e.credential_hash).revoked
    assert roster.size() == 0
    roster.apply_delta(RosterDelta(cursor="c3", upserts=[e]))
    assert not roster.lookup(e.credential_hash).revoked


def test_full_resync_drops_everything_first(roster):
    a, b = _entry("04A1B2C3", 1), _entry("04A1B2C4", 2)
    roster.apply_delta(RosterDelta(cursor="c1", upserts=[a]))
    roster.apply_delta(RosterDelta(cursor="c2", removals=[a.credential_hash]))
    roster.apply_delta(RosterDelta(cursor="full", full_resync=True, upserts=[b]))
    assert roster.lookup(a.credential_hash) is None  # tombstone gone too
    assert roster.lookup(b.credential_hash).member_id == 2
    assert roster.cursor == "full"


def test_failed_delta_changes_nothing(roster):
    roster.apply_delta(RosterDelta(cursor="c1", upserts=[_entry("04A1B2C3", 1)]))
    bad = {"cursor": "c2", "upserts": [{"credential_hash": "f" * 64, "credential_kind": "card"}]}  # no member
    with pytest.raises((TypeError, KeyError)):
        roster.apply_delta(bad)
    assert roster.cursor == "c1"
    assert roster.lookup("f" * 64) is None


def test_pin_lookup(roster):
    roster.upsert_pins([PinEntry("M001", 5, pin_verifier(KEY, "M001", "2468"), "赵*", "单位A")])
    hit = roster.lookup_pin("M001", "2468")
    assert hit is not None and hit.member_id == 5 and hit.member_no == "M001"
    assert roster.lookup_pin("M001", "2469") is None
    assert roster.lookup_pin("M002", "2468") is None
    assert roster.lookup_pin("M001", "12") is None  # not a PIN at all


def test_pins_in_a_delta_dict(roster):
    delta = {
        "cursor": "p1",
        "upserts": [],
        "pin_verifiers": [
            {
                "member_no": "M7",
                "member_id": 7,
                "verifier": pin_verifier(KEY, "M7", "1357"),
                "masked_name": "周*",
                "unit_name": "U",
            }
        ],
    }
    roster.apply_delta(delta)
    assert roster.lookup_pin("M7", "1357").member_id == 7


def test_search_finds_members_by_number_name_or_unit(roster):
    roster.apply_delta(
        RosterDelta(
            cursor="c1",
            upserts=[_entry("04A1B2C3", 1, "张*明", "街道办"), _entry("04A1B2C4", 2, "李*", "税务局")],
        )
    )
    roster.upsert_pins([PinEntry("M002", 2, pin_verifier(KEY, "M002", "1111"), "李*", "税务局")])
    assert [m.member_id for m in roster.search("税务")] == [2]
    assert [m.member_id for m in roster.search("M002")] == [2]
    assert roster.search("M002")[0].member_no == "M002"
    assert [m.member_id for m in roster.search("张")] == [1]
    assert roster.search("nobody") == []
