"""The per-kiosk TapEvent hash chain.

Each event carries ``prev_hash`` (the previous event's ``hash``) and its own
``hash = sha256(bytes.fromhex(prev_hash) + canonical_bytes(event)).hexdigest()``. The first event of a
kiosk links to :data:`GENESIS_HASH`. Together with ``seq`` (1, 2, 3, … without gaps) this makes a missing,
edited, inserted or reordered event *provable* on the server rather than a matter of trust: the kiosk
cannot rewrite a tap it already uploaded without breaking every later link.

Canonical bytes are sorted-key compact JSON (UTF-8, no ASCII escaping) of the contract fields in
:data:`CHAIN_FIELDS`, with three rules that keep the form deterministic across languages and versions:

* fields whose value is ``None`` are omitted, so adding an optional field later does not change the hash
  of events that do not use it;
* ``device_time`` is written in UTC as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` whatever offset it arrived with
  (the zone name travels separately in ``device_tz``);
* only strings, integers and booleans appear — no floats, whose text form is not canonical.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import json
import logging
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

GENESIS_HASH = "0" * 64

#: The TapEvent fields covered by the chain — everything except ``hash`` itself.
CHAIN_FIELDS: tuple[str, ...] = (
    "event_id",
    "seq",
    "prev_hash",
    "credential_kind",
    "credential_hash",
    "qr_step",
    "badge_serial",
    "member_id",
    "direction",
    "device_time",
    "device_tz",
    "clock_offset_ms",
    "trust",
    "reason",
)


class BreakReason(enum.StrEnum):
    """Why a chain stopped verifying. Values are part of the wire contract (BatchAck flags)."""

    GAP = "gap"  # seq jumped forward: events are missing
    SEQ_REGRESSION = "seq_regression"  # seq went backwards or repeated: reordered or duplicated
    PREV_HASH_MISMATCH = "prev_hash_mismatch"  # links to something other than the previous event
    HASH_MISMATCH = "hash_mismatch"  # the event's own content does not match its hash: edited
    MALFORMED = "malformed"  # a field the chain needs is missing or of the wrong type


def canonical_time(value: dt.datetime) -> str:
    """UTC, microsecond precision, ``Z`` suffix. Naive datetimes are refused: their instant is unknown."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("device_time must be timezone-aware")
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _canonical_value(name: str, value: Any) -> Any:
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, dt.datetime):
        return canonical_time(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, int | str):  # bool is an int
        return value
    raise TypeError(f"chain field {name!r} has a non-canonical type {type(value).__name__}")


def event_fields(event: Any) -> dict[str, Any]:
    """The chain fields of ``event`` — a mapping or a pydantic model (anything with ``model_dump``)."""
    if hasattr(event, "model_dump"):
        event = event.model_dump()
    if not isinstance(event, Mapping):
        raise TypeError("event must be a mapping or a pydantic model")
    return {name: event.get(name) for name in CHAIN_FIELDS}


def canonical_bytes(event: Any) -> bytes:
    """The exact bytes that are hashed for ``event`` (see the module docstring for the rules)."""
    fields = event_fields(event)
    body = {name: _canonical_value(name, v) for name, v in fields.items() if v is not None}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _hash_bytes(prev_hash: str) -> bytes:
    if not isinstance(prev_hash, str) or len(prev_hash) != 64:
        raise ValueError("prev_hash must be 64 hex digits")
    return bytes.fromhex(prev_hash)


def compute_hash(prev_hash: str, event: Any) -> str:
    """``sha256(prev_hash_bytes + canonical_bytes(event))`` as lower-case hex.

    ``prev_hash`` is passed explicitly (rather than read from ``event``) so a kiosk computes the hash of
    the event it is about to store from its own chain head; it must equal ``event["prev_hash"]``.
    """
    return hashlib.sha256(_hash_bytes(prev_hash) + canonical_bytes(event)).hexdigest()


@dataclass(frozen=True, slots=True)
class ChainBreak:
    """The first place a sequence of events stops verifying."""

    index: int  # position in the list given to verify_chain
    event_id: str | None
    seq: int | None
    reason: BreakReason
    expected: str  # expected seq or hash, as text
    got: str

    def describe(self) -> str:
        return f"event #{self.index} ({self.event_id}, seq {self.seq}): {self.reason} — expected {self.expected}, got {self.got}"


@dataclass(frozen=True, slots=True)
class ChainResult:
    """Outcome of :func:`verify_chain`.

    ``head_seq``/``head_hash`` describe the verified prefix (the inputs if nothing verified), so a
    server can store them as the kiosk's chain head and continue from there with the next batch.
    """

    verified: int
    head_seq: int
    head_hash: str
    first_break: ChainBreak | None

    @property
    def ok(self) -> bool:
        return self.first_break is None


def verify_chain(
    events: Iterable[Any], start_prev_hash: str = GENESIS_HASH, start_seq: int = 1
) -> ChainResult:
    """Check that ``events`` continue a chain whose next event has ``seq == start_seq`` and links to
    ``start_prev_hash``. Stops at the first problem and reports it; never raises for bad events.

    Events are checked in the order given — sort by ``seq`` first if the transport may reorder, and a
    reordering in the kiosk's own history still shows up as a hash or link break.
    """
    head_hash, head_seq, verified = start_prev_hash, start_seq - 1, 0
    for index, event in enumerate(events):
        problem = _check_link(event, head_seq, head_hash)
        if isinstance(problem, ChainBreak):
            brk = ChainBreak(
                index, problem.event_id, problem.seq, problem.reason, problem.expected, problem.got
            )
            return ChainResult(verified, head_seq, head_hash, brk)
        head_seq, head_hash = problem
        verified += 1
    return ChainResult(verified, head_seq, head_hash, None)


def _check_link(event: Any, head_seq: int, head_hash: str) -> ChainBreak | tuple[int, str]:
    """The event's (seq, hash) when it continues the chain, else a ChainBreak (index filled later)."""
    try:
        fields = event_fields(event)
    except TypeError as exc:
        return ChainBreak(-1, None, None, BreakReason.MALFORMED, "mapping or model", str(exc))
    event_id = None if fields["event_id"] is None else str(fields["event_id"])
    seq, prev, own = fields["seq"], fields["prev_hash"], _field_hash(event)
    seq_out = seq if isinstance(seq, int) and not isinstance(seq, bool) else None

    def brk(reason: BreakReason, expected: object, got: object) -> ChainBreak:
        return ChainBreak(-1, event_id, seq_out, reason, str(expected), str(got))

    if seq_out is None or not isinstance(prev, str) or not isinstance(own, str):
        return brk(BreakReason.MALFORMED, "int seq, text prev_hash and hash", f"{seq!r}, {prev!r}, {own!r}")
    if seq > head_seq + 1:
        return brk(BreakReason.GAP, head_seq + 1, seq)
    if seq < head_seq + 1:
        return brk(BreakReason.SEQ_REGRESSION, head_seq + 1, seq)
    if prev != head_hash:
        return brk(BreakReason.PREV_HASH_MISMATCH, head_hash, prev)
    try:
        actual = compute_hash(prev, fields)
    except (ValueError, TypeError) as exc:
        return brk(BreakReason.MALFORMED, "canonical fields", exc)
    if actual != own:
        return brk(BreakReason.HASH_MISMATCH, actual, own)
    return seq, own


def _field_hash(event: Any) -> Any:
    if hasattr(event, "model_dump"):
        return getattr(event, "hash", None)
    return event.get("hash") if isinstance(event, Mapping) else None
