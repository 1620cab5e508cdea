"""Masking of personal data for screens and lists.

A kiosk stands in a public hall: the name it shows after a tap must confirm "that's me" to the member
without telling onlookers who was there. The server masks names before they enter the roster, so an
unmasked name never reaches a kiosk at all. Phone numbers are masked in staff lists the same way.
"""

from __future__ import annotations

import logging
import re
import unicodedata

logger = logging.getLogger(__name__)

MASK = "*"


def _is_wide(char: str) -> bool:
    """CJK and other wide characters: one character is a whole syllable of a name."""
    return unicodedata.east_asian_width(char) in ("W", "F")


def mask_name(name: str) -> str:
    """``"张三明"`` → ``"张*明"``, ``"张三"`` → ``"张*"``, ``"欧阳娜娜"`` → ``"欧**娜"``,
    ``"Li Wei"`` → ``"Li W**"``, ``"Alexander"`` → ``"A*******r"``.

    Chinese names keep the first and last character (family name and a hint of the given name); a
    two-character name keeps only the family name. Latin names keep the first word and the initial of
    the last word, or, for one word, its first and last letter. Middle-dot names (``"阿依·买买提"``)
    are treated as Latin-style words. Empty or blank text stays empty.
    """
    name = " ".join(name.split())
    if not name:
        return ""
    words = [w for w in re.split(r"[ ·•・]", name) if w]
    if len(words) >= 2:
        first, last = words[0], words[-1]
        return (
            f"{first} {last[0]}{MASK * (len(last) - 1)}"
            if not _is_wide(first[0])
            else (f"{first}·{last[0]}{MASK * (len(last) - 1)}")
        )
    word = words[0]
    if len(word) == 1:
        return word
    if len(word) == 2:
        return word[0] + MASK
    return word[0] + MASK * (len(word) - 2) + word[-1]


def mask_phone(phone: str) -> str:
    """``"13812345678"`` → ``"138****5678"``.

    Eleven or more digits keep the first 3 and last 4 (after a ``+86`` prefix); shorter numbers
    (landlines without area code) keep at most the last half, up to 4 digits; 1-3 digits are all masked.
    Separators are kept as written so the number still reads naturally.
    """
    digits = [c for c in phone if c.isdigit()]  # any script: full-width digits are digits too
    n = len(digits)
    if n == 0:
        return phone
    if n >= 11:
        keep_head, keep_tail = 3, 4
        if phone.lstrip().startswith("+86") and n == 13:
            keep_head += 2  # the country code is not personal
    elif n >= 4:
        keep_head, keep_tail = 0, min(4, n // 2)
    else:
        keep_head, keep_tail = 0, 0
    masked_positions = set(range(keep_head, n - keep_tail))
    out, index = [], 0
    for char in phone:
        if char.isdigit():
            out.append(MASK if index in masked_positions else char)
            index += 1
        else:
            out.append(char)
    return "".join(out)
