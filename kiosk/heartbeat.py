"""The heartbeat agent: the kiosk's whole management channel, over one signed request every half minute.

Out: health (readers, camera, outbox depth, oldest unsynced age, clock offset, disk, versions, locked).
Back: the desired config, a roster delta page and queued commands. The kiosk needs no inbound connection
(kiosks sit behind NAT): commands ride the heartbeat response, their results ride the next request.

Why results and executed command ids are kept on disk: a command whose result was lost (kiosk killed,
response cut) is delivered again by the server; the kiosk must answer it again without running it twice
(``rotate_key`` twice is not harmless). So: run once, remember the id, resend the result until a
heartbeat carrying it was answered.

The roster page's *presence* (which roster members have a session open where, and when the server last
saw them tap) goes to the check-in decision (:meth:`kiosk.checkin.MemberStates.apply_presence_message`),
so a tap is decided with what the server knows as of the last heartbeat.

Roster pages are applied with their cursor in one transaction (:meth:`kiosk.roster.Roster.apply_delta`);
``more`` makes the agent heartbeat again at once, so a first full roster of 50,000 credentials arrives in
a few seconds rather than one page per interval.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from kiosk.client import ClientError, KioskClient, backoff_delay
from kiosk.outbox import Outbox
from kiosk.qr import QrVerifier
from kiosk.roster import Roster
from protocol.messages import (
    CameraStatus,
    Command,
    CommandName,
    CommandResult,
    HealthReport,
    HeartbeatRequest,
    HeartbeatResponse,
    Presence,
    ReaderStatus,
)

logger = logging.getLogger(__name__)

STATE_FILE = "heartbeat-state.json"
MAX_REMEMBERED_COMMANDS = 500
MAX_PAGES_IN_A_ROW = 100


@runtime_checkable
class HeartbeatService(Protocol):
    """Exactly what the heartbeat agent uses of :class:`kiosk.service.KioskService`.

    Why a protocol: the agent is the kiosk's management channel and must not reach into the service
    beyond this; tests run it against a minimal double that implements only these members
    (``tests/integration/sync/test_agent_interface.py``). Read-only properties here are satisfied by
    plain attributes.
    """

    @property
    def outbox(self) -> Outbox: ...

    @property
    def roster(self) -> Roster: ...

    @property
    def qr(self) -> QrVerifier: ...

    def health(self) -> dict[str, Any]: ...

    def handle_command(self, name: str, args: dict[str, Any] | None = None) -> tuple[bool, str] | None: ...

    def apply_config(self, version: int, body: Mapping[str, Any]) -> None: ...

    def apply_presence(self, presence: Presence) -> None: ...

    def reload_enrolment(self) -> None: ...


def _reader_statuses(readers: list[dict[str, Any]]) -> tuple[list[ReaderStatus], CameraStatus | None]:
    out: list[ReaderStatus] = []
    camera: CameraStatus | None = None
    for r in readers[:16]:
        state = str(r.get("state") or "error")
        if state not in ("stopped", "connecting", "ready", "error"):
            state = "error"
        driver = str(r.get("driver") or "unknown")[:32]
        if camera is None and "camera" in driver:
            camera = CameraStatus(
                state=state,
                fps=float(min(1000.0, max(0.0, float(r.get("fps", 0.0) or 0.0)))),
                decodes=int(r.get("reads", 0) or 0),
            )
        out.append(
            ReaderStatus(
                reader_id=str(r.get("reader_id") or "reader")[:64],
                driver=driver,
                state=state,
                reads=int(r.get("reads", 0) or 0),
                errors=int(r.get("bad_frames", r.get("errors", 0)) or 0),
                last_error=None if r.get("last_error") is None else str(r["last_error"])[:200],
            )
        )
    return out, camera


class HeartbeatAgent:
    """Heartbeats for ``service`` (:class:`HeartbeatService`, which the kiosk service is) through ``client``."""

    def __init__(
        self,
        service: HeartbeatService,
        client: KioskClient,
        state_dir: str | os.PathLike[str],
        *,
        interval_s: float = 30.0,
        backoff_base_s: float = 1.0,
        backoff_cap_s: float = 120.0,
        rng: Callable[[], float] = random.random,
        software_version: str = "0.0.0",
    ) -> None:
        self.service = service
        self.client = client
        self.state_path = Path(state_dir) / STATE_FILE
        self.interval_s = interval_s
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self.rng = rng
        self.software_version = software_version
        self.failures = 0
        self.last_error: str | None = None
        self.last_ok_at: float | None = None
        self._force_full_roster = False
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._state_lock = threading.Lock()
        self._state = self._load_state()

    # -- persisted state ---------------------------------------------------------------------------
    def _load_state(self) -> dict[str, Any]:
        default: dict[str, Any] = {
            "done": [],
            "results": [],
            "config_version": 0,
            "applied_config_version": 0,
        }
        try:
            data = json.loads(self.state_path.read_text())
            return {**default, **data} if isinstance(data, dict) else default
        except FileNotFoundError:
            return default
        except (OSError, ValueError) as exc:
            logger.warning("heartbeat state unreadable (%s); starting fresh", exc)
            return default

    def _save_state(self) -> None:
        tmp = self.state_path.with_name(self.state_path.name + ".tmp")
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, json.dumps(self._state).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.state_path)

    @property
    def pending_results(self) -> list[dict[str, Any]]:
        with self._state_lock:
            return list(self._state["results"])

    @property
    def applied_config_version(self) -> int:
        return int(self._state["applied_config_version"])

    # -- thread ------------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="baodao-heartbeat", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.beat()
                delay = self.interval_s
            except ClientError as exc:
                self._failed(exc)
                delay = backoff_delay(self.failures, self.backoff_base_s, self.backoff_cap_s, self.rng)
            except Exception as exc:
                logger.exception("heartbeat error")
                self._failed(exc)
                delay = self.backoff_cap_s * max(0.1, self.rng())
            if not self._stop.is_set():
                self._wake.wait(delay)
            self._wake.clear()

    def _failed(self, exc: Exception) -> None:
        self.failures += 1
        self.last_error = str(exc)[:300]
        logger.warning("heartbeat failed (%d in a row): %s", self.failures, exc)

    # -- one exchange ------------------------------------------------------------------------------
    def health_report(self) -> HealthReport:
        health = self.service.health()
        stats = self.service.outbox.stats()
        readers, camera = _reader_statuses(list(health.get("readers") or []))
        offset = self.client.offset.offset_ms
        return HealthReport(
            readers=readers,
            camera=camera,
            outbox_depth=stats.depth,
            oldest_unsynced_age_s=stats.oldest_unsynced_age_s,
            clock_offset_ms=offset,
            disk_free_bytes=stats.disk_free_bytes,
            capacity_alarm=stats.capacity_alarm,
            software_version=str(health.get("software_version") or self.software_version)[:64],
            config_version=int(self._state["config_version"]),
            applied_config_version=int(self._state["applied_config_version"]),
            locked=bool(health.get("locked", False)),
            uptime_s=float(health["uptime_s"]) if health.get("uptime_s") is not None else None,
        )

    def beat(self) -> HeartbeatResponse:
        """One heartbeat (and more at once while the roster has further pages). Raises ClientError."""
        response = self._exchange()
        pages = 1
        while response.roster.more and pages < MAX_PAGES_IN_A_ROW and not self._stop.is_set():
            response = self._exchange()
            pages += 1
        return response

    def _exchange(self) -> HeartbeatResponse:
        results = self.pending_results
        cursor = None if self._force_full_roster else self.service.roster.cursor
        request = HeartbeatRequest(
            device_time=dt.datetime.fromtimestamp(self.client.clock(), dt.UTC),
            health=self.health_report(),
            roster_cursor=cursor,
            command_results=[CommandResult.model_validate_json(json.dumps(r)) for r in results],
        )
        response = self.client.heartbeat(request)
        self.failures, self.last_error, self.last_ok_at = 0, None, time.time()
        if results:  # the server answered a request carrying them: delivered
            sent = {r["command_id"] for r in results}
            with self._state_lock:
                self._state["results"] = [r for r in self._state["results"] if r["command_id"] not in sent]
                self._save_state()
        self.service.roster.apply_delta(response.roster)
        self._apply_qr_material(response)
        self._apply_presence(response)
        if response.roster.full_resync or cursor is None:
            self._force_full_roster = False
        self._apply_config(response)
        for command in response.commands:
            self._run_command(command)
        return response

    def _apply_qr_material(self, response: HeartbeatResponse) -> None:
        """QR public keys and revoked badge serials ride the roster page (``None`` = unchanged)."""
        keys, revoked = response.roster.qr_public_keys, response.roster.revoked_badges
        if keys is None and revoked is None:
            return
        self.service.qr.apply_qr_material(keys, revoked)

    def _apply_presence(self, response: HeartbeatResponse) -> None:
        """Who of the roster is open where (protocol 2, ``None`` from an older server: keep what we had)."""
        presence = response.roster.presence
        if presence is not None:
            self.service.apply_presence(presence)

    def _apply_config(self, response: HeartbeatResponse) -> None:
        desired = int(response.desired_config_version)
        if response.config is None or desired == self.applied_config_version:
            return
        with self._state_lock:
            self._state["config_version"] = desired
            self._state["config"] = response.config
            self._save_state()
        self._reload_config()

    def _reload_config(self) -> tuple[bool, str]:
        """Hand the stored config to the service; record it as applied only if the service took it."""
        version = int(self._state["config_version"])
        body = self._state.get("config")
        if body is None:
            return True, "no pushed config; nothing to reload"
        try:
            self.service.apply_config(version, body)
        except Exception as exc:
            logger.exception("config %d could not be applied", version)
            return False, f"config {version} rejected: {exc}"[:200]
        with self._state_lock:
            self._state["applied_config_version"] = version
            self._save_state()
        logger.info("config version %d applied", version)
        return True, f"config {version} applied"

    def _run_command(self, command: Command) -> None:
        cid = str(command.command_id)
        with self._state_lock:
            if cid in self._state["done"]:
                logger.info("command %s (%s) already run; resending its result", cid, command.name)
                return
        now = dt.datetime.fromtimestamp(self.client.offset.server_now(), dt.UTC)
        if command.expires_at is not None and command.expires_at < now:
            ok, detail = False, "expired before it reached the kiosk / 指令已过期"
        else:
            try:
                ok, detail = self.execute(command)
            except Exception as exc:
                logger.exception("command %s failed", command.name)
                ok, detail = False, f"{type(exc).__name__}: {exc}"
        result = CommandResult(
            command_id=command.command_id, name=command.name, ok=ok, detail=detail[:200], completed_at=now
        )
        logger.info("command %s %s: ok=%s %s", cid, command.name, ok, detail)
        with self._state_lock:
            self._state["done"] = [*self._state["done"], cid][-MAX_REMEMBERED_COMMANDS:]
            self._state["results"] = [*self._state["results"], json.loads(result.model_dump_json())]
            self._save_state()
        self._wake.set()  # report the result without waiting a whole interval

    def _rotate_key(self, command_id: str) -> tuple[bool, str]:
        """New signing secret, stored before use (:func:`kiosk.enrol.rotate_secret`); the service's copy
        of the enrolment follows so a restart of the sync agent signs with the new one too."""
        from kiosk.enrol import RotationError, rotate_secret

        try:
            detail = rotate_secret(self.client, self.state_path.parent, command_id)
        except RotationError as exc:
            return False, str(exc)
        self.service.reload_enrolment()
        return True, detail

    def execute(self, command: Command) -> tuple[bool, str]:
        """Run one command: roster, config and keys here; screen and readers in the kiosk service."""
        name = CommandName(command.name)
        if name is CommandName.RESYNC_ROSTER:
            self._force_full_roster = True
            self._wake.set()
            return True, "full roster resync requested"
        if name is CommandName.RELOAD_CONFIG:
            return self._reload_config()
        if name is CommandName.ROTATE_KEY:
            return self._rotate_key(str(command.command_id))
        answer = self.service.handle_command(name.value, dict(command.args))
        if answer is None:
            return False, f"command {name.value} not supported by this kiosk / 终端不支持该指令"
        ok, detail = answer
        return bool(ok), str(detail)
