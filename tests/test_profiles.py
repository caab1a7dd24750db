"""Shipped chip profiles: every file loads and validates; extends, variants, caching, layouts."""

from __future__ import annotations

import itertools
import pickle
import re
import shutil
from pathlib import Path

import pytest

from smartbatt.errors import DecodeError, ProfileError, RangeError
from smartbatt.profiles import loader
from smartbatt.profiles.loader import available_profiles, clear_cache, is_cached, load_profile
from smartbatt.profiles.schema import (
    SCHEMA_VERSION,
    BusKind,
    DataFlashAccessMethod,
    DataFlashEntry,
    DFType,
    Profile,
    SecurityLevel,
    SecurityMethod,
    StandardCommands,
)
from smartbatt.sbs.command import Kind

SHIPPED = ["bq20z65", "bq28z610", "bq4050", "bq40z50", "bq40z80", "bq78350", "generic-sbs"]
PROFILE_DIR = Path(loader.__file__).resolve().parents[2] / "firmware_profiles"


def all_shipped_with_variants() -> list[tuple[str, str | None]]:
    out: list[tuple[str, str | None]] = []
    for name in SHIPPED:
        out.append((name, None))
        out.extend((name, v.name) for v in load_profile(name).variants)
    return out


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_cache()
    yield
    clear_cache()


def test_available_profiles_lists_the_seven_shipped_files():
    assert available_profiles() == SHIPPED


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_profile_loads_and_cites_sources(name):
    profile = load_profile(name)
    assert isinstance(profile, Profile)
    assert profile.name == name
    assert profile.file == f"{name}.toml"
    assert profile.sources, "every profile cites its documents"
    assert profile.title
    text = (PROFILE_DIR / f"{name}.toml").read_text(encoding="utf-8")
    assert text.startswith("#"), "the header comment cites the sources"
    assert f"schema_version = {SCHEMA_VERSION}" in text


@pytest.mark.parametrize(("name", "variant"), all_shipped_with_variants())
def test_every_profile_and_variant_is_internally_consistent(name, variant):
    profile = load_profile(name, variant=variant)
    assert profile.variant == variant
    codes = [c.code for c in profile.commands]
    assert codes == sorted(set(codes))
    assert len({c.name for c in profile.commands}) == len(profile.commands)
    macs = [m.code for m in profile.mac]
    assert macs == sorted(set(macs))
    assert len({m.name for m in profile.mac}) == len(profile.mac)
    for mac in profile.mac:
        if mac.layout is not None:
            assert mac.response is not None and mac.response.sizeof() == profile.layouts[mac.layout].size
        if mac.bitfield is not None:
            assert mac.bitfield in profile.bitfields
    for reg, source in profile.status_sources.items():
        assert reg in profile.bitfields
        assert source.size * 8 >= profile.bitfields[reg].width
    keys = [e.key for e in profile.data_flash]
    assert len(keys) == len(set(keys))
    spans = sorted((e.address, e.address + e.size) for e in profile.data_flash if e.address is not None)
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in itertools.pairwise(spans))
    for entry in profile.data_flash:
        if entry.default is not None:
            entry.check(entry.default)  # min <= default <= max and the type's raw range


def test_exactly_one_fallback_and_it_never_sends_mac():
    profiles = [load_profile(n) for n in SHIPPED]
    fallbacks = [p for p in profiles if p.identity.fallback]
    assert [p.name for p in fallbacks] == ["generic-sbs"]
    generic = fallbacks[0]
    assert generic.mac == ()
    assert generic.security.method is SecurityMethod.NONE
    assert not generic.sends_mac
    assert not generic.identity.mac_probe
    assert all(p.sends_mac for p in profiles if p is not generic)


def test_device_types_are_unique_across_profiles():
    seen: dict[int, str] = {}
    for name in SHIPPED:
        for dt in load_profile(name).identity.device_types:
            assert dt not in seen, f"0x{dt:04X} in {seen.get(dt)} and {name}"
            seen[dt] = name
    # ti_gauges.md §1 (dji CHIP_TYPE, E2E 1108797, gg files)
    assert seen == {
        0x0650: "bq20z65",
        0x2610: "bq28z610",
        0x9E34: "bq4050",
        0x4500: "bq40z50",
        0x4800: "bq40z80",
        0x1E9B: "bq78350",
    }


