"""smartbatt — an open smart-battery driver: SMBus transports, SBS 1.1, TI gauges, PMBus.

The library never imports Qt; the desktop app in ``gui/`` is a client of it like any script.
"""

from __future__ import annotations

from smartbatt.errors import SmartBattError
from smartbatt.sbs.battery import Battery, open_battery
from smartbatt.sbs.decode import decode
from smartbatt.transports import Transport, open_transport
from smartbatt.uri import DEFAULT_URI

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_URI",
    "Battery",
    "SmartBattError",
    "Transport",
    "__version__",
    "decode",
    "open_battery",
    "open_transport",
]
