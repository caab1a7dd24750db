"""Decoding and encoding of every SBS 1.1 command from known raw bytes; properties over any bytes."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smartbatt import decode as public_decode
from smartbatt.errors import DecodeError, RangeError, SmartBattError, UnknownCommand
from smartbatt.sbs import codecs
from smartbatt.sbs.codecs import BitFields, SpecInfo
from smartbatt.sbs.commands import lookup, sbs_table
from smartbatt.sbs.decode import Reading, decode, parse_raw

# Every command of the table, decoded from wire bytes (low byte first for words). Values are
# worked out by hand from SBS 1.1 / sbs.md (units, sign, 0.1 K, date packing, bit positions).
EVERY_COMMAND: list[tuple[str, bytes, Any, str]] = [
    ("ManufacturerAccess", b"\x14\x04", 0x0414, ""),
    ("RemainingCapacityAlarm", b"\x2c\x01", 300, "mAh"),
    ("RemainingTimeAlarm", b"\x0a\x00", 10, "min"),
    ("BatteryMode", b"\x01\x60", 0x6001, ""),
    ("AtRate", b"\x18\xfc", -1000, "mA"),
    ("AtRateTimeToFull", b"\x78\x00", 120, "min"),
    ("AtRateTimeToEmpty", b"\xff\xff", None, "min"),
    ("AtRateOK", b"\x01\x00", True, ""),
    ("Temperature", b"\xa6\x0b", 25.05, "°C"),
    ("Voltage", b"\x80\x3e", 16000, "mV"),
    ("Current", b"\x0c\xfe", -500, "mA"),
    ("AverageCurrent", b"\xdc\x05", 1500, "mA"),
    ("MaxError", b"\x01\x00", 1, "%"),
    ("RelativeStateOfCharge", b"\x50\x00", 80, "%"),
    ("AbsoluteStateOfCharge", b"\x4e\x00", 78, "%"),
    ("RemainingCapacity", b"\x24\x09", 2340, "mAh"),
    ("FullChargeCapacity", b"\x6d\x0b", 2925, "mAh"),
    ("RunTimeToEmpty", b"\x5a\x00", 90, "min"),
    ("AverageTimeToEmpty", b"\xff\xff", None, "min"),
    ("AverageTimeToFull", b"\x2d\x00", 45, "min"),
    ("ChargingCurrent", b"\xdc\x05", 1500, "mA"),
    ("ChargingVoltage", b"\xa0\x41", 16800, "mV"),
    ("BatteryStatus", b"\xc0\x00", 0x00C0, ""),
    ("CycleCount", b"\x2a\x00", 42, "cycles"),
    ("DesignCapacity", b"\xb8\x0b", 3000, "mAh"),
    ("DesignVoltage", b"\x40\x38", 14400, "mV"),
    ("SpecificationInfo", b"\x31\x00", 0x0031, ""),
    ("ManufactureDate", b"\x5b\x4b", datetime.date(2017, 10, 27), ""),
    ("SerialNumber", b"\x34\x12", 0x1234, ""),
    ("ManufacturerName", b"TI", "TI", ""),
    ("DeviceName", b"bq40z50\x00\x00", "bq40z50", ""),
    ("DeviceChemistry", b"LION", "LION", ""),
    ("ManufacturerData", b"\x00\x01\xfe", b"\x00\x01\xfe", ""),
]


def test_every_command_has_a_known_raw_case() -> None:
    assert {name for name, *_ in EVERY_COMMAND} == {c.name for c in sbs_table()}


@pytest.mark.parametrize(("name", "wire", "expected", "unit"), EVERY_COMMAND, ids=[c[0] for c in EVERY_COMMAND])
def test_every_command_decodes_from_wire_bytes(name: str, wire: bytes, expected: Any, unit: str) -> None:
    reading = decode(name, wire)
    assert reading.command.name == name
    assert reading.unit == unit
    assert not reading.filler
    value = reading.value
    if isinstance(value, (BitFields, SpecInfo)):
        assert value.raw == expected
    else:
        assert value == expected
        assert type(value) is type(expected)
    # the raw value is kept next to the decoded one
    assert reading.raw == (wire if isinstance(expected, (str, bytes)) else int.from_bytes(wire, "little"))


def test_text_forms_of_the_same_word_agree() -> None:
    by_int = decode("Voltage", 0x3E80)
    assert decode("Voltage", "0x3E80") == by_int
    assert decode("Voltage", "16000") == by_int
    assert decode("Voltage", "80 3E") == by_int
    assert decode("Voltage", "80:3e") == by_int
    assert decode("Voltage", b"\x80\x3e") == by_int
    assert decode(0x09, "80,3E") == by_int
    assert by_int.text == "16000 mV"
    assert by_int.raw_text == "0x3E80"
    assert public_decode is decode


def test_signed_values_accept_negative_text_and_stay_raw() -> None:
    r = decode("Current", "-500")
    assert r.raw == 0xFE0C and r.value == -500 and r.text == "-500 mA"
    assert decode("Current", 0x8000).value == -32768
    assert decode("Current", 0x7FFF).value == 32767
    # positive = charging (sbs.md §1)
    assert decode("AverageCurrent", "E8 03").value == 1000


def test_block_text_with_the_wire_byte_count_is_accepted() -> None:
    assert decode("DeviceChemistry", "04 4C 49 4F 4E").value == "LION"
    assert decode("DeviceChemistry", "4C 49 4F 4E").value == "LION"
    # 0x02 followed by three bytes is not a count: kept as data
    assert decode("ManufacturerData", "02 00 00 00").value == b"\x02\x00\x00\x00"


def test_strings_drop_padding_and_escape_non_printables() -> None:
    assert decode("DeviceName", b"ABC\x00\xff\xff").value == "ABC"
    assert decode("DeviceName", b"A\x01B\x80").value == "A\\x01B\\x80"
    assert decode("DeviceName", b"").value == ""


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("zz", "not a raw value"),
        ("3E80", "not a raw value"),
        ("80 3E 00", "expected 2 bytes"),
        ("0x10000", "does not fit"),
        ("-1", "unsigned"),
        ("", "empty"),
        ("80 3G", "not a hex byte"),
        (b"\x01", "expected 2 bytes"),
        (70000, "does not fit"),
        (-1, "does not fit"),
    ],
)
def test_malformed_raw_values_raise_decode_error(raw: Any, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        decode("Voltage", raw)


def test_raw_type_errors() -> None:
    with pytest.raises(DecodeError):
        decode("Voltage", True)
    with pytest.raises(DecodeError):
        decode("Voltage", 1.5)  # type: ignore[arg-type]
    with pytest.raises(DecodeError, match="block"):
        decode("DeviceName", 5)
    with pytest.raises(UnknownCommand):
        decode("NoSuchCommand", 1)


# --- sentinels and fillers ------------------------------------------------------------------------


def test_sentinels_are_not_numbers() -> None:
    r = decode("RunTimeToEmpty", 0xFFFF)
    assert r.value is None and r.meaning == "not discharging" and r.text == "not discharging"
    assert r.raw == 0xFFFF and not r.filler
    assert decode("AverageTimeToFull", "FF FF").meaning == "not charging"
    assert decode("ChargingCurrent", 0xFFFF).meaning == "maximum current requested"
    assert decode("ManufactureDate", 0).meaning == "not set"
    # one below the sentinel is an ordinary number
    assert decode("RunTimeToEmpty", 0xFFFE).value == 65534


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("Voltage", 0xFFFF),
        ("Temperature", 0xFFFF),
        ("Temperature", 0x1717),
        ("BatteryStatus", 0x1717),
        ("BatteryMode", 0xFFFF),
        ("RelativeStateOfCharge", 0x1717),
        ("SpecificationInfo", 0xFFFF),
        ("RemainingCapacity", 0xFFFF),
        ("DeviceName", b"\x17\x17\x17"),
        ("DeviceChemistry", b"\xff\xff\xff\xff"),
    ],
)
def test_fillers_are_flagged_never_decoded(name: str, raw: int | bytes) -> None:
    r = decode(name, raw)
    assert r.filler and r.value is None
    assert "filler" in r.meaning and r.raw == raw
    assert r.to_json()["value"] is None and "meaning" in r.to_json()


@pytest.mark.parametrize(
    ("name", "raw", "value"),
    [
        ("Current", 0xFFFF, -1),  # -1 mA is a legal reading
        ("Voltage", 0x1717, 5911),  # a 2-series pack at 2.96 V per cell
        ("RemainingCapacity", 0x1717, 5911),
        ("SerialNumber", 0xFFFF, 0xFFFF),
        ("ManufacturerData", b"\xff\xff", b"\xff\xff"),
    ],
)
def test_values_that_look_like_fillers_are_data_where_legal(name: str, raw: int | bytes, value: Any) -> None:
    r = decode(name, raw)
    assert not r.filler and r.value == value


# --- bit fields -------------------------------------------------------------------------------------


def test_battery_mode_bits() -> None:
    mode = decode("BatteryMode", 0xE381).value
    assert isinstance(mode, BitFields)
    assert {f.short for f in mode.flags} == {"ICC", "CF", "CC", "PB", "AM", "CHGM", "CAPM"}
    assert mode.is_set("CAPACITY_MODE") and mode.is_set("CAPM") and not mode.is_set("PBS")
    assert mode["ALARM_MODE"] == 1 and mode.reserved == 0
    with pytest.raises(DecodeError):
        mode.is_set("NOT_A_FLAG")
    with pytest.raises(DecodeError):
        _ = mode["NOT_A_FIELD"]
    # reserved bits are reported, not hidden
    assert decode("BatteryMode", 0x0004).value.reserved == 0x0004  # type: ignore[union-attr]


def test_battery_status_flags_and_error_code() -> None:
    r = decode("BatteryStatus", 0xC8D3)  # OCA TCA TDA INIT DSG FD + error 3
    status = r.value
    assert isinstance(status, BitFields)
    assert [f.short for f in r.flags] == ["FD", "DSG", "INIT", "TDA", "TCA", "OCA"]
    assert status.error_code == 3 and status.error_text == "Unsupported command"
    assert "error: Unsupported command" in r.text
    assert decode("BatteryStatus", 0x0008).value.error_text.startswith("undefined code 8")  # type: ignore[union-attr]
    json = status.to_json()
    assert json["OVER_CHARGED_ALARM"] is True and json["ERROR_CODE"] == 3
    assert json["ERROR_CODE_TEXT"] == "Unsupported command"


@pytest.mark.parametrize("bit", range(16))
def test_bit_struct_agrees_with_masks(bit: int) -> None:
    """The construct BitStruct built from data puts every field where its mask says."""
    for layout in sbs_table().bitfields:
        bits = codecs.decode_bits(layout, 1 << bit)
        for f in sbs_table().bitfields[layout]:
            assert bits[f.name] == f.extract(1 << bit), (layout, f.name)
        assert bits.reserved == (1 << bit) & ~codecs.defined_mask(layout) & 0xFFFF


def test_specification_info_fields_and_pec() -> None:
    info = decode("SpecificationInfo", 0x0031).value
    assert info == SpecInfo(raw=0x31, revision=1, version=3, vscale=0, ipscale=0)
    assert isinstance(info, SpecInfo) and info.pec_supported and info.version_text == "SBS 1.1 with PEC"
    v11 = decode("SpecificationInfo", 0x0021).value
    assert isinstance(v11, SpecInfo) and not v11.pec_supported
    # SBS-IF errata: the worked example is 0x1011 = IPScale 1, version 1, revision 1 (sbs.md §4)
    errata = decode("SpecificationInfo", 0x1011).value
    assert isinstance(errata, SpecInfo) and (errata.ipscale, errata.vscale, errata.version) == (1, 0, 1)
    with pytest.raises(DecodeError, match=r"outside 0\.\.3"):
        decode("SpecificationInfo", 0x0431)


def test_manufacture_date() -> None:
    # sbs.md §5 examples
    assert decode("ManufactureDate", 19291).value == datetime.date(2017, 10, 27)
    assert decode("ManufactureDate", 0x4F5A).value == datetime.date(2019, 10, 26)
    assert codecs.encode_date(datetime.date(2017, 10, 27)) == 0x4B5B
    with pytest.raises(DecodeError, match="not a date"):
        decode("ManufactureDate", (45 << 9) | (13 << 5) | 1)  # month 13
    with pytest.raises(DecodeError, match="not a date"):
        decode("ManufactureDate", (45 << 9) | (2 << 5) | 30)  # 30 February
    with pytest.raises(RangeError):
        codecs.encode_date(datetime.date(1979, 1, 1))


# --- units: CAPACITY_MODE, SpecificationInfo scaling, temperature -----------------------------------


@pytest.mark.parametrize(
    "name", ["RemainingCapacityAlarm", "RemainingCapacity", "FullChargeCapacity", "DesignCapacity"]
)
def test_capacity_mode_switches_every_capacity_to_mwh(name: str) -> None:
    assert decode(name, 475).value == 475 and decode(name, 475).unit == "mAh"
    r = decode(name, 475, capacity_mode=True)
    assert r.value == 4750 and r.unit == "mWh" and r.text == "4750 mWh"


def test_capacity_mode_switches_at_rate_to_mw_and_keeps_sign() -> None:
    r = decode("AtRate", -150 & 0xFFFF, capacity_mode=True)
    assert r.value == -1500 and r.unit == "mW"


def test_capacity_mode_does_not_touch_other_commands() -> None:
    for cmd in sbs_table():
        if not cmd.capacity_mode and cmd.kind.value == "word" and not cmd.decoder:
            assert decode(cmd, 100, capacity_mode=True).value == decode(cmd, 100).value, cmd.name
            assert decode(cmd, 100, capacity_mode=True).unit == cmd.unit


def test_spec_info_scaling() -> None:
    spec = 0x2131  # IPScale 2, VScale 1, version 3, revision 1
    assert decode("Voltage", 1600, spec_info=spec).value == 16000
    assert decode("DesignVoltage", 1440, spec_info=spec).value == 14400
    assert decode("Current", -5 & 0xFFFF, spec_info=spec).value == -500
    assert decode("RemainingCapacity", 23, spec_info=spec).value == 2300
    # 10 mWh units × 10^(VScale + IPScale) (sbs.md §4)
    assert decode("RemainingCapacity", 23, spec_info=spec, capacity_mode=True).value == 23 * 10 * 1000
    # charger requests are never scaled
    assert decode("ChargingCurrent", 1500, spec_info=spec).value == 1500
    assert decode("ChargingVoltage", 16800, spec_info=spec).value == 16800
    with pytest.raises(DecodeError):
        decode("Voltage", 1600, spec_info=0xFF31)


@pytest.mark.parametrize(("raw", "celsius"), [(2731, -0.05), (2732, 0.05), (2982, 25.05), (0, -273.15), (3731, 99.95)])
def test_temperature_uses_273_15(raw: int, celsius: float) -> None:
    assert decode("Temperature", raw).value == celsius


# --- encoding for writes --------------------------------------------------------------------------


def test_encode_round_trips_decoded_values() -> None:
    for name, value, capm in [
        ("RemainingCapacityAlarm", 300, False),
        ("RemainingCapacityAlarm", 4750, True),
        ("RemainingTimeAlarm", 10, False),
        ("AtRate", -1000, False),
        ("AtRate", -1500, True),
        ("ManufacturerAccess", 0x0414, False),
    ]:
        cmd = lookup(name)
        raw = codecs.encode(cmd, value, capacity_mode=capm)
        assert decode(cmd, raw, capacity_mode=capm).value == value


@pytest.mark.parametrize(
    ("name", "value", "capm", "message"),
    [
        ("RemainingCapacityAlarm", -1, False, "outside the range"),
        ("RemainingCapacityAlarm", 65536, False, "outside the range"),
        ("RemainingCapacityAlarm", 4755, True, "not a multiple"),
        ("AtRate", 32768, False, "outside the range"),
        ("AtRate", -32769, False, "outside the range"),
        ("AtRate", 1.5, False, "not a multiple"),
        ("BatteryMode", 0x0004, False, "reserved bits"),
        ("BatteryMode", 0x10000, False, "16-bit"),
        ("DeviceName", 1, False, "only word commands"),
        ("RemainingTimeAlarm", "10", False, "not a number"),
    ],
)
def test_encode_range_errors(name: str, value: Any, capm: bool, message: str) -> None:
    with pytest.raises(RangeError, match=message):
        codecs.encode(lookup(name), value, capacity_mode=capm)


def test_writable_mask_of_battery_mode() -> None:
    # R/W bits 8, 9, 13, 14, 15 (sbs.md §2)
    assert codecs.writable_mask("battery_mode") == 0xE300


# --- properties: any input decodes or raises SmartBattError -------------------------------------------


COMMANDS = list(sbs_table())


@given(
    cmd=st.sampled_from(COMMANDS),
    raw=st.one_of(st.binary(max_size=40), st.integers(-(2**17), 2**17), st.text(max_size=40)),
    capm=st.booleans(),
    spec=st.one_of(st.none(), st.integers(0, 0xFFFF)),
)
def test_any_input_decodes_or_raises_smartbatt_error(cmd: Any, raw: Any, capm: bool, spec: int | None) -> None:
    try:
        reading = decode(cmd, raw, capacity_mode=capm, spec_info=spec)
    except SmartBattError:
        return
    assert isinstance(reading, Reading)
    assert isinstance(reading.text, str)
    reading.to_json()


@given(cmd=st.sampled_from([c for c in COMMANDS if c.kind.value == "word"]), raw=st.integers(0, 0xFFFF))
def test_every_word_is_a_value_sentinel_filler_or_decode_error(cmd: Any, raw: int) -> None:
    try:
        reading = decode(cmd, raw)
    except DecodeError:
        # only the structured decoders may refuse a word (dates, scale exponents)
        assert cmd.decoder in ("manufacture_date", "specification_info")
        return
    assert reading.raw == raw
    assert (reading.value is None) == (reading.filler or bool(reading.meaning))
    assert parse_raw(cmd, raw.to_bytes(2, "little")) == raw
