"""Raw register values published from real packs, decoded, against what the pack meant.

Each case cites where the bytes were published. Where a tool printed the words high byte first
we reverse them to wire order (low byte first) before decoding, and say so.

Coverage (what could be found publicly): laptop packs with TI gauges (bq3050 register dump; a
"YXXM" pack; an energy-mode pack), Sanyo-firmware filler words, a Toshiba laptop pack that did
not answer, and drone packs with TI bq40z50 gauges (PX4 driver logs, decoded values only). No
public raw SBS dump of a power-tool pack was found; none is invented here.
"""

from __future__ import annotations

import datetime

import pytest

from smartbatt.errors import NotReady, PecMismatch
from smartbatt.pec import pec_for_read
from smartbatt.sbs.battery import Battery
from smartbatt.sbs.codecs import BitFields, SpecInfo
from smartbatt.sbs.decode import decode
from smartbatt.transports.emulated import EmulatedTransport


def wire(high_first: str) -> bytes:
    """Bytes printed high byte first ("01 B8") → wire order (B8 01)."""
    return bytes.fromhex(high_first)[::-1]


# ------------------------------------------------------------------------------------------------
# Laptop pack, TI bq3050 gauge, 3-series Li-ion.
# Source: github.com/laszlodaniel/SmartBatteryHack issue #22 "Again on BQ3050 - SN8765" (2021),
# "SMBus register dump (00-40)" with "Word byte-order: reverse read/write", i.e. each word is
# printed high byte first ("[01]: 01 B8 // RemainingCapacityAlarm: 440 mAh").
# ------------------------------------------------------------------------------------------------

BQ3050_DUMP = {
    0x01: "01 B8",
    0x02: "00 0A",
    0x03: "60 81",
    0x07: "00 01",
    0x08: "0B B4",
    0x09: "2A 7C",
    0x0A: "00 00",
    0x0B: "00 00",
    0x0D: "00 64",
    0x11: "FF FF",
    0x12: "FF FF",
    0x13: "FF FF",
    0x14: "09 C4",
    0x15: "31 38",
    0x16: "02 C0",
    0x17: "00 02",
    0x18: "19 00",
    0x19: "2B 5C",
    0x1A: "00 31",
    0x1B: "50 99",
    0x1C: "83 6E",
}


def bq3050(code: int) -> object:
    return decode(code, wire(BQ3050_DUMP[code])).value


def test_bq3050_laptop_pack_matches_what_the_tool_printed() -> None:
    # the tool's own decoding in the issue: "RemainingCapacityAlarm: 440 mAh", "RemainingTimeAlarm: 10 minutes"
    assert decode(0x01, wire("01 B8")).text == "440 mAh"
    assert decode(0x02, wire("00 0A")).text == "10 min"
    # "BatteryMode: 0110000010000001" = CHGM, AM, CF, ICC; capacities in mAh
    mode = bq3050(0x03)
    assert isinstance(mode, BitFields)
    assert {f.short for f in mode.flags} == {"CHGM", "AM", "CF", "ICC"}
    assert not mode.is_set("CAPACITY_MODE")


def test_bq3050_laptop_pack_state_is_a_3s_pack_at_rest() -> None:
    # 3-series Li-ion: design 3 × 3.7 V, charge request 3 × 4.2 V, pack at 3.63 V per cell
    assert bq3050(0x19) == 11100
    assert bq3050(0x15) == 12600
    assert bq3050(0x09) == 10876
    assert bq3050(0x14) == 2500
    assert bq3050(0x18) == 6400
    # at rest: no current, time-to-empty/full report their "not (dis)charging" sentinels
    assert bq3050(0x0A) == 0 and bq3050(0x0B) == 0
    assert decode(0x11, wire("FF FF")).meaning == "not discharging"
    assert decode(0x13, wire("FF FF")).meaning == "not charging"
    assert bq3050(0x0D) == 100
    assert bq3050(0x07) is True
    assert bq3050(0x08) == 26.45  # 2996 × 0.1 K − 273.15
    assert bq3050(0x17) == 2
    assert bq3050(0x1C) == 0x836E


def test_bq3050_status_spec_and_date() -> None:
    status = bq3050(0x16)
    assert isinstance(status, BitFields)
    # 0x02C0: REMAINING_CAPACITY_ALARM, INITIALIZED, DISCHARGING; last command OK
    assert {f.short for f in status.flags} == {"RCA", "INIT", "DSG"}
    assert status.error_code == 0
    spec = bq3050(0x1A)
    # 0x0031: SBS 1.1 with PEC (the value TI bq gauges report, sbs.md §4), no scaling
    assert spec == SpecInfo(raw=0x0031, revision=1, version=3, vscale=0, ipscale=0)
    assert bq3050(0x1B) == datetime.date(2020, 4, 25)


