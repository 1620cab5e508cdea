"""Stored kiosk chains with known defects, for the chain-verification tests (CLI and fleet page).

Events go in through the real kiosk API (signed uploads), so the rows are exactly what ingest stores;
defects a kiosk cannot cause (an edited or deleted row) are made the way someone with database access
would: with the append-only trigger of ``tap_events`` switched off for one statement.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from server.models import Kiosk
from tests.factories import make_centre, make_kiosk, make_wire_events, signed_headers

EVENTS_PATH = "/api/v1/kiosk/events"
#: A member id the server does not know: stored as NULL plus the ``unknown_member:ID`` flag.
UNKNOWN_MEMBER = 987654


@dataclass
class ChainCases:
    intact: Kiosk  # 6 events, all stored as sent
    gapped_edited: Kiosk  # seq 1–3 and 6–8 sent (4–5 never arrived); seq 7 edited afterwards
    deleted: Kiosk  # 5 events sent; seq 3 deleted afterwards


def upload(client: Any, kiosk: Kiosk, events: list[dict[str, Any]]) -> None:
    body = json.dumps({"events": events}).encode()
    response = client.post(EVENTS_PATH, data=body, headers=signed_headers(kiosk, "POST", EVENTS_PATH, body))
    assert response.status_code == 200, response.get_data(as_text=True)


def tamper(engine: sa.Engine, statement: str, params: dict[str, Any]) -> None:
    """Run one UPDATE/DELETE on ``tap_events`` past its append-only trigger, then restore the trigger."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("ALTER TABLE tap_events DISABLE TRIGGER tap_events_append_only")
            conn.execute(sa.text(statement), params)
            conn.exec_driver_sql("ALTER TABLE tap_events ENABLE TRIGGER tap_events_append_only")
            return
        from server.migrations.append_only import install_append_only_triggers

        conn.exec_driver_sql("DROP TRIGGER tap_events_no_update")
        conn.exec_driver_sql("DROP TRIGGER tap_events_no_delete")
        conn.execute(sa.text(statement), params)
        install_append_only_triggers(conn, ["tap_events"])


def build_chain_cases(client: Any, db: Session) -> ChainCases:
    centre = make_centre(db, closes_at=None)
    intact, gapped, deleted = (make_kiosk(db, centre) for _ in range(3))
    db.commit()
    upload(client, intact, make_wire_events(6, member_id=UNKNOWN_MEMBER))
    events = make_wire_events(8)
    upload(client, gapped, events[:3])
    upload(client, gapped, events[5:])
    upload(client, deleted, make_wire_events(5))
    engine = db.get_bind()
    assert isinstance(engine, sa.Engine)
    tamper(  # someone re-points the tap at another card
        engine,
        "UPDATE tap_events SET credential_hash = :h WHERE kiosk_id = :k AND seq = 7",
        {"k": gapped.id, "h": "ab" * 32},
    )
    tamper(engine, "DELETE FROM tap_events WHERE kiosk_id = :k AND seq = 3", {"k": deleted.id})
    for kiosk in (intact, gapped, deleted):
        db.refresh(kiosk)  # what ingest wrote (chain head), loaded for use after the session closes
    return ChainCases(intact, gapped, deleted)
