"""EM4100 (RDM6300) frame parser: table of real-format frames, broken ones, chunking, fuzzing."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hardware.base import ProtocolError
from hardware.em4100 import Em4100Parser, build_frame, parse_frame

# captured-format frame of tag 0x62 00 E3 A5 8B (XOR = 0xAF)
REAL = b"\x02" + b"6200E3A58B" + b"AF" + b"\x03"


def test_checksum_of_real_frame_and_builder_agree():
    assert build_frame(bytes.fromhex("6200E3A58B")) == REAL
    assert parse_frame(REAL) == "6200E3A58B"
    assert parse_frame(REAL, uid_bytes=4) == "00E3A58B"


@pytest.mark.parametrize(
    "frame, why",
    [
        (b"\x02" + b"6200E3A58B" + b"AC" + b"\x03", "checksum"),
        (b"\x02" + b"6200E3A58B" + b"AF" + b"\x04", "STX/ETX"),
        (b"\x02" + b"6200G3A58B" + b"AF" + b"\x03", "non-hex"),
        (b"\x02" + b"6200E3A58B" + b"AF", "length"),
    ],
)
def test_broken_frames_raise_protocol_error(frame, why):
    with pytest.raises(ProtocolError, match=why):
        parse_frame(frame)


def test_lowercase_hex_is_accepted_and_normalised():
    frame = b"\x02" + b"6200e3a58b" + b"af" + b"\x03"
    assert parse_frame(frame) == "6200E3A58B"


def test_stream_with_noise_split_and_truncation():
    p = Em4100Parser()
    stream = (
        b"\xff\x00"
        + REAL[:5]
        + build_frame(bytes.fromhex("0102030405"))
        + REAL
        + b"\x02"
        + b"6200E3A58BAC\x03"
    )
    results = []
    for i in range(0, len(stream), 3):  # frames split across reads
        results += p.feed(stream[i : i + 3])
    good = [r.value for r in results if r.ok]
    bad = [r.value for r in results if not r.ok]
    assert good == ["0102030405", "6200E3A58B"]
    assert any("noise" in b for b in bad)
    assert any("truncated" in b for b in bad)
    assert any("checksum" in b for b in bad)


def test_bytewise_feed_equals_whole_feed():
    data = REAL * 3
    a = Em4100Parser().feed(data)
    p = Em4100Parser()
    b = [r for byte in data for r in p.feed(bytes([byte]))]
    assert a == b and len(a) == 3


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(st.binary(max_size=30), st.just(REAL), st.just(b"\x02"), st.just(b"\x03")), max_size=20
    )
)
def test_fuzz_never_raises_and_valid_frames_survive(chunks):
    p = Em4100Parser()
    results = []
    for c in chunks:
        results += p.feed(c)
    for r in results:
        if r.ok:
            assert len(r.value) == 10 and r.value == r.value.upper()
    # a clean frame after any garbage is always recovered
    tail = p.feed(b"\x02" + REAL)
    assert tail[-1].ok and tail[-1].value == "6200E3A58B"
