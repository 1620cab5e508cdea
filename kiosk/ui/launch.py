"""``python -m kiosk.ui.launch --config FILE``: ``baodao kiosk --config FILE`` with the touch screen attached.

Why this exists: :func:`kiosk.app.create_app` builds the service API; the screen is this package's
blueprint. Until ``create_app`` calls :func:`kiosk.ui.register_ui` itself, the browser tests and
``bench.screen_latency`` start the kiosk through here — the same CLI, config loading, service and web
server as ``baodao kiosk``, with only the blueprint added. Once ``create_app`` registers the UI,
``register_ui`` is a no-op and this is exactly ``baodao kiosk``.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

logger = logging.getLogger(__name__)


def install() -> None:
    """Wrap ``kiosk.app.create_app`` so every app it builds carries the touch screen."""
    import kiosk.app
    from kiosk.ui import register_ui

    original = kiosk.app.create_app
    if getattr(original, "_with_ui", False):
        return

    def create_app(service: Any) -> Any:
        return register_ui(original(service))

    create_app._with_ui = True  # type: ignore[attr-defined]
    kiosk.app.create_app = create_app  # type: ignore[assignment]


def main(argv: list[str] | None = None) -> None:
    """Entry point: logging as ``baodao`` sets it up by default, then the ``baodao kiosk`` click group."""
    from kiosk.cli import kiosk

    logging.basicConfig(
        level=os.environ.get("BAODAO_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    install()
    kiosk.main(args=sys.argv[1:] if argv is None else argv, prog_name="baodao kiosk")


if __name__ == "__main__":
    main()
