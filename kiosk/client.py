"""The kiosk's HTTP client for the server's kiosk API: signing, timeouts, typed errors, clock offset.

Every call after enrolment is signed with :func:`protocol.signing.sign_request` (a fresh nonce each time,
so a retry is never mistaken for a replay). The timestamp is the kiosk's *estimate of server time* —
device clock plus the measured offset — so a kiosk whose wall clock is hours wrong is refused once with
``clock_skew`` (the error carries the server's time), corrects itself and is accepted on the retry.

Clock offset, NTP style: for each exchange we note the device time just before sending (``t0``) and just
after the answer arrived (``t1``); the server stamped its time somewhere in between, so the best estimate
is ``offset = server_time - (t0 + t1) / 2``, wrong by at most half the round trip. Of the last few samples
the one with the shortest round trip wins (NTP's clock filter): a slow, congested exchange measures
badly.

Which answers may move the clock: only a complete answer to an authenticated request — a signed one, or
the enrolment, which the one-time token authenticates and whose time seeds the offset — that validated
as the expected message, from its body's ``server_time`` (sub-second precision). Never the HTTP ``Date``
header: a connection cut inside the headers leaves ``http.client`` a status 200 and a truncated ``Date``
(``"…21:5"`` parses as 21:05; a ``Date`` without zone is read as local time), and once adopted that
offset was stamped on every later tap and used as the QR clock. The one exception is the server's
``clock_skew`` refusal, which carries its time precisely so the kiosk can correct a wrong clock. A
sample that jumps more than ``max_jump_ms`` from the current estimate is held back until a second
sample confirms it (a device clock that really was stepped is adopted one exchange later); refused and
held samples are counted and logged. The offset is *server minus device* in milliseconds, the convention of ``TapEventIn.clock_offset_ms``
and the server's ``effective_time = device_time + offset``. It is kept in the state dir so a kiosk that
restarts offline keeps stamping the last known offset instead of zero.

Errors: :class:`TransportError` (no answer: connection refused or cut, timeout) and :class:`ServerError`
(an answer with an ``ErrorResponse``) both say whether retrying can help (``retryable``); the sync agent
backs off and retries those and, for the others, keeps the data and raises an alarm — it never drops taps.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import requests
from pydantic import BaseModel, ValidationError

from protocol.messages import (
    BatchAck,
    CommandResult,
    EnrolRequest,
    EnrolResponse,
    ErrorResponse,
    EventBatch,
    HeartbeatRequest,
    HeartbeatResponse,
)
from protocol.signing import sign_request
from protocol.version import API_PREFIX

logger = logging.getLogger(__name__)

#: Endpoint paths under ``API_PREFIX`` (``/api/v1/kiosk``).
ENROL_PATH = f"{API_PREFIX}/enrol"
EVENTS_PATH = f"{API_PREFIX}/events"
HEARTBEAT_PATH = f"{API_PREFIX}/heartbeat"
COMMAND_RESULTS_PATH = f"{API_PREFIX}/commands/results"
BINDINGS_PATH = f"{API_PREFIX}/bindings"
ROTATE_KEY_PATH = f"{API_PREFIX}/rotate-key"

DEFAULT_TIMEOUT = (5.0, 30.0)  # (connect, read) seconds
OFFSET_FILE = "clock-offset.json"
#: A sample further than this from the current estimate must be confirmed by the next one.
DEFAULT_MAX_JUMP_MS = 30_000

#: Error codes after which the same request, re-signed, can succeed.
RETRYABLE_CODES = frozenset({"clock_skew", "replayed_nonce", "rate_limited", "too_many_requests"})

M = TypeVar("M", bound=BaseModel)


class ClientError(Exception):
    """Base of every failure of a kiosk API call."""

    retryable = True


class TransportError(ClientError):
    """No usable answer: refused, reset, cut half-way, timed out. The request may or may not have been
    processed — which is why uploads are idempotent by event id."""


class BadResponse(ClientError):
    """An answer that is not the expected message (a proxy's HTML page, a truncated body)."""


class ServerError(ClientError):
    """The server answered with an error status and (usually) an ``ErrorResponse``."""

    def __init__(self, status: int, error: ErrorResponse | None, text: str = "") -> None:
        code = error.code if error else f"http_{status}"
        message = error.message if error else text[:200]
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.error = error
        self.code = code

    @property
    def retryable(self) -> bool:  # type: ignore[override]
        return self.status >= 500 or self.status in (408, 429) or self.code in RETRYABLE_CODES


@dataclass(frozen=True, slots=True)
class OffsetSample:
    offset_ms: int
    rtt_ms: float
    precise: bool  # from a body field with sub-second precision (not the HTTP Date header)
    at: float  # device time of the measurement


class ClockOffset:
    """Thread-safe estimate of ``server time - device time`` in ms; optionally persisted to ``path``.

    ``clock`` is the device wall clock (Unix seconds); tests and the "clock off by hours" fault inject
    one. ``on_change`` is called (outside the lock) with the new offset whenever it changes.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        clock: Callable[[], float] = time.time,
        window: int = 8,
        on_change: Callable[[int], None] | None = None,
        max_jump_ms: int = DEFAULT_MAX_JUMP_MS,
    ) -> None:
        self.path = Path(path) if path is not None else None
        self.clock = clock
        self.max_jump_ms = max_jump_ms
        self._lock = threading.Lock()
        self._samples: deque[OffsetSample] = deque(maxlen=window)
        self._held: OffsetSample | None = None  # a jumping sample waiting for its confirmation
        self._offset_ms: int | None = None
        self._measured_at: float | None = None
        self.on_change = on_change
        self.jumps_held = 0  # samples that jumped too far and waited for a confirmation
        if self.path is not None and self.path.exists():
            try:
                data = json.loads(self.path.read_text())
                self._offset_ms = int(data["offset_ms"])
                self._measured_at = float(data.get("measured_at") or 0) or None
            except (OSError, ValueError, KeyError, TypeError) as exc:
                logger.warning("ignoring unreadable clock offset file %s: %s", self.path, exc)

    @property
    def offset_ms(self) -> int | None:
        """The current estimate, ``None`` before the first exchange ever."""
        with self._lock:
            return self._offset_ms

    def current_ms(self) -> int:
        """The offset to stamp on a new event (0 when never measured)."""
        value = self.offset_ms
        return 0 if value is None else value

    def server_now(self) -> float:
        """The kiosk's best estimate of the server's clock, Unix seconds."""
        return self.clock() + self.current_ms() / 1000.0

    def add_sample(self, server_time: float, t0: float, t1: float, *, precise: bool = True) -> int:
        """Record one exchange (device times ``t0`` sent, ``t1`` received); returns the new estimate.

        A precise sample further than ``max_jump_ms`` from the current estimate is only held: adopted
        when the next sample agrees with it (within the larger round trip plus a second), dropped when
        the next one agrees with the old estimate instead. One odd answer cannot move the clock.
        """
        rtt = max(0.0, t1 - t0)
        sample = OffsetSample(round((server_time - (t0 + t1) / 2.0) * 1000.0), rtt * 1000.0, precise, t1)
        with self._lock:
            current = self._offset_ms
            if not precise and current is not None and abs(sample.offset_ms - current) < 1500:
                return current  # a 1-second time cannot improve a precise estimate
            if precise and current is not None and abs(sample.offset_ms - current) > self.max_jump_ms:
                held, self._held = self._held, sample
                tolerance = 1000.0 + max(sample.rtt_ms, held.rtt_ms if held else 0.0)
                if held is None or abs(held.offset_ms - sample.offset_ms) > tolerance:
                    self.jumps_held += 1
                    logger.warning(
                        "clock offset sample %+d ms jumps %+d ms from the estimate; held until confirmed",
                        sample.offset_ms,
                        sample.offset_ms - current,
                    )
                    return current
                logger.warning("clock offset jump to %+d ms confirmed by a second sample", sample.offset_ms)
                self._held = None
                self._samples.clear()
                self._samples.append(held)
            else:
                self._held = None
            if not precise:
                self._samples.clear()  # the old estimate is off by more than the time's resolution
            self._samples.append(sample)
            best = min(self._samples, key=lambda s: (not s.precise, s.rtt_ms))
            changed = best.offset_ms != self._offset_ms
            self._offset_ms = best.offset_ms
            self._measured_at = t1
            value = self._offset_ms
        if changed:
            self._persist(value, t1)
            if self.on_change is not None:
                try:
                    self.on_change(value)
                except Exception:  # a broken observer must not break syncing
                    logger.exception("clock offset observer failed")
        return value

    def reset_to(self, server_time: float, t0: float, t1: float) -> int:
        """Drop every sample and start from this one (after the server said our clock is off)."""
        with self._lock:
            self._samples.clear()
            self._held = None
            self._offset_ms = None
        # Marked imprecise (the error's time has 1 s resolution): the next exchange's body time replaces it.
        return self.add_sample(server_time, t0, t1, precise=False)

    def _persist(self, offset_ms: int, at: float) -> None:
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.write_text(json.dumps({"offset_ms": offset_ms, "measured_at": at}))
            os.replace(tmp, self.path)
        except OSError as exc:
            logger.warning("could not persist clock offset: %s", exc)


def backoff_delay(failures: int, base: float, cap: float, rng: Callable[[], float] = random.random) -> float:
    """Full-jitter exponential backoff: uniform in ``[0, min(cap, base · 2^(failures-1))]``."""
    if failures <= 0:
        return 0.0
    ceiling = min(cap, base * (2 ** min(failures - 1, 30)))
    return rng() * ceiling


def _timestamp(value: Any) -> float | None:
    """Unix seconds of an ISO 8601 time *with* its zone; ``None`` otherwise (a zoneless time would be read
    in the kiosk's local zone — hours wrong)."""
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed.timestamp() if parsed.tzinfo is not None else None
    return None


class KioskClient:
    """One kiosk's connection to the server. Thread-safe enough for the sync and heartbeat threads:
    ``requests.Session`` is shared, signing state (offset) is locked."""

    def __init__(
        self,
        base_url: str,
        kiosk_id: str | None = None,
        secret: bytes | None = None,
        *,
        offset: ClockOffset | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.kiosk_id = kiosk_id
        self.secret = secret
        self.offset = offset or ClockOffset()
        self.timeout = timeout
        self.session = session or requests.Session()
        self.last_exchange_at: float | None = None
        self.bad_answers = 0  # answers that were cut, malformed or not the expected message

    @property
    def clock(self) -> Callable[[], float]:
        return self.offset.clock

    def close(self) -> None:
        self.session.close()

    # -- API calls ---------------------------------------------------------------------------------
    def enrol(self, request: EnrolRequest) -> EnrolResponse:
        """Trade a one-time token for the kiosk's identity (the only unsigned call)."""
        return self._call(
            "POST", ENROL_PATH, request.to_json_bytes(), EnrolResponse, signed=False, measure=True
        )

    def upload_events(self, body: bytes | EventBatch) -> BatchAck:
        """Upload one batch; the answer comes only after the server committed it."""
        raw = body.to_json_bytes() if isinstance(body, EventBatch) else body
        return self._call("POST", EVENTS_PATH, raw, BatchAck)

    def heartbeat(self, request: HeartbeatRequest) -> HeartbeatResponse:
        return self._call("POST", HEARTBEAT_PATH, request.to_json_bytes(), HeartbeatResponse)

    def command_results(self, results: list[CommandResult]) -> dict[str, Any]:
        body = json.dumps({"results": [json.loads(r.model_dump_json()) for r in results]}).encode()
        return self._call("POST", COMMAND_RESULTS_PATH, body, None)

    def upload_bindings(self, bindings: list[dict[str, Any]]) -> dict[str, Any]:
        body = json.dumps({"bindings": bindings}, ensure_ascii=False).encode()
        return self._call("POST", BINDINGS_PATH, body, None)

    def rotate_key(self, command_id: str | None = None) -> dict[str, Any]:
        """Ask for a new signing secret (signed with the current one). The caller stores it durably and
        only then calls :meth:`use_secret`; until the new secret signs a request the old one stays valid."""
        body = json.dumps({"command_id": command_id} if command_id else {}).encode()
        return self._call("POST", ROTATE_KEY_PATH, body, None)

    def use_secret(self, secret: bytes) -> None:
        """Sign every request from now on with ``secret`` (shared by the upload and heartbeat threads)."""
        self.secret = secret

    # -- plumbing ----------------------------------------------------------------------------------
    def _call(
        self,
        method: str,
        path: str,
        body: bytes,
        model: type[M] | None,
        *,
        signed: bool = True,
        measure: bool | None = None,
    ) -> Any:
        """Send, and on ``clock_skew`` correct the offset from the error and send once more.

        ``measure``: whether a valid answer may set the clock offset (default: when the call is signed).
        """
        measure = signed if measure is None else measure
        try:
            return self._send(method, path, body, model, signed=signed, measure=measure)
        except ServerError as exc:
            if exc.code == "clock_skew" and signed:
                logger.warning("server says our clock is off; corrected offset, retrying")
                return self._send(method, path, body, model, signed=signed, measure=measure)
            raise

    def _send(
        self, method: str, path: str, body: bytes, model: type[M] | None, *, signed: bool, measure: bool
    ) -> Any:
        headers = {"Content-Type": "application/json"}
        if signed:
            if self.kiosk_id is None or self.secret is None:
                raise ClientError("kiosk is not enrolled / 终端尚未注册")
            headers.update(
                sign_request(
                    self.kiosk_id, self.secret, method, path, body, timestamp=int(self.offset.server_now())
                )
            )
        t0 = self.clock()
        try:
            resp = self.session.request(
                method, self.base_url + path, data=body, headers=headers, timeout=self.timeout
            )
            content = resp.content  # read fully inside the try: a cut body is a transport error
        except requests.RequestException as exc:
            raise TransportError(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
        t1 = self.clock()
        self.last_exchange_at = t1
        data: Any = None
        try:
            data = json.loads(content) if content else None
        except ValueError:
            data = None
        if resp.status_code >= 400:
            error = None
            if isinstance(data, dict):
                try:
                    error = ErrorResponse.model_validate_json(content)
                except ValidationError:
                    error = None
            if signed and error is not None and error.code == "clock_skew" and error.server_time is not None:
                # The server refused our timestamp and said its time: second resolution, but enough to get
                # inside the ±5 min window; the next exchange's precise body time refines it.
                self.offset.reset_to(error.server_time.timestamp() + 0.5, t0, t1)
            raise ServerError(resp.status_code, error, content[:300].decode("utf-8", "replace"))
        if model is None:
            if not isinstance(data, dict):
                raise self._bad_answer(method, path, resp, "answer is not a JSON object")
            answer: Any = data
        else:
            try:
                answer = model.model_validate_json(content)
            except ValidationError as exc:
                raise self._bad_answer(
                    method, path, resp, f"unexpected answer: {exc.error_count()} problems"
                ) from exc
        if (
            measure
        ):  # complete, valid and an answer to an authenticated request: only now may it set the clock
            server = _timestamp(data.get("server_time")) if isinstance(data, dict) else None
            if server is not None:
                self.offset.add_sample(server, t0, t1, precise=True)
        return answer

    def _bad_answer(self, method: str, path: str, resp: requests.Response, why: str) -> BadResponse:
        """Count and log an answer we cannot use (typically a connection cut inside the headers, which
        ``http.client`` reports as a 200 with whatever headers arrived); the clock is not measured."""
        self.bad_answers += 1
        logger.warning(
            "%s %s: unusable answer (status %s, %d bytes): %s; clock offset not measured",
            method,
            path,
            resp.status_code,
            len(resp.content or b""),
            why,
        )
        return BadResponse(f"{method} {path}: {why}")
