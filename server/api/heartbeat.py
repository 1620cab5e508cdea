"""``POST /api/v1/kiosk/heartbeat``: health in; desired config, roster delta and queued commands out.

The roster delta carries the roster members' presence (:mod:`server.presence`) to kiosks that announce
protocol 2 or later in their health report; a protocol-1 kiosk gets the delta without it.

Commands are delivered until their result comes back: a command is marked ``sent`` when it first rides
a heartbeat response and is sent again on later heartbeats until the kiosk reports a result (a lost
response must not lose a "lock screen"); the kiosk deduplicates by ``command_id``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from flask import current_app
from pydantic import ValidationError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from protocol.ids import uuid7
from protocol.messages import Command, HeartbeatRequest, HeartbeatResponse
from protocol.messages.heartbeat import MAX_COMMANDS
from protocol.version import PRESENCE_SINCE
from server.db import get_db
from server.models import Kiosk, KioskCommand, KioskConfig, KioskHeartbeat
from server.presence import presence_for
from server.roster import roster_delta

from . import bp
from .auth import authenticate_kiosk, purge_nonces
from .errors import ApiError, parse_body

logger = logging.getLogger(__name__)


def _record_results(db: Session, kiosk: Kiosk, body: HeartbeatRequest) -> None:
    for result in body.command_results:
        done = db.execute(
            update(KioskCommand)
            .where(
                KioskCommand.kiosk_id == kiosk.id,
                KioskCommand.command_uid == result.command_id,
                KioskCommand.status.in_(("queued", "sent")),
            )
            .values(
                status="done" if result.ok else "failed",
                completed_at=result.completed_at,
                result={"ok": result.ok, "detail": result.detail},
            )
        )
        if done.rowcount != 1:  # type: ignore[attr-defined]
            logger.info(
                "kiosk %s reported a result for unknown or finished command %s",
                kiosk.kiosk_uid,
                result.command_id,
            )


def _pending_commands(db: Session, kiosk: Kiosk, now: datetime) -> list[Command]:
    rows = db.scalars(
        select(KioskCommand)
        .where(KioskCommand.kiosk_id == kiosk.id, KioskCommand.status.in_(("queued", "sent")))
        .order_by(KioskCommand.id)
        .limit(MAX_COMMANDS)
    ).all()
    commands: list[Command] = []
    for row in rows:
        if row.command_uid is None:
            row.command_uid = uuid7()
        try:
            command = Command(
                command_id=row.command_uid, name=row.name, args=row.args or {}, issued_at=row.created_at
            )
        except ValidationError as exc:
            logger.warning("command %s for kiosk %s is not deliverable: %s", row.id, kiosk.kiosk_uid, exc)
            row.status, row.completed_at = "failed", now
            row.result = {"ok": False, "detail": "invalid arguments / 命令参数无效"}
            continue
        if row.status == "queued":
            row.status, row.sent_at = "sent", now
        commands.append(command)
    return commands


@bp.post("/kiosk/heartbeat")
def heartbeat():  # type: ignore[no-untyped-def]
    db = get_db(current_app).session
    assert db is not None
    kiosk = authenticate_kiosk(db)
    try:
        body = parse_body(HeartbeatRequest)
    except ApiError:
        db.rollback()  # the nonce is forgotten with the rest: nothing of a refused request stays
        raise
    now = datetime.now(UTC)
    health = body.health
    db.add(
        KioskHeartbeat(
            kiosk_id=kiosk.id,
            received_at=now,
            clock_offset_ms=health.clock_offset_ms,
            outbox_depth=min(health.outbox_depth, 2**31 - 1),
            oldest_unsynced_s=None
            if health.oldest_unsynced_age_s is None
            else int(min(health.oldest_unsynced_age_s, 2**31 - 1)),
            health=health.model_dump(mode="json"),
        )
    )
    kiosk.last_seen_at = now
    kiosk.clock_offset_ms = health.clock_offset_ms
    kiosk.software_version = health.software_version[:40]
    kiosk.applied_config_version = min(health.applied_config_version, 2**31 - 1)
    kiosk.health = health.model_dump(mode="json")
    _record_results(db, kiosk, body)
    config = None
    if kiosk.desired_config_version != health.applied_config_version:
        row = db.scalars(
            select(KioskConfig).where(
                KioskConfig.kiosk_id == kiosk.id, KioskConfig.version == kiosk.desired_config_version
            )
        ).one_or_none()
        config = None if row is None else row.body
    roster = roster_delta(db, kiosk, body.roster_cursor, now=now)
    if health.protocol_version >= PRESENCE_SINCE:  # an older kiosk's closed messages would refuse it
        roster = roster.model_copy(update={"presence": presence_for(db, kiosk, now=now)})
    response = HeartbeatResponse(
        server_time=now,
        desired_config_version=kiosk.desired_config_version,
        config=config,
        roster=roster,
        commands=_pending_commands(db, kiosk, now),
    )
    purge_nonces(db, int(current_app.config.get("SIGNATURE_MAX_SKEW_S", 300)))
    db.commit()
    if roster.presence is None:  # not even ``"presence": null`` for a kiosk that would refuse the field
        body = response.model_dump_json(exclude={"roster": {"presence"}}).encode()
    else:
        body = response.to_json_bytes()
    return current_app.response_class(body, status=200, mimetype="application/json")
