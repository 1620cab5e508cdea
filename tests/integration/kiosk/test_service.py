"""KioskService with the real simulator reader: reads go through the reader thread, the decision, the
outbox and out to subscribers — the same path a hardware read takes."""

from __future__ import annotations

import json

import pytest

from kiosk.outcomes import OutcomeKind
from kiosk.service import KioskService, SimulationError
from protocol import TapEventIn, verify_chain

from .conftest import MEMBER_CARD, OTHER_CARD, REVOKED_CARD, STAFF_CARD, UNKNOWN_CARD, make_config


@pytest.fixture
def make_service(state_dir, clock):
    started: list[KioskService] = []

    def factory(**overrides) -> KioskService:
        svc = KioskService(make_config(state_dir, **overrides), clock=clock, start_sync=False)
        svc.start()
        started.append(svc)
        return svc

    yield factory
    for svc in started:
        svc.stop()


def tap(svc: KioskService, value: str, kind: str = "card"):
    after = svc.outcome_counter
    reader_id = svc.simulate_read(kind, value)
    outcome = svc.wait_outcome(after, 10, reader_id)
    assert outcome is not None, "no outcome for a simulated read"
    return outcome


def test_in_duplicate_out_through_the_simulator(make_service, clock):
    svc = make_service()
    first = tap(svc, MEMBER_CARD)
    assert (first.kind, first.colour, first.masked_name, first.unit_name) == (
        OutcomeKind.IN,
        "green",
        "张*明",
        "区税务局",
    )
    assert first.recorded and first.seq == 1 and first.reader_id == "sim"
    clock.advance(seconds=30)
    dup = tap(svc, MEMBER_CARD)
    assert (dup.kind, dup.colour, dup.message_zh) == (OutcomeKind.DUPLICATE, "amber", "已签到")
    assert dup.duration_s == 30
    clock.advance(minutes=65)
    out = tap(svc, MEMBER_CARD.lower())
    assert out.kind is OutcomeKind.OUT and out.duration_s == 65 * 60 + 30
    assert "1小时5分钟" in out.message_zh
    assert [t.direction for t in svc.outbox.all_taps()] == ["in", "duplicate", "out"]


def test_unknown_is_recorded_for_staff_in_amber_and_revoked_in_red(make_service):
    """An unknown card is not a failure: the tap is recorded and staff confirm it (the server resolves
    cards of members outside this kiosk's roster), and the screen says so."""
    svc = make_service()
    unknown = tap(svc, UNKNOWN_CARD)
    assert (unknown.kind, unknown.colour, unknown.member_id) == (OutcomeKind.UNKNOWN, "amber", None)
    assert "已记录" in unknown.message_zh and "工作人员" in unknown.message_zh
    assert "recorded" in unknown.message_en and "staff will confirm" in unknown.message_en
    revoked = tap(svc, REVOKED_CARD)
    assert (revoked.kind, revoked.colour) == (OutcomeKind.REVOKED, "red")
    rows = svc.outbox.all_taps()
    assert [(t.direction, t.member_id, t.reason) for t in rows] == [
        ("unknown", None, "not_in_roster"),
        ("rejected", 3, "credential_revoked"),
    ]


def test_wire_form_of_recorded_taps_is_valid_and_chained(make_service):
    svc = make_service()
    svc.set_clock_offset(-1500)
    for value in (MEMBER_CARD, OTHER_CARD, UNKNOWN_CARD):
        tap(svc, value)
    models = [TapEventIn.model_validate_json(json.dumps(t.to_wire())) for t in svc.outbox.pending()]
    assert verify_chain(models).ok
    assert {m.clock_offset_ms for m in models} == {-1500}
    assert {m.device_tz for m in models} == {"Asia/Shanghai"}
    assert models[0].trust == "high"


def test_state_is_rebuilt_from_the_outbox_after_restart(make_service, state_dir, clock):
    svc = make_service()
    tap(svc, MEMBER_CARD)
    svc.stop()
    clock.advance(hours=2)
    again = make_service()
    assert again.health()["open_sessions"] == 1
    out = tap(again, MEMBER_CARD)
    assert out.kind is OutcomeKind.OUT and out.duration_s == 2 * 3600


def test_locked_kiosk_still_records(make_service):
    svc = make_service()
    assert svc.handle_command("lock_screen", {"text": "维护中"}) == (True, "locked")
    assert svc.state()["locked"] and svc.state()["lock_text"][0] == "维护中"
    locked = tap(svc, MEMBER_CARD)
    assert locked.kind is OutcomeKind.LOCKED and locked.recorded
    svc.handle_command("unlock_screen")
    assert tap(svc, MEMBER_CARD).kind is OutcomeKind.IN
    assert svc.handle_command("rotate_key") is None  # the sync agent's


