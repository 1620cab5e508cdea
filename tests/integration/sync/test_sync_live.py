"""Client, uploader, heartbeat and enrolment against the real server app on a real socket (both backends)."""

from __future__ import annotations

import datetime as dt
import os
import queue
import sqlite3
import stat
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from kiosk.client import ClockOffset, KioskClient, ServerError
from kiosk.config import load_enrolment
from kiosk.enrol import EnrolError, enrol
from kiosk.heartbeat import HeartbeatAgent
from kiosk.outbox import Outbox, TapDraft
from kiosk.roster import Roster
from kiosk.sync import Uploader
from protocol.chain import verify_chain
from protocol.hashing import credential_hash
from tests.factories import TEST_CREDENTIAL_KEY
from tests.integration.kiosk.conftest import make_config

from .conftest import LiveServer, enrol_token, seed_centre, server_events
from .service_double import Calls, ProtocolOnlyService


def _double(state: Path) -> tuple[ProtocolOnlyService, Calls]:
    """The kiosk-service double the heartbeat agent runs against (only the agents' protocol members)."""
    calls: Calls = queue.Queue()
    return ProtocolOnlyService(make_config(state), calls), calls


def _commands_run(calls: Calls) -> list[str]:
    """Names of the commands the agent handed to the service since the last look."""
    seen = []
    while not calls.empty():
        kind, args = calls.get_nowait()
        if kind == "handle_command":
            seen.append(args[0])
    return seen


def _enrolled(live: LiveServer, db_url: str, tmp_path: Path, **kw: Any) -> tuple[KioskClient, Any]:
    seeded = seed_centre(db_url, members=kw.pop("members", 3))
    state = tmp_path / "state"
    enrolment = enrol(live.url, enrol_token(db_url, seeded.centre_code), state, device_name="test kiosk")
    offset = ClockOffset(state / "clock-offset.json", clock=kw.pop("clock", time.time))
    client = KioskClient(live.url, enrolment.kiosk_id, bytes.fromhex(enrolment.kiosk_secret), offset=offset)
    return client, seeded


def _draft(member_id: int | None, offset_ms: int = 0, at: dt.datetime | None = None) -> TapDraft:
    return TapDraft(
        credential_kind="card",
        credential_hash=credential_hash(TEST_CREDENTIAL_KEY, "card", f"{member_id or 0:08X}"),
        direction="in" if member_id else "unknown",
        device_time=at or dt.datetime.now(dt.UTC),
        device_tz="Asia/Shanghai",
        clock_offset_ms=offset_ms,
        member_id=member_id,
    )


def test_enrol_stores_secrets_privately_and_token_is_single_use(
    live_server: LiveServer, db_url: str, tmp_path: Path
) -> None:
    seeded = seed_centre(db_url, members=1)
    token = enrol_token(db_url, seeded.centre_code)
    result = enrol(live_server.url, token, tmp_path / "a", device_name="kiosk a")
    stored = load_enrolment(tmp_path / "a")
    assert stored is not None and stored.kiosk_id == result.kiosk_id
    assert len(bytes.fromhex(stored.kiosk_secret)) >= 16
    assert stored.credential_key_bytes == TEST_CREDENTIAL_KEY
    assert stat.S_IMODE(os.stat(tmp_path / "a" / "enrolment.json").st_mode) == 0o600
    with pytest.raises(EnrolError, match="enrol_token_used"):
        enrol(live_server.url, token, tmp_path / "b")
    with pytest.raises(EnrolError, match="already enrolled"):
        enrol(live_server.url, enrol_token(db_url, seeded.centre_code), tmp_path / "a")


def test_upload_is_exactly_once_even_when_acks_are_lost(
    live_server: LiveServer, db_url: str, tmp_path: Path
) -> None:
    client, seeded = _enrolled(live_server, db_url, tmp_path)
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    for i in range(1203):
        outbox.append(_draft(seeded.members[i % 3] if i % 7 else None))
    uploader = Uploader(outbox, client)
    assert uploader.drain() == 1203
    assert outbox.stats().depth == 0
    assert uploader.status.chain == "ok"

    # The kiosk lost every acknowledgement (e.g. killed before marking): it uploads all again.
    with sqlite3.connect(outbox.path) as raw:
        raw.execute("UPDATE taps SET acked_at = NULL")
    outbox = Outbox(outbox.path)
    uploader = Uploader(outbox, client)
    assert uploader.drain() == 1203
    assert uploader.status.duplicates == 1203
    assert outbox.stats().depth == 0

    rows = server_events(db_url)
    assert [r.seq for r in rows] == list(range(1, 1204))
    assert all(r.chain_ok for r in rows)
    local = outbox.all_taps()
    assert {str(r.event_id) for r in rows} == {t.event_id for t in local}
    assert verify_chain([t.to_wire() | {"device_time": t.device_time} for t in local]).ok


