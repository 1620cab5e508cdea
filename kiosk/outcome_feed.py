"""OutcomeFeed: numbers the kiosk's outcomes and hands them, and state changes, to subscribers.

Why a module of its own: every part of the kiosk service (reads, PIN entry, staff mode, remote commands,
pushed config) ends in the same place — a :class:`~kiosk.outcomes.TapOutcome` or a ``state`` event for
the screen — and the delivery rules are easy to get subtly wrong, so they live once, here. They follow
pyscard's observer pattern (CONVENTIONS.md): a new subscriber gets the current state at once, subscribers
are called without any service lock held, and one failing subscriber never stops the others. Waiters
hear of an outcome only after the subscribers — the SSE queues — have it, so a simulated tap's HTTP
answer never overtakes the screen.

Which outcome is whose: ``POST /sim/read`` waits for its *own* read's outcome by the read's id
(:meth:`OutcomeFeed.expect` before the read is injected, :meth:`OutcomeFeed.settle` once it is handled,
:meth:`OutcomeFeed.wait_read`). Waiting for "the next outcome of that reader" answered two overlapping
reads with the same, first, outcome.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from kiosk.outcomes import OutcomeKind, TapOutcome, colour_for, messages_for

logger = logging.getLogger(__name__)

Subscriber = Callable[[str, dict[str, Any]], None]
#: How many recent outcomes are kept for ``/api/state`` and for waiters.
KEEP_OUTCOMES = 50


class OutcomeFeed:
    """Outcome numbering, subscribers and waiters; ``state`` is the service's current screen state."""

    def __init__(self, clock: Callable[[], dt.datetime], state: Callable[[], dict[str, Any]]) -> None:
        self._clock = clock
        self._state = state
        self._subs_lock = threading.Lock()
        self._subscribers: list[Subscriber] = []
        self._outcome_cond = threading.Condition()
        self._last_outcomes: list[TapOutcome] = []
        self._delivered: list[TapOutcome] = []
        self._n = 0
        self._reads: dict[str, TapOutcome | None] = {}  # read id → its outcome, while someone waits

    # -- subscribers -----------------------------------------------------------------------------
    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(kind, payload)`` for every ``"tap"`` outcome and ``"state"`` change.

        The current state is delivered at once. Returns a function that unsubscribes.
        """
        with self._subs_lock:
            self._subscribers.append(callback)
        self._call(callback, "state", self._state())

        def unsubscribe() -> None:
            with self._subs_lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    @staticmethod
    def _call(callback: Subscriber, kind: str, payload: dict[str, Any]) -> None:
        try:
            callback(kind, payload)
        except Exception:
            logger.exception("kiosk subscriber failed")

    def publish(self, kind: str, payload: dict[str, Any]) -> None:
        with self._subs_lock:
            subscribers = list(self._subscribers)
        for callback in subscribers:
            self._call(callback, kind, payload)

    def publish_state(self) -> None:
        """Send the current state (taken now, after any change) to every subscriber."""
        self.publish("state", self._state())

    # -- outcomes --------------------------------------------------------------------------------
    def emit(self, outcome: TapOutcome) -> TapOutcome:
        with self._outcome_cond:
            self._last_outcomes = [*self._last_outcomes[-(KEEP_OUTCOMES - 1) :], outcome]
        self.publish("tap", outcome.as_dict())
        with self._outcome_cond:  # waiters hear of it only after subscribers (the SSE queues) have it
            self._delivered = [*self._delivered[-(KEEP_OUTCOMES - 1) :], outcome]
            self._outcome_cond.notify_all()
        return outcome

    def new_outcome(self, kind: OutcomeKind, **fields: Any) -> TapOutcome:
        """The next numbered outcome of ``kind`` with its bilingual text (``messages`` overrides it)."""
        with self._outcome_cond:
            self._n += 1
            n = self._n
        zh, en = messages_for(
            kind,
            duration_s=fields.get("duration_s"),
            previous=fields.pop("previous", None),
            retry_s=fields.pop("retry_s", 0.0),
        )
        override = fields.pop("messages", None)
        if override is not None:  # e.g. the QR verifier's precise reason ("expired", "already used")
            zh, en = override
        return TapOutcome(
            n=n, kind=kind, colour=colour_for(kind), message_zh=zh, message_en=en, at=self._clock(), **fields
        )

    def wait_outcome(self, after_n: int, timeout: float, reader_id: str | None = None) -> TapOutcome | None:
        """The first outcome numbered above ``after_n`` (for ``reader_id`` when given), waiting up to ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._outcome_cond:
            while True:
                for o in self._delivered:
                    if o.n > after_n and (reader_id is None or o.reader_id == reader_id):
                        return o
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._outcome_cond.wait(remaining)

    # -- one read's own outcome ------------------------------------------------------------------
    def expect(self, read_id: str) -> None:
        """Someone will wait for the outcome of read ``read_id``: keep it when it comes."""
        with self._outcome_cond:
            self._reads[read_id] = None

    def settle(self, read_id: str, outcome: TapOutcome) -> None:
        """Read ``read_id`` ended in ``outcome`` (already emitted); wake whoever expects it."""
        with self._outcome_cond:
            if read_id in self._reads:  # nobody waits any more (timed out): nothing to keep
                self._reads[read_id] = outcome
                self._outcome_cond.notify_all()

    def wait_read(self, read_id: str, timeout: float) -> TapOutcome | None:
        """The outcome of the expected read ``read_id``, waiting up to ``timeout``; ``None`` if it has not
        come by then (the read is still queued, or the reader dropped it). Forgets the read either way."""
        deadline = time.monotonic() + timeout
        with self._outcome_cond:
            try:
                while (outcome := self._reads.get(read_id)) is None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or read_id not in self._reads:
                        return None
                    self._outcome_cond.wait(remaining)
                return outcome
            finally:
                self._reads.pop(read_id, None)

    @property
    def counter(self) -> int:
        with self._outcome_cond:
            return self._n

    def last_outcome(self) -> TapOutcome | None:
        with self._outcome_cond:
            return self._last_outcomes[-1] if self._last_outcomes else None

    def recent_outcomes(self) -> list[TapOutcome]:
        with self._outcome_cond:
            return list(self._last_outcomes)
