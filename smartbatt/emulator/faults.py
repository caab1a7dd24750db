"""Bus-level fault injection: what goes wrong on the wire rather than in the pack.

A :class:`FaultyBus` wraps any :class:`SMBusTarget` and makes it NACK, corrupt its PEC, stretch
the clock past the SMBus timeout or hold the bus stuck, on a schedule or at random (seeded). The
in-process transport and the Bus Pirate pty responder both sit in front of the same wrapper, so a
fault surfaces through each wire as the error that wire's real adapter would report.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from smartbatt.emulator.target import SMBusTarget, TargetBusStuck, TargetNack, TargetStretch

#: SMBus tTIMEOUT minimum: a slave holding SCL low this long abandons the transfer (smbus.md §6).
SMBUS_TTIMEOUT_S = 0.025


@dataclass
class BusFaults:
    """Which wire faults to inject. All off by default; change fields at any time."""

    #: NACK the address of every N-th transaction (0 = off).
    nack_every: int = 0
    #: probability of a NACK per transaction (0..1).
    nack_rate: float = 0.0
    #: flip one bit of the reply PEC of every N-th read (0 = off).
    corrupt_pec_every: int = 0
    #: probability of a corrupted reply PEC per read (0..1).
    corrupt_pec_rate: float = 0.0
    #: clock stretch applied to every transaction, seconds. Up to the SMBus tTIMEOUT (25 ms) it is
    #: legal and only slows the bus; past it the transfer is abandoned (the master times out).
    stretch_s: float = 0.0
    #: SDA held low: every transaction fails until cleared.
    stuck: bool = False
    #: seed of the random faults, so a failing run can be replayed.
    seed: int = 0

    def validate(self) -> None:
        for name in ("nack_rate", "corrupt_pec_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within 0..1, got {value}")
        for name in ("nack_every", "corrupt_pec_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.stretch_s < 0:
            raise ValueError("stretch_s must not be negative")

    @property
    def active(self) -> bool:
        return bool(
            self.nack_every or self.nack_rate or self.corrupt_pec_every or self.corrupt_pec_rate
            or self.stretch_s or self.stuck
        )


class FaultyBus:
    """An :class:`SMBusTarget` that injects :class:`BusFaults` in front of another target."""

    def __init__(self, inner: SMBusTarget, faults: BusFaults | None = None) -> None:
        self.inner = inner
        self.faults = faults or BusFaults()
        self.faults.validate()
        self._rng = random.Random(self.faults.seed)
        self._count = 0
        self._reads = 0
        #: total legal clock stretching so far, seconds (for bus-time accounting).
        self.stretched_s = 0.0

    def _before(self) -> None:
        f = self.faults
        self._count += 1
        if f.stuck:
            raise TargetBusStuck()
        if f.stretch_s >= SMBUS_TTIMEOUT_S:
            raise TargetStretch(f.stretch_s)
        self.stretched_s += f.stretch_s
        if (f.nack_every and self._count % f.nack_every == 0) or (f.nack_rate and self._rng.random() < f.nack_rate):
            raise TargetNack(0, "injected NACK")

    def transfer(self, address: int, write: bytes, read: bool = False) -> bytes:
        if not self.faults.active:
            return self.inner.transfer(address, write, read)
        self._before()
        reply = self.inner.transfer(address, write, read)
        if not read or not reply:
            return reply
        f = self.faults
        self._reads += 1
        if (f.corrupt_pec_every and self._reads % f.corrupt_pec_every == 0) or (
            f.corrupt_pec_rate and self._rng.random() < f.corrupt_pec_rate
        ):
            # the PEC is the last byte the device clocks out
            reply = reply[:-1] + bytes((reply[-1] ^ 0x01,))
        return reply

    def quick(self, address: int, read: bool) -> None:
        if self.faults.active:
            self._before()
        self.inner.quick(address, read)