def test_extends_merges_parent_bit_maps_and_child_wins():
    generic = load_profile("generic-sbs")
    bq = load_profile("bq40z50")
    assert bq.extends == "generic-sbs"
    assert bq.bitfields["BatteryStatus"] == generic.bitfields["BatteryStatus"]
    assert "SafetyStatus" in bq.bitfields and "SafetyStatus" not in generic.bitfields
    assert bq.identity != generic.identity  # the child's [identity] replaces the parent's
    assert not bq.identity.fallback
    assert generic.sources[0] in bq.sources  # sources accumulate, parent first
    assert bq.status_sources["BatteryStatus"].sbs == 0x16


def test_bq40z50_security_defaults_as_published():
    sec = load_profile("bq40z50").security
    assert sec.method is SecurityMethod.MAC_WORD_PAIR
    assert sec.seal_mac == 0x0030
    assert sec.default_unseal_key == (0x0414, 0x3672)
    assert sec.default_full_access_key == (0xFFFF, 0xFFFF)
    assert sec.key_window_s == 4
    assert sec.keys_mac == 0x0035
    assert sec.sha1_authentication
    assert (sec.state_register, sec.state_group) == ("OperationStatus", "SEC")
    assert dict(sec.states) == {1: SecurityLevel.FULL_ACCESS, 2: SecurityLevel.UNSEALED, 3: SecurityLevel.SEALED}


def test_bq40z50_commands_and_mac_facts():
    bq = load_profile("bq40z50")
    assert [bq.command(c).name for c in (0x3C, 0x3D, 0x3E, 0x3F)] == [
        "CellVoltage4",
        "CellVoltage3",
        "CellVoltage2",
        "CellVoltage1",
    ]
    assert bq.command("CellVoltage1").unit == "mV"
    assert bq.command_security[0x51] is SecurityLevel.UNSEALED
    assert bq.mac_command("DeviceType").security is SecurityLevel.SEALED
    assert bq.mac_command(0x002E).delay_ms == 200
    assert bq.mac_command(0x0051).bitfield == "SafetyStatus"
    assert bq.timing.df_write_delay_ms == 100
    assert bq.data_flash_access.method is DataFlashAccessMethod.MAC_BLOCK
    with pytest.raises(KeyError):
        bq.command(0x09)
    with pytest.raises(KeyError):
        bq.mac_command("NoSuchThing")


def test_bq40z50_data_flash_map_covers_the_protections():
    bq = load_profile("bq40z50")
    keys = {e.key for e in bq.data_flash}
    for sub in ("CUV", "OCC1", "OCC2", "OCD1", "OCD2", "OTC", "OTD", "UTC", "UTD"):
        assert f"Protections:{sub}:Threshold" in keys
        assert f"Protections:{sub}:Delay" in keys
    assert "Protections:COV:Threshold Standard Temp Low" in keys
    assert "Protections:ASCD:Threshold 1" in keys
    assert "Advanced Charge Algorithm:Rec Temp Charging:Voltage" in keys
    assert "Advanced Charge Algorithm:Low Temp Charging:Current High" in keys
    assert "Settings:Configuration:Balancing Configuration" in keys
    assert "Gas Gauging:Design:Design Capacity mAh" in keys
    assert "Gas Gauging:Design:Design Voltage" in keys
    assert "SBS Configuration:Data:Manufacturer Name" in keys
    assert "SBS Configuration:Data:Device Name" in keys
    # Addresses only where a public source gives them (PX4; the RRC BQ40Z50R1 driver for the
    # calibration block); no address or default was invented for the rest.
    addressed = {e.key: e.address for e in bq.data_flash if e.address is not None}
    assert addressed == {
        "Settings:Protection:Enabled Protections A": 0x4938,
        "Calibration:Voltage:Cell Gain": 0x4000,
        "Calibration:Voltage:Pack Gain": 0x4002,
        "Calibration:Voltage:BAT Gain": 0x4004,
        "Calibration:Temperature:External1 Temp Offset": 0x4015,
        "Calibration:Temperature:External2 Temp Offset": 0x4016,
        "Calibration:Temperature:External3 Temp Offset": 0x4017,
        "Calibration:Temperature:External4 Temp Offset": 0x4018,
    }
    assert all(e.default is None for e in bq.data_flash)
    otc = bq.df_entry("Protections:OTC:Threshold")
    assert (otc.type, otc.scale, otc.unit) == (DFType.I2, 0.1, "°C")


