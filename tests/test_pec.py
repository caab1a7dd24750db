"""PEC against published check values and the worked vectors of ../shared/reference/smbus.md §4."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smartbatt.pec import crc8, pec_for_read, pec_for_write, read_address, write_address


def _bitwise(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        (b"123456789", 0xF4),  # CRC-8/SMBUS catalogue check value
        (b"abc", 0x5F),
        (bytes.fromhex("00 07 01 12 3B"), 0xD5),
        (bytes.fromhex("16 09 17 80 3E"), 0x67),  # read word Voltage = 16000 mV
        (bytes.fromhex("16 08 17 A6 0B"), 0x2A),  # read word Temperature = 2982
        (bytes.fromhex("16 00 14 04"), 0x0C),  # write word MAC 0x0414 (unseal word 1)
        (bytes.fromhex("16 00 72 36"), 0x19),  # write word MAC 0x3672
        (bytes.fromhex("16 44 02 54 00"), 0x34),  # block write 0x44 OperationStatus
        (bytes.fromhex("16 20 17 02 54 49"), 0x7F),  # block read ManufacturerName "TI"
    ],
)
def test_published_vectors(frame: bytes, expected: int) -> None:
    assert crc8(frame) == expected


def test_transaction_helpers_build_the_frame_with_rw_bits() -> None:
    assert write_address(0x0B) == 0x16
    assert read_address(0x0B) == 0x17
    assert pec_for_read(0x0B, b"\x09", b"\x80\x3e") == 0x67
    assert pec_for_write(0x0B, b"\x00\x14\x04") == 0x0C
    assert pec_for_read(0x0B, b"\x20", b"\x02TI") == 0x7F


def test_receive_byte_pec_covers_only_the_read_address() -> None:
    assert pec_for_read(0x0B, b"", b"\x42") == crc8(b"\x17\x42")


@given(st.binary(max_size=64), st.binary(max_size=64))
def test_table_crc_equals_bitwise_and_chains(a: bytes, b: bytes) -> None:
    assert crc8(a) == _bitwise(a)
    assert crc8(b, crc8(a)) == _bitwise(a + b)
