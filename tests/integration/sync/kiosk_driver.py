"""A real kiosk process for the sync fault tests, with an injectable clock.

Same as ``baodao kiosk --config F`` (service, sync agent, local web app with ``/sim/read``), plus
``--skew-s``: the kiosk's wall clock runs that many seconds off the real one — the "kiosk clock off by
hours" fault, caused through the service's clock parameter rather than by changing the machine's time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import signal
import threading
from typing import Any

from werkzeug.serving import make_server

from kiosk.app import create_app
from kiosk.config import load_config
from kiosk.service import KioskService

logger = logging.getLogger(__name__)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    parser.add_argument("--skew-s", type=float, default=0.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    config = load_config(args.config)
    skew = dt.timedelta(seconds=args.skew_s)
    service = KioskService(config, clock=lambda: dt.datetime.now(dt.UTC) + skew)
    service.start()
    server = make_server(config.ui_host, config.ui_port, create_app(service), threaded=True)
    server.daemon_threads = True  # type: ignore[attr-defined]

    def shutdown(signum: int, _frame: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, shutdown)
    try:
        server.serve_forever()
    finally:
        service.stop()


if __name__ == "__main__":
    main()
