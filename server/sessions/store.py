"""Persisting the session engine: load a member's taps and corrections, run the engine, store the result.

The engine (:mod:`server.sessions.engine`) is pure; this module is the only place that turns its output
into ``service_sessions`` rows. ``service_sessions`` is derived data: for every member passed in, the rows
after :func:`recompute_sessions` are exactly what the engine says today, matched by ``key`` (the check-in
event id, or ``manual:<correction id>``) — new keys are inserted, changed rows updated, and rows whose key
the engine no longer produces are deleted. Corrections point at keys, so nothing a person decided is lost.

Whole history or a window: the toggle state at a tap depends on every earlier tap back to the last gap
longer than the maximum session length plus debounce (a *quiet point*, :mod:`server.sessions.window`).
With ``since`` (what the recompute queue passes) a member's engine run restarts at the quiet point before
the one preceding its earliest new tap and only sessions from there on are replaced — a few days of taps
instead of a year. Members with corrections (whose overlap check looks at all of a member's sessions) and
members without two quiet points in the last week are recomputed over their whole history, as are all
members when ``since`` is not given (staff corrections).

What the screen said: each tap's recorded direction (and, for a check-out, the minutes shown, recorded in
its ``reason``) is passed to the engine as :class:`~server.sessions.rules.Shown`; a session whose tap the
screen described otherwise is sent to review (:class:`protocol.sessionrules.ScreenReason`).

Concurrency (several gunicorn workers recompute the same member when two kiosks upload at once): on
PostgreSQL the member rows are locked ``FOR NO KEY UPDATE`` in id order first (not ``FOR UPDATE``, which
would deadlock against the ``KEY SHARE`` locks that concurrent event inserts take for their foreign keys), so recomputations of one member
run one after the other and each sees the other's committed taps. SQLite has no row locks; a write
statement is issued first so the transaction holds the database write lock before it reads.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, delete, func, insert, or_, select, text, update
from sqlalchemy.orm import Session as DbSession

from protocol.sessionrules import CentreRules, Shown, shown_for
from server.models import Correction as CorrectionRow
from server.models import Member, ServiceCentre, ServiceSession, TapEvent

from .corrections import Correction
from .engine import compute_sessions
from .rules import Session, Tap
from .window import quiet_gap, restart_index

logger = logging.getLogger(__name__)

#: How far before the earliest new tap an incremental recomputation looks for quiet points (plus two
#: quiet gaps); members with no two quiet points in that range are recomputed over their whole history.
INCREMENTAL_LOOKBACK = timedelta(days=7)
#: Tap directions whose taps feed a member's sessions (as toggle taps: the engine decides in or out).
#: ``unknown`` is among them because an unknown tap has a member only when the server resolved a
#: credential the kiosk did not know (``resolved_member_id``, server.ingest, flagged ``outside_roster``);
#: the kiosk's recorded direction stays as recorded. Rejected taps never make sessions.
SESSION_DIRECTIONS = ("in", "out", "duplicate", "unknown")

_COMPARED = (
    "member_id",
    "unit_id",
    "centre_id",
    "community_id",
    "check_in_event_id",
    "check_out_event_id",
    "started_at",
    "ended_at",
    "status",
    "credited_minutes",
    "reason",
    "source",
)


#: Taps count for sessions only when their effective time lies in ``[start, end)``. Ingest keeps the others
#: and flags them ``time_out_of_range`` (:mod:`server.ingest`): no service of the programme happened
#: before 2000 or will after 2100, so such a time comes from a kiosk clock that was never set or is
#: broken — and near the ends of Python's datetime range the engine's arithmetic (a session's limit, its
#: local date) would overflow and stop the member's recomputation for good.
SESSION_TIMES = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


def centre_rules(centre: ServiceCentre) -> CentreRules:
    """The engine's rules for one centre, from its configured columns."""
    return CentreRules(
        debounce=timedelta(seconds=centre.debounce_seconds),
        max_length=timedelta(minutes=centre.max_session_minutes),
        closes_at=centre.closes_at,
        tz=ZoneInfo(centre.timezone or "Asia/Shanghai"),
    )


