"""Fake bridges between a transport and an SMBusTarget that misbehave the way real adapters do.

Shared by the transport engine tests and the contract suite.
"""

from __future__ import annotations

from smartbatt.emulator.target import SMBusTarget
from smartbatt.pec import crc8, read_address


class StopStartAdapter:
    """A bridge that sends STOP+START instead of a repeated start: the device's PEC covers the
    read phase only (its PEC engine restarts at the new START)."""

    def __init__(self, inner: SMBusTarget) -> None:
        self.inner = inner

    def transfer(self, address: int, write: bytes, read: bool = False) -> bytes:
        reply = self.inner.transfer(address, write, read)
        if not read or not write:
            return reply
        body = reply[:-1]
        return body + bytes((crc8(body, crc8(bytes((read_address(address),)))),))

    def quick(self, address: int, read: bool) -> None:
        self.inner.quick(address, read)


class PecFlipper:
    """Noise on SDA during the PEC byte of a word write: the device computes a different PEC."""

    def __init__(self, inner: SMBusTarget) -> None:
        self.inner = inner

    def transfer(self, address: int, write: bytes, read: bool = False) -> bytes:
        if not read and len(write) == 4:  # command, low, high, PEC
            write = write[:-1] + bytes((write[-1] ^ 0x80,))
        return self.inner.transfer(address, write, read)

    def quick(self, address: int, read: bool) -> None:
        self.inner.quick(address, read)
