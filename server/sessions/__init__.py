"""Service sessions: the pure engine that turns TapEvents and Corrections into credited sessions.

``compute_sessions`` is the one entry point; see ``engine.py`` for the tap rules and ``corrections.py``
for how staff decisions are replayed. Nothing here touches the database.
"""

from __future__ import annotations

from protocol.sessionrules import DEFAULT_RULES, SHANGHAI, CentreRules, CloseReason
from protocol.sessionrules import Role as TapRole

from .corrections import Correction, IgnoredCorrection, IgnoreReason
from .engine import EngineResult, compute_sessions
from .rules import Session, SessionStatus, Tap

__all__ = [
    "DEFAULT_RULES",
    "SHANGHAI",
    "CentreRules",
    "CloseReason",
    "Correction",
    "EngineResult",
    "IgnoreReason",
    "IgnoredCorrection",
    "Session",
    "SessionStatus",
    "Tap",
    "TapRole",
    "compute_sessions",
]
