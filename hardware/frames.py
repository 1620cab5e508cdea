"""The result type shared by the pure frame parsers.

Parsers never raise on device input: they return good values and named bad frames in order, so the
driver can count and log each bad frame (``Reader._bad_frame``) and the fuzz tests can assert that no
exception escapes whatever bytes arrive.
"""

from __future__ import annotations

from typing import NamedTuple


class FrameResult(NamedTuple):
    ok: bool
    value: str  # the normalised value when ok, otherwise why the frame was rejected
    display_name: str | None = None

    @classmethod
    def good(cls, value: str, display_name: str | None = None) -> FrameResult:
        return cls(True, value, display_name)

    @classmethod
    def bad(cls, why: str) -> FrameResult:
        return cls(False, why)
