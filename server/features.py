"""The list of feature blueprints the app factory registers, one ``register(app)`` callable each.

Kept in one place so adding a feature is one line here, and so the app factory stays small.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask

FEATURES: list[Callable[[Flask], None]] = []
