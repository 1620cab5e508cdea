"""The chain hash of a validated TapEvent, written straight from the model: ingest's hottest function.

``protocol.chain.compute_hash`` is the definition; this is the same bytes without ``model_dump`` or
``json.dumps`` (dumping the model, and even one ``json.dumps`` per event, was a large part of the ingest
time). ``tests/unit/server/test_ingest_hash.py`` checks it against ``compute_hash``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import UTC

from protocol.chain import CHAIN_FIELDS
from protocol.messages import TapEventIn
from server.ingest_db import canonical_utc

logger = logging.getLogger(__name__)


def chain_hash(
    event: TapEventIn, canonical_device_time: str | None = None, event_id_hex: str | None = None
) -> str:
    """``protocol.chain.compute_hash(event.prev_hash, event)`` without ``model_dump`` or ``json.dumps``.

    The same canonical bytes (fields of :data:`CHAIN_FIELDS`, ``None`` omitted, enums by value, UUIDs as
    text, ``device_time`` in canonical UTC, sorted compact JSON), written directly in sorted key order:
    dumping the model, and even one ``json.dumps`` per event, was a large part of the ingest time. Every
    text field except ``reason`` is restricted by the validated schema to characters JSON writes as they
    are (hex digits, enum values, ``[A-Za-z0-9_+-/]``, a UUID, the canonical time), so only ``reason``
    goes through the JSON encoder. The enums are ``StrEnum``: formatting one writes its value (without
    ``Enum.value``, a slow descriptor). ``canonical_device_time`` and ``event_id_hex`` (``UUID.hex``: the
    dashed text is cut from it, cheaper than ``str(UUID)``) may be passed when the caller already has
    them. ``tests/unit/server/test_ingest_hash.py`` checks it against ``compute_hash``.
    """
    if canonical_device_time is None:
        canonical_device_time = canonical_utc(event.device_time.astimezone(UTC))
    h = event.event_id.hex if event_id_hex is None else event_id_hex
    parts = []
    if event.badge_serial is not None:
        parts.append(f'"badge_serial":"{event.badge_serial}",')
    parts.append(
        f'"clock_offset_ms":{event.clock_offset_ms},"credential_hash":"{event.credential_hash}",'
        f'"credential_kind":"{event.credential_kind}","device_time":"{canonical_device_time}",'
        f'"device_tz":"{event.device_tz}","direction":"{event.direction}",'
        f'"event_id":"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}",'
    )
    if event.member_id is not None:
        parts.append(f'"member_id":{event.member_id},')
    parts.append(f'"prev_hash":"{event.prev_hash}",')
    if event.qr_step is not None:
        parts.append(f'"qr_step":{event.qr_step},')
    if event.reason is not None:
        parts.append(f'"reason":{_json_text(event.reason)},')
    parts.append(f'"seq":{event.seq}')
    if event.trust is not None:
        parts.append(f',"trust":"{event.trust}"')
    canonical = "{" + "".join(parts) + "}"
    return hashlib.sha256(bytes.fromhex(event.prev_hash) + canonical.encode()).hexdigest()


_json_text = json.JSONEncoder(ensure_ascii=False).encode
#: The fields :func:`chain_hash` writes; a change to ``CHAIN_FIELDS`` must fail loudly, not hash wrongly.
_HASHED_FIELDS = frozenset(
    [
        "badge_serial",
        "clock_offset_ms",
        "credential_hash",
        "credential_kind",
        "device_time",
        "device_tz",
        "direction",
        "event_id",
        "member_id",
        "prev_hash",
        "qr_step",
        "reason",
        "seq",
        "trust",
    ]
)
if frozenset(CHAIN_FIELDS) != _HASHED_FIELDS:  # pragma: no cover - a guard for the next protocol change
    raise ImportError("server.ingest_hash.chain_hash does not cover protocol.chain.CHAIN_FIELDS")
