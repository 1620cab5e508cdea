"""PcscReader survives what happens in the field: card pulled mid-read, pcscd restarted, reader gone."""

from __future__ import annotations

import pytest

from hardware.base import ReaderState
from tests.integration.hardware.collect import ReadCollector, wait_for_state
from tests.integration.hardware.test_pcsc_reads import _wait_health
from tests.integration.hardware.vpcd_card import GET_UID

pytestmark = [pytest.mark.pcsc, pytest.mark.slow]


def test_card_pulled_mid_read_is_no_read_and_the_next_tap_works(pcsc_reader, virtual_card) -> None:
    reader, reads = pcsc_reader()
    pulled = virtual_card("04A1B2C3", pull_on=GET_UID)
    pulled.insert()
    assert pulled.pulled.wait(10)
    _wait_health(reader, lambda h: h.extra.get("aborted_reads") == 1)
    pulled.remove()  # waits until pcscd has seen the slot empty
    health = reader.health()
    assert health.state == ReaderState.READY
    assert health.reads == 0 and health.bad_frames == 0
    virtual_card("0A0B0C0D").insert()
    assert reads.next().value == "0A0B0C0D"
    assert reads.none_within(0.3)


def test_pcscd_stopped_then_started_again(pcscd, pcsc_reader, virtual_card) -> None:
    reader, reads = pcsc_reader()
    pcscd.stop()
    wait_for_state(reader, ReaderState.CONNECTING)
    _wait_health(reader, lambda h: "pcscd" in (h.last_error or ""))
    pcscd.start()
    wait_for_state(reader, ReaderState.READY)
    assert reader.health().extra["reconnects"] >= 1
    virtual_card("11223344").insert()
    assert reads.next().value == "11223344"


def test_pcscd_restarted_while_watching(pcscd, pcsc_reader, virtual_card) -> None:
    reader, reads = pcsc_reader()
    before = reader.health().extra.get("reconnects", 0)
    pcscd.restart()
    _wait_health(reader, lambda h: h.extra.get("reconnects", 0) > before and h.state == ReaderState.READY)
    virtual_card("55667788").insert()
    assert reads.next().value == "55667788"


def test_reader_unplugged_and_plugged_back(pcscd, pcsc_reader, virtual_card) -> None:
    """pcscd comes back without the reader (unplugged), then with it (plugged back)."""
    reader, reads = pcsc_reader()
    pcscd.restart(with_reader=False)
    _wait_health(
        reader, lambda h: h.state == ReaderState.CONNECTING and "Virtual PCD" in (h.last_error or "")
    )
    assert reader.health().extra["pcsc_reader"] == ""
    pcscd.restart(with_reader=True)
    wait_for_state(reader, ReaderState.READY)
    virtual_card("99AABBCC").insert()
    assert reads.next().value == "99AABBCC"


def test_card_resting_on_the_reader_across_a_pcscd_restart_is_read_again(
    pcscd, pcsc_reader, virtual_card
) -> None:
    """After a restart we cannot know whether the card on the reader was read; the kiosk debounces."""
    _reader, reads = pcsc_reader()
    card = virtual_card("DEADBEEF")
    card.insert()
    assert reads.next().value == "DEADBEEF"
    wait_absent, card.after_remove = card.after_remove, None  # pcscd is about to go; nothing to wait for
    card.remove()
    card.after_remove = wait_absent
    pcscd.restart()
    card.insert()
    assert reads.next().value == "DEADBEEF"


def test_a_failing_callback_does_not_stop_the_reader(pcsc_reader, virtual_card) -> None:
    failures: list[str] = []
    reads = ReadCollector()

    def callback(read) -> None:
        if not failures:
            failures.append(read.value)
            raise RuntimeError("kiosk bug")
        reads(read)

    from hardware.pcsc import PcscReader
    from tests.integration.hardware.pcscd_service import VPCD_READER

    reader = PcscReader("pcsc-cb", callback, reader_name=f"^{VPCD_READER}$")
    reader.start()
    try:
        wait_for_state(reader, ReaderState.READY)
        first = virtual_card("01010101")
        first.insert()
        _wait_health(reader, lambda h: h.reads == 1)
        first.remove()
        virtual_card("02020202").insert()
        assert reads.next().value == "02020202"
        assert failures == ["01010101"]
    finally:
        reader.stop()


def test_stop_cancels_a_long_wait(pcsc_reader) -> None:
    reader, _reads = pcsc_reader(poll_timeout_ms=600_000)
    reader.stop(timeout=30)
    assert reader._thread is not None and not reader._thread.is_alive()
    assert reader.health().state == ReaderState.STOPPED


def test_card_that_stops_answering_shows_as_error_until_pulled(pcsc_reader, virtual_card) -> None:
    reader, reads = pcsc_reader(stuck_after_ms=300)
    silent = virtual_card("04A1B2C3", hang_on=GET_UID)
    silent.insert()
    assert silent.hung.wait(10)
    wait_for_state(reader, ReaderState.ERROR)
    assert "not answering" in (reader.health().last_error or "")
    silent.remove()  # pulling the card ends the blocked SCardTransmit
    wait_for_state(reader, ReaderState.READY)
    assert reader.health().extra["aborted_reads"] == 1
    virtual_card("0A0B0C0D").insert()
    assert reads.next().value == "0A0B0C0D"
