"""The PMBus command table: contents pinned to the reference, validation of broken tables, decode."""

from __future__ import annotations

import copy
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smartbatt.errors import DecodeError, ProfileError, SmartBattError, UnknownCommand
from smartbatt.pmbus.commands import (
    TABLE_FILE,
    DataFormat,
    WireKind,
    decode,
    load_table,
    loads_table,
    parse_table,
)
from smartbatt.pmbus.formats import DirectCoefficients, parse_vout_mode

TABLE = load_table()


def _builtin_data() -> dict[str, Any]:
    text = resources.files("smartbatt.pmbus").joinpath(TABLE_FILE).read_text(encoding="utf-8")
    return tomllib.loads(text)


# --- contents --------------------------------------------------------------------------------------

# (code, name, kind, format, unit) from ../shared/reference/pmbus.md §1
PINNED = [
    (0x00, "PAGE", "byte", "uint", ""),
    (0x03, "CLEAR_FAULTS", "send", "none", ""),
    (0x19, "CAPABILITY", "byte", "bits", ""),
    (0x20, "VOUT_MODE", "byte", "vout_mode", ""),
    (0x21, "VOUT_COMMAND", "word", "linear16", "V"),
    (0x78, "STATUS_BYTE", "byte", "status", ""),
    (0x79, "STATUS_WORD", "word", "status", ""),
    (0x7E, "STATUS_CML", "byte", "status", ""),
    (0x88, "READ_VIN", "word", "linear11", "V"),
    (0x89, "READ_IIN", "word", "linear11", "A"),
    (0x8B, "READ_VOUT", "word", "linear16", "V"),
    (0x8C, "READ_IOUT", "word", "linear11", "A"),
    (0x8D, "READ_TEMPERATURE_1", "word", "linear11", "°C"),
    (0x8E, "READ_TEMPERATURE_2", "word", "linear11", "°C"),
    (0x90, "READ_FAN_SPEED_1", "word", "linear11", "rpm"),
    (0x94, "READ_DUTY_CYCLE", "word", "linear11", "%"),
    (0x95, "READ_FREQUENCY", "word", "linear11", "kHz"),
    (0x96, "READ_POUT", "word", "linear11", "W"),
    (0x97, "READ_PIN", "word", "linear11", "W"),
    (0x98, "PMBUS_REVISION", "byte", "bits", ""),
    (0x99, "MFR_ID", "block", "ascii", ""),
    (0x9A, "MFR_MODEL", "block", "ascii", ""),
    (0x9B, "MFR_REVISION", "block", "ascii", ""),
    (0xA5, "MFR_VOUT_MAX", "word", "linear16", "V"),
    (0xC0, "MFR_MAX_TEMP_1", "word", "linear11", "°C"),
]


@pytest.mark.parametrize(("code", "name", "kind", "fmt", "unit"), PINNED)
def test_table_matches_the_reference(code: int, name: str, kind: str, fmt: str, unit: str) -> None:
    command = TABLE.get(name)
    assert (command.code, command.kind.value, command.format.value, command.unit) == (code, kind, fmt, unit)
    assert TABLE.get(code) is command


def test_codes_and_names_are_unique() -> None:
    assert len({c.code for c in TABLE}) == len(TABLE) == len({c.name for c in TABLE})


def test_status_word_bits_match_the_reference() -> None:
    # pmbus.md §5 (Linux pmbus.h PB_STATUS_*)
    expected = {
        15: "VOUT", 14: "IOUT_POUT", 13: "INPUT", 12: "MFR_SPECIFIC", 11: "POWER_GOOD_N", 10: "FANS",
        9: "OTHER", 8: "UNKNOWN", 7: "BUSY", 6: "OFF", 5: "VOUT_OV_FAULT", 4: "IOUT_OC_FAULT",
        3: "VIN_UV_FAULT", 2: "TEMPERATURE", 1: "CML", 0: "NONE_OF_THE_ABOVE",
    }  # fmt: skip
    word = TABLE.bitmap("STATUS_WORD")
    assert {f.msb: f.name for f in word.fields} == expected
    assert all(f.is_flag for f in word.fields)
    byte = TABLE.bitmap("STATUS_BYTE")
    assert {f.msb: f.name for f in byte.fields} == {b: n for b, n in expected.items() if b < 8}


