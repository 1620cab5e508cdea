"""The kiosk service managed through its heartbeat agent against the real server app on a real socket
(SQLite and PostgreSQL): pushed config applied live and persisted, QR keys and badge revocations from
the roster, QR check-in with the delivered keys."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from kiosk.client import ClockOffset, KioskClient
from kiosk.config import load_applied_config
from kiosk.enrol import enrol
from kiosk.heartbeat import HeartbeatAgent
from kiosk.outcomes import OutcomeKind
from kiosk.service import KioskService
from protocol.messages import HeartbeatRequest, HeartbeatResponse, RosterDelta
from protocol.qrtoken import generate_signing_key, public_key_b64
from tests.integration.sync import conftest as sync_helpers
from tests.integration.sync.conftest import LiveServer, enrol_token, seed_centre

from .conftest import FakeClock, make_config
from .test_service import tap

live_server = sync_helpers.live_server  # fixture: the real server app on a real socket

CONFIG_BODY: dict[str, Any] = {
    "language": "en",
    "centre": {"name": "城南党群服务中心"},
    "rules": {"debounce_s": 5},
    "message": {"text": "今天下午四点闭馆", "text_en": "Closing at 4 pm today"},
    "readers": [{"profile": "rdm6300", "port": "/dev/ttyUSB1"}],
}


def _enrolled_service(live: LiveServer, db_url: str, tmp_path: Path, clock: FakeClock):  # type: ignore[no-untyped-def]
    seeded = seed_centre(db_url, members=2)
    state = tmp_path / "state"
    enrolment = enrol(
        live.url, enrol_token(db_url, seeded.centre_code), state, device_name="kiosk under test"
    )
    service = KioskService(make_config(state), clock=clock, start_sync=False)
    service.start()
    client = KioskClient(
        live.url,
        enrolment.kiosk_id,
        bytes.fromhex(enrolment.kiosk_secret),
        offset=ClockOffset(state / "clock-offset.json", clock=time.time),
    )
    agent = HeartbeatAgent(service, client, state)
    return service, agent, seeded, state


def _push_config(db_url: str, body: dict[str, Any]) -> int:
    from server.models import Kiosk, KioskConfig

    engine = create_engine(db_url)
    with Session(engine) as session:
        kiosk = session.scalars(select(Kiosk)).one()
        version = kiosk.desired_config_version + 1
        session.add(KioskConfig(kiosk_id=kiosk.id, version=version, body=body))
        kiosk.desired_config_version = version
        session.commit()
    engine.dispose()
    return version


def _server_applied_version(db_url: str) -> int:
    from server.models import Kiosk

    engine = create_engine(db_url)
    with Session(engine) as session:
        applied = session.scalars(select(Kiosk)).one().applied_config_version
    engine.dispose()
    return int(applied)


def test_pushed_config_applies_live_persists_and_is_reported(live_server, db_url, tmp_path, clock):  # type: ignore[no-untyped-def]
    service, agent, seeded, state = _enrolled_service(live_server, db_url, tmp_path, clock)
    states: list[dict[str, Any]] = []
    service.subscribe(lambda kind, payload: states.append(payload) if kind == "state" else None)
    try:
        assert service.state()["language"] == "zh"
        version = _push_config(db_url, CONFIG_BODY)
        agent.beat()

        state_now = service.state()
        assert state_now["language"] == "en"
        assert state_now["centre_name"] == "城南党群服务中心"
        assert state_now["message"] == {"text": "今天下午四点闭馆", "text_en": "Closing at 4 pm today"}
        assert state_now["config_version"] == version
        assert any(s["language"] == "en" and s["config_version"] == version for s in states)
        health = service.health()
        assert health["applied_config_version"] == version
        assert health["config_needs_restart"] == ["readers"]
        assert agent.applied_config_version == version
        assert load_applied_config(state) == (version, CONFIG_BODY)

        # The new debounce (5 s instead of 60 s) decides taps now: a second tap 10 s later checks out.
        card = seeded.cards[0]
        assert tap(service, card).kind is OutcomeKind.IN
        clock.advance(seconds=10)
        assert tap(service, card).kind is OutcomeKind.OUT

        agent.beat()  # the next heartbeat tells the server which version runs
        assert _server_applied_version(db_url) == version
    finally:
        service.stop()

    # A restart comes back with the pushed config, not the file's.
    again = KioskService(make_config(state), clock=clock, start_sync=False)
    try:
        assert again.applied_config_version == version
        assert again.state()["language"] == "en" and again.config.rules.debounce.total_seconds() == 5
    finally:
        again.stop()


def test_invalid_pushed_config_changes_nothing_and_is_not_reported_applied(
    live_server, db_url, tmp_path, clock
):  # type: ignore[no-untyped-def]
    service, agent, _, state = _enrolled_service(live_server, db_url, tmp_path, clock)
    try:
        _push_config(db_url, {"language": "fr", "rules": {"debounce_s": 5}})
        agent.beat()
        assert service.state()["language"] == "zh"
        assert service.config.rules.debounce.total_seconds() == 60
        assert service.health()["applied_config_version"] == 0
        assert agent.applied_config_version == 0
        assert load_applied_config(state) is None
        _push_config(db_url, {"rules": {"closes_at": "25:99"}})
        agent.beat()
        assert service.config.rules.closes_at is None and agent.applied_config_version == 0
    finally:
        service.stop()


def test_a_later_push_is_applied_on_top_of_the_file_not_the_previous_push(
    live_server, db_url, tmp_path, clock
):  # type: ignore[no-untyped-def]
    service, agent, _, _ = _enrolled_service(live_server, db_url, tmp_path, clock)
    try:
        _push_config(db_url, CONFIG_BODY)
        agent.beat()
        second = _push_config(db_url, {"rules": {"closes_at": "20:30"}})
        agent.beat()
        assert service.health()["applied_config_version"] == second
        assert service.state()["language"] == "zh" and service.state()["message"] is None
        assert service.config.rules.debounce.total_seconds() == 60
        assert str(service.config.rules.closes_at) == "20:30:00"
        assert service.health()["config_needs_restart"] == []
    finally:
        service.stop()


def test_heartbeat_hands_qr_material_to_the_service_verifier(tmp_path, clock):  # type: ignore[no-untyped-def]
    """The agent's hook on its own: keys and revocations are applied, ``None`` leaves them as they are
    (the live path — server keys through a heartbeat to a camera check-in — is in
    tests/integration/qr/test_phone_to_camera_browser.py)."""
    from datetime import UTC, datetime

    service = KioskService(make_config(tmp_path / "s"), clock=clock, start_sync=False)
    agent = HeartbeatAgent(service, KioskClient("http://127.0.0.1:9"), tmp_path / "s")
    key = public_key_b64(generate_signing_key())

    def response(**roster: Any) -> HeartbeatResponse:
        return HeartbeatResponse(
            server_time=datetime.now(UTC), desired_config_version=0, roster=RosterDelta(cursor="c", **roster)
        )

    try:
        agent._apply_qr_material(response(qr_public_keys={"K7": key}, revoked_badges=["B9"]))
        assert service.qr.key_ids() == ["K7"]
        agent._apply_qr_material(response())
        assert service.qr.key_ids() == ["K7"]
        agent._apply_qr_material(response(qr_public_keys={}))
        assert service.qr.key_ids() == []
    finally:
        service.stop()


def test_rotate_key_command_stores_the_new_secret_before_using_it(live_server, db_url, tmp_path, clock):  # type: ignore[no-untyped-def]
    import os
    import stat
    from datetime import UTC, datetime

    from kiosk.config import load_enrolment
    from server.models import Kiosk, KioskCommand

    service, agent, _, state = _enrolled_service(live_server, db_url, tmp_path, clock)
    old = load_enrolment(state)
    assert old is not None
    old_client = KioskClient(live_server.url, old.kiosk_id, bytes.fromhex(old.kiosk_secret))
    engine = create_engine(db_url)
    try:
        with Session(engine) as session:
            kiosk = session.scalars(select(Kiosk)).one()
            session.add(KioskCommand(kiosk_id=kiosk.id, name="rotate_key", args={}))
            session.commit()
        agent.beat()

        new = load_enrolment(state)
        assert new is not None and new.kiosk_secret != old.kiosk_secret
        assert new.credential_key == old.credential_key and new.kiosk_id == old.kiosk_id
        assert stat.S_IMODE(os.stat(state / "enrolment.json").st_mode) == 0o600
        assert agent.client.secret == bytes.fromhex(new.kiosk_secret)
        assert service.enrolment is not None and service.enrolment.kiosk_secret == new.kiosk_secret
        [result] = agent.pending_results
        assert result["name"] == "rotate_key" and result["ok"] is True

        # Until the new secret has signed a request, the old one still works (a lost answer is harmless).
        request = HeartbeatRequest(device_time=datetime.now(UTC), health=agent.health_report())
        assert old_client.heartbeat(request).desired_config_version == 0

        agent.beat()  # signed with the new secret: the server now knows the kiosk stored it
        with Session(engine) as session:
            kiosk = session.scalars(select(Kiosk)).one()
            assert kiosk.secret == new.kiosk_secret and kiosk.secret_confirmed_at is not None
            status = session.scalars(select(KioskCommand.status)).one()
        assert status == "done" and agent.pending_results == []
    finally:
        service.stop()
        old_client.close()
        engine.dispose()


def test_heartbeat_presence_makes_a_tap_of_a_member_open_elsewhere_an_amber_check_in(
    live_server, db_url, tmp_path
):  # type: ignore[no-untyped-def]
    """The whole path: a session open at another centre on the server → heartbeat (protocol 2) → the
    kiosk's decision → "签到成功" in amber naming that centre, recorded as ``shown:in:elsewhere``."""
    import datetime as dt

    from server.models import ServiceCentre
    from server.sessions.store import recompute_sessions
    from tests.factories import make_centre, make_kiosk, make_tap

    now = dt.datetime.now(dt.UTC)
    service, agent, seeded, _state = _enrolled_service(live_server, db_url, tmp_path, FakeClock(now))
    try:
        agent.beat()  # the roster
        before = tap(service, seeded.cards[1])  # another member, nothing open: an ordinary check-in
        assert (before.kind, before.colour) == (OutcomeKind.IN, "green")
        engine = create_engine(db_url)
        with Session(engine) as session:
            here = session.get(ServiceCentre, seeded.centre_id)
            there = make_centre(session, here.community, name="西街党群服务中心", closes_at=None)
            make_tap(
                session,
                make_kiosk(session, there),
                None,
                now - dt.timedelta(minutes=20),
                member_id=seeded.members[0],
            )
            session.flush()
            recompute_sessions(session, [seeded.members[0]], now=now)
            session.commit()
        engine.dispose()
        agent.beat()
        outcome = tap(service, seeded.cards[0])
        assert (outcome.kind, outcome.colour) == (OutcomeKind.IN_ELSEWHERE, "amber")
        assert "西街党群服务中心" in outcome.message_zh and "审核" in outcome.message_zh
        assert "staff review" in outcome.message_en
        assert service.outbox.all_taps()[-1].reason == "shown:in:elsewhere"
    finally:
        service.stop()
