"""Outbox basics: chain and seq, wire form, acks, purge never touches unsynced rows, capacity refusal."""

from __future__ import annotations

import datetime as dt

import pytest

from kiosk.outbox import Outbox, OutboxFull, TapDraft
from protocol import TapEventIn, verify_chain

NOW = dt.datetime(2025, 3, 3, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))


def make_draft(i: int = 0, **kw) -> TapDraft:
    fields = {
        "credential_kind": "card",
        "credential_hash": f"{i:064x}",
        "direction": "in",
        "device_time": NOW + dt.timedelta(seconds=i),
        "device_tz": "Asia/Shanghai",
        "clock_offset_ms": -120,
        "member_id": 1 + i % 5,
        "trust": "high",
    }
    return TapDraft(**{**fields, **kw})


@pytest.fixture
def outbox(tmp_path):
    box = Outbox(tmp_path / "outbox.sqlite3", capacity=20)
    yield box
    box.close()


def test_sqlite_is_wal_with_full_sync(outbox):
    assert outbox._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert outbox._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_append_chains_and_wire_form_validates(outbox):
    taps = [outbox.append(make_draft(i)) for i in range(5)]
    assert [t.seq for t in taps] == [1, 2, 3, 4, 5]
    wires = [t.to_wire() for t in taps]
    models = [TapEventIn.model_validate_json(__import__("json").dumps(w)) for w in wires]
    assert all(m.hash_ok() for m in models)
    assert verify_chain(models).ok
    assert outbox.pending(3) == taps[:3]
    assert outbox.head() == (5, taps[-1].hash)


def test_edited_row_breaks_the_chain(outbox):
    for i in range(3):
        outbox.append(make_draft(i))
    outbox._db.execute("UPDATE taps SET member_id = 99 WHERE seq = 2")
    result = verify_chain([t.to_wire() for t in outbox.all_taps()])
    assert not result.ok and result.first_break.seq == 2


def test_acks_and_purge_keep_unsynced_rows(outbox):
    taps = [outbox.append(make_draft(i)) for i in range(6)]
    assert outbox.mark_acked([t.event_id for t in taps[:4]]) == 4
    assert outbox.mark_acked([taps[0].event_id]) == 0  # already acked
    stats = outbox.stats()
    assert (stats.depth, stats.acked, stats.last_seq) == (2, 4, 6)
    assert outbox.purge_acked(older_than=-1) == 4
    assert [t.seq for t in outbox.all_taps()] == [5, 6]
    assert outbox.pending() == taps[4:]
    # The head survives purging; the next tap continues the chain.
    nxt = outbox.append(make_draft(7))
    assert nxt.seq == 7 and nxt.prev_hash == taps[-1].hash


def test_purge_spares_recent_acks(outbox):
    t = outbox.append(make_draft())
    outbox.mark_acked([t.event_id])
    assert outbox.purge_acked(older_than=3600) == 0


def test_full_outbox_refuses_instead_of_dropping(tmp_path):
    box = Outbox(tmp_path / "o.sqlite3", capacity=3)
    taps = [box.append(make_draft(i)) for i in range(3)]
    with pytest.raises(OutboxFull) as exc:
        box.append(make_draft(9))
    assert "请联系工作人员" in str(exc.value) and "see staff" in str(exc.value)
    assert [t.event_id for t in box.pending()] == [t.event_id for t in taps]
    box.mark_acked([taps[0].event_id])
    assert box.append(make_draft(10)).seq == 4  # room again once the server acknowledged
    box.close()


def test_capacity_alarm_at_ninety_percent_and_on_low_disk(tmp_path):
    box = Outbox(tmp_path / "o.sqlite3", capacity=10)
    for i in range(8):
        box.append(make_draft(i))
    assert not box.stats().capacity_alarm
    box.append(make_draft(8))
    stats = box.stats()
    assert stats.capacity_alarm and stats.alarm_reasons == ("outbox_near_capacity",)
    box.close()
    # A threshold above the real free space is the disk-low condition, without filling a disk.
    low = Outbox(tmp_path / "o.sqlite3", capacity=1000, min_free_bytes=2**62)
    assert low.stats().alarm_reasons == ("disk_low",)
    assert low.append(make_draft(20)).seq == 10  # an alarm, not a refusal
    low.close()


def test_state_queries(outbox):
    outbox.append(make_draft(0, member_id=1, direction="in"))
    outbox.append(make_draft(1, member_id=1, direction="duplicate"))
    outbox.append(make_draft(2, member_id=2, direction="in"))
    outbox.append(make_draft(3, member_id=2, direction="out"))
    outbox.append(make_draft(4, member_id=None, direction="unknown"))
    toggles = {t.member_id: t.direction for t in outbox.last_toggles(NOW - dt.timedelta(days=1))}
    assert toggles == {1: "in", 2: "out"}
    assert outbox.last_toggles(NOW + dt.timedelta(hours=1)) == []
    assert outbox.count_since(NOW - dt.timedelta(hours=1)) == 2


def test_bindings_table(outbox):
    b = outbox.append_binding(
        credential_kind="card",
        credential_hash="a" * 64,
        member_id=3,
        device_time=NOW,
        device_tz="Asia/Shanghai",
    )
    assert [x.binding_id for x in outbox.pending_bindings()] == [b.binding_id]
    assert b.to_wire()["device_time"] == "2025-03-03T01:00:00.000000Z"
    assert outbox.stats().bindings_pending == 1
    assert outbox.mark_bindings_acked([b.binding_id]) == 1
    assert outbox.pending_bindings() == []
    assert outbox.stats().depth == 0  # bindings are not taps
