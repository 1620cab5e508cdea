"""PC/SC contactless readers (ACR122U, ACR1252U, OMNIKEY …) through pcscd and pyscard.

We use pyscard's low-level ``smartcard.scard`` API rather than its ``CardMonitor`` because a kiosk
needs three things the high-level API hides: a cancellable wait (``SCardCancel`` lets ``stop()``
return at once), the PnP pseudo-reader (a reader plugged in later is noticed without polling), and
the raw return codes, which we convert to the hardware exception tree right here — nothing above
this module ever sees a PC/SC error number.

The worker keeps one PC/SC context. Whatever goes wrong underneath (pcscd restarted, reader
unplugged, card pulled mid-read) ends in one of two places: a failed read is counted and the watch
goes on, or the context is dropped, the state goes to CONNECTING and a fresh context is opened after
a short pause. No exception leaves the worker.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from smartcard import scard

from hardware.base import (
    CredentialKind,
    DeviceDisconnected,
    DeviceNotFound,
    HardwareError,
    ProtocolError,
    ReadCallback,
    ReaderHealth,
    ReaderState,
    ReadTimeout,
    options_as,
)
from hardware.options import DriverOptions, option
from hardware.profiles import ReaderProfile
from hardware.reconnect import ReconnectingReader, SessionEnd

logger = logging.getLogger(__name__)
traffic = logging.getLogger("hardware.traffic.pcsc")

DRIVER_KEY = "pcsc"


@dataclass(frozen=True)
class PcscOptions(DriverOptions):
    setup_each_card: bool = option(False, help="Send setup_commands for every card, not once per reader.")
    poll_timeout_ms: int = option(1000, minimum=1, help="Longest single SCardGetStatusChange wait.")
    reconnect_delay_ms: int = option(500, minimum=0, help="Pause before a new PC/SC context.")
    uid_retries: int = option(2, minimum=0, help="Retries of GET UID after SW 6300 (card moved).")
    stuck_after_ms: int = option(5000, minimum=1, help="A read blocked this long shows as ERROR in health.")


#: PC/SC part 3 "Get Data" pseudo-APDU: the reader answers with the UID of the card in its field.
GET_UID_APDU: tuple[int, ...] = (0xFF, 0xCA, 0x00, 0x00, 0x00)
PNP_READER = "\\\\?PnP?\\Notification"
_CHANGED = scard.SCARD_STATE_CHANGED
_GONE = scard.SCARD_STATE_UNKNOWN | scard.SCARD_STATE_IGNORE
_PROTOCOLS = scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1


class CardRemoved(HardwareError):
    """The card left the field before its UID was read: nothing to deliver, nothing broken."""


class UidStatusError(ProtocolError):
    """The reader answered GET UID with an error status word."""

    def __init__(self, sw: int, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.sw = sw
        self.retryable = retryable


# -- pure helpers (unit-tested without pcscd) ------------------------------------------------------
def parse_hex_apdu(text: str) -> list[int]:
    """``"FF 00 40 0D 04"`` → bytes as ints; raises ValueError on anything but pairs of hex digits."""
    compact = "".join(text.split())
    if not compact or len(compact) % 2 or not re.fullmatch(r"[0-9A-Fa-f]+", compact):
        raise ValueError(f"not a hex APDU: {text!r}")
    data = list(bytes.fromhex(compact))
    if len(data) < 4:
        raise ValueError(f"APDU shorter than a 4-byte header: {text!r}")
    return data


def interpret_uid_response(response: Sequence[int]) -> str:
    """The UID in upper-case hex from a GET UID response, or :class:`UidStatusError`.

    6300 ("no information given") is what ACS readers answer when the card moved during the
    exchange, so it is worth retrying; 6A81 ("function not supported") means this card type has no
    UID to give (or a contact card sits in a dual reader) and retrying cannot help.
    """
    if len(response) < 2:
        raise UidStatusError(0, f"GET UID answer too short: {bytes(response).hex().upper()}", retryable=True)
    sw = (response[-2] << 8) | response[-1]
    data = bytes(response[:-2])
    if sw == 0x9000:
        if not 1 <= len(data) <= 16:
            raise UidStatusError(sw, f"GET UID returned a {len(data)}-byte UID", retryable=False)
        return data.hex().upper()
    if sw == 0x6A81:
        raise UidStatusError(sw, "card type not supported by GET UID (SW 6A81)", retryable=False)
    if sw == 0x6300:
        raise UidStatusError(sw, "reader could not read the UID (SW 6300)", retryable=True)
    raise UidStatusError(sw, f"GET UID failed with SW {sw:04X}", retryable=False)


def follow_up_apdu(response: Sequence[int], apdu: Sequence[int]) -> list[int] | None:
    """The APDU to send next for a 6Cxx (resend with Le=xx) or 61xx (GET RESPONSE) answer, else None."""
    if len(response) != 2:
        return None
    sw1, sw2 = response
    if sw1 == 0x6C:
        return [*apdu[:4], sw2]
    if sw1 == 0x61:
        return [0x00, 0xC0, 0x00, 0x00, sw2]
    return None


def is_new_card(previous: int | None, current: int) -> bool:
    """Whether a reader's event state means a card arrived since ``previous``.

    pcsc-lite counts card events in the upper 16 bits, so a card swapped between two of our calls
    (present → present) still shows up as a new card.
    """
    if not current & scard.SCARD_STATE_PRESENT or current & scard.SCARD_STATE_MUTE:
        return False
    if previous is None or not previous & scard.SCARD_STATE_PRESENT:
        return True
    return (previous >> 16) != (current >> 16)


_REMOVED = {
    scard.SCARD_W_REMOVED_CARD,
    scard.SCARD_E_NO_SMARTCARD,
    scard.SCARD_W_RESET_CARD,
    scard.SCARD_E_NOT_TRANSACTED,
    scard.SCARD_E_COMM_DATA_LOST,
}
_SERVICE_GONE = {
    scard.SCARD_E_NO_SERVICE,
    scard.SCARD_E_SERVICE_STOPPED,
    scard.SCARD_E_INVALID_HANDLE,
    scard.SCARD_E_NO_READERS_AVAILABLE,
    scard.SCARD_E_READER_UNAVAILABLE,
    scard.SCARD_E_UNKNOWN_READER,
}
_PROTOCOL = {
    scard.SCARD_W_UNRESPONSIVE_CARD,
    scard.SCARD_W_UNSUPPORTED_CARD,
    scard.SCARD_E_PROTO_MISMATCH,
    scard.SCARD_E_CARD_UNSUPPORTED,
    scard.SCARD_E_INSUFFICIENT_BUFFER,
}


def convert_error(hr: int, what: str) -> HardwareError:
    """A PC/SC return code as one of our exceptions (the driver boundary of the exception tree)."""
    code = hr & 0xFFFFFFFF
    message = f"{what}: {_scard_message(hr)} (0x{code:08X})"
    if hr in _REMOVED:
        return CardRemoved(message)
    if hr == scard.SCARD_E_NO_SERVICE:
        return DeviceNotFound(f"{message} — pcscd not running / pcscd 未运行")
    if hr in _SERVICE_GONE:
        return DeviceDisconnected(message)
    if hr == scard.SCARD_E_TIMEOUT:
        return ReadTimeout(message)
    if hr in _PROTOCOL:
        return ProtocolError(message)
    return HardwareError(message)


def _scard_message(hr: int) -> str:
    try:
        return str(scard.SCardGetErrorMessage(hr)).strip()
    except Exception:  # pragma: no cover - pyscard builds without the helper
        return "PC/SC error"


@dataclass(frozen=True)
class _Options:
    reader_name: re.Pattern[str] | None
    setup: tuple[tuple[int, ...], ...]
    setup_each_card: bool
    poll_timeout_ms: int
    uid_retries: int
    debounce_s: float
    stuck_after_s: float


class PcscReader(ReconnectingReader[int]):
    """Watches every PC/SC reader whose name matches ``reader_name`` (a regex; all readers if None)."""

    driver_key = DRIVER_KEY
    Options = PcscOptions
    ready_on_connect = False  # READY only while a matching reader is present (see _matching_readers)

    def __init__(
        self,
        reader_id: str,
        callback: ReadCallback,
        *,
        reader_name: str | None = None,
        setup_commands: Sequence[str] = (),
        setup_each_card: bool = False,
        poll_timeout_ms: int = 1000,
        reconnect_delay_s: float = 0.5,
        uid_retries: int = 2,
        debounce_ms: int = 0,
        stuck_after_ms: int = 5000,
    ) -> None:
        super().__init__(reader_id, callback)
        self.reconnect_delay = reconnect_delay_s
        self._opts = _Options(
            reader_name=re.compile(reader_name) if reader_name else None,
            setup=tuple(tuple(parse_hex_apdu(c)) for c in setup_commands),
            setup_each_card=setup_each_card,
            poll_timeout_ms=poll_timeout_ms,
            uid_retries=uid_retries,
            debounce_s=debounce_ms / 1000.0,
            stuck_after_s=stuck_after_ms / 1000.0,
        )
        self._busy_since: float | None = None
        self._ctx: int | None = None
        self._ctx_lock = threading.Lock()
        self._setup_done: set[str] = set()
        self._last_uid: tuple[str, float] | None = None

    @classmethod
    def from_profile(
        cls, profile: ReaderProfile, callback: ReadCallback, port: str | None = None
    ) -> PcscReader:
        """``port`` (CLI ``--port``) overrides the profile's reader-name regex."""
        o = options_as(profile, PcscOptions)
        return cls(
            profile.reader_id,
            callback,
            reader_name=port or profile.match.get("reader_name"),
            setup_commands=list(profile.setup_commands),
            setup_each_card=o.setup_each_card,
            poll_timeout_ms=o.poll_timeout_ms,
            reconnect_delay_s=o.reconnect_delay_ms / 1000.0,
            uid_retries=o.uid_retries,
            debounce_ms=profile.debounce_ms,
            stuck_after_ms=o.stuck_after_ms,
        )

    def health(self) -> ReaderHealth:
        """As the base class, but a read stuck in the PC/SC stack shows as ERROR.

        SCardTransmit has no timeout: a card or reader firmware that stops answering blocks the worker
        inside pcscd's driver until the card leaves the field. The worker cannot report that itself,
        so health computes it from when the current read began.
        """
        health = super().health()
        since = self._busy_since
        if since is not None and health.state == ReaderState.READY:
            stuck = time.monotonic() - since
            if stuck > self._opts.stuck_after_s:
                health.state = ReaderState.ERROR
                health.last_error = f"reader not answering for {stuck:.0f} s (card or reader hung) / 读卡器 {stuck:.0f} 秒无响应"
        return health

    # -- worker ----------------------------------------------------------------------------------
    def _wake(self) -> None:
        with self._ctx_lock:
            if self._ctx is not None:
                scard.SCardCancel(self._ctx)

    def _connect(self) -> int:
        hr, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        if hr != scard.SCARD_S_SUCCESS:
            raise convert_error(hr, "SCardEstablishContext")
        with self._ctx_lock:
            self._ctx = ctx
        return ctx

    def _describe(self, handle: int) -> str:
        return "a PC/SC context"

    def _disconnect(self, handle: int) -> None:
        with self._ctx_lock:
            self._ctx = None
        scard.SCardReleaseContext(handle)

    def _on_close(self) -> None:
        self._setup_done.clear()

    def _session(self, ctx: int) -> SessionEnd | None:
        self._watch(ctx)
        return None

    def _matching_readers(self, ctx: int) -> list[str]:
        hr, names = scard.SCardListReaders(ctx, [])
        if hr == scard.SCARD_E_NO_READERS_AVAILABLE:
            names = []
        elif hr != scard.SCARD_S_SUCCESS:
            raise convert_error(hr, "SCardListReaders")
        pattern = self._opts.reader_name
        found = [n for n in names if pattern is None or pattern.search(n)]
        if found:
            self._set_extra("pcsc_reader", ", ".join(found))
            self._set_state(ReaderState.READY)
        else:
            self._set_extra("pcsc_reader", "")
            want = pattern.pattern if pattern else "*"
            self._set_state(
                ReaderState.CONNECTING, f"no PC/SC reader matching '{want}' / 未找到匹配 '{want}' 的读卡器"
            )
        self._setup_done.intersection_update(found)
        return found

    def _watch(self, ctx: int) -> None:
        readers = self._matching_readers(ctx)
        states: dict[str, int] = {}
        pnp_state = scard.SCARD_STATE_UNAWARE
        while not self._stop.is_set():
            query = [(PNP_READER, pnp_state)] + [
                (r, states.get(r, scard.SCARD_STATE_UNAWARE)) for r in readers
            ]
            hr, events = scard.SCardGetStatusChange(ctx, self._opts.poll_timeout_ms, query)
            seen_at = time.monotonic()
            if hr in (scard.SCARD_E_TIMEOUT, scard.SCARD_E_CANCELLED):
                continue
            if hr == scard.SCARD_E_UNKNOWN_READER:  # a reader vanished between list and wait
                readers = self._matching_readers(ctx)
                continue
            if hr != scard.SCARD_S_SUCCESS:
                raise convert_error(hr, "SCardGetStatusChange")
            relist = False
            for name, event, _atr in events:
                clean = event & ~_CHANGED
                if name == PNP_READER:
                    relist = relist or bool(event & _CHANGED)
                    pnp_state = clean
                    continue
                previous = states.get(name)
                states[name] = clean
                if event & _GONE:
                    relist = True
                elif is_new_card(previous, event):
                    self._read_card(ctx, name, seen_at)
            if relist:
                readers = self._matching_readers(ctx)
                states = {r: s for r, s in states.items() if r in readers}

    # -- one tap -----------------------------------------------------------------------------------
    def _read_card(self, ctx: int, reader: str, seen_at: float) -> None:
        self._busy_since = seen_at
        try:
            self._read_card_busy(ctx, reader, seen_at)
        finally:
            self._busy_since = None

    def _read_card_busy(self, ctx: int, reader: str, seen_at: float) -> None:
        hr, card, protocol = scard.SCardConnect(ctx, reader, scard.SCARD_SHARE_SHARED, _PROTOCOLS)
        if hr != scard.SCARD_S_SUCCESS:
            self._failed_read(reader, convert_error(hr, "SCardConnect"))
            return
        try:
            self._setup(card, protocol, reader)
            uid = self._get_uid(card, protocol)
        except (DeviceNotFound, DeviceDisconnected):
            raise
        except HardwareError as exc:
            self._failed_read(reader, exc)
            return
        finally:
            scard.SCardDisconnect(card, scard.SCARD_LEAVE_CARD)
        now = time.monotonic()
        if self._debounced(uid, now):
            return
        self._set_extra("detect_to_deliver_ms", round((now - seen_at) * 1000.0, 3))
        traffic.debug("reader %s (%s): card %s", self.reader_id, reader, uid)
        self._deliver(CredentialKind.CARD, uid)

    def _failed_read(self, reader: str, exc: HardwareError) -> None:
        if isinstance(exc, CardRemoved):
            self._count("aborted_reads")
            logger.info(
                "pcsc reader %s (%s): card left before its UID was read: %s", self.reader_id, reader, exc
            )
        else:
            self._bad_frame(f"{reader}: {exc}")

    def _debounced(self, uid: str, now: float) -> bool:
        last, self._last_uid = self._last_uid, (uid, now)
        if last is not None and last[0] == uid and now - last[1] < self._opts.debounce_s:
            self._count("debounced")
            return True
        return False

    def _setup(self, card: int, protocol: int, reader: str) -> None:
        """Send the profile's reader commands (buzzer, LED …) once per reader appearance, or every card."""
        if not self._opts.setup or (reader in self._setup_done and not self._opts.setup_each_card):
            return
        for apdu in self._opts.setup:
            response = self._transmit(card, protocol, apdu)
            if response[-2:] != [0x90, 0x00]:
                self._count("setup_failures")
                logger.warning(
                    "pcsc reader %s: setup command %s answered %s",
                    self.reader_id,
                    bytes(apdu).hex().upper(),
                    bytes(response).hex().upper(),
                )
        self._setup_done.add(reader)

    def _get_uid(self, card: int, protocol: int) -> str:
        apdu: list[int] = list(GET_UID_APDU)
        attempts = 0
        while True:
            response = self._transmit(card, protocol, apdu)
            follow = follow_up_apdu(response, apdu)
            if follow is not None and attempts < 4:
                apdu, attempts = follow, attempts + 1
                continue
            try:
                return interpret_uid_response(response)
            except UidStatusError as exc:
                if not exc.retryable or attempts >= self._opts.uid_retries:
                    raise
                attempts += 1
                apdu = list(GET_UID_APDU)

    def _transmit(self, card: int, protocol: int, apdu: Sequence[int]) -> list[int]:
        hr, response = scard.SCardTransmit(card, protocol, list(apdu))
        if hr != scard.SCARD_S_SUCCESS:
            raise convert_error(hr, f"SCardTransmit {bytes(apdu).hex().upper()}")
        traffic.debug("> %s < %s", bytes(apdu).hex(), bytes(response).hex())
        return list(response)