def test_bq28z610_is_an_i2c_gauge_with_addressed_data_flash():
    p = load_profile("bq28z610")
    assert p.extends is None
    assert p.bus.kind is BusKind.I2C
    assert p.bus.standard_commands is StandardCommands.NONE
    assert p.data_flash_access.first == 0x4000 and p.data_flash_access.last == 0x5FFF
    assert p.df_entry("Gas Gauging:Design:Design Capacity mAh").address == 0x462A
    assert p.df_entry("Settings:Protection:Enabled Protections A").default == 0x57
    assert p.command(0x60).kind is Kind.BYTE


def test_bq4050_addresses_and_types_from_public_map():
    p = load_profile("bq4050")
    cuv = p.df_entry("Protections:CUV:Threshold")
    assert (cuv.address, cuv.type, cuv.unit) == (0x4481, DFType.I2, "mV")
    assert p.df_entry("Protections:CUV:Delay").address == 0x4483
    assert p.df_entry("Settings:Protection:Enabled Protections D").default == 0xFF
    assert "SMOOTH" in {f.name for f in p.bitfields["OperationStatus"].flags}


@pytest.mark.parametrize(
    ("variant", "bit", "name"),
    [
        (None, 13, "MCHG"),  # original / dji layout
        ("R1", 13, "MCHG"),
        ("R3", 13, "SU"),  # TI layout per OpenDevicePartnership device_r3
    ],
)
def test_bq40z50_variants_differ_in_charging_status(variant, bit, name):
    profile = load_profile("bq40z50", variant=variant)
    flags = {f.bit: f.name for f in profile.bitfields["ChargingStatus"].flags}
    assert flags[bit] == name


def test_bq40z50_variant_overlays_keep_the_rest():
    base = load_profile("bq40z50")
    r2 = load_profile("bq40z50", variant="R2")
    assert r2.layouts["DAStatus2"].size == 26 and base.layouts["DAStatus2"].size == 14
    r2_op = {f.bit: f.name for f in r2.bitfields["OperationStatus"].flags}
    base_op = {f.bit: f.name for f in base.bitfields["OperationStatus"].flags}
    assert (r2_op[29], base_op[29]) == ("DISCONN", "EMSHUT")
    assert r2_op[26] == "VLB"
    assert r2.mac == base.mac and r2.data_flash == base.data_flash
    assert r2.title == "TI bq40z50-R2"
    assert [v.name for v in base.variants] == ["R1", "R2", "R3"]
    assert r2.identity.device_name_patterns == ("^bq40z50-?R2",)


def test_unknown_variant_is_a_profile_error():
    with pytest.raises(ProfileError) as err:
        load_profile("bq40z50", variant="R9")
    assert (err.value.file, err.value.key_path) == ("bq40z50.toml", "variants")
    assert err.value.reason == "no variant 'R9'; defined: ['R1', 'R2', 'R3']"


def test_unknown_name_lists_the_available_profiles():
    with pytest.raises(ProfileError) as err:
        load_profile("bq99z99")
    assert err.value.file == "bq99z99.toml"
    assert err.value.reason.startswith("no shipped profile named 'bq99z99'; available: ['bq20z65'")


@pytest.mark.parametrize("bad", ["../etc/passwd", "a b", ""])
def test_bad_names_are_profile_errors(bad):
    with pytest.raises(ProfileError):
        load_profile(bad)


def test_missing_path_is_a_profile_error(tmp_path):
    missing = tmp_path / "nope.toml"
    with pytest.raises(ProfileError) as err:
        load_profile(missing)
    assert err.value.reason == "no such profile file"


