"""The sync and heartbeat agents depend on typed protocols, which the kiosk service satisfies.

Three facts, each able to fail: the real :class:`kiosk.service.KioskService` is a ``SyncService`` (and a
``HeartbeatService``); leaving out any one protocol member makes an object not one (so the check has
teeth); and the real ``SyncAgent`` uploads, heartbeats, runs a command and reports its status against a
double whose public members are exactly the protocol's — so the agent needs nothing more of the service.
"""

from __future__ import annotations

import queue
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from kiosk.config import load_enrolment
from kiosk.enrol import enrol
from kiosk.heartbeat import HeartbeatService
from kiosk.outbox import TapDraft
from kiosk.service import KioskService
from kiosk.sync import SyncAgent, SyncService
from protocol.hashing import credential_hash
from tests.factories import TEST_CREDENTIAL_KEY
from tests.integration.kiosk.conftest import make_config

from .conftest import LiveServer, enrol_token, seed_centre, server_events
from .service_double import Calls, ProtocolOnlyService, close_parts

#: a safety net only (a broken agent must not hang the run); nothing asserts how long anything took
PATIENCE_S = 60.0


def protocol_members(proto: type) -> set[str]:
    """Public names a protocol declares, its protocol bases included."""
    names: set[str] = set()
    for cls in proto.__mro__:
        if cls is not Protocol and getattr(cls, "_is_protocol", False):
            names |= {n for n in vars(cls) if not n.startswith("_")}
            names |= {n for n in getattr(cls, "__annotations__", {}) if not n.startswith("_")}
    return names


def public_members(obj: object) -> set[str]:
    return {n for n in dir(obj) if not n.startswith("_")}


@pytest.fixture
def double(tmp_path: Path) -> Iterator[tuple[ProtocolOnlyService, Calls]]:
    calls: Calls = queue.Queue()
    service = ProtocolOnlyService(make_config(tmp_path / "svc"), calls)
    yield service, calls
    close_parts(service)


def test_the_kiosk_service_satisfies_both_agent_protocols(tmp_path: Path) -> None:
    service = KioskService(make_config(tmp_path / "state"), start_sync=False)
    try:
        assert isinstance(service, SyncService)
        assert isinstance(service, HeartbeatService)
    finally:
        service.stop()


def test_the_heartbeat_protocol_is_part_of_the_sync_protocol() -> None:
    heartbeat = protocol_members(HeartbeatService)
    assert {"outbox", "roster", "qr", "health", "handle_command", "apply_presence"} <= heartbeat
    assert heartbeat < protocol_members(SyncService)


@pytest.mark.parametrize("missing", sorted(protocol_members(SyncService)))
def test_an_object_lacking_any_one_member_is_not_a_sync_service(
    double: tuple[ProtocolOnlyService, Calls], missing: str
) -> None:
    service, _ = double
    members = {n: getattr(service, n) for n in protocol_members(SyncService) if n != missing}
    partial = type("Partial", (), {})()
    for name, value in members.items():
        setattr(partial, name, value)
    assert not isinstance(partial, SyncService)
    assert isinstance(service, SyncService)


def test_the_double_has_exactly_the_protocol_members(double: tuple[ProtocolOnlyService, Calls]) -> None:
    service, _ = double
    assert public_members(service) == protocol_members(SyncService)


def _wait_for(calls: Calls, seen: list[tuple[str, Any]], done: Any) -> None:
    """Collect what the agent told the service until ``done(seen)`` holds."""
    while not done(seen):
        seen.append(calls.get(timeout=PATIENCE_S))


def test_the_sync_agent_needs_nothing_beyond_its_protocol(
    live_server: LiveServer, db_url: str, tmp_path: Path, double: tuple[ProtocolOnlyService, Calls]
) -> None:
    from server.models import Kiosk, KioskCommand

    service, calls = double
    seeded = seed_centre(db_url, members=2)
    state = tmp_path / "state"
    enrol(live_server.url, enrol_token(db_url, seeded.centre_code), state, device_name="protocol kiosk")
    enrolment = load_enrolment(state)
    assert enrolment is not None
    engine = create_engine(db_url)
    with Session(engine) as session:
        kiosk = session.scalars(select(Kiosk)).one()
        session.add(KioskCommand(kiosk_id=kiosk.id, name="lock_screen", args={}))
        session.commit()
    engine.dispose()
    service.outbox.append(
        TapDraft(
            credential_kind="card",
            credential_hash=credential_hash(TEST_CREDENTIAL_KEY, "card", seeded.cards[0]),
            direction="in",
            device_time=service.clock(),
            device_tz="Asia/Shanghai",
            clock_offset_ms=0,
            member_id=seeded.members[0],
        )
    )

    agent = SyncAgent(service, enrolment, idle_s=0.05, heartbeat_s=3600.0)
    seen: list[tuple[str, Any]] = []
    agent.start()
    try:
        _wait_for(
            calls,
            seen,
            lambda s: (
                any(k == "update_sync_status" and f.get("uploaded") == 1 for k, f in s)
                and any(k == "handle_command" for k, _ in s)
            ),
        )
    finally:
        agent.stop()
    while not calls.empty():
        seen.append(calls.get_nowait())

    kinds = [k for k, _ in seen]
    assert kinds[0] == "subscribe" and kinds.count("unsubscribe") == 1  # start and stop pair up
    assert ("handle_command", ("lock_screen", {})) in seen
    assert "set_clock_offset" in kinds  # the offset measured on the exchange is pushed to the service
    assert any(k == "apply_presence" for k in kinds)  # protocol 2: the roster page carries presence
    status = next(f for k, f in seen if k == "update_sync_status" and f.get("uploaded") == 1)
    assert status["online"] is True and status["failures"] == 0
    assert [r.member_id for r in server_events(db_url)] == [seeded.members[0]]
    assert service.outbox.stats().depth == 0
    assert service.roster.size() == 2  # the heartbeat applied the roster page to the service's roster
