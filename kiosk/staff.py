"""StaffMode: maintenance mode and card binding, the staff side of the kiosk.

Why a module of its own: staff actions are a small state machine (idle → maintenance → binding →
maintenance, falling back to idle after 10 idle minutes) that the read path must consult before it
checks anyone in, and it carries the one staff decision the kiosk records — a card binding — with the
same commit-before-confirm rule as a tap. Keeping it apart from the check-in path keeps both readable.

The mode is guarded by the service's lock (``KioskContext.lock``), because a read checks "am I capturing a card
for binding?" and the service's ``state()`` reads the mode under that same lock.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from kiosk.config import KioskConfig
from kiosk.context import KioskContext
from kiosk.outcomes import OutcomeKind, TapOutcome
from protocol.hashing import credential_hash

logger = logging.getLogger(__name__)
audit = logging.getLogger("kiosk.audit")

#: Maintenance and binding mode close by themselves after this long without a staff action.
MAINTENANCE_IDLE_S = 600.0


def staff_hashes_for(config: KioskConfig, credential_key: bytes) -> frozenset[str]:
    """Credential hashes that open maintenance mode: configured hashes plus hashed raw demo cards."""
    return frozenset(config.staff_card_hashes) | {
        credential_hash(credential_key, "card", uid) for uid in config.staff_cards
    }


class StaffMode:
    """``idle | maintenance | binding``, the captured card, and the binding it becomes."""

    def __init__(self, context: KioskContext) -> None:
        self._ctx = context
        self._lock = context.lock
        self._roster = context.roster
        self._outbox = context.outbox
        self._feed = context.feed
        self.mode = "idle"  # idle | maintenance | binding
        self._mode_until = 0.0
        self._binding_credential: tuple[str, str] | None = None  # (kind, hash)

    @property
    def binding_captured(self) -> bool:
        return self._binding_credential is not None

    def active(self) -> bool:
        """Whether maintenance (or binding) mode is on; times it out first. Call with the lock held."""
        if self.mode != "idle" and time.monotonic() > self._mode_until:
            logger.info("maintenance mode timed out")
            self.mode, self._binding_credential = "idle", None
        return self.mode != "idle"

    def set_mode(self, mode: str) -> None:
        with self._lock:
            self.mode = mode
            self._mode_until = time.monotonic() + MAINTENANCE_IDLE_S
            if mode != "binding":
                self._binding_credential = None
        self._feed.publish_state()

    def toggle(self, reader_id: str | None, kind: str) -> TapOutcome:
        """A staff card or the staff PIN: open maintenance mode, or close it when open."""
        with self._lock:
            entering = not self.active()
        audit.info("staff %s maintenance mode via %s", "opened" if entering else "closed", kind)
        self.set_mode("maintenance" if entering else "idle")
        return self._feed.new_outcome(
            OutcomeKind.STAFF,
            reader_id=reader_id,
            credential_kind=kind,
            detail="enter" if entering else "exit",
        )

    def start_binding(self) -> None:
        """Binding mode (staff only): the next read is captured instead of checked in."""
        with self._lock:
            if not self.active():
                raise PermissionError("binding needs maintenance mode / 绑定卡片需先进入维护模式")
        self.set_mode("binding")

    def capture_if_binding(self, reader_id: str, kind: str, chash: str) -> TapOutcome | None:
        """In binding mode, capture this credential (not checked in) and say whom it belongs to now."""
        with self._lock:
            if self.mode == "binding" and self.active():
                return self._capture(reader_id, kind, chash)
        return None

    def _capture(self, reader_id: str, kind: str, chash: str) -> TapOutcome:
        self._binding_credential = (kind, chash)
        self._mode_until = time.monotonic() + MAINTENANCE_IDLE_S
        current = self._roster.lookup(chash)
        return self._feed.new_outcome(
            OutcomeKind.BINDING_CAPTURED,
            reader_id=reader_id,
            credential_kind=kind,
            member_id=current.member_id if current and not current.revoked else None,
            masked_name=current.masked_name if current and not current.revoked else None,
            detail="already_bound" if current and not current.revoked else None,
        )

    def search_members(self, query: str, limit: int = 20) -> list[dict[str, Any]]:
        return [m.as_dict() for m in self._roster.search(query, limit)]

    def confirm_binding(self, member_id: int, staff_ref: str | None = None) -> TapOutcome:
        """Bind the captured card to ``member_id``: committed to the outbox, usable at once locally."""
        with self._lock:
            if self.mode != "binding" or self._binding_credential is None:
                raise PermissionError("no card captured for binding / 尚未读取待绑定的卡")
            member = self._roster.member(member_id)
            if member is None:
                raise LookupError(f"member {member_id} not in roster / 名册中没有该党员")
            kind, chash = self._binding_credential
            binding = self._outbox.append_binding(
                credential_kind=kind,
                credential_hash=chash,
                member_id=member_id,
                device_time=self._ctx.clock(),
                device_tz=self._ctx.live.config.timezone,
                staff_ref=staff_ref,
            )
            self._roster.add_local_binding(chash, kind, member)
            self._binding_credential = None
        audit.info("card bound to member %s (binding %s)", member_id, binding.binding_id)
        self.set_mode("maintenance")
        return self._feed.emit(
            self._feed.new_outcome(
                OutcomeKind.BOUND,
                credential_kind=kind,
                member_id=member_id,
                masked_name=member.masked_name,
                unit_name=member.unit_name,
                event_id=binding.binding_id,
                recorded=True,
            )
        )
