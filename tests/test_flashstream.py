"""FlashStream (.bq.fs / .df.fs) parsing, writing, data-flash export and malformed-line errors."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smartbatt.errors import DecodeError, RangeError
from smartbatt.gauge.flashstream import (
    FileFormatError,
    FsOp,
    OpKind,
    dataflash_ops,
    export_dataflash,
    format_flashstream,
    parse_flashstream,
    read_flashstream,
    write_flashstream,
)
from smartbatt.profiles.loader import load_profile

SMBUS_FILE = """\
;--------------------------------------------------------
;Unseal and full access
;--------------------------------------------------------
SWW: 16 00 14 04
SWW: 16 00 72 36
X: 1000
SWC: 16 08
SWB: 16 44 81 44 F0 0A
X: 100
SWB: 16 44 81 44
SCL: 16 44 04 81 44 F0 0A
SCW: 16 09 10 27
"""


def test_ti_faq_example_swc():
    (op,) = parse_flashstream("SWC: 16 08\n")
    assert op == FsOp(OpKind.WRITE_COMMAND, 0x0B, 0x08)
    assert op.line == 1


def test_smbus_file_parses_to_pinned_operations():
    ops = parse_flashstream(SMBUS_FILE, "unseal.bq.fs")
    assert ops == (
        FsOp.write_word(0x0B, 0x00, 0x0414),
        FsOp.write_word(0x0B, 0x00, 0x3672),
        FsOp.wait(1000),
        FsOp(OpKind.WRITE_COMMAND, 0x0B, 0x08),
        FsOp.write_block(0x0B, 0x44, bytes([0x81, 0x44, 0xF0, 0x0A])),
        FsOp.wait(100),
        FsOp.write_block(0x0B, 0x44, bytes([0x81, 0x44])),
        FsOp.compare_block(0x0B, 0x44, bytes([0x81, 0x44, 0xF0, 0x0A])),
        FsOp.compare_word(0x0B, 0x09, 10000),
    )
    assert [op.line for op in ops] == [4, 5, 6, 7, 8, 9, 10, 11, 12]
    assert ops[0].word == 0x0414
    assert ops[-1].word == 10000


def test_i2c_lines_from_the_ti_example():
    ops = parse_flashstream("W: AA 55 AB CD EF 00\nC: AA 55 AB CD EF 00\nX: 2\n")
    assert ops[0] == FsOp(OpKind.I2C_WRITE, 0x55, 0x55, bytes([0xAB, 0xCD, 0xEF, 0x00]))
    assert ops[1].kind is OpKind.I2C_COMPARE and ops[1].data == bytes([0xAB, 0xCD, 0xEF, 0x00])
    assert ops[2] == FsOp.wait(2)


def test_format_is_canonical_and_round_trips():
    ops = parse_flashstream(SMBUS_FILE)
    text = format_flashstream(ops, comments=["exported by smartbatt"])
    assert text.splitlines()[:3] == ["; exported by smartbatt", "SWW: 16 00 14 04", "SWW: 16 00 72 36"]
    assert "SCL: 16 44 04 81 44 F0 0A" in text.splitlines()
    assert parse_flashstream(text) == ops


def test_file_round_trip_uses_crlf(tmp_path):
    path = tmp_path / "image.df.fs"
    ops = parse_flashstream(SMBUS_FILE)
    write_flashstream(path, ops, comments=["hello"])
    raw = path.read_bytes()
    assert raw.startswith(b"; hello\r\nSWW: 16 00 14 04\r\n")
    assert read_flashstream(path) == ops


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("SWC: 16 08\nFOO: 16 08\n", 2, "unknown command 'FOO:'"),
        ("SWC 16 08\n", 1, "expected 'TAG: fields' or a ';' comment, got 'SWC 16 08'"),
        ("SWC: 16 8G\n", 1, "'8G' is not a hexadecimal byte"),
        ("SWC: 16 108\n", 1, "'108' is not a hexadecimal byte"),
        ("SWC: 17 08\n", 1, "address 0x17 is a read address; the file uses write addresses"),
        ("SWC: 16 08 00\n", 1, "SWC: takes 2 fields, got 3"),
        ("SWW: 16 00 14\n", 1, "SWW: takes 4 fields, got 3"),
        ("SCW: 16 00 14 04 00\n", 1, "SCW: takes 4 fields, got 5"),
        ("SWB: 16 44\n", 1, "SWB: takes at least 3 fields, got 2"),
        ("SCL: 16 44 02\n", 1, "SCL: takes at least 4 fields, got 3"),
        ("SCL: 16 44 03 01 02\n", 1, "SCL: length byte says 3 but 2 data bytes follow"),
        ("X: 1.5\n", 1, "X: takes one decimal number of milliseconds"),
        ("X: 10 20\n", 1, "X: takes one decimal number of milliseconds"),
        ("X:\n", 1, "X: takes one decimal number of milliseconds"),
        ("W: AA 55\n", 1, "W: takes at least 3 fields, got 2"),
        ("SWC: 16 08\n\n; fine\nW: AA 00 01\n", 4, "W: is an i2c line but line 1 is smbus"),
        ("SWB: 16 44 " + " ".join(["00"] * 97) + "\n", 1, "97 data bytes; a line carries at most 96"),
    ],
)
def test_malformed_lines_name_file_and_line(text, line, reason):
    with pytest.raises(FileFormatError) as err:
        parse_flashstream(text, "golden.bq.fs")
    assert (err.value.file, err.value.line, err.value.reason) == ("golden.bq.fs", line, reason)
    assert str(err.value) == f"golden.bq.fs:{line}: {reason}"
    assert isinstance(err.value, DecodeError)


def test_error_pickles():
    with pytest.raises(FileFormatError) as err:
        parse_flashstream("ZZ: 1\n", "a.fs")
    clone = pickle.loads(pickle.dumps(err.value))
    assert (clone.file, clone.line, clone.reason, str(clone)) == (
        "a.fs",
        1,
        "unknown command 'ZZ:'",
        "a.fs:1: unknown command 'ZZ:'",
    )


def test_unreadable_and_non_ascii_files(tmp_path):
    with pytest.raises(FileFormatError) as err:
        read_flashstream(tmp_path / "missing.bq.fs")
    assert err.value.line is None and err.value.reason.startswith("cannot read:")
    bad = tmp_path / "bad.bq.fs"
    bad.write_bytes(b"SWC: 16 08\r\n; caf\xe9\r\n")
    with pytest.raises(FileFormatError) as err:
        read_flashstream(bad)
    assert (err.value.line, err.value.reason) == (2, "not an ASCII text line")


@pytest.mark.parametrize(
    ("op", "message"),
    [
        (FsOp(OpKind.WRITE_COMMAND, 0x0B, 0x08, b"\x01"), "SWC: carries no data"),
        (FsOp(OpKind.WRITE_WORD, 0x0B, 0x00, b"\x01"), "needs exactly 2 data bytes"),
        (FsOp(OpKind.WRITE_BLOCK, 0x0B, 0x44, b""), "needs at least one data byte"),
        (FsOp(OpKind.WRITE_BLOCK, 0x80, 0x44, b"\x01"), "out of range"),
        (FsOp(OpKind.WAIT, wait_ms=-1), "is negative"),
    ],
)
def test_unwritable_operations(op, message):
    with pytest.raises(DecodeError, match=message):
        format_flashstream([op])


def test_comments_must_be_single_ascii_lines():
    with pytest.raises(DecodeError, match="not a single ASCII line"):
        format_flashstream([], comments=["caf\u00e9"])
    with pytest.raises(DecodeError, match="not a single ASCII line"):
        format_flashstream([], comments=["two\nlines"])


def test_word_helpers_check_range():
    with pytest.raises(DecodeError, match=r"outside 0\.\.0xFFFF"):
        FsOp.write_word(0x0B, 0, 0x10000)
    with pytest.raises(DecodeError, match="not a word operation"):
        _ = FsOp.wait(1).word


_addr = st.integers(min_value=0, max_value=0x7F)
_byte = st.integers(min_value=0, max_value=0xFF)
_ops = st.one_of(
    st.builds(lambda a, c: FsOp(OpKind.WRITE_COMMAND, a, c), _addr, _byte),
    st.builds(FsOp.write_word, _addr, _byte, st.integers(0, 0xFFFF)),
    st.builds(FsOp.compare_word, _addr, _byte, st.integers(0, 0xFFFF)),
    st.builds(FsOp.write_block, _addr, _byte, st.binary(min_size=1, max_size=96)),
    st.builds(FsOp.compare_block, _addr, _byte, st.binary(min_size=1, max_size=96)),
    st.builds(FsOp.wait, st.integers(0, 100_000)),
)


@given(st.lists(_ops, max_size=20))
def test_any_smbus_operations_round_trip(ops):
    assert list(parse_flashstream(format_flashstream(ops))) == ops


# --- data-flash export -----------------------------------------------------------------------------


def test_dataflash_ops_merges_runs_splits_blocks_and_verifies():
    image = {0x4000: bytes(range(20)), 0x4014: bytes(range(20, 40)), 0x4100: b"\xaa"}
    ops = dataflash_ops(image, write_delay_ms=100)
    writes = [op for op in ops if op.kind is OpKind.WRITE_BLOCK and len(op.data) > 2]
    assert [(op.data[:2], len(op.data) - 2) for op in writes] == [
        (b"\x00\x40", 32),
        (b"\x20\x40", 8),
        (b"\x00\x41", 1),
    ]
    assert writes[0].data[2:] == bytes(range(32))
    first_block = ops[:4]
    assert first_block == [
        FsOp.write_block(0x0B, 0x44, b"\x00\x40" + bytes(range(32))),
        FsOp.wait(100),
        FsOp.write_block(0x0B, 0x44, b"\x00\x40"),
        FsOp.compare_block(0x0B, 0x44, b"\x00\x40" + bytes(range(32))),
    ]
    text = format_flashstream(ops)
    assert text.splitlines()[0] == "SWB: 16 44 00 40 " + " ".join(f"{b:02X}" for b in range(32))
    assert parse_flashstream(text) == tuple(ops)


def test_dataflash_ops_without_verify_or_delay():
    ops = dataflash_ops({0x4481: b"\xf0\x0a"}, verify=False)
    assert ops == [FsOp.write_block(0x0B, 0x44, bytes([0x81, 0x44, 0xF0, 0x0A]))]


@pytest.mark.parametrize(
    ("image", "message"),
    [
        ({0x4000: b"\x01\x02", 0x4001: b"\x03"}, "overlaps the previous entry"),
        ({0x4000: b""}, "no bytes"),
        ({0xFFFF: b"\x01\x02"}, "beyond 0xFFFF"),
    ],
)
def test_dataflash_ops_rejects_bad_images(image, message):
    with pytest.raises(DecodeError, match=message):
        dataflash_ops(image)


def test_export_dataflash_for_bq4050_pins_bytes():
    bq = load_profile("bq4050")
    values = {
        "Protections:CUV:Threshold": 2800,
        "Protections:CUV:Delay": 2,
        "Protections:CUV:Recovery": 3000,
        "Settings:Protection:Enabled Protections D": 0x0F,
    }
    ops = export_dataflash(bq, values, verify=False)
    # 0x4480 (D) .. 0x4485 (CUV recovery) are contiguous: one block, little-endian values.
    assert ops == [FsOp.write_block(0x0B, 0x44, bytes([0x80, 0x44, 0x0F, 0xF0, 0x0A, 0x02, 0xB8, 0x0B]))]


def test_export_dataflash_uses_profile_timing():
    ops = export_dataflash(load_profile("bq40z50"), {"Settings:Protection:Enabled Protections A": 0xCF})
    assert ops[:2] == [FsOp.write_block(0x0B, 0x44, bytes([0x38, 0x49, 0xCF])), FsOp.wait(100)]


@pytest.mark.parametrize(
    ("profile", "values", "error", "message"),
    [
        ("bq40z50", {"Protections:CUV:Threshold": 2800}, DecodeError, "has no published address"),
        ("bq40z50", {"Nope:Nope:Nope": 1}, DecodeError, "no data-flash entry 'Nope:Nope:Nope'"),
        ("bq28z610", {"Gas Gauging:Design:Design Capacity mAh": 3000}, DecodeError, "supports ManufacturerBlockAccess"),
        ("bq4050", {"Protections:CUV:Delay": 300}, RangeError, "outside U1 range"),
    ],
)
def test_export_dataflash_errors(profile, values, error, message):
    with pytest.raises(error, match=message):
        export_dataflash(load_profile(profile), values)
