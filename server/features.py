"""The list of feature blueprints the app factory registers, one ``register(app)`` callable each.

Kept in one place so adding a feature is one line here, and so the app factory stays small.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask

from server.api import register as register_kiosk_api
from server.qr import register as register_qr_phone
from server.web import register as register_staff_web

FEATURES: list[Callable[[Flask], None]] = [register_kiosk_api, register_staff_web, register_qr_phone]
