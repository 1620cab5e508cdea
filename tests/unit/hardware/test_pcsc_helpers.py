"""Pure helpers of the PC/SC driver: status words, APDU text, card-event arithmetic, error conversion."""

from __future__ import annotations

import pytest
from smartcard import scard

from hardware.base import DeviceDisconnected, DeviceNotFound, HardwareError, ProtocolError, ReadTimeout
from hardware.pcsc import (
    CardRemoved,
    PcscReader,
    UidStatusError,
    convert_error,
    follow_up_apdu,
    interpret_uid_response,
    is_new_card,
    parse_hex_apdu,
)


@pytest.mark.parametrize(
    ("response", "uid"),
    [
        ([0x04, 0xA1, 0xB2, 0xC3, 0x90, 0x00], "04A1B2C3"),
        ([0x04, 0xA1, 0xB2, 0xC3, 0xD4, 0xE5, 0xF6, 0x90, 0x00], "04A1B2C3D4E5F6"),
        ([*bytes.fromhex("04a1b2c3d4e5f6071829"), 0x90, 0x00], "04A1B2C3D4E5F6071829"),
        ([*bytes.fromhex("0123456789abcdef"), 0x90, 0x00], "0123456789ABCDEF"),  # FeliCa IDm, ISO 15693
    ],
)
def test_uid_in_upper_case_hex(response: list[int], uid: str) -> None:
    assert interpret_uid_response(response) == uid


@pytest.mark.parametrize(
    ("response", "sw", "retryable"),
    [
        ([0x6A, 0x81], 0x6A81, False),
        ([0x63, 0x00], 0x6300, True),
        ([0x6D, 0x00], 0x6D00, False),
        ([0x90, 0x00], 0x9000, False),  # success without a UID is not a UID
        ([0x90], 0, True),
        ([], 0, True),
    ],
)
def test_uid_errors_are_classified(response: list[int], sw: int, retryable: bool) -> None:
    with pytest.raises(UidStatusError) as info:
        interpret_uid_response(response)
    assert info.value.sw == sw
    assert info.value.retryable is retryable
    assert isinstance(info.value, ProtocolError)


def test_sw_named_in_message() -> None:
    with pytest.raises(UidStatusError, match="6A81"):
        interpret_uid_response([0x6A, 0x81])


@pytest.mark.parametrize(
    ("text", "data"),
    [
        ("FFCA000000", [0xFF, 0xCA, 0, 0, 0]),
        ("ff 00 40 0d 04 03 00 01 01", [0xFF, 0x00, 0x40, 0x0D, 0x04, 0x03, 0x00, 0x01, 0x01]),
    ],
)
def test_parse_hex_apdu(text: str, data: list[int]) -> None:
    assert parse_hex_apdu(text) == data


@pytest.mark.parametrize("text", ["", "FFC", "FFCA00", "GG00000000", "FF CA 00 0"])
def test_parse_hex_apdu_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_hex_apdu(text)


def test_follow_up_apdu() -> None:
    apdu = [0xFF, 0xCA, 0x00, 0x00, 0x00]
    assert follow_up_apdu([0x6C, 0x07], apdu) == [0xFF, 0xCA, 0x00, 0x00, 0x07]
    assert follow_up_apdu([0x61, 0x0A], apdu) == [0x00, 0xC0, 0x00, 0x00, 0x0A]
    assert follow_up_apdu([0x90, 0x00], apdu) is None
    assert follow_up_apdu([0x01, 0x6C, 0x07], apdu) is None


P, E, M = scard.SCARD_STATE_PRESENT, scard.SCARD_STATE_EMPTY, scard.SCARD_STATE_MUTE


@pytest.mark.parametrize(
    ("previous", "current", "new"),
    [
        (None, P, True),  # card already on the reader when we start watching
        (None, E, False),
        (E | (1 << 16), P | (2 << 16), True),
        (P | (2 << 16), P | (2 << 16), False),  # nothing happened (e.g. another reader changed)
        (P | (2 << 16), P | (4 << 16), True),  # removed and replaced between two of our calls
        (P | (2 << 16), E | (3 << 16), False),
        (E, P | M, False),  # a card that does not answer its ATR
    ],
)
def test_is_new_card(previous: int | None, current: int, new: bool) -> None:
    assert is_new_card(previous, current) is new


@pytest.mark.parametrize(
    ("hr", "kind"),
    [
        (scard.SCARD_W_REMOVED_CARD, CardRemoved),
        (scard.SCARD_E_NOT_TRANSACTED, CardRemoved),
        (scard.SCARD_E_NO_SMARTCARD, CardRemoved),
        (scard.SCARD_E_NO_SERVICE, DeviceNotFound),
        (scard.SCARD_E_SERVICE_STOPPED, DeviceDisconnected),
        (scard.SCARD_E_UNKNOWN_READER, DeviceDisconnected),
        (scard.SCARD_E_TIMEOUT, ReadTimeout),
        (scard.SCARD_W_UNRESPONSIVE_CARD, ProtocolError),
        (scard.SCARD_F_INTERNAL_ERROR, HardwareError),
    ],
)
def test_convert_error(hr: int, kind: type[HardwareError]) -> None:
    exc = convert_error(hr, "SCardTransmit")
    assert type(exc) is kind
    assert "SCardTransmit" in str(exc) and f"{hr & 0xFFFFFFFF:08X}" in str(exc)


def test_no_service_message_is_bilingual() -> None:
    message = str(convert_error(scard.SCARD_E_NO_SERVICE, "SCardEstablishContext"))
    assert "pcscd not running" in message and "未运行" in message


def test_bad_setup_command_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="hex"):
        PcscReader("r", lambda read: None, setup_commands=["FF00ZZ"])