def test_cache_returns_the_same_object_and_clear_forgets():
    first = load_profile("bq40z80")
    assert is_cached("bq40z80")
    assert load_profile("bq40z80") is first
    clear_cache()
    assert not is_cached("bq40z80")
    assert load_profile("bq40z80") is not first
    assert load_profile("bq40z80") == first


def test_user_file_extends_a_shipped_profile(tmp_path):
    path = tmp_path / "my-pack.toml"
    path.write_text(
        """schema_version = 1
name = "my-pack"
title = "My pack"
extends = "bq40z50"
sources = ["our own measurements"]

[[data_flash]]
class = "Gas Gauging"
subclass = "Design"
name = "Design Capacity mAh"
type = "I2"
unit = "mAh"
address = 0x4400
min = 0
max = 32767
default = 3000
""",
        encoding="utf-8",
    )
    mine = load_profile(path)
    assert mine.name == "my-pack" and mine.extends == "bq40z50"
    assert mine.df_entry("Gas Gauging:Design:Design Capacity mAh").address == 0x4400  # child wins
    assert mine.df_entry("Protections:CUV:Threshold").type is DFType.I2  # inherited
    assert mine.mac == load_profile("bq40z50").mac
    assert "our own measurements" in mine.sources


def test_user_file_extends_a_sibling_before_a_shipped_name(tmp_path):
    shutil.copy(PROFILE_DIR / "generic-sbs.toml", tmp_path / "generic-sbs.toml")
    text = (tmp_path / "generic-sbs.toml").read_text(encoding="utf-8").replace("bus_hz = 100000", "bus_hz = 50000")
    (tmp_path / "generic-sbs.toml").write_text(text, encoding="utf-8")
    (tmp_path / "child.toml").write_text(
        'schema_version = 1\nname = "child"\ntitle = "Child"\nextends = "generic-sbs"\nsources = ["x"]\n',
        encoding="utf-8",
    )
    assert load_profile(tmp_path / "child.toml").timing.bus_hz == 50000
    assert load_profile("generic-sbs").timing.bus_hz == 100000


def test_profile_error_pickles():
    try:
        load_profile("bq40z50", variant="nope")
    except ProfileError as exc:
        clone = pickle.loads(pickle.dumps(exc))
        assert (clone.file, clone.key_path, clone.reason) == (exc.file, exc.key_path, exc.reason)
        assert str(clone) == str(exc)


# --- layouts and data-flash values -------------------------------------------------------------------


def test_layout_struct_round_trips_and_pins_bytes():
    bq = load_profile("bq40z50")
    da1 = bq.layouts["DAStatus1"]
    values = {f.name: 3000 + i for i, f in enumerate(da1.fields)}
    data = da1.struct.build(values)
    assert len(data) == 32
    assert data[:4] == bytes([0xB8, 0x0B, 0xB9, 0x0B])  # 3000, 3001 little-endian
    parsed = da1.struct.parse(data)
    assert {k: parsed[k] for k in values} == values
    assert da1.decode(data) == values


def test_firmware_version_layout_is_big_endian():
    fw = load_profile("bq40z50").layouts["FirmwareVersion"]
    data = bytes([0x45, 0x00, 0x01, 0x02, 0x00, 0x34, 0x00, 0x03, 0x80, 0x00, 0x00])
    assert fw.decode(data) == {
        "DeviceNumber": 0x4500,
        "Version": 0x0102,
        "Build": 0x34,
        "FirmwareType": 0,
        "ITVersion": 0x0380,
    }


def test_layout_decode_tolerates_short_and_long_blocks():
    da2 = load_profile("bq40z50").layouts["DAStatus2"]
    short = (2982).to_bytes(2, "little") + (2990).to_bytes(2, "little") + b"\x01"
    decoded = da2.decode(short)
    assert set(decoded) == {"IntTemperature", "TS1Temperature"}
    assert decoded["IntTemperature"] == pytest.approx(298.2)
    assert set(da2.decode(bytes(40))) == {f.name for f in da2.fields}


def test_mac_response_struct_is_the_compiled_layout():
    mac = load_profile("bq40z50").mac_command("ChemID")
    assert mac.response.parse(bytes([0x00, 0x01])).ChemID == 0x0100  # E2E 1108797 example


