from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.masking import mask_name, mask_phone


@pytest.mark.parametrize(
    ("name", "masked"),
    [
        ("张三明", "张*明"),
        ("张三", "张*"),
        ("欧阳娜娜", "欧**娜"),
        ("司马相如君", "司***君"),
        ("张", "张"),
        ("Li Wei", "Li W**"),
        ("Mary Jane Watson", "Mary W*****"),
        ("Alexander", "A*******r"),
        ("阿依·买买提", "阿依·买**"),
        ("  张三明 ", "张*明"),
        ("", ""),
        ("   ", ""),
    ],
)
def test_mask_name(name: str, masked: str) -> None:
    assert mask_name(name) == masked


@pytest.mark.parametrize(
    ("phone", "masked"),
    [
        ("13812345678", "138****5678"),
        ("+86 138 1234 5678", "+86 138 **** 5678"),
        ("021-6234 5678", "021-**** 5678"),
        ("6234 5678", "**** 5678"),
        ("12345", "***45"),
        ("110", "***"),
        ("", ""),
    ],
)
def test_mask_phone(phone: str, masked: str) -> None:
    assert mask_phone(phone) == masked


@given(st.text(alphabet=st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF), min_size=3, max_size=6))
def test_chinese_names_keep_ends_only(name: str) -> None:
    masked = mask_name(name)
    assert len(masked) == len(name) and masked[0] == name[0] and masked[-1] == name[-1]
    assert set(masked[1:-1]) == {"*"}


@given(st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True))
def test_mobile_numbers_hide_the_middle_four(phone: str) -> None:
    masked = mask_phone(phone)
    assert masked[:3] == phone[:3] and masked[-4:] == phone[-4:] and masked[3:7] == "****"


@given(st.text(max_size=40))
def test_never_reveals_more_than_half_of_a_phone(phone: str) -> None:
    digits = sum(c.isdigit() for c in phone)
    kept = sum(c.isdigit() for c in mask_phone(phone))
    assert kept <= max(digits // 2, 7 if digits >= 11 else 0) + (2 if phone.lstrip().startswith("+86") else 0)
