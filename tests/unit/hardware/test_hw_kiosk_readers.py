"""kiosk.readers: the registry's consumer builds what the config names, with stand-ins when simulating."""

import queue

from hardware.simulator import SimulatedReader
from kiosk.config import config_from_mapping
from kiosk.readers import ReaderSet


def test_simulation_stands_in_for_every_configured_reader_even_unloadable_ones():
    config = config_from_mapping(
        {"simulate": True, "readers": [{"profile": "/nowhere/Front Desk.yaml"}, {"profile": "rdm6300"}]}
    )
    reads = queue.Queue()
    readers = ReaderSet(config, reads.put)
    readers.start()
    try:
        assert readers.failures == []
        assert [r.reader_id for r in readers.readers] == ["/nowhere/Front Desk.yaml", "rfid-125k"]
        assert all(isinstance(r, SimulatedReader) for r in readers.readers)
        stand_in = readers.simulator_for("card", "rfid-125k")
        assert stand_in is not None
        stand_in.inject("card", "0A0B0C0D0E")
        assert reads.get(timeout=10).reader_id == "rfid-125k"
    finally:
        readers.stop()


def test_a_broken_profile_is_an_error_entry_not_a_crash(tmp_path):
    bad = tmp_path / "front.yaml"
    bad.write_text("driver: em4100\nbaud: 9601\n")
    readers = ReaderSet(config_from_mapping({"readers": [{"profile": str(bad)}]}), lambda r: None)
    readers.start()
    try:
        [entry] = readers.health()
        assert entry["state"] == "error" and "not a standard rate" in entry["last_error"]
    finally:
        readers.stop()
