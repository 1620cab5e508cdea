"""Fixtures for the QR integration tests (both database backends through the root conftest)."""

from __future__ import annotations

import pytest

from server.qr.keys import sealing_key
from tests.conftest import TEST_KEYS


@pytest.fixture
def seal() -> bytes:
    return sealing_key(TEST_KEYS)
