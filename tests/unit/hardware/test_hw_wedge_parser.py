"""Keyboard-wedge parser: evdev records → UID, layout-independent, fuzzing."""

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from hardware.keyboard_wedge import EV_KEY, EVENT_FORMAT, WedgeParser, encode_events, normalise_uid


def test_hex_uid_typed_with_enter():
    out = WedgeParser().feed(encode_events("04a23bc1"))
    assert [(r.ok, r.value) for r in out] == [(True, "04A23BC1")]


def test_decimal_uid_to_hex_and_byte_order():
    assert normalise_uid("0012345678", "decimal").value == "00BC614E"
    assert normalise_uid("0012345678", "decimal", "lsb").value == "4E61BC00"


def test_shift_ignored_and_other_keys_rejected():
    shift = struct.pack(EVENT_FORMAT, 0, 0, EV_KEY, 42, 1)
    out = WedgeParser().feed(shift + encode_events("ab"))
    assert out[0].value == "AB"
    q = struct.pack(EVENT_FORMAT, 0, 0, EV_KEY, 16, 1)  # KEY_Q
    out = WedgeParser().feed(encode_events("12", enter=False) + q + encode_events("34"))
    assert not out[0].ok


def test_records_split_across_reads():
    data = encode_events("0011")
    p = WedgeParser()
    out = [r for i in range(0, len(data), 7) for r in p.feed(data[i : i + 7])]
    assert [r.value for r in out] == ["0011"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=100), max_size=15))
def test_fuzz_never_raises(chunks):
    p = WedgeParser(input_format="decimal")
    for c in chunks:
        for r in p.feed(c):
            assert isinstance(r.value, str)
