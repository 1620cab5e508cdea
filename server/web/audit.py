"""The audit trail of the staff app: one append-only ``AuditRecord`` per change a person makes.

Every view that changes data calls :func:`record` in the same transaction as the change, so a change and
its record commit (or roll back) together. The database refuses UPDATE/DELETE on ``audit_records``. The
same facts go to the named ``baodao.audit`` logger for log shipping; values that must never be logged
(passwords, raw national ID numbers) must simply never be passed here.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping
from datetime import date, datetime, time
from typing import Any

from flask import g, has_request_context, request
from sqlalchemy.orm import Session

from server.models import AuditRecord

logger = logging.getLogger(__name__)
audit_logger = logging.getLogger("baodao.audit")


def jsonable(value: Any) -> Any:
    """Datetimes, UUIDs and nested containers as JSON-safe values for the before/after columns."""
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [jsonable(v) for v in value]
    return value


def snapshot(obj: Any, fields: Iterable[str]) -> dict[str, Any]:
    """The named attributes of a model object, JSON-safe: the "before" or "after" of a change."""
    return {name: jsonable(getattr(obj, name)) for name in fields}


def record(
    db: Session,
    *,
    action: str,
    object_type: str,
    object_id: object | None = None,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
    reason: str | None = None,
    community_id: int | None = None,
    user_id: int | None = None,
) -> AuditRecord:
    """Add one audit record (who = the signed-in user unless ``user_id`` is given) and log it."""
    if user_id is None and has_request_context() and g.get("user") is not None:
        user_id = g.user.id
    row = AuditRecord(
        user_id=user_id,
        action=action,
        object_type=object_type,
        object_id=None if object_id is None else str(object_id),
        community_id=community_id,
        before=jsonable(dict(before)) if before is not None else None,
        after=jsonable(dict(after)) if after is not None else None,
        reason=reason,
    )
    db.add(row)
    audit_logger.info(
        "%s %s %s",
        action,
        object_type,
        object_id,
        extra={
            "user_id": user_id,
            "object_type": object_type,
            "object_id": row.object_id,
            "remote": request.remote_addr if has_request_context() else None,
        },
    )
    return row