@pytest.mark.parametrize(
    ("entry", "value", "raw"),
    [
        (DataFlashEntry("P", "CUV", "Threshold", DFType.I2, unit="mV"), 2800, bytes([0xF0, 0x0A])),
        (DataFlashEntry("P", "OCD1", "Threshold", DFType.I2, unit="mA"), -6000, bytes([0x90, 0xE8])),
        (DataFlashEntry("P", "OTC", "Threshold", DFType.I2, unit="°C", scale=0.1), 55.0, bytes([0x26, 0x02])),
        (DataFlashEntry("P", "X", "Delay", DFType.U1, unit="s"), 2, bytes([2])),
        (DataFlashEntry("P", "X", "Long", DFType.U4), 0x01020304, bytes([4, 3, 2, 1])),
        (DataFlashEntry("P", "X", "Bits", DFType.H, length=2), 0x0C55, bytes([0x55, 0x0C])),
        (DataFlashEntry("S", "D", "Device Name", DFType.S, length=6), "bq40", b"\x04bq40\x00"),
        (DataFlashEntry("P", "X", "Gain", DFType.F4), 1.5, bytes([0, 0, 0xC0, 0x3F])),
    ],
)
def test_data_flash_values_encode_and_decode(entry, value, raw):
    assert entry.encode(value) == raw
    expected = pytest.approx(value) if isinstance(value, float) else value
    assert entry.decode(raw) == expected
    assert entry.parse_display(entry.format_display(value)) == expected


@pytest.mark.parametrize(
    ("entry", "value", "error", "message"),
    [
        (DataFlashEntry("P", "X", "D", DFType.U1), 256, RangeError, "P:X:D: raw value 256 outside U1 range 0..255"),
        (DataFlashEntry("P", "X", "D", DFType.I2, minimum=0, maximum=10), 11, RangeError, "above the maximum 10"),
        (DataFlashEntry("P", "X", "D", DFType.I2, minimum=5), 4, RangeError, "below the minimum 5"),
        (DataFlashEntry("P", "X", "D", DFType.H, length=1), 0x100, RangeError, "does not fit 1 byte(s)"),
        (DataFlashEntry("S", "D", "N", DFType.S, length=4), "long!", RangeError, "text longer than 3 characters"),
        (DataFlashEntry("P", "X", "D", DFType.U2), "12", DecodeError, "expected a number"),
        (DataFlashEntry("S", "D", "N", DFType.S, length=4), 12, DecodeError, "expected text"),
    ],
)
def test_data_flash_value_errors(entry, value, error, message):
    with pytest.raises(error, match=re.escape(message)):
        entry.encode(value)


@pytest.mark.parametrize(
    ("text", "message"),
    [("abc", "is not a number"), ("2.5", "is not a whole number"), ("nan", "not a finite number")],
)
def test_parse_display_rejects_bad_numbers(text, message):
    with pytest.raises(DecodeError, match=message):
        DataFlashEntry("P", "X", "D", DFType.I2).parse_display(text)


def test_decode_rejects_wrong_length_and_bad_string_length():
    with pytest.raises(DecodeError, match="expected 2 byte"):
        DataFlashEntry("P", "X", "D", DFType.I2).decode(b"\x01")
    with pytest.raises(DecodeError, match="length byte 9 exceeds 3"):
        DataFlashEntry("S", "D", "N", DFType.S, length=4).decode(b"\x09abc")
    with pytest.raises(DecodeError, match="not a hexadecimal value"):
        DataFlashEntry("P", "X", "H", DFType.H, length=1).parse_display("zz")


@pytest.mark.parametrize("name", SHIPPED)
def test_channel_commands_are_never_verified_by_read_back(name):
    # Their read returns a result (or the previous one), not the value written.
    channels = {"ManufacturerBlockAccess", "Authenticate", "AltManufacturerAccess", "MACData"}
    for command in load_profile(name).commands:
        if command.name in channels:
            assert command.verify is False, command.name
        elif command.kind is Kind.WORD and command.name.startswith("CellVoltage"):
            assert command.verify is True