def _lock_members(db: DbSession, member_ids: list[int]) -> None:
    if db.get_bind().dialect.name == "postgresql":
        db.execute(
            select(Member.id)
            .where(Member.id.in_(member_ids))
            .order_by(Member.id)
            .with_for_update(key_share=True)
        )
    else:
        # A write statement makes pysqlite open the transaction and take the write lock now, so the
        # reads below cannot be overtaken by another writer (see module docstring).
        db.execute(text("DELETE FROM used_nonces WHERE 1 = 0"))


def _session_row(
    s: Session, unit_of: dict[int, int], community_of: dict[int, int], uuids: dict[str, uuid.UUID]
) -> dict[str, Any]:
    return {
        "key": s.key,
        "member_id": s.member_id,
        "unit_id": unit_of[s.member_id],
        "centre_id": s.centre_id,
        "community_id": community_of[s.centre_id],
        "check_in_event_id": None if s.check_in_event_id is None else uuids[s.check_in_event_id],
        "check_out_event_id": None if s.check_out_event_id is None else uuids[s.check_out_event_id],
        "started_at": s.started_at,
        "ended_at": s.ended_at,
        "status": str(s.status),
        "credited_minutes": s.credited_minutes,
        "reason": None if s.reason is None else str(s.reason),
        "source": s.source,
    }


def recompute_sessions(
    db: DbSession,
    member_ids: Iterable[int],
    *,
    now: datetime,
    since: Mapping[int, datetime] | None = None,
) -> None:
    """Bring the stored sessions of ``member_ids`` in line with their taps and corrections.

    Runs inside the caller's transaction and does not commit (the caller decides, e.g. together with the
    Correction it just wrote). ``now`` (aware) decides whether a session left open has passed its limit.

    ``since`` (member id → earliest effective time of the taps added since that member's sessions were
    last brought up to date) allows an incremental recomputation: the engine restarts at a quiet point
    (:mod:`server.sessions.window`) and only sessions from there on are replaced. Members without an
    entry, members with corrections (whose overlap checks look at every session) and members whose
    recent history has no usable quiet point are recomputed over their whole history.
    """
    ids = sorted({int(m) for m in member_ids})
    if not ids:
        return
    _lock_members(db, ids)
    unit_of = dict(db.execute(select(Member.id, Member.unit_id).where(Member.id.in_(ids))).tuples().all())
    ids = [m for m in ids if m in unit_of]
    if not ids:
        return

    correction_rows = db.scalars(select(CorrectionRow).where(CorrectionRow.member_id.in_(ids))).all()
    corrected_members = {c.member_id for c in correction_rows}
    windows: dict[int, datetime] = {}  # member → start of the replaced range (incremental members)
    taps: list[Tap] = []
    incremental = {
        m: since[m] for m in ids if since is not None and m in since and m not in corrected_members
    }
    if incremental:
        gap = quiet_gap(centre_rules(c) for c in db.scalars(select(ServiceCentre)).all())
        cutoff = min(incremental.values()) - INCREMENTAL_LOOKBACK - 2 * gap
        recent: dict[int, list[Tap]] = {m: [] for m in incremental}
        for tap in _load_taps(db, list(incremental), cutoff):
            recent[tap.member_id].append(tap)
        for member_id, member_taps in recent.items():
            member_taps.sort(key=lambda t: (t.at, t.event_id))
            start = restart_index(member_taps, incremental[member_id], gap)
            if start is not None:
                windows[member_id] = member_taps[start].at
                taps.extend(member_taps[start:])
    whole = [m for m in ids if m not in windows]
    if whole:
        taps.extend(_load_taps(db, whole, None))
    corrections = [
        Correction(
            id=c.id,
            action=c.action,  # type: ignore[arg-type]
            created_at=c.created_at,
            session_key=c.session_key,
            member_id=c.member_id,
            centre_id=c.centre_id,
            started_at=c.started_at,
            ended_at=c.ended_at,
            minutes=c.minutes,
        )
        for c in correction_rows
    ]
    centre_ids = {t.centre_id for t in taps} | {c.centre_id for c in correction_rows}
    centres = (
        db.scalars(select(ServiceCentre).where(ServiceCentre.id.in_(centre_ids))).all() if centre_ids else []
    )
    rules = {c.id: centre_rules(c) for c in centres}
    community_of = {c.id: c.community_id for c in centres}

    result = compute_sessions(taps, rules, corrections, now=now)
    if result.ignored_corrections:
        logger.info(
            "corrections ignored on recompute",
            extra={"ignored": [(i.correction_id, str(i.reason)) for i in result.ignored_corrections]},
        )
    uuids: dict[str, uuid.UUID] = _UuidCache()
    wanted = {s.key: _session_row(s, unit_of, community_of, uuids) for s in result.sessions}
    logger.debug("recompute", extra={"members": len(ids), "incremental": len(windows), "taps": len(taps)})
    _write(db, ids, wanted, now, windows)