def test_show_message_and_restart_readers(make_service):
    svc = make_service()
    svc.handle_command("show_message", {"text": "今天16点闭馆", "text_en": "Closing at 16:00", "seconds": 60})
    assert svc.state()["message"] == {"text": "今天16点闭馆", "text_en": "Closing at 16:00"}
    ok, _ = svc.handle_command("restart_readers")
    assert ok and tap(svc, MEMBER_CARD).kind is OutcomeKind.IN


def test_pin_entry_and_persistent_lockout(make_service):
    svc = make_service()
    ok = svc.enter_pin("M001", "2468")
    assert (ok.kind, ok.masked_name, ok.credential_kind) == (OutcomeKind.IN, "张*明", "pin")
    assert svc.outbox.all_taps()[-1].trust == "low"
    assert svc.enter_pin("M001", "0000").kind is OutcomeKind.PIN_WRONG
    assert svc.enter_pin("M001", "0001").kind is OutcomeKind.PIN_WRONG
    locked = svc.enter_pin("M001", "0002")
    assert locked.kind is OutcomeKind.PIN_LOCKED and "5 分钟" in locked.message_zh
    assert svc.enter_pin("M001", "2468").kind is OutcomeKind.PIN_LOCKED  # even the right PIN
    svc.stop()
    restarted = make_service()
    assert restarted.enter_pin("M001", "2468").kind is OutcomeKind.PIN_LOCKED
    assert len(restarted.outbox.all_taps()) == 1  # wrong PINs are not taps


def test_staff_card_binding_flow(make_service):
    svc = make_service()
    new_card = "04C0FFEE000001"
    with pytest.raises(PermissionError):
        svc.start_binding()
    staff = tap(svc, STAFF_CARD)
    assert staff.kind is OutcomeKind.STAFF and svc.state()["mode"] == "maintenance"
    svc.start_binding()
    captured = tap(svc, new_card)
    assert captured.kind is OutcomeKind.BINDING_CAPTURED and captured.member_id is None
    assert svc.outbox.all_taps() == []  # a card read for binding is not a check-in
    assert [m["member_id"] for m in svc.search_members("街道")] == [2]
    bound = svc.confirm_binding(2)
    assert bound.kind is OutcomeKind.BOUND and bound.masked_name == "李*"
    [binding] = svc.outbox.pending_bindings()
    assert binding.member_id == 2 and binding.to_wire()["credential_kind"] == "card"
    assert svc.state()["mode"] == "maintenance"
    tap(svc, STAFF_CARD)  # close maintenance
    assert svc.state()["mode"] == "idle"
    checked = tap(svc, new_card)
    assert (checked.kind, checked.member_id) == (OutcomeKind.IN, 2)


def test_staff_pin_opens_maintenance(make_service):
    svc = make_service()
    assert svc.enter_pin("0", "909090").kind is OutcomeKind.STAFF
    assert svc.state()["mode"] == "maintenance"
    assert svc.enter_pin("0", "111111").kind is OutcomeKind.PIN_WRONG


def test_full_outbox_shows_error_and_keeps_old_taps(make_service):
    svc = make_service(outbox={"capacity": 2})
    tap(svc, MEMBER_CARD)
    tap(svc, OTHER_CARD)
    refused = tap(svc, UNKNOWN_CARD)
    assert refused.kind is OutcomeKind.ERROR and not refused.recorded and refused.colour == "red"
    assert "请联系工作人员" in refused.message_zh
    assert [t.member_id for t in svc.outbox.pending()] == [1, 2]
    assert svc.health()["outbox"]["capacity_alarm"] and svc.health()["status"] == "degraded"


def test_garbled_value_is_invalid_and_not_recorded(make_service):
    svc = make_service()
    outcome = tap(svc, "not-hex!")
    assert outcome.kind is OutcomeKind.INVALID
    assert svc.outbox.all_taps() == []


def test_subscribers_get_state_first_and_a_broken_one_does_not_matter(make_service):
    svc = make_service()
    seen: list[tuple[str, object]] = []

    def broken(kind, payload):
        raise RuntimeError("UI bug")

    svc.subscribe(broken)
    unsubscribe = svc.subscribe(lambda kind, payload: seen.append((kind, payload.get("kind"))))
    assert seen[0][0] == "state"
    assert tap(svc, MEMBER_CARD).kind is OutcomeKind.IN
    assert ("tap", "in") in seen
    unsubscribe()
    tap(svc, OTHER_CARD)
    assert seen.count(("tap", "in")) == 1


def test_simulation_needs_simulate_mode(make_service):
    svc = make_service(simulate=False, readers=[])
    with pytest.raises(SimulationError):
        svc.simulate_read("card", MEMBER_CARD)


def test_today_count_counts_check_ins(make_service, clock):
    svc = make_service()
    tap(svc, MEMBER_CARD)
    tap(svc, OTHER_CARD)
    clock.advance(minutes=5)
    tap(svc, MEMBER_CARD)  # check-out does not count
    assert svc.state()["today_count"] == 2
