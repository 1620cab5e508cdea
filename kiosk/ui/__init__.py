"""The kiosk's touch screen: a Flask blueprint (page, CSS, JS, sounds) on top of :mod:`kiosk.app`.

``register_ui(app)`` attaches it to the app that :func:`kiosk.app.create_app` builds.
"""

from kiosk.ui.views import bp, register_ui

__all__ = ["bp", "register_ui"]
