"""SMBus Packet Error Code: CRC-8/SMBUS (poly x^8+x^2+x+1 = 0x07, init 0, no reflection, no xorout).

Covered bytes: every byte of the transaction in order, address bytes *with* their R/W bit, the
command, the repeated-start address, the byte count and the data; not the PEC byte itself.
Source: SMBus 2.0 §5.4.1.1 as restated in ../shared/reference/smbus.md §4 (check value 0xF4 over
ASCII "123456789"); Linux drivers/i2c/i2c-core-smbus.c ``i2c_smbus_pec``.
"""

from __future__ import annotations

from collections.abc import Iterable


def _make_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
        table.append(crc)
    return tuple(table)


#: crc8 of a single byte with initial value 0; CRC-8 is linear, so crc = TABLE[crc ^ byte].
TABLE: tuple[int, ...] = _make_table()


def crc8(data: Iterable[int], crc: int = 0) -> int:
    """CRC-8/SMBUS of ``data``, continuing from ``crc`` (pass a partial CRC to chain phases)."""
    table = TABLE
    for byte in data:
        crc = table[crc ^ byte]
    return crc


def write_address(address: int) -> int:
    """Address byte on the wire for a write: 7-bit address << 1 | 0."""
    return (address << 1) & 0xFE


def read_address(address: int) -> int:
    """Address byte on the wire for a read: 7-bit address << 1 | 1."""
    return ((address << 1) | 1) & 0xFF


def pec_for_write(address: int, payload: bytes) -> int:
    """PEC a host appends to a write transaction ``S Addr+W payload``."""
    return crc8(payload, TABLE[write_address(address)])


def pec_for_read(address: int, written: bytes, received: bytes) -> int:
    """PEC of ``S Addr+W written Sr Addr+R received`` (``written`` empty for receive byte)."""
    if written:
        crc = crc8(written, TABLE[write_address(address)])
        crc = TABLE[crc ^ read_address(address)]
    else:
        crc = TABLE[read_address(address)]
    return crc8(received, crc)
