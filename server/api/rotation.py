"""``POST /api/v1/kiosk/rotate-key``: the kiosk trades its signing secret for a new one, signed with it.

Why an overlap, and why it starts only once the new secret is used: the answer carrying the new secret
can be lost (the kiosk killed, the connection cut after our commit). If the old secret died with the
rotation, such a kiosk would be locked out for good. So the old secret stays valid until the kiosk signs
a request with the new one (which proves it stored it) and for a short overlap after that
(:func:`server.api.auth.secret_overlap`), so a request another kiosk thread signed just before the switch
still verifies; an unconfirmed rotation keeps the old secret at most :data:`UNCONFIRMED_MAX`.

A rotation requested with the *previous* secret (the kiosk retrying after a lost answer) replaces the
unconfirmed new secret; once the new secret has been used, the previous one can no longer rotate — that
would let someone holding a leaked old secret take the kiosk over.

An admin queues the ``rotate_key`` command (delivered by heartbeat); the kiosk answers it by calling this
endpoint with the command's id, which lands in the audit record.
"""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta

from flask import current_app, request

from protocol.messages.bindings import KeyRotationRequest, KeyRotationResponse
from server.db import get_db
from server.models import AuditRecord

from . import auth as kiosk_auth
from . import bp
from .errors import ApiError, parse_body

logger = logging.getLogger(__name__)
audit_log = logging.getLogger("baodao.audit")

#: Longest an old secret survives a rotation the kiosk never confirmed by using the new secret.
UNCONFIRMED_MAX = timedelta(days=7)


@bp.post("/kiosk/rotate-key")
def rotate_key():  # type: ignore[no-untyped-def]
    db = get_db(current_app).session
    assert db is not None
    auth = kiosk_auth.authenticate(db)
    kiosk = auth.kiosk
    try:
        body = KeyRotationRequest() if not request.get_data(cache=True) else parse_body(KeyRotationRequest)
        if auth.used_previous_secret and kiosk.secret_confirmed_at is not None:
            raise ApiError(
                401,
                "superseded_secret",
                "this secret was replaced; sign with the new one",
                "该密钥已被替换,请使用新密钥签名",
            )
    except ApiError:
        db.rollback()  # nothing of a refused request stays, its nonce included
        raise
    now = kiosk_auth._now()  # the same clock the signature check used (tests shift it)
    new_secret = secrets.token_hex(32)
    if not auth.used_previous_secret:
        # A fresh rotation: the current secret becomes the previous one.
        kiosk.previous_secret = kiosk.secret
        kiosk.previous_secret_until = now + UNCONFIRMED_MAX
    # else: a retry after a lost answer — the old secret stays the previous one, with its original limit.
    kiosk.secret = new_secret
    kiosk.secret_rotated_at = now
    kiosk.secret_confirmed_at = None
    assert kiosk.previous_secret_until is not None
    db.add(
        AuditRecord(
            at=now,
            user_id=None,
            action="kiosk_secret_rotated",
            object_type="kiosk",
            object_id=kiosk.kiosk_uid,
            community_id=kiosk.community_id,
            before=None,  # never a secret in the audit trail
            after={
                "command_id": None if body.command_id is None else str(body.command_id),
                "retry_after_lost_answer": auth.used_previous_secret,
                "previous_secret_valid_until": kiosk.previous_secret_until.isoformat(),
            },
            reason="rotate_key command" if body.command_id is not None else "requested by the kiosk",
        )
    )
    response = KeyRotationResponse(
        kiosk_id=kiosk.kiosk_uid,
        kiosk_secret=new_secret,
        previous_secret_valid_until=kiosk.previous_secret_until,
        overlap_s=int(kiosk_auth.secret_overlap().total_seconds()),
        server_time=now,
    )
    db.commit()
    audit_log.info("kiosk %s rotated its secret", kiosk.kiosk_uid)
    return current_app.response_class(response.to_json_bytes(), status=200, mimetype="application/json")