@pytest.mark.parametrize(
    ("register", "bits"),
    [
        ("STATUS_VOUT", {7: "VOUT_OV_FAULT", 6: "VOUT_OV_WARNING", 5: "VOUT_UV_WARNING", 4: "VOUT_UV_FAULT"}),
        ("STATUS_IOUT", {7: "IOUT_OC_FAULT", 5: "IOUT_OC_WARNING", 1: "POUT_OP_FAULT", 0: "POUT_OP_WARNING"}),
        ("STATUS_INPUT", {7: "VIN_OV_FAULT", 4: "VIN_UV_FAULT", 2: "IIN_OC_FAULT", 0: "PIN_OP_WARNING"}),
        ("STATUS_TEMPERATURE", {7: "OT_FAULT", 6: "OT_WARNING", 5: "UT_WARNING", 4: "UT_FAULT"}),
        ("STATUS_CML", {7: "INVALID_COMMAND", 6: "INVALID_DATA", 5: "PEC_FAILED", 4: "MEMORY_FAULT"}),
        ("STATUS_OTHER", {0: "FIRST_TO_ASSERT_SMBALERT", 1: "OUTPUT_ORING_FAULT"}),
        ("STATUS_FANS_1_2", {7: "FAN_1_FAULT", 6: "FAN_2_FAULT", 1: "AIRFLOW_FAULT", 0: "AIRFLOW_WARNING"}),
    ],
)
def test_detail_register_bits(register: str, bits: dict[int, str]) -> None:
    by_bit = {f.msb: f.name for f in TABLE.bitmap(register).fields}
    for bit, name in bits.items():
        assert by_bit[bit] == name


def test_summary_bits_point_at_their_detail_registers() -> None:
    word = TABLE.bitmap("STATUS_WORD")
    assert word.field("VOUT").detail == ("STATUS_VOUT",)
    assert word.field("TEMPERATURE").detail == ("STATUS_TEMPERATURE",)
    assert word.field("CML").detail == ("STATUS_CML",)
    assert word.field("FANS").detail == ("STATUS_FANS_1_2", "STATUS_FANS_3_4")
    assert word.field("POWER_GOOD_N").detail == ()


def test_lookup_forms() -> None:
    assert TABLE.get("read_vout").code == 0x8B
    assert TABLE.get(" READ_VOUT ").code == 0x8B
    assert TABLE.get("0x8b").name == "READ_VOUT"
    assert TABLE.get("139").name == "READ_VOUT"
    with pytest.raises(UnknownCommand, match="READ_VIN"):  # suggests close names
        TABLE.get("READ_V")
    with pytest.raises(UnknownCommand):
        TABLE.get(0x05)
    with pytest.raises(KeyError):  # UnknownCommand is also a KeyError
        TABLE.get("NOPE")


def test_builtin_table_is_cached_and_a_file_loads_the_same(tmp_path: Path) -> None:
    assert load_table() is TABLE
    file = tmp_path / "copy.toml"
    file.write_text(resources.files("smartbatt.pmbus").joinpath(TABLE_FILE).read_text(encoding="utf-8"))
    assert load_table(file).commands == TABLE.commands


# --- broken tables -----------------------------------------------------------------------------------


def _command(data: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in data["commands"] if c["name"] == name)


def _bitmap(data: dict[str, Any], register: str) -> dict[str, Any]:
    return next(b for b in data["bitmaps"] if b["register"] == register)


def _cap(data: dict[str, Any], index: int) -> dict[str, Any]:
    field: dict[str, Any] = _bitmap(data, "CAPABILITY")["fields"][index]
    return field


