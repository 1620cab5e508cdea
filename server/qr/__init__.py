"""QR credentials on the server: signing keys, badges, roster material, replay detection, and
the member's phone page under ``/m/``.

Entry points for other parts of the server:

* ``phone.register(app)`` — the phone page blueprint (called by ``server.create_app``);
* :func:`server.qr.roster.qr_roster_material` — public keys and revoked badges for the heartbeat;
* :func:`server.qr.replay.flag_qr_replays` — called by the ingest before it inserts a batch;
* :mod:`server.qr.badges` / :mod:`server.qr.keys` — issue, revoke, rotate (for admin views and the CLI).
"""

from __future__ import annotations

from .phone import register

__all__ = ["register"]
