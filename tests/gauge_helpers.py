"""What the TI gauge driver tests share: the emulated gauge behind a transport, a no-wait sleep
for the driver's timing, and a transaction recorder."""

from __future__ import annotations

from typing import cast

from smartbatt.emulator.device import EmulatedGauge
from smartbatt.emulator.target import EmulatedBus
from smartbatt.transports import TransactionRecord, Transport

BAT = 0x0B


def emulator(t: Transport) -> EmulatedGauge:
    """The emulated gauge at 0x0B behind an ``emulated:`` transport."""
    return cast(EmulatedGauge, cast(EmulatedBus, t.target).devices[BAT])  # type: ignore[attr-defined]


def no_sleep(seconds: float) -> None:
    """Stands in for ``time.sleep`` in the driver's delays (the emulator needs no settle time)."""


def log(t: Transport) -> list[TransactionRecord]:
    """Every transaction on ``t`` from now on, in order."""
    records: list[TransactionRecord] = []
    t.add_listener(records.append)
    return records
