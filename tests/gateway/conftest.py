"""Fixtures the gateway test modules share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .e2e_helpers import LoopThread


@pytest.fixture(scope="module")
def loop() -> Iterator[LoopThread]:
    """An event loop in a thread of its own, for a module's gateways and stubs."""
    thread = LoopThread()
    yield thread
    thread.close()