def _drop_bitmap(data: dict[str, Any], register: str) -> None:
    data["bitmaps"] = [b for b in data["bitmaps"] if b["register"] != register]


BROKEN = [
    ("schema_version", lambda d: d.update(schema_version=2)),
    ("commands", lambda d: d.update(commands={})),
    ("commands.READ_VOUT.code", lambda d: _command(d, "READ_VIN").update(code=0x8B)),  # the later entry
    ("commands.READ_VIN.code", lambda d: _command(d, "READ_VIN").update(code=0x100)),
    ("commands.READ_VIN.code", lambda d: _command(d, "READ_VIN").update(code="0x88")),
    ("commands.READ_VIN.code", lambda d: _command(d, "READ_VIN").update(code=True)),
    ("commands.READ_VIN.name", lambda d: d["commands"].append(dict(_command(d, "READ_VIN"), code=0xFE))),
    ("commands[57].name", lambda d: _command(d, "READ_VIN").update(name="read vin")),
    ("commands.READ_VIN.kind", lambda d: _command(d, "READ_VIN").update(kind="dword")),
    ("commands.READ_VIN.format", lambda d: _command(d, "READ_VIN").update(format="linear12")),
    ("commands.READ_VIN.format", lambda d: _command(d, "READ_VIN").update(format="ascii")),
    ("commands.READ_VIN.access", lambda d: _command(d, "READ_VIN").update(access="x")),
    ("commands.READ_VIN.colour", lambda d: _command(d, "READ_VIN").update(colour="red")),
    ("commands.PAGE.unit", lambda d: _command(d, "PAGE").update(unit="V")),
    ("commands.CLEAR_FAULTS.access", lambda d: _command(d, "CLEAR_FAULTS").update(access="rw")),
    ("commands.OPERATION.format", lambda d: _drop_bitmap(d, "OPERATION")),
    ("bitmaps.READ_VIN.register", lambda d: _bitmap(d, "CAPABILITY").update(register="READ_VIN")),
    ("bitmaps.NOPE.register", lambda d: _bitmap(d, "CAPABILITY").update(register="NOPE")),
    ("bitmaps.CAPABILITY.width", lambda d: _bitmap(d, "CAPABILITY").update(width=16)),
    ("bitmaps.STATUS_BYTE.from", lambda d: _bitmap(d, "STATUS_BYTE").update({"from": "STATUS_TEMPERATURE"})),
    ("bitmaps.CAPABILITY.fields[0].msb", lambda d: _cap(d, 0).update(msb=8)),
    ("bitmaps.CAPABILITY.fields[1].lsb", lambda d: _cap(d, 1).update(lsb=7)),
    ("bitmaps.CAPABILITY.SMBALERT", lambda d: _cap(d, 2).update(msb=6, lsb=6)),
    ("bitmaps.CAPABILITY.PEC", lambda d: _cap(d, 2).update(name="PEC")),
    ("bitmaps.CAPABILITY.fields[0].values.x", lambda d: _cap(d, 0).update(values={"x": "?"})),
    ("bitmaps.CAPABILITY.fields[0].values.2", lambda d: _cap(d, 0).update(values={"2": "?"})),
    ("bitmaps.CAPABILITY.fields[0].values.1", lambda d: _cap(d, 0).update(values={"1": 1})),
    ("bitmaps.STATUS_WORD.VOUT.detail", lambda d: _bitmap(d, "STATUS_WORD")["fields"][0].update(detail=["READ_VIN"])),
    ("bitmaps.STATUS_WORD.VOUT.detail", lambda d: _bitmap(d, "STATUS_WORD")["fields"][0].update(detail=["NOPE"])),
    ("bitmaps.CAPABILITY", lambda d: d["bitmaps"].append(copy.deepcopy(_bitmap(d, "CAPABILITY")))),
]  # fmt: skip