class _UuidCache(dict[str, uuid.UUID]):
    """Event id text → UUID, parsed once per recomputation (it was a visible share of the time)."""

    def __missing__(self, key: str) -> uuid.UUID:
        value = self[key] = uuid.UUID(key)
        return value


def _load_taps(db: DbSession, member_ids: list[int], cutoff: datetime | None) -> list[Tap]:
    # A tap's member is the kiosk's, or — for a credential the kiosk did not know — the one the server
    # resolved (``resolved_member_id``, kept apart from the chain-hashed ``member_id``).
    member = func.coalesce(TapEvent.member_id, TapEvent.resolved_member_id).label("member_id")
    query = select(
        TapEvent.event_id,
        member,
        TapEvent.centre_id,
        TapEvent.effective_time,
        TapEvent.direction,
        TapEvent.reason,
    ).where(
        or_(TapEvent.member_id.in_(member_ids), TapEvent.resolved_member_id.in_(member_ids)),
        TapEvent.direction.in_(SESSION_DIRECTIONS),
        TapEvent.effective_time >= SESSION_TIMES[0],
        TapEvent.effective_time < SESSION_TIMES[1],
    )
    if cutoff is not None:
        query = query.where(TapEvent.effective_time >= cutoff)
    shown = _ShownCache()
    return [
        Tap(str(r.event_id), r.member_id, r.centre_id, r.effective_time, shown[r.direction, r.reason])
        for r in db.execute(query)
    ]


class _ShownCache(dict[tuple[str, str | None], Shown | None]):
    """(direction, reason) → what the screen said; a handful of distinct values per recomputation."""

    def __missing__(self, key: tuple[str, str | None]) -> Shown | None:
        value = self[key] = shown_for(*key)
        return value


def _write(
    db: DbSession,
    member_ids: list[int],
    wanted: dict[str, dict[str, Any]],
    now: datetime,
    windows: Mapping[int, datetime],
) -> None:
    """Insert new keys, update changed rows, delete vanished keys — a few statements, not one per row.

    For a member in ``windows`` only the stored sessions starting at or after its window start are
    compared (the engine did not look further back, and nothing before it can have changed)."""
    table = ServiceSession.__table__
    query = select(table.c.id, *(table.c[name] for name in ("key", *_COMPARED))).where(
        table.c.member_id.in_(member_ids)
    )
    if windows and len(windows) == len(member_ids):
        query = query.where(table.c.started_at >= min(windows.values()))
    existing = {
        row.key: row
        for row in db.execute(query)
        if row.member_id not in windows or row.started_at >= windows[row.member_id]
    }
    inserts = [{**row, "updated_at": now} for key, row in wanted.items() if key not in existing]
    updates = [
        {"b_id": existing[key].id, "b_updated_at": now, **{f"b_{k}": row[k] for k in _COMPARED}}
        for key, row in wanted.items()
        if key in existing and any(getattr(existing[key], name) != row[name] for name in _COMPARED)
    ]
    vanished = [row.id for key, row in existing.items() if key not in wanted]
    if vanished:
        db.execute(delete(table).where(table.c.id.in_(vanished)))
    if updates:
        values = {name: bindparam(f"b_{name}") for name in (*_COMPARED, "updated_at")}
        db.execute(
            update(table).where(table.c.id == bindparam("b_id")).values(**values),
            updates,
        )
    if inserts:
        db.execute(insert(table), inserts)
    logger.debug(
        "sessions recomputed",
        extra={
            "members": len(member_ids),
            "inserted": len(inserts),
            "updated": len(updates),
            "deleted": len(vanished),
        },
    )


__all__ = ["SESSION_DIRECTIONS", "centre_rules", "recompute_sessions"]
