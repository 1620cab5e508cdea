"""The session engine's table of cases, as plain data, shared by the unit tests and the database tests.

Each :class:`Case` is written the way a person reads a kiosk log: tap labels (``"a1"``), members and
centres as small integers, times as local Asia/Shanghai strings (``"09:00"`` means 09:00 on :data:`DAY`;
other days are written in full, ``"2024-03-05 08:00"``). The ``build_*`` and ``expected_*`` functions
turn a case into engine inputs and outputs; labels become deterministic UUIDv7 text whose order at equal
milliseconds follows the label order, so "ties broken by event id" reads as "ties broken by label" and
the ids fit a ``Uuid`` column.

Plain-data shapes:

* ``rules``: ``{"debounce_s": 60, "max_length_h": 12, "closes_at": "21:00"}`` (all optional) for every
  centre, or ``{"centres": {1: {...}, 2: {...}}}`` per centre (missing centres get the defaults).
* ``taps``: ``(label, member_id, centre_id, local_time)``.
* ``corrections``: dicts with ``id``, ``action``, ``created`` and optionally ``key`` (a tap label,
  ``"manual:N"`` or any other text), ``member``, ``centre``, ``start``, ``end``, ``minutes``.
* ``expected_sessions``: dicts made by :func:`S`; ``expected_roles``: ``{label: "in" | "out" |
  "duplicate"}``; ``expected_ignored``: ``(correction_id, reason)`` pairs; ``engine_only`` marks cases
  whose inputs the database schema refuses.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from server.sessions import (
    CentreRules,
    Correction,
    IgnoredCorrection,
    IgnoreReason,
    Session,
    SessionStatus,
    Tap,
    TapRole,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
DAY = "2024-03-04"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

TapRow = tuple[str, int, int, str]


@dataclass(frozen=True)
class Case:
    name: str
    rules: dict[str, Any]
    taps: tuple[TapRow, ...]
    corrections: tuple[dict[str, Any], ...]
    now: str
    expected_sessions: tuple[dict[str, Any], ...]
    expected_roles: dict[str, str]
    expected_ignored: tuple[tuple[int, str], ...] = field(default=())
    # Inputs the database schema itself refuses (unknown action, negative minutes, a manual entry without
    # member, two corrections with one id): run these through the engine only, not through the database.
    engine_only: bool = False


def local(text: str) -> datetime:
    """``"09:00"`` / ``"09:00:30"`` on :data:`DAY`, or a full ``"YYYY-MM-DD HH:MM[:SS]"``, Shanghai → UTC."""
    if len(text) <= 8:
        text = f"{DAY} {text}"
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI).astimezone(UTC)


def event_uuid(label: str, at: datetime) -> str:
    """Deterministic UUIDv7 text: the millisecond timestamp of ``at``, then the label's ASCII bytes.

    At equal milliseconds the text sorts like the label, so table cases can state tie-breaks by label.
    """
    raw = label.encode("ascii")
    if len(raw) > 7:
        raise ValueError(f"tap label too long for the id encoding: {label!r}")
    ms = (at - _EPOCH) // timedelta(milliseconds=1)
    return str(uuid.UUID(bytes=ms.to_bytes(6, "big") + bytes([0x70, 0x00, 0x80]) + raw.ljust(7, b"\0")))


def S(
    key: str,
    start: str,
    end: str | None,
    status: str,
    minutes: int,
    *,
    member: int = 1,
    centre: int = 1,
    out: str | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    """One expected session as plain data (``key`` is a tap label or ``"manual:N"``)."""
    manual = key.startswith("manual:")
    return {
        "key": key,
        "member": member,
        "centre": centre,
        "in": None if manual else key,
        "out": out,
        "start": start,
        "end": end,
        "status": status,
        "minutes": minutes,
        "reason": reason,
        "source": "manual" if manual else "kiosk",
    }


def M(cid: int, created: str, member: int, centre: int, start: str, end: str, **extra: Any) -> dict[str, Any]:
    """One manual-entry correction as plain data (``extra``: ``minutes``, or a stray ``key``)."""
    return {
        "id": cid,
        "action": "manual",
        "created": created,
        "member": member,
        "centre": centre,
        "start": start,
        "end": end,
        **extra,
    }


# ---- conversion -------------------------------------------------------------------------------------


def _rules_from(spec: dict[str, Any]) -> CentreRules:
    kwargs: dict[str, Any] = {}
    if "debounce_s" in spec:
        kwargs["debounce"] = timedelta(seconds=spec["debounce_s"])
    if "max_length_h" in spec:
        kwargs["max_length"] = timedelta(hours=spec["max_length_h"])
    if spec.get("closes_at"):
        kwargs["closes_at"] = time.fromisoformat(spec["closes_at"])
    if "tz" in spec:
        kwargs["tz"] = ZoneInfo(spec["tz"])
    return CentreRules(**kwargs)


def build_rules(case: Case) -> CentreRules | dict[int, CentreRules]:
    if "centres" in case.rules:
        return {int(centre): _rules_from(spec) for centre, spec in case.rules["centres"].items()}
    return _rules_from(case.rules)


def event_ids(case: Case) -> dict[str, str]:
    """Tap label → event id (UUIDv7 text)."""
    return {label: event_uuid(label, local(at)) for label, _member, _centre, at in case.taps}


def build_taps(case: Case) -> list[Tap]:
    ids = event_ids(case)
    return [Tap(ids[label], member, centre, local(at)) for label, member, centre, at in case.taps]


def _key(case: Case, key: str | None) -> str | None:
    if key is None:
        return None
    return event_ids(case).get(key, key)


def _opt_time(text: str | None) -> datetime | None:
    return None if text is None else local(text)


def build_corrections(case: Case) -> list[Correction]:
    return [
        Correction(
            id=c["id"],
            action=c["action"],
            created_at=local(c["created"]),
            session_key=_key(case, c.get("key")),
            member_id=c.get("member"),
            centre_id=c.get("centre"),
            started_at=_opt_time(c.get("start")),
            ended_at=_opt_time(c.get("end")),
            minutes=c.get("minutes"),
        )
        for c in case.corrections
    ]


def build_now(case: Case) -> datetime:
    return local(case.now)


def expected_sessions(case: Case) -> tuple[Session, ...]:
    ids = event_ids(case)
    sessions = [
        Session(
            key=_key(case, s["key"]) or s["key"],
            member_id=s["member"],
            centre_id=s["centre"],
            check_in_event_id=None if s["in"] is None else ids[s["in"]],
            check_out_event_id=None if s["out"] is None else ids[s["out"]],
            started_at=local(s["start"]),
            ended_at=_opt_time(s["end"]),
            status=SessionStatus(s["status"]),
            credited_minutes=s["minutes"],
            reason=s["reason"],
            source=s["source"],
        )
        for s in case.expected_sessions
    ]
    return tuple(sorted(sessions, key=lambda s: (s.started_at, s.key)))


def expected_roles(case: Case) -> dict[str, TapRole]:
    ids = event_ids(case)
    return {ids[label]: TapRole(role) for label, role in case.expected_roles.items()}


def expected_ignored(case: Case) -> tuple[IgnoredCorrection, ...]:
    return tuple(
        IgnoredCorrection(cid, IgnoreReason(reason)) for cid, reason in sorted(case.expected_ignored)
    )


# ---- the table ---------------------------------------------------------------------------------------

D1 = "2024-03-05"  # the day after DAY
CLOSES_21 = {"closes_at": "21:00"}

CASES: list[Case] = [
    # -- toggle ---------------------------------------------------------------------------------------
    Case(
        "single_tap_stays_open",
        {},
        (("a1", 1, 1, "09:00"),),
        (),
        "10:00",
        (S("a1", "09:00", None, "open", 0),),
        {"a1": "in"},
    ),
    Case(
        "check_in_then_out_closed",
        {},
        (("a1", 1, 1, "09:00"), ("a2", 1, 1, "10:30")),
        (),
        "12:00",
        (S("a1", "09:00", "10:30", "closed", 90, out="a2"),),
        {"a1": "in", "a2": "out"},
    ),
    Case(
        "minutes_truncated_to_whole",
        {},
        (("a1", 1, 1, "09:00:00"), ("a2", 1, 1, "09:45:59")),
        (),
        "12:00",
        (S("a1", "09:00:00", "09:45:59", "closed", 45, out="a2"),),
        {"a1": "in", "a2": "out"},
    ),
    # -- debounce -------------------------------------------------------------------------------------
    Case(
        "debounce_duplicate_after_check_in",
        {},
        (("a1", 1, 1, "09:00:00"), ("a2", 1, 1, "09:00:30")),
        (),
        "09:10",
        (S("a1", "09:00:00", None, "open", 0),),
        {"a1": "in", "a2": "duplicate"},
    ),
    Case(
        "debounce_exact_boundary_toggles",
        {},
        (("a1", 1, 1, "09:00:00"), ("a2", 1, 1, "09:01:00")),
        (),
        "09:10",
        (S("a1", "09:00:00", "09:01:00", "closed", 1, out="a2"),),
        {"a1": "in", "a2": "out"},
    ),
    Case(
        "debounce_one_second_inside",
        {},
        (("a1", 1, 1, "09:00:00"), ("a2", 1, 1, "09:00:59")),
        (),
        "09:05",
        (S("a1", "09:00:00", None, "open", 0),),
        {"a1": "in", "a2": "duplicate"},
    ),
    Case(
        "duplicate_after_check_out",
        {},
        (("a1", 1, 1, "09:00"), ("a2", 1, 1, "10:00:00"), ("a3", 1, 1, "10:00:20")),
        (),
        "11:00",
        (S("a1", "09:00", "10:00:00", "closed", 60, out="a2"),),
        {"a1": "in", "a2": "out", "a3": "duplicate"},
    ),
    Case(
        "duplicate_does_not_extend_window",
        {},
        (("a1", 1, 1, "09:00:00"), ("a2", 1, 1, "09:00:40"), ("a3", 1, 1, "09:01:20")),
        (),
        "10:00",
        (S("a1", "09:00:00", "09:01:20", "closed", 1, out="a3"),),
        {"a1": "in", "a2": "duplicate", "a3": "out"},
    ),
    Case(
        "debounce_is_per_centre",
        {},
        (("a1", 1, 1, "09:00:00"), ("a2", 1, 2, "09:00:20")),
        (),
        "09:30",
        (
            S("a1", "09:00:00", "09:00:20", "needs_review", 0, reason="open_elsewhere"),
            S("a2", "09:00:20", None, "open", 0, centre=2),
        ),
        {"a1": "in", "a2": "in"},
    ),
    Case(
        "zero_debounce_never_duplicates",
        {"debounce_s": 0},
        (("a1", 1, 1, "09:00:00"), ("a2", 1, 1, "09:00:00"), ("a3", 1, 1, "09:00:01")),
        (),
        "09:30",
        (
            S("a1", "09:00:00", "09:00:00", "closed", 0, out="a2"),
            S("a3", "09:00:01", None, "open", 0),
        ),
        {"a1": "in", "a2": "out", "a3": "in"},
    ),
    # -- max length -----------------------------------------------------------------------------------
    Case(
        "check_out_at_max_length_exactly",
        {},
        (("a1", 1, 1, "09:00"), ("a2", 1, 1, "21:00")),
        (),
        "22:00",
        (S("a1", "09:00", "21:00", "closed", 720, out="a2"),),
        {"a1": "in", "a2": "out"},
    ),
    Case(
        "tap_after_max_length_auto_closes_and_opens",
        {},
        (("a1", 1, 1, "08:00"), ("a2", 1, 1, "20:00:01")),
        (),
        "20:30",
        (
            S("a1", "08:00", "20:00", "auto_closed", 0, reason="max_length"),
            S("a2", "20:00:01", None, "open", 0),
        ),
        {"a1": "in", "a2": "in"},
    ),
    Case(
        "open_past_max_length_at_now",
        {},
        (("a1", 1, 1, "08:00"),),
        (),
        f"{D1} 08:00",
        (S("a1", "08:00", "20:00", "auto_closed", 0, reason="max_length"),),
        {"a1": "in"},
    ),
    Case(
        "open_exactly_at_limit_at_now_stays_open",
        {},
        (("a1", 1, 1, "08:00"),),
        (),
        "20:00",
        (S("a1", "08:00", None, "open", 0),),
        {"a1": "in"},
    ),
    Case(
        "short_max_length",
        {"max_length_h": 0.5},
        (("a1", 1, 1, "09:00"), ("a2", 1, 1, "09:30"), ("a3", 1, 1, "10:00"), ("a4", 1, 1, "10:31")),
        (),
        "10:40",
        (
            S("a1", "09:00", "09:30", "closed", 30, out="a2"),
            S("a3", "10:00", "10:30", "auto_closed", 0, reason="max_length"),
            S("a4", "10:31", None, "open", 0),
        ),
        {"a1": "in", "a2": "out", "a3": "in", "a4": "in"},
    ),
    # -- closing time ---------------------------------------------------------------------------------
    Case(
        "closing_time_check_out_before",
        CLOSES_21,
        (("a1", 1, 1, "18:00"), ("a2", 1, 1, "20:59")),
        (),
        "22:00",
        (S("a1", "18:00", "20:59", "closed", 179, out="a2"),),
        {"a1": "in", "a2": "out"},
    ),
    Case(
        "closing_time_check_out_exactly_at_closing",
        CLOSES_21,
        (("a1", 1, 1, "18:00"), ("a2", 1, 1, "21:00")),
        (),
        "22:00",
        (S("a1", "18:00", "21:00", "closed", 180, out="a2"),),
        {"a1": "in", "a2": "out"},
    ),
    Case(
        "closing_time_tap_after_closing",
        CLOSES_21,
        (("a1", 1, 1, "18:00"), ("a2", 1, 1, "21:30")),
        (),
        "22:00",
        (
            S("a1", "18:00", "21:00", "auto_closed", 0, reason="closing_time"),
            S("a2", "21:30", None, "open", 0),
        ),
        {"a1": "in", "a2": "in"},
    ),
    Case(
        "closing_time_passed_at_now",
        CLOSES_21,
        (("a1", 1, 1, "18:00"),),
        (),
        "23:00",
        (S("a1", "18:00", "21:00", "auto_closed", 0, reason="closing_time"),),
        {"a1": "in"},
    ),
    Case(
        "max_length_earlier_than_closing_time",
        CLOSES_21,
        (("a1", 1, 1, "08:00"),),
        (),
        "22:00",
        (S("a1", "08:00", "20:00", "auto_closed", 0, reason="max_length"),),
        {"a1": "in"},
    ),
    Case(
        "closing_and_max_length_same_instant_reason_closing_time",
        {"closes_at": "21:00", "max_length_h": 3},
        (("a1", 1, 1, "18:00"),),
        (),
        "21:01",
        (S("a1", "18:00", "21:00", "auto_closed", 0, reason="closing_time"),),
        {"a1": "in"},
    ),
    Case(
        "check_in_after_closing_runs_to_next_limit",
        CLOSES_21,
        (("a1", 1, 1, "22:00"), ("a2", 1, 1, f"{D1} 08:00")),
        (),
        f"{D1} 09:00",
        (S("a1", "22:00", f"{D1} 08:00", "closed", 600, out="a2"),),
        {"a1": "in", "a2": "out"},
    ),
    # -- midnight -------------------------------------------------------------------------------------
    Case(
        "midnight_crossing_kept_whole",
        {},
        (("a1", 1, 1, "22:00"), ("a2", 1, 1, f"{D1} 01:30")),
        (),
        f"{D1} 02:00",
        (S("a1", "22:00", f"{D1} 01:30", "closed", 210, out="a2"),),
        {"a1": "in", "a2": "out"},
    ),
    Case(
        "closing_time_after_midnight",
        {"closes_at": "02:00"},
        (("a1", 1, 1, "22:00"), ("a2", 1, 1, f"{D1} 02:30")),
        (),
        f"{D1} 03:00",
        (
            S("a1", "22:00", f"{D1} 02:00", "auto_closed", 0, reason="closing_time"),
            S("a2", f"{D1} 02:30", None, "open", 0),
        ),
        {"a1": "in", "a2": "in"},
    ),
    Case(
        # Europe moved its clocks at 01:00 UTC on 2024-03-31; Shanghai has no DST, so 10 h stay 600 min.
        "dst_free_zone_across_european_switch",
        {"closes_at": "06:00"},
        (("a1", 1, 1, "2024-03-30 20:00"), ("a2", 1, 1, "2024-03-31 06:00")),
        (),
        "2024-03-31 07:00",
        (S("a1", "2024-03-30 20:00", "2024-03-31 06:00", "closed", 600, out="a2"),),
        {"a1": "in", "a2": "out"},
    ),
    # -- open elsewhere -------------------------------------------------------------------------------
    Case(
        "open_elsewhere_needs_review",
        {},
        (("a1", 1, 1, "09:00"), ("a2", 1, 2, "10:00")),
        (),
        "10:30",
        (
            S("a1", "09:00", "10:00", "needs_review", 0, reason="open_elsewhere"),
            S("a2", "10:00", None, "open", 0, centre=2),
        ),
        {"a1": "in", "a2": "in"},
    ),
    Case(
        "open_elsewhere_then_back",
        {},
        (("a1", 1, 1, "09:00"), ("a2", 1, 2, "10:00"), ("a3", 1, 1, "11:00"), ("a4", 1, 1, "12:00")),
        (),
        "13:00",
        (
            S("a1", "09:00", "10:00", "needs_review", 0, reason="open_elsewhere"),
            S("a2", "10:00", "11:00", "needs_review", 0, centre=2, reason="open_elsewhere"),
            S("a3", "11:00", "12:00", "closed", 60, out="a4"),
        ),
        {"a1": "in", "a2": "in", "a3": "in", "a4": "out"},
    ),
    Case(
        "open_elsewhere_after_limit_is_auto_closed",
        {},
        (("a1", 1, 1, "08:00"), ("a2", 1, 2, f"{D1} 09:00")),
        (),
        f"{D1} 09:30",
        (
            S("a1", "08:00", "20:00", "auto_closed", 0, reason="max_length"),
            S("a2", f"{D1} 09:00", None, "open", 0, centre=2),
        ),
        {"a1": "in", "a2": "in"},
    ),
    # -- several members, equal clocks ----------------------------------------------------------------
    Case(
        "two_members_interleaved",
        {},
        (
            ("a1", 1, 1, "09:00:00"),
            ("b1", 2, 1, "09:00:10"),
            ("a2", 1, 1, "09:30:00"),
            ("b2", 2, 1, "09:45:00"),
        ),
        (),
        "10:00",
        (
            S("a1", "09:00:00", "09:30:00", "closed", 30, out="a2"),
            S("b1", "09:00:10", "09:45:00", "closed", 44, member=2, out="b2"),
        ),
        {"a1": "in", "b1": "in", "a2": "out", "b2": "out"},
    ),
    Case(
        "equal_times_ordered_by_event_id",
        {},
        (("a1", 1, 1, "09:00"), ("a2", 1, 2, "09:00")),
        (),
        "09:30",
        (
            S("a1", "09:00", "09:00", "needs_review", 0, reason="open_elsewhere"),
            S("a2", "09:00", None, "open", 0, centre=2),
        ),
        {"a1": "in", "a2": "in"},
    ),
    Case(
        "equal_times_ordered_by_event_id_reversed_centres",
        {},
        (("a1", 1, 2, "09:00"), ("a2", 1, 1, "09:00")),
        (),
        "09:30",
        (
            S("a1", "09:00", "09:00", "needs_review", 0, centre=2, reason="open_elsewhere"),
            S("a2", "09:00", None, "open", 0),
        ),
        {"a1": "in", "a2": "in"},
    ),
    Case(
        "equal_times_same_centre_second_is_duplicate",
        {},
        (("a2", 1, 1, "09:00"), ("a1", 1, 1, "09:00")),
        (),
        "09:30",
        (S("a1", "09:00", None, "open", 0),),
        {"a1": "in", "a2": "duplicate"},
    ),
    Case(
        "per_centre_rules",
        {"centres": {1: {"closes_at": "21:00"}, 2: {"debounce_s": 120}}},
        (
            ("a1", 1, 2, "20:00:00"),
            ("a2", 1, 2, "20:01:30"),
            ("a3", 1, 2, "22:00:00"),
            ("b1", 2, 1, "20:00:00"),
            ("b2", 2, 1, "22:00:00"),
            ("c1", 3, 3, "20:00:00"),
            ("c2", 3, 3, "20:00:50"),
        ),
        (),
        "22:30",
        (
            S("a1", "20:00:00", "22:00:00", "closed", 120, centre=2, out="a3"),
            S("b1", "20:00:00", "21:00", "auto_closed", 0, member=2, reason="closing_time"),
            S("b2", "22:00:00", None, "open", 0, member=2),
            S("c1", "20:00:00", None, "open", 0, member=3, centre=3),
        ),
        {"a1": "in", "a2": "duplicate", "a3": "out", "b1": "in", "b2": "in", "c1": "in", "c2": "duplicate"},
    ),
    # -- corrections ----------------------------------------------------------------------------------
    Case(
        "approve_needs_review_session",
        {},
        (("a1", 1, 1, "09:00"), ("a2", 1, 2, "10:00"), ("a3", 1, 2, "11:00")),
        ({"id": 1, "action": "approve", "created": "12:00", "key": "a1"},),
        "13:00",
        (
            S("a1", "09:00", "10:00", "approved", 60, reason="open_elsewhere"),
            S("a2", "10:00", "11:00", "closed", 60, centre=2, out="a3"),
        ),
        {"a1": "in", "a2": "in", "a3": "out"},
    ),
    Case(
        "approve_closed_session",
        {},
        (("a1", 1, 1, "09:00"), ("a2", 1, 1, "10:15")),
        ({"id": 1, "action": "approve", "created": "11:00", "key": "a1"},),
        "12:00",
        (S("a1", "09:00", "10:15", "approved", 75, out="a2"),),
        {"a1": "in", "a2": "out"},
    ),
    Case(
        "adjust_auto_closed_session",
        CLOSES_21,
        (("a1", 1, 1, "18:00"),),
        ({"id": 1, "action": "adjust", "created": f"{D1} 09:00", "key": "a1", "end": "20:00"},),
        "23:00",
        (S("a1", "18:00", "20:00", "adjusted", 120, reason="closing_time"),),
        {"a1": "in"},
    ),
    Case(
        "adjust_with_explicit_minutes",
        {},
        (("a1", 1, 1, "09:00"), ("a2", 1, 1, "12:00")),
        (
            {
                "id": 4,
                "action": "adjust",
                "created": "13:00",
                "key": "a1",
                "start": "09:30",
                "end": "11:30",
                "minutes": 100,
            },
        ),
        "14:00",
        (S("a1", "09:30", "11:30", "adjusted", 100, out="a2"),),
        {"a1": "in", "a2": "out"},
    ),
    Case(
        "reject_session",
        {},
        (("a1", 1, 1, "09:00"), ("a2", 1, 1, "10:00")),
        ({"id": 1, "action": "reject", "created": "11:00", "key": "a1"},),
        "12:00",
        (S("a1", "09:00", "10:00", "rejected", 0, out="a2"),),
        {"a1": "in", "a2": "out"},
    ),
    Case(
        "reject_open_session_keeps_tap_roles",
        {},
        (("a1", 1, 1, "09:00"), ("a2", 1, 1, "10:30")),
        ({"id": 1, "action": "reject", "created": "09:30", "key": "a1"},),
        "11:00",
        (S("a1", "09:00", "10:30", "rejected", 0, out="a2"),),
        {"a1": "in", "a2": "out"},
    ),
    Case(
        "manual_entries",
        {},
        (("a1", 1, 1, "09:00"), ("a2", 1, 1, "10:00")),
        (
            M(7, "18:00", 1, 1, "14:00", "16:00"),
            M(8, "18:00", 2, 2, "13:00", "15:00", minutes=90),
        ),
        "19:00",
        (
            S("a1", "09:00", "10:00", "closed", 60, out="a2"),
            S("manual:7", "14:00", "16:00", "approved", 120),
            S("manual:8", "13:00", "15:00", "approved", 90, member=2, centre=2),
        ),
        {"a1": "in", "a2": "out"},
    ),
    Case(
        "manual_touching_session_is_not_overlap",
        {},
        (("a1", 1, 1, "09:00"), ("a2", 1, 1, "10:00")),
        (M(1, "12:00", 1, 1, "10:00", "11:00"),),
        "12:00",
        (
            S("a1", "09:00", "10:00", "closed", 60, out="a2"),
            S("manual:1", "10:00", "11:00", "approved", 60),
        ),
        {"a1": "in", "a2": "out"},
    ),
    Case(
        "corrections_on_manual_session",
        {},
        (),
        (
            M(1, "17:00", 1, 1, "14:00", "16:00"),
            {"id": 2, "action": "reject", "created": "18:00", "key": "manual:1"},
        ),
        "19:00",
        (S("manual:1", "14:00", "16:00", "rejected", 0),),
        {},
    ),
    Case(
        # Ordered by created_at, not id: 3 (approve) → 1 (reject) → 2 (adjust); adjust wins.
        "latest_valid_correction_wins",
        {},
        (("a1", 1, 1, "09:00"), ("a2", 1, 1, "11:00")),
        (
            {"id": 3, "action": "approve", "created": "12:00", "key": "a1"},
            {"id": 1, "action": "reject", "created": "13:00", "key": "a1"},
            {"id": 2, "action": "adjust", "created": "14:00", "key": "a1", "end": "10:00"},
        ),
        "15:00",
        (S("a1", "09:00", "10:00", "adjusted", 60, out="a2"),),
        {"a1": "in", "a2": "out"},
    ),
    Case(
        "reject_then_approve_restores_credit",
        {},
        (("a1", 1, 1, "09:00"), ("a2", 1, 1, "11:00")),
        (
            {"id": 1, "action": "reject", "created": "12:00", "key": "a1"},
            {"id": 2, "action": "approve", "created": "13:00", "key": "a1"},
        ),
        "15:00",
        (S("a1", "09:00", "11:00", "approved", 120, out="a2"),),
        {"a1": "in", "a2": "out"},
    ),
    Case(
        "invalid_later_correction_keeps_earlier",
        {},
        (("a1", 1, 1, "09:00"), ("a2", 1, 1, "11:00")),
        (
            {"id": 1, "action": "approve", "created": "12:00", "key": "a1"},
            {"id": 2, "action": "adjust", "created": "13:00", "key": "a1", "end": "08:00"},
        ),
        "15:00",
        (S("a1", "09:00", "11:00", "approved", 120, out="a2"),),
        {"a1": "in", "a2": "out"},
        ((2, "invalid_times"),),
    ),
    Case(
        "adjust_into_overlap_ignored_until_other_rejected",
        {},
        (("a1", 1, 1, "09:00"), ("a2", 1, 1, "10:00"), ("a3", 1, 1, "11:00"), ("a4", 1, 1, "12:00")),
        (
            {"id": 1, "action": "adjust", "created": "13:00", "key": "a3", "start": "09:30"},
            {"id": 2, "action": "reject", "created": "14:00", "key": "a1"},
            {"id": 3, "action": "adjust", "created": "15:00", "key": "a3", "start": "09:30"},
        ),
        "16:00",
        (
            S("a1", "09:00", "10:00", "rejected", 0, out="a2"),
            S("a3", "09:30", "12:00", "adjusted", 150, out="a4"),
        ),
        {"a1": "in", "a2": "out", "a3": "in", "a4": "out"},
        ((1, "overlap"),),
    ),
    Case(
        "invalid_corrections_are_ignored",
        {},
        (
            ("a1", 1, 1, "09:00"),
            ("a2", 1, 1, "10:00"),
            ("a3", 1, 1, "12:00"),
            ("b1", 2, 1, "2024-03-03 08:00"),
        ),
        (
            {"id": 1, "action": "approve", "created": "12:30", "key": "a3"},
            {"id": 2, "action": "approve", "created": "12:00", "key": "b1"},
            {"id": 3, "action": "approve", "created": "12:00", "key": "no-such-session"},
            {"id": 4, "action": "approve", "created": "09:30", "key": "a1"},
            {"id": 5, "action": "adjust", "created": "11:00", "key": "a1", "minutes": 61},
            {"id": 6, "action": "adjust", "created": "11:00", "key": "a1", "start": "10:00", "end": "09:00"},
            M(7, "11:00", 1, 1, "09:30", "10:30"),
            M(9, "11:00", 1, 1, "07:00", "08:00", key="a1"),
            {"id": 10, "action": "approve", "created": "11:00"},
            M(13, "12:50", 1, 1, "12:30", "12:45"),
            {"id": 14, "action": "adjust", "created": "11:00", "key": "a3", "minutes": 10},
        ),
        "13:00",
        (
            S("b1", "2024-03-03 08:00", "2024-03-03 20:00", "auto_closed", 0, member=2, reason="max_length"),
            S("a1", "09:00", "10:00", "closed", 60, out="a2"),
            S("a3", "12:00", None, "open", 0),
        ),
        {"a1": "in", "a2": "out", "a3": "in", "b1": "in"},
        (
            (1, "session_open"),
            (2, "no_observed_end"),
            (3, "unknown_session"),
            (4, "made_before_session_ended"),
            (5, "invalid_minutes"),
            (6, "invalid_times"),
            (7, "overlap"),
            (9, "manual_with_session_key"),
            (10, "missing_session_key"),
            (13, "overlap"),
            (14, "invalid_times"),
        ),
    ),
    Case(
        "corrections_the_database_would_refuse_are_ignored",
        {},
        (("a1", 1, 1, "09:00"), ("a2", 1, 1, "10:00")),
        (
            {"id": 8, "action": "manual", "created": "11:00", "centre": 1, "start": "07:00", "end": "08:00"},
            {"id": 11, "action": "delete", "created": "11:00", "key": "a1"},
            {"id": 12, "action": "adjust", "created": "11:00", "key": "a1", "minutes": -5},
        ),
        "12:00",
        (S("a1", "09:00", "10:00", "closed", 60, out="a2"),),
        {"a1": "in", "a2": "out"},
        ((8, "missing_member_or_centre"), (11, "unknown_action"), (12, "invalid_minutes")),
        engine_only=True,
    ),
    Case(
        "conflicting_correction_ids_ignored",
        {},
        (("a1", 1, 1, "09:00"), ("a2", 1, 1, "10:00")),
        (
            {"id": 1, "action": "approve", "created": "11:00", "key": "a1"},
            {"id": 1, "action": "reject", "created": "11:00", "key": "a1"},
            {"id": 2, "action": "reject", "created": "12:00", "key": "a1"},
            {"id": 2, "action": "reject", "created": "12:00", "key": "a1"},
        ),
        "13:00",
        (S("a1", "09:00", "10:00", "rejected", 0, out="a2"),),
        {"a1": "in", "a2": "out"},
        ((1, "duplicate_id"),),
        engine_only=True,
    ),
]
