"""The sync agent: a thread that uploads the outbox to the server, at least once, until it is empty.

Why the outbox is the only state: the agent keeps nothing of its own that matters. Pending rows are
"whatever has no ``acked_at``", so after a ``kill -9`` or a power cut the next start simply uploads them
again; the server deduplicates by event id and answers ``duplicates`` for those it already committed,
which makes the whole path exactly-once. A row is marked acknowledged only for ids listed in a
:class:`~protocol.messages.BatchAck` — which the server sends only after its commit — so a response lost
on the way back (proxy cut, server killed after commit) costs one re-upload, never a tap.

The thread is :class:`Uploader`; :class:`SyncAgent` is what the kiosk service starts — it wires the
client, the clock offset, the uploader and the heartbeat agent (:mod:`kiosk.heartbeat`) to the service,
which it knows only as a :class:`SyncService` (the members it uses, nothing more).

Pace: a full batch is followed at once by the next (a kiosk back after a week offline catches up at full
speed); a short batch means the outbox is drained and the agent sleeps until :meth:`Uploader.wake`
(on every tap the service publishes) or the idle interval. Failures back off exponentially with
*full jitter* — ``uniform(0, min(cap, base · 2^n))`` — so a fleet of kiosks coming back after a server
outage does not retry in lock-step. A tap wakes an *idle* uploader only, never one that is backing off:
otherwise, with the server down, every tap ended the wait and five taps a second meant five failed
full-batch uploads a second (the tap is on disk and goes with the next attempt anyway). Stopping is
prompt: every wait is ``Event.wait``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from kiosk.client import OFFSET_FILE, ClientError, ClockOffset, KioskClient, ServerError, backoff_delay
from kiosk.config import Enrolment, KioskConfig, sync_pacing_from_env
from kiosk.heartbeat import HeartbeatAgent, HeartbeatService
from kiosk.outbox import Outbox, StoredBinding
from kiosk.outcome_feed import Subscriber
from kiosk.roster import Roster

logger = logging.getLogger(__name__)

DEFAULT_BATCH = 500  # protocol.messages.MAX_BATCH_EVENTS
DEFAULT_IDLE_S = 5.0
DEFAULT_BACKOFF_BASE_S = 0.5
DEFAULT_BACKOFF_CAP_S = 60.0


@dataclass
class SyncStatus:
    """What health and the maintenance screen show about syncing."""

    uploaded: int = 0  # events acknowledged since start
    duplicates: int = 0  # of which the server already had
    batches: int = 0
    bindings_uploaded: int = 0
    bindings_rejected: int = 0
    last_binding_rejection: str | None = None
    failures: int = 0  # consecutive failures now
    last_error: str | None = None
    last_success_at: float | None = None
    chain: str | None = None  # the server's last chain verdict for us: ok / gap / broken
    unacked_in_last_batch: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Uploader:
    """Uploads pending taps (and card bindings) from ``outbox`` through ``client``.

    ``clock`` is only used for status times; ``rng`` feeds the jitter (tests pin it). Run it as a thread
    with :meth:`start`/:meth:`stop`, or call :meth:`sync_once` directly.
    """

    def __init__(
        self,
        outbox: Outbox,
        client: KioskClient,
        *,
        batch_size: int = DEFAULT_BATCH,
        idle_s: float = DEFAULT_IDLE_S,
        backoff_base_s: float = DEFAULT_BACKOFF_BASE_S,
        backoff_cap_s: float = DEFAULT_BACKOFF_CAP_S,
        rng: Callable[[], float] = random.random,
        upload_bindings: bool = True,
        on_progress: Callable[[SyncStatus], None] | None = None,
        roster: Roster | None = None,
    ) -> None:
        if not 1 <= batch_size <= DEFAULT_BATCH:
            raise ValueError(f"batch_size must be 1..{DEFAULT_BATCH}")
        self.outbox = outbox
        self.client = client
        self.batch_size = batch_size
        self.idle_s = idle_s
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self.rng = rng
        self.upload_bindings = upload_bindings
        self.on_progress = on_progress
        self.roster = roster  # to undo a card binding the server refused
        self.status = SyncStatus()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._bindings_supported = True

    # -- thread ------------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="baodao-sync", daemon=True)
        self._thread.start()
        logger.info("sync agent started (%s)", self.client.base_url)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def wake(self) -> None:
        """Upload soon: a tap was just stored. Ends an idle wait, never a backoff wait."""
        self._wake.set()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _wait(self, seconds: float) -> None:
        """Idle: sleep up to ``seconds`` unless woken or stopped."""
        if seconds > 0 and not self._stop.is_set():
            self._wake.wait(seconds)
        self._wake.clear()

    def _back_off(self, seconds: float) -> None:
        """After a failure: sleep ``seconds`` unless stopped; taps do not shorten it. A wake that came
        meanwhile stays set, so the taps it announced are uploaded by the attempt that follows."""
        if seconds > 0:
            self._stop.wait(seconds)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                full = self.sync_once()
                if self.upload_bindings:
                    self.sync_bindings()
            except ClientError as exc:
                self._failed(exc)
                self._back_off(
                    backoff_delay(self.status.failures, self.backoff_base_s, self.backoff_cap_s, self.rng)
                )
                continue
            except Exception as exc:  # a bug must not kill syncing for good; back off at the cap
                logger.exception("sync agent error")
                self._failed(exc)
                self._back_off(self.backoff_cap_s * max(0.1, self.rng()))
                continue
            self._notify()
            if not full:
                self._wait(self.idle_s)

    def _notify(self) -> None:
        if self.on_progress is not None:
            try:
                self.on_progress(self.status)
            except Exception:
                logger.exception("sync progress observer failed")

    def _failed(self, exc: Exception) -> None:
        self.status.failures += 1
        self.status.last_error = str(exc)[:300]
        self._notify()
        level = logging.WARNING if self.status.failures < 5 or isinstance(exc, ClientError) else logging.ERROR
        logger.log(level, "upload failed (%d in a row): %s", self.status.failures, exc)

    # -- one step ----------------------------------------------------------------------------------
    def sync_once(self) -> bool:
        """Upload the oldest pending batch; ``True`` when it was full (more may be waiting).

        Raises :class:`~kiosk.client.ClientError` on failure; nothing is marked in that case.
        """
        pending = self.outbox.pending(self.batch_size)
        if not pending:
            self.status.failures = 0
            return False
        body = json.dumps({"events": [t.to_wire() for t in pending]}, ensure_ascii=False).encode()
        ack = self.client.upload_events(body)
        acked = [str(e) for e in (*ack.accepted, *ack.duplicates)]
        sent = {t.event_id for t in pending}
        marked = self.outbox.mark_acked([e for e in acked if e in sent])
        self.status.uploaded += marked
        self.status.duplicates += len(ack.duplicates)
        self.status.batches += 1
        self.status.failures = 0
        self.status.last_error = None
        self.status.last_success_at = time.time()
        self.status.chain = str(ack.chain)
        self.status.unacked_in_last_batch = len(sent) - len(sent.intersection(acked))
        if ack.flags:
            logger.warning(
                "server flagged our chain (%s): %s",
                ack.chain,
                "; ".join(f"seq {f.seq} {f.reason}" for f in ack.flags[:5]),
            )
        if self.status.unacked_in_last_batch:
            logger.error(
                "%d events were not acknowledged; they stay in the outbox", self.status.unacked_in_last_batch
            )
        logger.debug(
            "uploaded batch of %d (%d new, %d dup)", len(pending), len(ack.accepted), len(ack.duplicates)
        )
        # Full and fully acknowledged → go on at once; a batch the server would not fully take is not
        # retried in a tight loop.
        return len(pending) == self.batch_size and self.status.unacked_in_last_batch == 0

    def sync_bindings(self) -> int:
        """Upload pending card bindings; returns how many were acknowledged."""
        if not self._bindings_supported:
            return 0
        pending = self.outbox.pending_bindings(100)
        if not pending:
            return 0
        try:
            answer = self.client.upload_bindings([b.to_wire() for b in pending])
        except ServerError as exc:
            if exc.status in (404, 405):
                logger.warning("server has no bindings endpoint; bindings stay in the outbox")
                self._bindings_supported = False
                return 0
            raise
        acked = [str(b) for b in (*answer.get("accepted", []), *answer.get("duplicates", []))]
        sent = {b.binding_id: b for b in pending}
        n = self.outbox.mark_bindings_acked([b for b in acked if b in sent])
        self.status.bindings_uploaded += n
        self._settle_rejected_bindings(answer.get("rejected", []), sent)
        return n

    def _settle_rejected_bindings(
        self, rejected: list[dict[str, Any]], sent: dict[str, StoredBinding]
    ) -> None:
        """A refusal is final: stop re-sending, stop honouring the card locally, tell staff through health."""
        for item in rejected:
            binding = sent.get(str(item.get("id")))
            if binding is None:
                continue
            self.outbox.mark_bindings_acked([binding.binding_id])
            if self.roster is not None:
                self.roster.drop_local_binding(binding.credential_hash)
            self.status.bindings_rejected += 1
            self.status.last_binding_rejection = (
                f"{item.get('code')}: {item.get('message_zh')} / {item.get('message')}"
            )
            logger.warning("server refused card binding %s: %s", binding.binding_id, item.get("code"))

    def drain(self, max_batches: int = 10_000) -> int:
        """Upload until the outbox is empty (or a batch is not fully acknowledged); for tools and tests."""
        before = self.status.uploaded
        for _ in range(max_batches):
            if not self.sync_once():
                break
        return self.status.uploaded - before


@runtime_checkable
class SyncService(HeartbeatService, Protocol):
    """Exactly what :class:`SyncAgent` uses of :class:`kiosk.service.KioskService`: the heartbeat agent's
    members (:class:`~kiosk.heartbeat.HeartbeatService`, the agent hands the service on to it) and these.

    Why a protocol: the agent depends on this, not on the service class, so a test can run the agent
    against a minimal double implementing only these members (``tests/integration/sync/
    test_agent_interface.py``), which proves it needs nothing more.
    """

    @property
    def config(self) -> KioskConfig: ...

    @property
    def clock(self) -> Callable[[], dt.datetime]:
        """The service's (injectable) wall clock: offsets are measured against the very clock that
        stamps ``device_time``, or a kiosk with a skewed clock would be corrected wrongly."""
        ...

    def set_clock_offset(self, offset_ms: int) -> None: ...

    def update_sync_status(self, **fields: Any) -> None: ...

    def subscribe(self, callback: Subscriber) -> Callable[[], None]: ...


class SyncAgent:
    """What :class:`kiosk.service.KioskService` starts: ``SyncAgent(service, enrolment).start()``.

    Wires one :class:`~kiosk.client.KioskClient` (signing with the enrolment's secret, measuring the
    clock offset against the service's clock and persisting it in the state dir) to an :class:`Uploader`
    thread and a :class:`~kiosk.heartbeat.HeartbeatAgent` thread. Every new offset is pushed to the
    service (``set_clock_offset``), which stamps it on the events it records from then on; sync state is
    pushed with ``update_sync_status`` for the idle screen.
    """

    def __init__(self, service: SyncService, enrolment: Enrolment, **options: Any) -> None:
        options = {**sync_pacing_from_env(), **options}  # operators and fault tests tune pacing without code

        self.service = service
        self.enrolment = enrolment
        state_dir = service.config.state_dir
        device_clock = service.clock
        self.offset = ClockOffset(
            state_dir / OFFSET_FILE, clock=lambda: device_clock().timestamp(), on_change=self._offset_changed
        )
        base_url = enrolment.server_url or service.config.server_url
        self.client = KioskClient(
            base_url, enrolment.kiosk_id, bytes.fromhex(enrolment.kiosk_secret), offset=self.offset
        )
        self.uploader = Uploader(
            service.outbox,
            self.client,
            batch_size=int(options.get("batch_size", DEFAULT_BATCH)),
            idle_s=float(options.get("idle_s", DEFAULT_IDLE_S)),
            backoff_base_s=float(options.get("backoff_base_s", DEFAULT_BACKOFF_BASE_S)),
            backoff_cap_s=float(options.get("backoff_cap_s", DEFAULT_BACKOFF_CAP_S)),
            on_progress=self._report,
            roster=service.roster,
        )
        self.heartbeat = HeartbeatAgent(
            service,
            self.client,
            state_dir,
            interval_s=float(options.get("heartbeat_s", enrolment.heartbeat_interval_s)),
        )
        if self.offset.offset_ms is not None:
            self._offset_changed(self.offset.offset_ms)  # the last known offset survives a restart
        self._unsubscribe: Callable[[], None] | None = None

    def _offset_changed(self, offset_ms: int) -> None:
        self.service.set_clock_offset(offset_ms)

    def _report(self, status: SyncStatus) -> None:
        last = status.last_success_at
        self.service.update_sync_status(
            online=status.failures == 0 and last is not None,
            last_sync=None if last is None else dt.datetime.fromtimestamp(last, dt.UTC).isoformat(),
            uploaded=status.uploaded,
            duplicates=status.duplicates,
            failures=status.failures,
            last_error=status.last_error,
            chain=status.chain,
        )

    def _on_service_event(self, kind: str, payload: dict[str, Any]) -> None:
        if kind == "tap":
            self.uploader.wake()

    def start(self) -> None:
        if self._unsubscribe is None:
            self._unsubscribe = self.service.subscribe(self._on_service_event)
        self.uploader.start()
        self.heartbeat.start()

    def stop(self, timeout: float = 10.0) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self.uploader.stop(timeout)
        self.heartbeat.stop(timeout)
        self.client.close()

    def status(self) -> dict[str, Any]:
        return {
            **self.uploader.status.as_dict(),
            "clock_offset_ms": self.offset.offset_ms,
            "clock_jumps_held": self.offset.jumps_held,  # samples that jumped and waited for a second
            "bad_answers": self.client.bad_answers,  # cut or malformed answers (the clock ignored them)
            "heartbeat_failures": self.heartbeat.failures,
            "heartbeat_last_error": self.heartbeat.last_error,
        }
