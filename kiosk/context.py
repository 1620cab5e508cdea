"""KioskContext: the collaborators the parts of :class:`kiosk.service.KioskService` share.

Why one object: the parts (:mod:`kiosk.reads`, :mod:`kiosk.recording`, :mod:`kiosk.staff`,
:mod:`kiosk.remote`) each need a few of the same things — the lock the check-in decision holds, the
clock, the outbox, the roster, the outcome feed … — and passing each one separately (plus lambdas for
the values a pushed config replaces) made every constructor a dozen arguments long and hid which part
reads what. The service builds one frozen :class:`KioskContext` and hands it to every part; a part takes
what it needs from it.

The context itself never changes. What does change while the kiosk runs — the config (a pushed config
replaces it), the staff credential hashes derived from it, the clock offset the sync agent measures — is
one mutable :class:`LiveSettings` held by the context, written under ``lock`` by the service, so every
part reads the current value through ``context.live`` instead of through a lambda.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from kiosk.checkin import MemberStates
from kiosk.config import KioskConfig
from kiosk.outbox import Outbox
from kiosk.outcome_feed import OutcomeFeed
from kiosk.pinguard import PinGuard
from kiosk.qr import QrVerifier
from kiosk.readers import ReaderSet
from kiosk.roster import Roster

logger = logging.getLogger(__name__)


@dataclass
class LiveSettings:
    """What changes while the kiosk runs; written by the service under :attr:`KioskContext.lock`."""

    config: KioskConfig
    #: credential hashes that open maintenance mode (:func:`kiosk.staff.staff_hashes_for` of ``config``)
    staff_hashes: frozenset[str]
    #: the sync agent's measured server-minus-device offset, stamped on every new event
    clock_offset_ms: int = 0


@dataclass(frozen=True)
class KioskContext:
    """Made once by :class:`kiosk.service.KioskService`; every part of the service receives it."""

    #: decide → append → update runs under it; the staff mode and the screen lock are guarded by it
    lock: threading.RLock
    #: the device's wall clock (UTC); tests and the fault driver inject a skewed one
    clock: Callable[[], dt.datetime]
    credential_key: bytes
    live: LiveSettings
    outbox: Outbox
    roster: Roster
    members: MemberStates
    pin_guard: PinGuard
    qr: QrVerifier
    readers: ReaderSet
    feed: OutcomeFeed