@pytest.mark.parametrize(("key_path", "mutate"), BROKEN, ids=[f"{i}-{k}" for i, (k, _) in enumerate(BROKEN)])
def test_broken_tables_name_the_key(key_path: str, mutate: Any) -> None:
    data = _builtin_data()
    mutate(data)
    with pytest.raises(ProfileError) as info:
        parse_table(data, "broken.toml")
    assert info.value.file == "broken.toml"
    assert info.value.key_path == key_path, info.value.reason
    assert str(info.value).startswith(f"broken.toml: {key_path}: ")


def test_unreadable_or_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="cannot read"):
        load_table(tmp_path / "missing.toml")
    with pytest.raises(ProfileError, match="not valid TOML"):
        loads_table("commands = [", "bad.toml")


def test_unchanged_builtin_data_validates() -> None:
    # the mutation tests above only mean something if the untouched data passes
    assert parse_table(_builtin_data(), "ok.toml").commands == TABLE.commands


# --- decode ------------------------------------------------------------------------------------------


def test_decode_texts() -> None:
    assert decode(TABLE.get("READ_VIN"), b"\xc0\xe0").text == "12 V"
    assert decode(TABLE.get("READ_VOUT"), b"\x9a\x69", vout_mode=parse_vout_mode(0x13)).value == 3.300048828125
    status = decode(TABLE.get("STATUS_WORD"), (0x8005).to_bytes(2, "little"))
    assert status.text == "0x8005 (VOUT, TEMPERATURE, NONE_OF_THE_ABOVE)"
    assert decode(TABLE.get("STATUS_CML"), b"\x04").text == "0x04 (no bits set, undefined bits 0x04)"
    assert decode(TABLE.get("CAPABILITY"), b"\xb0").text.startswith("0xB0 (PEC: supported, Max bus speed: 400 kHz")
    assert decode(TABLE.get("PMBUS_REVISION"), b"\x33").text == "0x33 (Part I: 1.3, Part II: 1.3)"
    assert decode(TABLE.get("VOUT_MODE"), b"\x17").text == "0x17 (linear, exponent -9)"
    assert decode(TABLE.get("PAGE"), b"\x01").value == 1
    assert decode(TABLE.get("MFR_ID"), b"ACME\x00\x00").value == "ACME"
    assert decode(TABLE.get("MFR_ID"), b"A\x01").text == "A\\x01"
    assert decode(TABLE.get("IC_DEVICE_ID"), b"\x12\xab").text == "12 AB"


def test_decode_errors() -> None:
    with pytest.raises(DecodeError, match="VOUT_MODE"):
        decode(TABLE.get("READ_VOUT"), b"\x00\x01")
    with pytest.raises(DecodeError, match="2 bytes"):
        decode(TABLE.get("READ_VIN"), b"\x00")
    with pytest.raises(DecodeError, match="send-byte"):
        decode(TABLE.get("CLEAR_FAULTS"), b"")


def test_decode_with_direct_coefficients() -> None:
    coefficients = DirectCoefficients(20, 0, 2)
    assert decode(TABLE.get("READ_IOUT"), b"\xc0\x5d", coefficients=coefficients).value == 12.0


@given(
    st.sampled_from([c for c in TABLE if c.readable]),
    st.binary(max_size=34),
    st.one_of(st.none(), st.integers(0, 0xFF)),
    st.one_of(
        st.none(), st.builds(DirectCoefficients, st.integers(1, 5000), st.integers(-500, 500), st.integers(-4, 4))
    ),
)
def test_any_reply_bytes_decode_or_raise_a_typed_error(
    command: Any, data: bytes, mode: int | None, coefficients: DirectCoefficients | None
) -> None:
    vout_mode = None if mode is None else parse_vout_mode(mode)
    try:
        result = decode(command, data, vout_mode=vout_mode, coefficients=coefficients)
    except SmartBattError:
        return
    assert isinstance(result.text, str)
    if command.format in (DataFormat.LINEAR11, DataFormat.LINEAR16):
        assert isinstance(result.value, float)
    if command.kind is not WireKind.BLOCK:
        assert len(data) == command.kind.size
