"""The virtual smart battery: device side of the wire, physics, gauge behaviour, faults.

Never imports :mod:`smartbatt.transports`; the ``emulated:`` transport imports this package.
"""

from __future__ import annotations

from smartbatt.emulator.factory import build_bus

__all__ = ["build_bus"]
