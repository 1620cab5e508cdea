"""Chain verification of what the server stored: recompute every kiosk's hash chain from its tap events.

Why a separate check when ingest already verifies each batch: ingest proves what *arrived*; this proves
what is *stored now*, so anyone (an auditor, a cron job, the fleet page) can show that no event was
removed, inserted or edited since — by the application, a bug or someone with database access. The
arithmetic is :func:`protocol.chain.verify_chain`, the same the kiosk and ingest use, fed one stored
event at a time; after a finding the check re-anchors on the next event's own link, so every gap and
every edited event is reported with its position, not only the first one.

What the kiosk hashed is rebuilt from the stored row. Ingest stores every chain field as sent, with one
exception: a member id the server does not know is stored as ``NULL`` and kept in the
``unknown_member:ID`` flag (and a tap the server attributed to a member outside the kiosk's roster,
flag ``outside_roster``, carried no member id from the kiosk). :func:`kiosk_fields` undoes exactly that.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from protocol.chain import CHAIN_FIELDS, GENESIS_HASH, BreakReason, verify_chain
from protocol.flags import TapFlag, parse_flags
from server.models import Kiosk, TapEvent

logger = logging.getLogger(__name__)

#: Rows fetched per round trip while streaming a kiosk's events (memory stays flat for any count).
BATCH_ROWS = 2000

_COLUMNS = [getattr(TapEvent, name) for name in (*CHAIN_FIELDS, "hash", "flags")]


@dataclass(frozen=True, slots=True)
class ChainFinding:
    """One place where the stored chain does not verify. ``position`` counts the kiosk's stored events
    in sequence order from 1 (a gap at the end has the position after the last stored event)."""

    position: int
    seq: int | None
    event_id: str | None
    reason: BreakReason
    expected: str
    got: str

    @property
    def flag(self) -> TapFlag:
        return TapFlag(self.reason.value)

    def describe(self, *, short: bool = False) -> tuple[str, str]:
        """(Chinese, English) one-line text for a person; ``short`` cuts hashes to their first 12 digits
        (enough to tell them apart on a page; the command prints them whole, for comparison)."""

        def cut(value: str) -> str:
            return f"{value[:12]}…" if short and len(value) == 64 else value

        expected, got = cut(self.expected), cut(self.got)
        where_zh = f"第 {self.position} 条（序号 {self.seq if self.seq is not None else '?'}）"
        where_en = f"position {self.position} (seq {self.seq if self.seq is not None else '?'})"
        if self.reason is BreakReason.GAP:
            return (
                f"{where_zh}：{self.flag.label_zh}，缺少序号 {self.expected}",
                f"{where_en}: {self.flag.label_en}, seq {self.expected} missing",
            )
        return (
            f"{where_zh}：{self.flag.label_zh}（应为 {expected}，实为 {got}）",
            f"{where_en}: {self.flag.label_en} (expected {expected}, got {got})",
        )


@dataclass(slots=True)
class KioskChainReport:
    """The verdict on one kiosk's stored chain."""

    kiosk_id: int
    kiosk_uid: str
    name: str
    events: int = 0
    verified: int = 0
    findings: list[ChainFinding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def gaps(self) -> list[ChainFinding]:
        return [f for f in self.findings if f.reason is BreakReason.GAP]

    @property
    def breaks(self) -> list[ChainFinding]:
        return [f for f in self.findings if f.reason is not BreakReason.GAP]


def kiosk_fields(row: Mapping[str, Any]) -> dict[str, Any]:
    """The chain fields (and ``hash``) of a stored tap as the kiosk sent them."""
    event = {name: row[name] for name in (*CHAIN_FIELDS, "hash")}
    device_time = event["device_time"]
    if device_time is not None and device_time.tzinfo is None:  # stored as UTC
        event["device_time"] = device_time.replace(tzinfo=UTC)
    if event["event_id"] is not None:
        event["event_id"] = str(event["event_id"])
    for entry in parse_flags(row.get("flags")):
        if entry.flag is TapFlag.UNKNOWN_MEMBER and entry.detail and entry.detail.isdigit():
            event["member_id"] = int(entry.detail)
        elif entry.flag is TapFlag.OUTSIDE_ROSTER:
            event["member_id"] = None
    return event


def _stored_events(db: Session, kiosk_id: int) -> Iterator[dict[str, Any]]:
    """The kiosk's stored events in sequence order, streamed in batches, keyed by column name."""
    last_seq = 0
    while True:
        rows = db.execute(
            select(*_COLUMNS)
            .where(TapEvent.kiosk_id == kiosk_id, TapEvent.seq > last_seq)
            .order_by(TapEvent.seq)
            .limit(BATCH_ROWS)
        ).all()
        if not rows:
            return
        for row in rows:
            yield dict(row._mapping)
        last_seq = int(rows[-1].seq)


def _finding(
    position: int, event: Mapping[str, Any], reason: BreakReason, expected: str, got: str
) -> ChainFinding:
    seq = event.get("seq")
    return ChainFinding(
        position,
        seq if isinstance(seq, int) else None,
        None if event.get("event_id") is None else str(event["event_id"]),
        reason,
        expected,
        got,
    )


def _missing(expected_seq: int, got_seq: int) -> str:
    return str(expected_seq) if got_seq == expected_seq + 1 else f"{expected_seq}–{got_seq - 1}"


def verify_kiosk(db: Session, kiosk: Kiosk) -> KioskChainReport:
    """Recompute ``kiosk``'s chain from its stored events and report every gap and break."""
    report = KioskChainReport(kiosk.id, kiosk.kiosk_uid, kiosk.name)
    head_seq, head_hash = 0, GENESIS_HASH
    for position, row in enumerate(_stored_events(db, kiosk.id), start=1):
        report.events = position
        event = kiosk_fields(row)
        result = verify_chain([event], start_prev_hash=head_hash, start_seq=head_seq + 1)
        brk = result.first_break
        if brk is None:
            head_seq, head_hash = result.head_seq, result.head_hash
            report.verified += 1
            continue
        if brk.reason is BreakReason.GAP:
            report.findings.append(
                _finding(position, event, brk.reason, _missing(head_seq + 1, event["seq"]), str(event["seq"]))
            )
        else:
            report.findings.append(_finding(position, event, brk.reason, brk.expected, brk.got))
        if brk.reason in (BreakReason.GAP, BreakReason.PREV_HASH_MISMATCH):
            # Re-anchor on the event's own link: is the event itself intact?
            again = verify_chain(
                [event], start_prev_hash=str(event["prev_hash"]), start_seq=int(event["seq"])
            )
            if again.first_break is None:
                head_seq, head_hash = again.head_seq, again.head_hash
                report.verified += 1
                continue
            extra = again.first_break
            report.findings.append(_finding(position, event, extra.reason, extra.expected, extra.got))
        # An edited event: the next one links to the hash the kiosk computed, which is still stored.
        head_seq, head_hash = int(event["seq"]), str(event["hash"])
    if kiosk.last_seq > head_seq:  # the server acknowledged events that are no longer stored
        report.findings.append(
            ChainFinding(
                report.events + 1,
                kiosk.last_seq,
                None,
                BreakReason.GAP,
                _missing(head_seq + 1, kiosk.last_seq + 1),
                "end of stored events",
            )
        )
    return report


def kiosks_to_verify(db: Session, kiosk_uid: str | None = None, where: Any = None) -> list[Kiosk]:
    """The kiosks to check, in a stable order: one by its id, else all (optionally within ``where``)."""
    query = select(Kiosk).order_by(Kiosk.id)
    if kiosk_uid is not None:
        query = query.where(Kiosk.kiosk_uid == kiosk_uid)
    if where is not None:
        query = query.where(where)
    return list(db.scalars(query))


def verify_kiosks(
    db: Session,
    kiosks: list[Kiosk],
    progress: Callable[[int, int, KioskChainReport], None] | None = None,
) -> list[KioskChainReport]:
    """:func:`verify_kiosk` for each kiosk; ``progress(done, total, report)`` after each one."""
    reports = []
    for done, kiosk in enumerate(kiosks, start=1):
        report = verify_kiosk(db, kiosk)
        if not report.ok:
            logger.warning(
                "chain of kiosk %s: %d findings, first at position %d",
                kiosk.kiosk_uid,
                len(report.findings),
                report.findings[0].position,
            )
        reports.append(report)
        if progress is not None:
            progress(done, len(kiosks), report)
    return reports
