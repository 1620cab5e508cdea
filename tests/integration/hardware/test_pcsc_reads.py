"""PcscReader against the real pcscd + vpcd: what a tap delivers, and what a bad answer does."""

from __future__ import annotations

import pytest

from hardware.base import CredentialKind, ReaderState
from tests.integration.hardware.vpcd_card import GET_UID, SW_OK

pytestmark = pytest.mark.pcsc


@pytest.mark.parametrize(
    "uid",
    ["04A1B2C3", "04A1B2C3D4E5F6", "04A1B2C3D4E5F6071829"],
    ids=["4-byte", "7-byte", "10-byte"],
)
def test_uid_delivered_as_upper_case_hex(pcsc_reader, virtual_card, uid: str) -> None:
    reader, reads = pcsc_reader()
    card = virtual_card(uid.lower())
    card.insert()
    read = reads.next()
    assert read.kind is CredentialKind.CARD
    assert read.value == uid
    assert read.reader_id == "pcsc-test"
    assert reader.health().reads == 1
    assert card.received()[-1] == GET_UID


def test_each_tap_is_one_read(pcsc_reader, virtual_card) -> None:
    _reader, reads = pcsc_reader()
    values = []
    for uid in ("11223344", "55667788", "11223344"):
        card = virtual_card(uid)
        card.insert()
        values.append(reads.next().value)
        card.remove()
    assert values == ["11223344", "55667788", "11223344"]
    assert reads.none_within(0.6)  # removal is not a read


def test_6a81_is_a_bad_frame_not_a_read(pcsc_reader, virtual_card) -> None:
    reader, reads = pcsc_reader()
    card = virtual_card("04A1B2C3", uid_status=[bytes.fromhex("6A81")])
    card.insert()
    _wait_health(reader, lambda h: h.bad_frames == 1)
    health = reader.health()
    assert "6A81" in (health.last_error or "")
    assert card.received().count(GET_UID) == 1  # not retried: retrying cannot help
    assert reads.none_within(0.2)
    assert health.state == ReaderState.READY
    card.remove()
    virtual_card("CAFEBABE").insert()
    assert reads.next().value == "CAFEBABE"  # the reader carries on


def test_6300_is_retried_then_read(pcsc_reader, virtual_card) -> None:
    reader, reads = pcsc_reader(uid_retries=2)
    card = virtual_card("04A1B2C3", uid_status=[bytes.fromhex("6300"), bytes.fromhex("6300"), SW_OK])
    card.insert()
    assert reads.next().value == "04A1B2C3"
    assert card.received().count(GET_UID) == 3
    assert reader.health().bad_frames == 0


def test_6300_persisting_is_a_bad_frame(pcsc_reader, virtual_card) -> None:
    reader, reads = pcsc_reader(uid_retries=1)
    card = virtual_card("04A1B2C3", uid_status=[bytes.fromhex("6300")])
    card.insert()
    _wait_health(reader, lambda h: h.bad_frames == 1)
    assert "6300" in (reader.health().last_error or "")
    assert card.received().count(GET_UID) == 2
    assert reads.none_within(0.2)


def test_wrong_le_is_resent_with_the_length_the_card_asks_for(pcsc_reader, virtual_card) -> None:
    _reader, reads = pcsc_reader()
    card = virtual_card("04A1B2C3", uid_status=[bytes.fromhex("6C04"), SW_OK])
    card.insert()
    assert reads.next().value == "04A1B2C3"
    assert card.received()[-1] == bytes.fromhex("FFCA000004")


def test_setup_commands_sent_before_the_uid_once_per_reader(pcsc_reader, virtual_card) -> None:
    buzzer_off, led = bytes.fromhex("FF00520000"), bytes.fromhex("FF00400D0403000101")
    _reader, reads = pcsc_reader(setup_commands=[buzzer_off.hex(), "FF 00 40 0D 04 03 00 01 01"])
    ok = {buzzer_off: SW_OK, led: bytes.fromhex("9002")}
    first = virtual_card("01020304", responses=ok)
    first.insert()
    assert reads.next().value == "01020304"
    assert first.received() == [buzzer_off, led, GET_UID]
    first.remove()
    second = virtual_card("05060708", responses=ok)
    second.insert()
    assert reads.next().value == "05060708"
    assert second.received() == [GET_UID]