def test_bq3050_dump_ends_with_the_filler_word_1717() -> None:
    # register 0x40 of the same dump reads "17 17" — the filler Sanyo firmware returns when a read
    # fails (SmartBatteryHack issue #8: "if error occurs 0x17 gets returned"). Had it come back
    # from a standard command, it is never decoded as data:
    for name in ("BatteryStatus", "Temperature", "RelativeStateOfCharge", "SpecificationInfo"):
        r = decode(name, wire("17 17"))
        assert r.filler and r.value is None, name


# ------------------------------------------------------------------------------------------------
# Laptop pack "YXXM" (the reporter: "it is literally using BQ firmware").
# Source: SmartBatteryHack issue #10 "Can not write word" (2020), dump (20-30), block data shown
# without the count byte: "[20]: 59 58 58 4D // ManufacturerName: YXXM".
# ------------------------------------------------------------------------------------------------


def test_yxxm_laptop_pack_strings() -> None:
    assert decode("ManufacturerName", "59 58 58 4D").value == "YXXM"
    assert decode("DeviceName", "30 36 31 33 38 34").value == "061384"
    assert decode("DeviceChemistry", "4C 49 4F 4E").value == "LION"
    assert decode("ManufacturerData", "42 34 31").value == b"B41"


# ------------------------------------------------------------------------------------------------
# Laptop pack in energy mode.
# Source: SmartBatteryHack issue #24 "DESIGN VOLTAGE IS 0.0 V, I tried with 3 batteries" (2022),
# dump printed high byte first: "[01]: 01 DB // RemainingCapacityAlarm: 475 mAh",
# "[03]: E0 00 // BatteryMode: 1110000000000000".
# ------------------------------------------------------------------------------------------------


def test_energy_mode_pack_reports_capacity_alarm_in_10_mwh() -> None:
    mode = decode("BatteryMode", wire("E0 00")).value
    assert isinstance(mode, BitFields)
    assert mode.is_set("CAPACITY_MODE") and mode.is_set("CHGM") and mode.is_set("AM")
    # The tool printed "475 mAh", ignoring CAPACITY_MODE. The pack meant 475 × 10 mWh:
    alarm = decode("RemainingCapacityAlarm", wire("01 DB"), capacity_mode=True)
    assert alarm.value == 4750 and alarm.unit == "mWh" and alarm.raw == 475
    assert decode("AtRateTimeToFull", wire("FF FF")).meaning.startswith("not charging")
    assert decode("ManufacturerAccess", wire("00 18")).value == 0x0018


# ------------------------------------------------------------------------------------------------
# Toshiba laptop pack (model L800) that did not answer.
# Source: github.com/o-gs/dji-firmware-tools issue #400 (2024): "Raw BatteryStatus response:
# ff ff ff" — word FF FF plus a PEC byte FF: a bus that nobody drives reads as ones.
# ------------------------------------------------------------------------------------------------


class _Silent:
    """A bus where a device acknowledges but never drives SDA: every read byte is 0xFF."""

    def transfer(self, address: int, write: bytes, read: bool = False) -> bytes:
        return b""  # the transport pads with 0xFF, as released SDA reads

    def quick(self, address: int, read: bool) -> None:
        return None


def test_toshiba_ff_ff_ff_fails_pec_and_is_never_decoded_as_status() -> None:
    # With PEC: FF is not the PEC of 16 16 17 FF FF, so the read is refused
    assert pec_for_read(0x0B, b"\x16", b"\xff\xff") != 0xFF
    with EmulatedTransport(_Silent()) as t:
        t.retry = t.retry.__class__(attempts=1)
        with pytest.raises(PecMismatch):
            Battery(t, pec=True).read("BatteryStatus")
        # Without PEC: 0xFFFF is a filler for BatteryStatus, never "every alarm set"
        with pytest.raises(NotReady) as info:
            Battery(t, pec=False, filler_delay_s=0).read("BatteryStatus")
        assert info.value.raw == 0xFFFF
    assert decode("BatteryStatus", "ff ff").filler


# ------------------------------------------------------------------------------------------------
# Drone packs, TI bq40z50-R1/R2 gauges (4S), read by the PX4 batt_smbus driver.
# Sources: PX4-Autopilot PR #8854 (2018) "V=16.39 C=0.30 ... Cap:2623 TempC:26.35 ... CycleCount:35"
# and PR #8991 (2018) "V=16.53 ... Cap:2552 TempC:26.45 ... CycleCount:1". Only decoded values
# were published; PX4 prints Temperature as raw × 0.1 − 273.15 with two decimals, so each
# temperature has exactly one raw value (2995, 2996), and capacities/cycles are the raw words.
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("temp_raw", "celsius", "fcc", "cycles"),
    [(2995, 26.35, 2623, 35), (2996, 26.45, 2552, 1)],
)
def test_px4_drone_packs(temp_raw: int, celsius: float, fcc: int, cycles: int) -> None:
    assert decode("Temperature", temp_raw).value == celsius
    assert decode("FullChargeCapacity", fcc).text == f"{fcc} mAh"
    assert decode("CycleCount", cycles).value == cycles
