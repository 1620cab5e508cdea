"""Fixtures of the staff web app tests: the two-community world of ``tests/web_world.py``."""

from __future__ import annotations

import pytest

from tests.web_world import World, build_world


@pytest.fixture
def world(db_session) -> World:  # type: ignore[no-untyped-def]
    return build_world(db_session)
