"""The protocol version both sides speak.

Bump :data:`PROTOCOL_VERSION` only for a change an old peer would misread (a new required field, a
changed canonical string, a different chain rule). Adding an optional message field is not a bump:
the chain's canonical form omits absent optional fields precisely so that it stays stable.
"""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)

PROTOCOL_VERSION: int = 1

#: Sent on every kiosk request and every server response; a peer answering with another version is
#: told so in a typed error instead of failing on a field it does not know.
PROTOCOL_HEADER: str = "X-Baodao-Protocol"

#: URL prefix of the kiosk API for this protocol version.
API_PREFIX: str = f"/api/v{PROTOCOL_VERSION}/kiosk"
