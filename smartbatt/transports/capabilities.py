"""What an adapter can do natively, as smbus2's ``I2cFunc`` does for i2c-dev."""

from __future__ import annotations

from enum import IntFlag


class Capability(IntFlag):
    """Native abilities of a transport backend; the base class emulates what is missing."""

    NONE = 0
    #: combined write-then-read with a repeated start (every SMBus read needs it).
    REPEATED_START = 1 << 0
    #: SMBus quick command (address-only transfer).
    QUICK = 1 << 1
    #: variable-length block read inside one transaction (count byte decides the length).
    BLOCK_READ = 1 << 2
    #: block process call inside one transaction.
    BLOCK_PROCESS_CALL = 1 << 3
    #: PEC generated and checked by the adapter or kernel (otherwise computed in software).
    HARDWARE_PEC = 1 << 4
    #: the adapter reports which byte was not acknowledged (tells a PEC-byte NACK apart).
    NACK_POSITION = 1 << 5
    #: plain I2C reads without a command phase (receive byte).
    PLAIN_READ = 1 << 6