def test_setup_commands_each_card_when_asked(pcsc_reader, virtual_card) -> None:
    led = bytes.fromhex("FF00400D0403000101")
    reader, reads = pcsc_reader(setup_commands=[led.hex()], setup_each_card=True)
    for uid in ("01020304", "05060708"):
        card = virtual_card(uid)  # answers 6D00: a failed setup must not cost the read
        card.insert()
        assert reads.next().value == uid
        assert card.received() == [led, GET_UID]
        card.remove()
    assert reader.health().extra["setup_failures"] == 2


def test_debounce_suppresses_the_same_card_bouncing(pcsc_reader, virtual_card) -> None:
    reader, reads = pcsc_reader(debounce_ms=60_000)
    for _ in range(2):
        card = virtual_card("0A0B0C0D")
        card.insert()
        _wait_until(lambda c=card: GET_UID in c.received())
        card.remove()
    other = virtual_card("01020304")
    other.insert()
    assert [reads.next().value, reads.next().value] == ["0A0B0C0D", "01020304"]
    assert reader.health().extra["debounced"] == 1


def test_reader_name_filter_ignores_other_readers(pcsc_reader, virtual_card) -> None:
    reader, _reads = pcsc_reader(reader_name="^Virtual PCD 00 01$")
    assert reader.health().extra["pcsc_reader"] == "Virtual PCD 00 01"


def test_no_matching_reader_is_connecting_with_a_clear_message(pcscd) -> None:
    from hardware.pcsc import PcscReader
    from tests.integration.hardware.collect import ReadCollector, wait_for_state

    reader = PcscReader("pcsc-none", ReadCollector(), reader_name="^ACS ACR122U")
    reader.start()
    try:
        wait_for_state(reader, ReaderState.CONNECTING)
        _wait_health(reader, lambda h: "ACR122U" in (h.last_error or ""))
        assert "未找到" in (reader.health().last_error or "")
    finally:
        reader.stop()
    assert reader.health().state == ReaderState.STOPPED


def _wait_health(reader, predicate, timeout: float = 10.0) -> None:
    _wait_until(lambda: predicate(reader.health()), timeout, lambda: f"health: {reader.health()}")


def _wait_until(predicate, timeout: float = 10.0, describe=lambda: "") -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError(f"condition not met within {timeout} s {describe()}")


def test_vpcd_profile_through_the_registry(pcscd, virtual_card) -> None:
    """The shipped test profile, loaded and built the way the kiosk does it."""
    from hardware.registry import create_reader
    from hardware.schema import load_profile
    from tests.integration.hardware.collect import ReadCollector, wait_for_state

    reads = ReadCollector()
    reader = create_reader(load_profile("vpcd-virtual"), reads)
    reader.start()
    try:
        wait_for_state(reader, ReaderState.READY)
        virtual_card("04A1B2C3D4E5F6").insert()
        read = reads.next()
        assert (read.value, read.reader_id) == ("04A1B2C3D4E5F6", "vpcd-test")
    finally:
        reader.stop()


def test_port_overrides_the_profile_reader_name(pcscd) -> None:
    from hardware.registry import create_reader
    from hardware.schema import load_profile
    from tests.integration.hardware.collect import ReadCollector, wait_for_state

    reader = create_reader(load_profile("acr122u"), ReadCollector(), port="^Virtual PCD 00 01$")
    reader.start()
    try:
        wait_for_state(reader, ReaderState.READY)
        assert reader.health().extra["pcsc_reader"] == "Virtual PCD 00 01"
    finally:
        reader.stop()
