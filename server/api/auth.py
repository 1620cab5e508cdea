"""Authentication of signed kiosk requests: signature, clock skew, revocation, and single-use nonces.

:func:`protocol.signing.verify_request` proves the request came from the holder of the kiosk secret and
is recent; the nonce must additionally be unused. Nonces live in the ``used_nonces`` table — never in one
process's memory — so a request replayed to another gunicorn worker is refused too: the primary key
makes the second insert fail, whichever worker runs it. The nonce row is written in the request's own
transaction, so a request that fails later (validation, a crash) leaves nothing behind, and the kiosk's
retry carries a fresh nonce anyway.

The stored key is ``sha256(kiosk_uid:nonce)``: fixed length whatever nonce length the protocol allows, and
scoped to the kiosk so two kiosks can never collide.

A body shorter than its ``Content-Length`` (the network cut the upload; gunicorn hands the application
what arrived) is refused as ``incomplete_request`` *before* the signature is checked: checking what
arrived would fail and log a possible forgery for every network cut. Only a complete body whose
signature does not match is logged as ``bad_signature``.

After a key rotation (:mod:`.rotation`) a request may also verify with the kiosk's *previous* secret,
until ``previous_secret_until``; the first request signed with the new secret shortens that to the
overlap (:func:`secret_overlap`).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from flask import current_app, request
from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from werkzeug.exceptions import ClientDisconnected

from protocol.signing import (
    BadSignature,
    ClockSkew,
    SigningError,
    VerifiedRequest,
    parse_signature_headers,
    request_target,
    verify_request,
)
from server.models import Kiosk, UsedNonce

from .errors import ApiError

logger = logging.getLogger(__name__)
security_log = logging.getLogger("baodao.security")


def _now() -> datetime:
    return datetime.now(UTC)


def nonce_key(kiosk_uid: str, nonce: str) -> str:
    return hashlib.sha256(f"{kiosk_uid}:{nonce}".encode()).hexdigest()


@dataclass(frozen=True)
class KioskAuth:
    """The columns of the signing kiosk that authentication and ingest need — read with one Core
    ``SELECT`` instead of loading the ORM object (its identity map and attribute instrumentation were a
    fifth of an upload's time)."""

    id: int
    kiosk_uid: str
    centre_id: int
    community_id: int
    status: str
    secret: str
    previous_secret: str | None
    previous_secret_until: datetime | None
    secret_confirmed_at: datetime | None


@dataclass(frozen=True)
class Authenticated:
    """The kiosk that signed the request, and whether it signed with the secret it had before a rotation."""

    kiosk: Kiosk
    used_previous_secret: bool


_kiosks = Kiosk.__table__
_KIOSK_BY_UID = select(*(_kiosks.c[f] for f in KioskAuth.__dataclass_fields__)).where(
    _kiosks.c.kiosk_uid == bindparam("uid")
)
_INSERT_NONCE = insert(UsedNonce.__table__)


def secret_overlap() -> timedelta:
    """How long the old secret keeps verifying once the new one has signed a request (in-flight requests
    from other kiosk threads were signed before the switch). Default: twice the skew window."""
    default = 2 * int(current_app.config.get("SIGNATURE_MAX_SKEW_S", 300))
    return timedelta(seconds=int(current_app.config.get("KIOSK_SECRET_OVERLAP_S", default)))


def complete_body() -> bytes:
    """The request body, or a 400 ``incomplete_request`` when fewer bytes arrived than announced.

    Werkzeug may notice the short read itself (``ClientDisconnected``, a 400) or simply return what the
    server read; both mean the same to us, and neither is a forgery.
    """
    try:
        data = request.get_data(cache=True)
    except ClientDisconnected:
        data = None
    announced = request.content_length
    if data is None or (announced is not None and len(data) < announced):
        got = "?" if data is None else str(len(data))
        logger.warning(
            "incomplete request body on %s (%s of %s bytes): network cut, not checked",
            request.path,
            got,
            announced,
        )
        raise ApiError(
            400,
            "incomplete_request",
            f"incomplete request: the body was cut short in transit ({got} of {announced} bytes)",
            "请求不完整：请求体在传输中被截断",
        )
    return data


def _verify(secret_hex: str, max_skew: int, now: datetime) -> VerifiedRequest:
    return verify_request(
        request.headers,  # type: ignore[arg-type]
        request.method,
        request_target(request.path, request.query_string),
        complete_body(),
        bytes.fromhex(secret_hex),
        now=now.timestamp(),
        max_skew_s=max_skew,
    )


def _verify_either(kiosk: KioskAuth, max_skew: int, now: datetime) -> tuple[VerifiedRequest, bool]:
    """Verify with the current secret, else with the previous one while it is still valid."""
    try:
        return _verify(kiosk.secret, max_skew, now), False
    except BadSignature:
        previous_valid = (
            kiosk.previous_secret is not None
            and kiosk.previous_secret_until is not None
            and kiosk.previous_secret_until > now
        )
        if not previous_valid:
            raise
        assert kiosk.previous_secret is not None
        return _verify(kiosk.previous_secret, max_skew, now), True


def _confirm_new_secret(db: Session, kiosk: KioskAuth, now: datetime) -> None:
    """The first request signed with a rotated-in secret proves the kiosk stored it: the old secret now
    only has the short overlap left (until then it stayed valid, so a lost rotation answer cannot lock
    the kiosk out)."""
    if kiosk.previous_secret is None or kiosk.secret_confirmed_at is not None:
        return
    cutoff = now + secret_overlap()
    until = kiosk.previous_secret_until
    if until is None or until > cutoff:
        until = cutoff
    db.connection().execute(
        update(_kiosks)
        .where(_kiosks.c.id == kiosk.id)
        .values(secret_confirmed_at=now, previous_secret_until=until)
    )
    security_log.info(
        "kiosk %s signed with its new secret; old secret valid until %s", kiosk.kiosk_uid, until
    )


@dataclass(frozen=True)
class SignedRequest:
    """A request whose signature, clock skew and kiosk status were checked (:func:`check_signature`);
    its nonce is not recorded yet (:func:`record_request`)."""

    kiosk: KioskAuth
    nonce: str
    used_previous_secret: bool
    at: datetime


_KIOSK_STATUS = select(_kiosks.c.status).where(_kiosks.c.id == bindparam("kiosk_id"))


def check_signature(db: Session) -> SignedRequest:
    """The enrolled, active kiosk that signed this request; else an ApiError. Reads only.

    Core statements on the session's connection (no ORM object): the upload path runs this for every
    batch. The kiosk row as read *before* a first-use confirmation is returned; :func:`authenticate`
    loads the ORM object afresh for endpoints that need it.
    """
    headers = request.headers
    complete_body()  # a cut body is incomplete, never a bad signature
    try:
        parsed = parse_signature_headers(headers)  # type: ignore[arg-type]
    except SigningError as exc:
        raise ApiError(401, exc.code, str(exc), exc.message_zh) from None
    row = db.connection().execute(_KIOSK_BY_UID, {"uid": parsed.kiosk_id}).one_or_none()
    if row is None:
        security_log.warning("request from unknown kiosk %s", parsed.kiosk_id)
        raise ApiError(401, "unknown_kiosk", "unknown kiosk id", "终端未注册")
    kiosk = KioskAuth(*row)
    max_skew = int(current_app.config.get("SIGNATURE_MAX_SKEW_S", 300))
    now = _now()
    try:
        verified, used_previous = _verify_either(kiosk, max_skew, now)
    except ClockSkew as exc:
        raise ApiError(
            401, exc.code, str(exc), exc.message_zh, server_time=datetime.fromtimestamp(exc.server_time, UTC)
        ) from None
    except SigningError as exc:
        security_log.warning("rejected request from kiosk %s: %s", kiosk.kiosk_uid, exc.code)
        raise ApiError(401, exc.code, str(exc), exc.message_zh) from None
    if kiosk.status != "active":
        _refuse_revoked(kiosk)
    return SignedRequest(kiosk, verified.nonce, used_previous, now)


def _refuse_revoked(kiosk: KioskAuth) -> None:
    security_log.warning("request from revoked kiosk %s", kiosk.kiosk_uid)
    raise ApiError(403, "revoked_kiosk", "this kiosk has been revoked", "该终端已被停用")


def record_request(
    db: Session, signed: SignedRequest, *, recheck_status: bool = False
) -> tuple[KioskAuth, bool]:
    """Record the nonce of a checked request in the session's transaction (a replay is refused here,
    whichever worker saw the first one) and confirm a rotated-in secret on its first use. Returns the
    kiosk and whether it signed with its previous secret.

    ``recheck_status``: the signature was checked in an earlier transaction (the SQLite upload checks it
    before taking the database's write lock), so the kiosk may have been revoked since; read its status
    again here, in the transaction that will store the request's data.
    """
    kiosk = signed.kiosk
    conn = db.connection()
    if recheck_status and conn.execute(_KIOSK_STATUS, {"kiosk_id": kiosk.id}).scalar_one() != "active":
        _refuse_revoked(kiosk)
    try:
        conn.execute(
            _INSERT_NONCE,
            {"nonce": nonce_key(kiosk.kiosk_uid, signed.nonce), "kiosk_id": kiosk.id, "seen_at": signed.at},
        )
    except IntegrityError:
        db.rollback()
        security_log.warning("replayed nonce from kiosk %s", kiosk.kiosk_uid)
        raise ApiError(
            409, "replayed_nonce", "request nonce already used", "请求重复（随机数已使用）"
        ) from None
    if not signed.used_previous_secret:
        _confirm_new_secret(db, kiosk, signed.at)
    return kiosk, signed.used_previous_secret


def authenticate_request(db: Session) -> tuple[KioskAuth, bool]:
    """:func:`check_signature` and :func:`record_request` in one transaction: the enrolled, active kiosk
    that signed this request and whether it used its previous secret, with the nonce recorded; else an
    ApiError."""
    return record_request(db, check_signature(db))


def authenticate(db: Session) -> Authenticated:
    """:func:`authenticate_request` with the kiosk as an ORM object, for endpoints that change it."""
    kiosk, used_previous = authenticate_request(db)
    # populate_existing: a first-use confirmation was just written with Core, behind the identity map.
    orm_kiosk = db.get(Kiosk, kiosk.id, populate_existing=True)
    assert orm_kiosk is not None  # read in this transaction a moment ago
    return Authenticated(orm_kiosk, used_previous)


def authenticate_kiosk(db: Session) -> Kiosk:
    """:func:`authenticate` for endpoints that do not care which of the kiosk's secrets signed."""
    return authenticate(db).kiosk


def purge_nonces(db: Session, max_skew_s: int) -> int:
    """Forget nonces older than twice the skew window: a request that old is refused for its timestamp."""
    cutoff = _now() - timedelta(seconds=2 * max_skew_s)
    result = db.execute(delete(UsedNonce).where(UsedNonce.seen_at < cutoff))
    return int(getattr(result, "rowcount", 0) or 0)
