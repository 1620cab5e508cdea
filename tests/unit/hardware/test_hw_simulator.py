"""Simulator: inject → CredentialRead via the registry, with emulation through the real parsers."""

import queue

import pytest

from hardware.base import CredentialKind, HardwareError, ReaderState
from hardware.idcard_sam import id_check_digit
from hardware.registry import create_reader
from hardware.schema import load_profile, profile_from_mapping


@pytest.fixture
def reads():
    return queue.Queue()


def start(profile, reads):
    reader = create_reader(profile, reads.put)
    reader.start()
    return reader


def test_plain_simulator_profile(reads):
    reader = start(load_profile("simulator"), reads)
    try:
        reader.inject("card", "04A23BC1")
        r = reads.get(timeout=5)
        assert (r.kind, r.value, r.reader_id) == (CredentialKind.CARD, "04A23BC1", "sim")
        assert reader.health().reads == 1
    finally:
        reader.stop()


@pytest.mark.parametrize(
    "emulate, kind, value, expected",
    [
        ("em4100", "card", "6200E3A58B", "6200E3A58B"),
        ("serial_line", "qr", "BD1.token", "BD1.token"),
        ("keyboard_wedge", "card", "04a23bc1", "04A23BC1"),
    ],
)
def test_emulation_runs_real_parsers(reads, emulate, kind, value, expected):
    p = profile_from_mapping("s", {"driver": "simulated", "options": {"emulate": emulate}})
    reader = start(p, reads)
    try:
        reader.inject(kind, value)
        assert reads.get(timeout=5).value == expected
    finally:
        reader.stop()


def test_idcard_emulation_and_wrong_kind(reads):
    number = "11010519491231002" + id_check_digit("11010519491231002")
    p = profile_from_mapping(
        "s", {"driver": "simulated", "options": {"emulate": "idcard_sam", "kind": "id_card"}}
    )
    reader = start(p, reads)
    try:
        reader.inject("id_card", number, display_name="张三")
        r = reads.get(timeout=5)
        assert (r.value, r.display_name) == (number, "张三")
        with pytest.raises(HardwareError):
            reader.inject("qr", "x")
        reader.inject("id_card", "123")  # fails the check digit in the real parser
        reader.inject("id_card", number)
        reads.get(timeout=5)
        assert reader.health().bad_frames == 1
    finally:
        reader.stop()


def test_unplug_and_replug_states(reads):
    reader = start(load_profile("simulator"), reads)
    try:
        reader.unplug()
        assert reader.health().state is ReaderState.CONNECTING
        reader.inject("card", "01")
        reader.replug()
        reader.inject("card", "02")
        assert reads.get(timeout=5).value == "02"
        assert reader.health().state is ReaderState.READY
    finally:
        reader.stop()
