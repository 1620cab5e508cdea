"""Where an incremental session recomputation may restart: the member's *quiet points*.

The engine (:mod:`server.sessions.engine`) carries two pieces of state from tap to tap: the open session
and the last toggle time per centre. Both are forgotten across a gap between consecutive taps longer than
``quiet_gap = max(max_length) + max(debounce)`` over all centres: any session open before the gap has
passed its limit (``started_at + max_length`` at the latest) before the next tap, so the next tap
auto-closes it at the limit, and no earlier toggle is within any centre's debounce window. A tap after
such a gap is a quiet point: running the engine from it with empty state gives exactly the sessions the
whole-history run gives for every tap from there on.

One quiet point is not enough to *replace* stored sessions, though: the last session before it ends
either at its limit (when the quiet point's tap exists) or by ``now`` (open, or auto-closed) — so that
session is recomputed too, by restarting at the quiet point *before* the one preceding the first new tap.
Sessions keyed before that restart were computed when their successor tap already existed and no longer
depend on ``now`` or on later taps. ``tests/unit/server/test_session_window.py`` checks this against
whole-history recomputation with hypothesis.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from protocol.sessionrules import DEFAULT_RULES, CentreRules

from .rules import Tap

logger = logging.getLogger(__name__)


def quiet_gap(rules: Iterable[CentreRules]) -> timedelta:
    """The gap after which nothing of the engine's state survives, for every centre in ``rules``."""
    all_rules = [DEFAULT_RULES, *rules]
    return max(r.max_length for r in all_rules) + max(r.debounce for r in all_rules)


def restart_index(taps: Sequence[Tap], since: datetime, gap: timedelta) -> int | None:
    """Index in ``taps`` (one member, sorted by ``(at, event_id)``, a suffix of the history starting
    anywhere) from which the engine may be rerun to replace stored sessions, given that every tap not
    already reflected in those sessions is at or after ``since``.

    ``None`` when ``taps`` does not reach back two quiet points before ``since``: the caller must then
    load more history (or all of it). Index 0 is never trusted as a quiet point, because the tap before
    it may simply not have been loaded.
    """
    first_new = next((i for i, t in enumerate(taps) if t.at >= since), len(taps))
    quiet = [i for i in range(1, min(first_new, len(taps) - 1) + 1) if taps[i].at - taps[i - 1].at > gap]
    if len(quiet) < 2:
        return None
    return quiet[-2]
