"""Shared fixtures: the emulated battery, a leak check on transports, hypothesis settings."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from smartbatt.transports import Transport, open_transport

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

settings.register_profile("ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=100, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

_OPEN: list[Transport] = []
_original_init = Transport.__init__


def _tracking_init(self: Transport, *args: object, **kwargs: object) -> None:
    _original_init(self, *args, **kwargs)  # type: ignore[arg-type]
    _OPEN.append(self)


Transport.__init__ = _tracking_init  # type: ignore[method-assign]


@pytest.fixture(autouse=True)
def no_leaked_transports() -> Iterator[None]:
    """Fail a test that leaves a transport open (python-can's conftest does the same for buses)."""
    _OPEN.clear()
    yield
    leaked = [t for t in _OPEN if not t.closed]
    for t in leaked:
        t.close()
    _OPEN.clear()
    assert not leaked, f"test leaked open transports: {[t.describe() for t in leaked]}"


@pytest.fixture
def emulated() -> Iterator[Transport]:
    """An emulated transport with the static SBS register file behind it."""
    with open_transport("emulated:?model=static") as transport:
        yield transport
