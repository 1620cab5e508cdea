"""Line-scanner parser: terminators, limits, encodings, fuzzing."""

from hypothesis import given, settings
from hypothesis import strategies as st

from hardware.base import CredentialKind
from hardware.line_scanner import LineParser, normalise_line


def test_cr_lf_and_crlf_all_end_a_code():
    p = LineParser(CredentialKind.QR)
    out = p.feed(b"BD1.aaa\rBD1.bbb\nBD1.ccc\r\n\r\n")
    assert [r.value for r in out] == ["BD1.aaa", "BD1.bbb", "BD1.ccc"]


def test_split_line_is_joined():
    p = LineParser(CredentialKind.QR)
    assert p.feed(b"BD1.par") == []
    assert [r.value for r in p.feed(b"tial\r\n")] == ["BD1.partial"]


def test_card_lines_normalised_and_non_hex_rejected():
    p = LineParser(CredentialKind.CARD)
    out = p.feed(b"04:a2:3b:c1\r\nzz12\r\n0abc\r\n")
    assert out[0].ok and out[0].value == "04A23BC1"
    assert not out[1].ok and "hex" in out[1].value
    assert out[2].ok and out[2].value == "0ABC"


def test_overlong_line_counted_once_then_recovers():
    p = LineParser(CredentialKind.QR, max_line=8)
    out = p.feed(b"0123456789ABCDEF0123\r\nOK\r\n")
    assert [r.ok for r in out] == [False, True]
    assert out[1].value == "OK"


def test_undecodable_bytes_and_prefix():
    assert not normalise_line(b"\xff\xfe", CredentialKind.QR).ok
    assert normalise_line(b"]Q1BD1.x", CredentialKind.QR, strip_prefix="]Q1").value == "BD1.x"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=20), st.sampled_from(list(CredentialKind)))
def test_fuzz_never_raises(chunks, kind):
    p = LineParser(kind, max_line=32)
    for c in chunks:
        for r in p.feed(c):
            assert isinstance(r.value, str)
            assert "\r" not in r.value and "\n" not in r.value
