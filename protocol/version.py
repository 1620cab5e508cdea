"""The protocol version both sides speak.

Bump :data:`PROTOCOL_VERSION` only for a change an old peer would misread (a new required field, a
changed canonical string, a different chain rule) or *refuse*: every message is closed (unknown fields
are rejected, :mod:`protocol.messages.common`), so a field an old peer does not know may be sent to it
only once it said it reads it. Adding an optional field to what the kiosk sends is not a bump as long
as the server is upgraded first; the chain's canonical form omits absent optional fields so it stays
stable.

History:

* **1** — the first protocol.
* **2** — the heartbeat's roster delta carries ``presence`` (which roster members have a session open
  where, :class:`protocol.messages.heartbeat.Presence`). A kiosk announces the version it speaks in
  ``HealthReport.protocol_version``; the server sends ``presence`` only to kiosks that speak 2 or later,
  and still serves version-1 kiosks (:data:`MIN_PROTOCOL_VERSION`). Nothing else changed, so the URLs
  stay under ``/api/v1``.
"""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)

PROTOCOL_VERSION: int = 2

#: The oldest version the server still serves (enrolment accepts it; heartbeats leave out what it lacks).
MIN_PROTOCOL_VERSION: int = 1

#: The first version whose kiosks read ``RosterDelta.presence``.
PRESENCE_SINCE: int = 2

#: Sent on every kiosk request and every server response; a peer answering with another version is
#: told so in a typed error instead of failing on a field it does not know.
PROTOCOL_HEADER: str = "X-Baodao-Protocol"

#: URL prefix of the kiosk API. The path names the API's layout, which has not changed since version 1.
API_PREFIX: str = "/api/v1/kiosk"
