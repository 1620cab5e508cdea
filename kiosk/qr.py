"""Offline verification of scanned QR codes at the kiosk: signed phone codes and printed badges.

The kiosk holds only Ed25519 *public* keys and the list of revoked badge serials, both from the roster
sync (``RosterDelta.qr_public_keys`` / ``revoked_badges``), kept in a small SQLite file of its own
(``qr.sqlite3`` in the state dir) so they survive restarts and the kiosk verifies while offline.
:meth:`QrVerifier.apply_qr_material` is what the heartbeat calls with them.

:meth:`QrVerifier.verify_scanned` never raises: it answers a :class:`QrCheck` with a stable ``code`` and
a Chinese and English message for the screen. Beyond :func:`protocol.qrtoken.verify_token` (form, key id,
signature, revocation, step within ± ``window``), it refuses a phone code *already used at this kiosk*:
every accepted code's fingerprint (member, step) is remembered — atomically, so two reads racing cannot
both pass — until the code is too old to be accepted anyway. (The same code at *another* kiosk is caught
by the server on upload, ``server/qr/replay.py``.) Badges are not single-use: a member taps the same badge
every day; their trust is ``low`` on the event instead.

A genuine token that is refused (expired, from the future, revoked, replayed) still yields the member and
its stable ``credential_value`` so the kiosk records a ``rejected`` event for staff; a code that is not
genuine (malformed, unknown key, forged) yields none — there is nobody to attribute it to.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from kiosk.i18n import has_message, texts
from protocol import qrtoken
from protocol.qrtoken import TokenKind, TokenRejected, VerifiedToken

logger = logging.getLogger(__name__)
audit = logging.getLogger("kiosk.audit")

QR_STORE_FILE = "qr.sqlite3"
#: Codes that a kiosk treats as signed baodao tokens (anything else is an ordinary QR credential).
PREFIX = qrtoken.PREFIX

_SCHEMA = """
CREATE TABLE IF NOT EXISTS qr_keys (key_id TEXT PRIMARY KEY, public_key TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS qr_revoked (serial TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS qr_used (
    fingerprint TEXT PRIMARY KEY, step INTEGER NOT NULL, used_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_qr_used_step ON qr_used (step);
CREATE TABLE IF NOT EXISTS qr_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class QrCheck:
    """The verdict on one scanned text. ``token`` is set whenever the signature was genuine."""

    code: str
    message_zh: str
    message_en: str
    token: VerifiedToken | None = None
    fingerprint: str | None = None

    @property
    def accepted(self) -> bool:
        return self.code == "ok"

    @property
    def genuine(self) -> bool:
        """Signed by the server: worth recording against the member even when refused."""
        return self.token is not None

    @property
    def member_id(self) -> int | None:
        return None if self.token is None else self.token.member_ref

    @property
    def credential_value(self) -> str | None:
        """``phone:<member>`` / ``badge:<serial>`` — hash it with ``credential_hash(key, "qr", …)``."""
        return None if self.token is None else self.token.credential_value

    @property
    def trust(self) -> str | None:
        return None if self.token is None else self.token.trust

    @property
    def qr_step(self) -> int | None:
        return None if self.token is None else self.token.step

    @property
    def badge_serial(self) -> str | None:
        return None if self.token is None else self.token.badge_serial

    def draft_fields(self) -> dict[str, Any]:
        """The QR-specific ``TapDraft`` fields for recording this read (reason only when refused)."""
        return {
            "trust": self.trust,
            "qr_step": self.qr_step,
            "badge_serial": self.badge_serial,
            "reason": None if self.accepted else self.code,
        }


def is_signed_token(text: str | bytes) -> bool:
    """Does this scanned text claim to be a baodao token (``BD1:`` prefix, any case)?"""
    head = text[: len(PREFIX)]
    if isinstance(head, bytes | bytearray):
        head = bytes(head).decode("ascii", "replace")
    return head.upper() == PREFIX


def _check(code: str, token: VerifiedToken | None = None, fingerprint: str | None = None) -> QrCheck:
    known = has_message(f"qr.{code}")  # what the member reads: the kiosk catalogue's qr.<code>
    if not known:
        logger.warning("QR verdict %r has no text; shown as malformed", code)
    zh, en = texts(f"qr.{code if known else 'qr_malformed'}")
    return QrCheck(code, zh, en, token, fingerprint)


def _now_seconds(now: float | dt.datetime | None, clock: Callable[[], float]) -> float:
    if now is None:
        return clock()
    return now.timestamp() if isinstance(now, dt.datetime) else float(now)


class QrVerifier:
    """Public keys, revocation list and used fingerprints for one kiosk. Thread-safe."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        clock: Callable[[], float] = time.time,
        window: int = 1,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.window = window
        self._clock = clock
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._keys: dict[str, Ed25519PublicKey] = {}
        self._revoked: frozenset[str] = frozenset()
        self._generation = -1
        self._reload_if_changed()

    @classmethod
    def in_state_dir(cls, state_dir: str | os.PathLike[str], **kw: Any) -> QrVerifier:
        return cls(Path(state_dir) / QR_STORE_FILE, **kw)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- material from the roster sync ------------------------------------------------------------
    def apply_qr_material(self, keys: Mapping[str, str] | None, revoked: Iterable[str] | None) -> None:
        """Replace the public keys and/or the revocation list (``None`` = unchanged, as in RosterDelta).

        A key that does not load is skipped and logged rather than failing the whole heartbeat."""
        parsed: dict[str, str] = {}
        for key_id, b64 in (keys or {}).items():
            try:
                qrtoken.load_public_key_b64(b64)
            except (ValueError, TypeError) as exc:
                logger.error("QR public key %r from the server does not load: %s", key_id, exc)
                continue
            parsed[str(key_id)] = b64
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if keys is not None:
                    self._db.execute("DELETE FROM qr_keys")
                    self._db.executemany("INSERT INTO qr_keys VALUES (?, ?)", sorted(parsed.items()))
                if revoked is not None:
                    self._db.execute("DELETE FROM qr_revoked")
                    self._db.executemany(
                        "INSERT OR IGNORE INTO qr_revoked VALUES (?)", [(str(s),) for s in revoked]
                    )
                self._db.execute(
                    "INSERT INTO qr_meta VALUES ('generation', '1') ON CONFLICT (key) DO UPDATE"
                    " SET value = CAST(value AS INTEGER) + 1"
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._reload_if_changed_locked()
        logger.info("QR material applied: keys=%s revoked=%s", sorted(parsed) if keys is not None else "unchanged",
                    "unchanged" if revoked is None else len(self._revoked))  # fmt: skip

    def key_ids(self) -> list[str]:
        with self._lock:
            self._reload_if_changed_locked()
            return sorted(self._keys)

    def _reload_if_changed(self) -> None:
        with self._lock:
            self._reload_if_changed_locked()

    def _reload_if_changed_locked(self) -> None:
        """Another process (a CLI, a second service instance) may have applied material: one tiny SELECT."""
        row = self._db.execute("SELECT value FROM qr_meta WHERE key = 'generation'").fetchone()
        generation = int(row[0]) if row else 0
        if generation == self._generation:
            return
        keys: dict[str, Ed25519PublicKey] = {}
        for key_id, b64 in self._db.execute("SELECT key_id, public_key FROM qr_keys"):
            keys[key_id] = qrtoken.load_public_key_b64(b64)
        self._keys = keys
        self._revoked = frozenset(r[0] for r in self._db.execute("SELECT serial FROM qr_revoked"))
        self._generation = generation

    # -- verification -----------------------------------------------------------------------------
    def verify_scanned(self, text: str | bytes, now: float | dt.datetime | None = None) -> QrCheck:
        """Verify one scanned text offline; ``now`` is the kiosk's best estimate of true time (device
        clock plus its measured offset). Never raises."""
        try:
            return self._verify(text, _now_seconds(now, self._clock))
        except Exception:  # a bug here must not take the camera path down
            logger.exception("QR verification failed unexpectedly")
            return _check("qr_malformed")

    def _verify(self, text: str | bytes, now: float) -> QrCheck:
        with self._lock:
            self._reload_if_changed_locked()
            keys, revoked = self._keys, self._revoked
        try:
            token = qrtoken.verify_token(text, keys, now, revoked_badges=revoked, window=self.window)
        except TokenRejected as exc:
            genuine = self._genuine_part(exc, text, keys, now)
            if genuine is not None:
                audit.warning("QR code refused: %s (member %s)", exc.code, genuine.member_ref)
            else:
                logger.info("QR code refused: %s: %s", exc.code, exc)
            return _check(exc.code, genuine)
        fingerprint = qrtoken.token_fingerprint(token)
        if token.kind is TokenKind.PHONE and not self._claim(fingerprint, token, now):
            audit.warning(
                "QR code used twice at this kiosk (member %s, step %s)", token.member_ref, token.step
            )
            return _check(qrtoken.Replayed.code, token, fingerprint)
        return _check("ok", token, fingerprint)

    @staticmethod
    def _genuine_part(
        exc: TokenRejected, text: str | bytes, keys: Mapping[str, Ed25519PublicKey], now: float
    ) -> VerifiedToken | None:
        """For rejections raised *after* the signature verified, the (authentic) token as claimed.

        ``protocol.qrtoken`` does not attach the token to the exception, so verify once more without the
        failed condition — a second signature check (~0.1 ms) only on the rare refused read."""
        if isinstance(exc, qrtoken.Expired | qrtoken.FromFuture):
            return qrtoken.verify_token(text, keys, now, window=2**41)
        if isinstance(exc, qrtoken.RevokedBadge):
            return qrtoken.verify_token(text, keys, now)
        return None

    def _claim(self, fingerprint: str, token: VerifiedToken, now: float) -> bool:
        """Remember this phone code as used; False when it already was. Prunes codes too old to matter."""
        current = qrtoken.step_at(now)
        with self._lock:
            inserted = self._db.execute(
                "INSERT OR IGNORE INTO qr_used (fingerprint, step, used_at) VALUES (?, ?, ?)",
                (fingerprint, token.step, now),
            ).rowcount
            self._db.execute("DELETE FROM qr_used WHERE step < ?", (current - self.window - 2,))
        return inserted == 1

    def used_count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM qr_used").fetchone()[0])


def apply_qr_material(
    state_dir: str | os.PathLike[str], keys: Mapping[str, str] | None, revoked: Iterable[str] | None
) -> None:
    """For a caller without the service's verifier (e.g. the heartbeat in another process): open the
    store in ``state_dir``, apply, close. A running :class:`QrVerifier` notices on its next scan."""
    verifier = QrVerifier.in_state_dir(state_dir)
    try:
        verifier.apply_qr_material(keys, revoked)
    finally:
        verifier.close()
