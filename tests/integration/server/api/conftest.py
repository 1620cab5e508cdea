"""Fixtures for the kiosk API tests: one centre with a member, a card and an enrolled kiosk."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from server.models import Credential, Kiosk, Member, ServiceCentre
from tests.factories import make_card, make_centre, make_kiosk, make_member, make_unit, signed_headers


@dataclass
class World:
    centre: ServiceCentre
    member: Member
    card: Credential
    card_uid: str
    kiosk: Kiosk


@pytest.fixture
def world(db_session) -> World:  # type: ignore[no-untyped-def]
    centre = make_centre(db_session, closes_at=None)
    unit = make_unit(db_session)
    from server.models import Community

    community = db_session.get(Community, centre.community_id)
    member = make_member(db_session, unit=unit, community=community)
    card, uid = make_card(db_session, member)
    kiosk = make_kiosk(db_session, centre)
    db_session.commit()
    return World(centre, member, card, uid, kiosk)


class SignedClient:
    """Posts JSON to the kiosk API signed as a kiosk; ``sign`` overrides timestamp/nonce."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def post(self, kiosk: Kiosk, path: str, body: Any, **sign: Any) -> Any:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        return self.client.post(path, data=raw, headers=signed_headers(kiosk, "POST", path, raw, **sign))


@pytest.fixture
def signed(client) -> SignedClient:  # type: ignore[no-untyped-def]
    return SignedClient(client)


def health(**kw: Any) -> dict[str, Any]:
    return {
        "readers": [{"reader_id": "r1", "driver": "pcsc", "state": "ready"}],
        "outbox_depth": 0,
        "disk_free_bytes": 10**9,
        "software_version": "0.1.0",
        "config_version": 0,
        "applied_config_version": 0,
        **kw,
    }
