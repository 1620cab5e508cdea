"""Shared fixtures for the hardware integration tests (real pcscd, real ptys).

Both hardware engineers append to this file; keep each block self-contained and import native
libraries (pyscard, pyserial, cv2) inside fixtures so one missing library does not break the others.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hardware.base import Reader, ReaderState
from tests.integration.hardware.collect import ReadCollector, wait_for_state

# == PC/SC: real pcscd + vsmartcard vpcd =========================================================


def _need_service(reason: str) -> None:
    """Fail loudly in CI (a missing service there is a broken pipeline); skip locally with the reason."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"PC/SC test environment unavailable in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def pcscd_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """The real Debian pcscd with only the vpcd reader, for the whole session; stopped at the end."""
    try:
        from tests.integration.hardware.pcscd_service import PcscdService, missing_reason
    except ImportError as exc:  # pyscard not built
        _need_service(f"pyscard unavailable: {exc}")
    reason = missing_reason()
    if reason is not None:
        _need_service(reason)
    service = PcscdService(Path(tmp_path_factory.mktemp("pcscd")))
    service.start()
    yield service
    service.stop()


@pytest.fixture
def pcscd(pcscd_service: object) -> object:
    """pcscd running with the vpcd reader at the start of this test (a previous test may have stopped it)."""
    pcscd_service.ensure()  # type: ignore[attr-defined]
    return pcscd_service


@pytest.fixture
def virtual_card() -> Iterator[Callable[..., object]]:
    """Factory for vpcd virtual cards; every card made here is pulled at teardown."""
    from tests.integration.hardware.pcscd_service import wait_card_absent
    from tests.integration.hardware.vpcd_card import VirtualCard

    made: list[VirtualCard] = []

    def make(uid: bytes | str, **kwargs: object) -> VirtualCard:
        kwargs.setdefault("after_remove", wait_card_absent)
        card = VirtualCard(bytes.fromhex(uid) if isinstance(uid, str) else uid, **kwargs)  # type: ignore[arg-type]
        made.append(card)
        return card

    yield make
    for card in made:
        card.remove()


@pytest.fixture
def pcsc_reader(pcscd: object) -> Iterator[Callable[..., tuple[Reader, ReadCollector]]]:
    """Factory: a started PcscReader on the vpcd slot, READY, with a ReadCollector; stopped at teardown."""
    from hardware.pcsc import PcscReader
    from tests.integration.hardware.pcscd_service import VPCD_READER

    started: list[Reader] = []

    def make(**kwargs: object) -> tuple[Reader, ReadCollector]:
        reads = ReadCollector()
        kwargs.setdefault("reader_name", f"^{VPCD_READER}$")
        kwargs.setdefault("reconnect_delay_s", 0.1)
        reader = PcscReader("pcsc-test", reads, **kwargs)  # type: ignore[arg-type]
        reader.start()
        started.append(reader)
        wait_for_state(reader, ReaderState.READY)
        return reader, reads

    yield make
    for reader in started:
        reader.stop()


# == end PC/SC ====================================================================================