def test_a_wrong_kiosk_clock_is_measured_corrected_and_stamped(
    live_server: LiveServer, db_url: str, tmp_path: Path
) -> None:
    skew_s = 3 * 3600 + 17
    device_clock = lambda: time.time() + skew_s  # noqa: E731 - the kiosk's wrong wall clock
    client, seeded = _enrolled(live_server, db_url, tmp_path, clock=device_clock)
    service, _ = _double(tmp_path / "svc")
    agent = HeartbeatAgent(service, client, tmp_path / "state")
    agent.beat()  # refused once with clock_skew (the server's time in the error), corrected, retried
    measured = client.offset.current_ms()
    assert abs(measured + skew_s * 1000) < 2000, measured
    assert agent.health_report().clock_offset_ms == measured

    now_device = dt.datetime.fromtimestamp(device_clock(), dt.UTC)
    service.outbox.append(_draft(seeded.members[0], offset_ms=measured, at=now_device))
    Uploader(service.outbox, client).drain()
    (row,) = server_events(db_url)
    assert row.clock_offset_ms == measured
    assert abs((row.device_time - dt.datetime.now(dt.UTC)).total_seconds() - skew_s) < 10
    assert abs((row.effective_time - row.received_at).total_seconds()) < 3
    # The measured offset survives a restart of the kiosk.
    assert ClockOffset(tmp_path / "state" / "clock-offset.json").offset_ms == client.offset.offset_ms


def test_heartbeat_applies_roster_runs_commands_once_and_reports_results(
    live_server: LiveServer, db_url: str, tmp_path: Path
) -> None:
    from server.models import Kiosk, KioskCommand

    client, seeded = _enrolled(live_server, db_url, tmp_path)
    engine = create_engine(db_url)
    with Session(engine) as session:
        kiosk = session.scalars(select(Kiosk)).one()
        for name, args in (("lock_screen", {}), ("show_message", {"text": "今天闭馆"}), ("rotate_key", {})):
            session.add(KioskCommand(kiosk_id=kiosk.id, name=name, args=args))
        session.commit()

    service, calls = _double(tmp_path / "svc")
    agent = HeartbeatAgent(service, client, tmp_path / "state")
    agent.beat()
    for uid, member_id in zip(seeded.cards, seeded.members, strict=True):
        found = service.roster.lookup(credential_hash(TEST_CREDENTIAL_KEY, "card", uid))
        assert found is not None and found.member_id == member_id and "*" in found.masked_name
    assert _commands_run(calls) == ["lock_screen", "show_message"]
    assert len(agent.pending_results) == 3

    agent.beat()  # carries the results; the server marks the commands finished
    agent.beat()
    assert _commands_run(calls) == []  # never run twice
    assert agent.pending_results == []
    with Session(engine) as session:
        status = {c.name: c.status for c in session.scalars(select(KioskCommand))}
        kiosk = session.scalars(select(Kiosk)).one()
        assert kiosk.health is not None and kiosk.health["locked"] is True
    engine.dispose()
    assert status == {"lock_screen": "done", "show_message": "done", "rotate_key": "done"}


def test_forged_secret_is_refused_with_a_typed_error(
    live_server: LiveServer, db_url: str, tmp_path: Path
) -> None:
    client, seeded = _enrolled(live_server, db_url, tmp_path)
    forged = KioskClient(live_server.url, client.kiosk_id, b"x" * 32)
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    outbox.append(_draft(seeded.members[0]))
    with pytest.raises(ServerError) as err:
        Uploader(outbox, forged).sync_once()
    assert err.value.status == 401 and err.value.code == "bad_signature" and not err.value.retryable
    assert outbox.stats().depth == 1
    assert server_events(db_url) == []


def test_a_refused_card_binding_is_settled_and_stops_working_locally(
    live_server: LiveServer, db_url: str, tmp_path: Path
) -> None:
    from kiosk.roster import RosterMember

    client, seeded = _enrolled(live_server, db_url, tmp_path, members=2)
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    roster = Roster(tmp_path / "roster.sqlite3")
    taken = credential_hash(TEST_CREDENTIAL_KEY, "card", seeded.cards[0])  # already member 0's card
    fresh = credential_hash(TEST_CREDENTIAL_KEY, "card", "04C0FFEE000001")
    now = dt.datetime.now(dt.UTC)
    for chash in (taken, fresh):
        outbox.append_binding(
            credential_kind="card",
            credential_hash=chash,
            member_id=seeded.members[1],
            device_time=now,
            device_tz="Asia/Shanghai",
            staff_ref="staff-card",
        )
        roster.add_local_binding(chash, "card", RosterMember(seeded.members[1], "张*", "unit", "card"))

    uploader = Uploader(outbox, client, roster=roster)
    assert uploader.sync_bindings() == 1  # the fresh card
    assert uploader.status.bindings_rejected == 1 and uploader.status.last_binding_rejection
    assert outbox.pending_bindings() == []  # the refusal is final: nothing is re-sent
    assert roster.lookup(taken) is None  # no longer honoured at this kiosk …
    assert roster.cursor is None  # … until the full roster the next heartbeat fetches says whose it is
    assert roster.lookup(fresh) is not None
