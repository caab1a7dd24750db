"""The SBS 1.1 command table: content, lookup, and validation of broken tables."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smartbatt.errors import ProfileError, SmartBattError, UnknownCommand
from smartbatt.sbs.command import COMMAND_KEYS, Access, Kind, SpecScale
from smartbatt.sbs.commands import DECODERS, SBS_TABLE_FILE, load_table, lookup, parse_table, sbs_table

#: SBS 1.1 §5.1 / sbs.md §1: code → name as the spec spells it (0x1D–0x1F reserved).
SPEC_NAMES = {
    0x00: "ManufacturerAccess",
    0x01: "RemainingCapacityAlarm",
    0x02: "RemainingTimeAlarm",
    0x03: "BatteryMode",
    0x04: "AtRate",
    0x05: "AtRateTimeToFull",
    0x06: "AtRateTimeToEmpty",
    0x07: "AtRateOK",
    0x08: "Temperature",
    0x09: "Voltage",
    0x0A: "Current",
    0x0B: "AverageCurrent",
    0x0C: "MaxError",
    0x0D: "RelativeStateOfCharge",
    0x0E: "AbsoluteStateOfCharge",
    0x0F: "RemainingCapacity",
    0x10: "FullChargeCapacity",
    0x11: "RunTimeToEmpty",
    0x12: "AverageTimeToEmpty",
    0x13: "AverageTimeToFull",
    0x14: "ChargingCurrent",
    0x15: "ChargingVoltage",
    0x16: "BatteryStatus",
    0x17: "CycleCount",
    0x18: "DesignCapacity",
    0x19: "DesignVoltage",
    0x1A: "SpecificationInfo",
    0x1B: "ManufactureDate",
    0x1C: "SerialNumber",
    0x20: "ManufacturerName",
    0x21: "DeviceName",
    0x22: "DeviceChemistry",
    0x23: "ManufacturerData",
}


def raw_table() -> dict[str, Any]:
    with SBS_TABLE_FILE.open("rb") as fh:
        return tomllib.load(fh)


def test_table_has_every_standard_command_with_the_spec_name() -> None:
    table = sbs_table()
    assert {c.code: c.name for c in table} == SPEC_NAMES


def test_access_kind_and_signedness_follow_the_spec() -> None:
    table = sbs_table()
    # sbs.md §1: 0x00–0x04 R/W, the rest read-only
    assert {c.code for c in table.writable()} == {0x00, 0x01, 0x02, 0x03, 0x04}
    assert all(c.access is Access.READ for c in table if c.code > 0x04)
    # signed: AtRate, Current, AverageCurrent (sbs.md §1, Zephyr bq4xz50.h)
    assert {c.name for c in table if c.signed} == {"AtRate", "Current", "AverageCurrent"}
    assert {c.name for c in table if c.kind is Kind.STRING} == {"ManufacturerName", "DeviceName", "DeviceChemistry"}
    assert table.by_name("ManufacturerData").kind is Kind.BLOCK
    assert all(c.kind is Kind.WORD for c in table if c.code <= 0x1C)


def test_capacity_mode_and_scaling_flags() -> None:
    table = sbs_table()
    # sbs.md §1 "CAPACITY_MODE dependence": 0x01, 0x04, 0x0F, 0x10, 0x18
    assert {c.code for c in table if c.capacity_mode} == {0x01, 0x04, 0x0F, 0x10, 0x18}
    assert {c.name for c in table if c.spec_scale is SpecScale.VOLTAGE} == {"Voltage", "DesignVoltage"}
    # no scaling of what the charger reads (sbs.md §4)
    assert table.by_name("ChargingCurrent").spec_scale is SpecScale.NONE
    assert table.by_name("ChargingVoltage").spec_scale is SpecScale.NONE


def test_sentinels_and_fillers_never_overlap() -> None:
    for cmd in sbs_table():
        if cmd.kind is Kind.WORD:
            assert not (set(cmd.sentinels) & cmd.filler), cmd.name
    table = sbs_table()
    assert table.by_name("RunTimeToEmpty").sentinels[0xFFFF] == "not discharging"
    assert 0xFFFF in table.by_name("Temperature").filler
    assert 0x1717 in table.by_name("BatteryStatus").filler
    # signed words: 0xFFFF is -1 mA, a legal reading
    assert not table.by_name("Current").filler
    assert table.by_name("DeviceName").filler == {0xFF, 0x17}


def test_every_decoder_named_in_the_table_is_known() -> None:
    assert {c.decoder for c in sbs_table()} <= DECODERS


@pytest.mark.parametrize(
    ("key", "name"),
    [
        ("Voltage", "Voltage"),
        ("voltage", "Voltage"),
        ("VOLTAGE", "Voltage"),
        ("relative_state_of_charge", "RelativeStateOfCharge"),
        ("0x09", "Voltage"),
        ("0X0d", "RelativeStateOfCharge"),
        ("9", "Voltage"),
        (0x1A, "SpecificationInfo"),
        (" DeviceName ", "DeviceName"),
    ],
)
def test_lookup_by_name_or_code(key: str | int, name: str) -> None:
    assert lookup(key).name == name


@pytest.mark.parametrize("key", ["Voltag", "0x1D", "0x100", "0xZZ", 0x30, -1, "", "volt age!"])
def test_lookup_unknown_raises_unknown_command(key: str | int) -> None:
    with pytest.raises(UnknownCommand):
        lookup(key)
    assert key not in sbs_table()


def test_table_is_immutable() -> None:
    table = sbs_table()
    with pytest.raises(AttributeError):
        table.commands = ()  # type: ignore[misc]
    with pytest.raises(TypeError):
        table.by_name("RunTimeToEmpty").sentinels[1] = "x"  # type: ignore[index]


# --- validation: every defect is one ProfileError naming file and key path ---------------------


def broken(mutate: Any) -> ProfileError:
    data = copy.deepcopy(raw_table())
    mutate(data)
    with pytest.raises(ProfileError) as info:
        parse_table(data, "broken.toml")
    assert info.value.file == "broken.toml"
    return info.value


def _voltage(data: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in data["command"] if c["name"] == "Voltage")


@pytest.mark.parametrize(
    ("mutate", "key_path", "reason"),
    [
        (lambda d: d.update(schema_version=2), "schema_version", "must be 1"),
        (lambda d: d.pop("schema_version"), "schema_version", "must be 1"),
        (lambda d: d.update(extra=1), ".extra", "unknown key"),
        (lambda d: _voltage(d).update(code=0x300), "command.Voltage.code", "outside"),
        (lambda d: _voltage(d).update(code="9"), "command.Voltage.code", "integer"),
        (lambda d: _voltage(d).update(kind="dword"), "command.Voltage.kind", "not one of"),
        (lambda d: _voltage(d).update(access="x"), "command.Voltage.access", "not one of"),
        (lambda d: _voltage(d).update(signed="yes"), "command.Voltage.signed", "true or false"),
        (lambda d: _voltage(d).update(scale=0), "command.Voltage.scale", "positive"),
        (lambda d: _voltage(d).update(spec_scale="volts"), "command.Voltage.spec_scale", "not one of"),
        (lambda d: _voltage(d).update(decoder="magic"), "command.Voltage.decoder", "unknown decoder"),
        (lambda d: _voltage(d).update(colour="red"), "command.Voltage.colour", "unknown key"),
        (lambda d: _voltage(d).update(sentinels={"zz": "x"}), "command.Voltage.sentinels.zz", "not an integer"),
        (lambda d: _voltage(d).update(sentinels={"0xFFFF": ""}), "command.Voltage.sentinels.0xFFFF", "empty"),
        (lambda d: _voltage(d).update(sentinels={"0xFFFF": "x"}), "command.Voltage.filler", "sentinel"),
        (lambda d: _voltage(d).update(filler=[0x10000]), "command.Voltage.filler[0]", "outside"),
        (lambda d: _voltage(d).update(name="Current"), "command.Current.name", "clashes with Current"),
        (lambda d: _voltage(d).update(name="current"), "command.Current.name", "clashes with current"),
        (lambda d: _voltage(d).update(code=0x0A), "command.Current.code", "also used by Voltage"),
        (lambda d: _voltage(d).update(name="bad name"), "command[9].name", "identifier"),
        (lambda d: _voltage(d).pop("kind"), "command[9].kind", "missing"),
        (lambda d: d["command"][1].update(minimum=5, maximum=4), "command.RemainingCapacityAlarm.minimum", "above"),
        (lambda d: d["bitfield"]["battery_mode"][0].update(bit=16), "bitfield.battery_mode[0].bit", "outside"),
        (lambda d: d["bitfield"]["battery_mode"][0].update(bit=1), "bitfield.battery_mode[1].bit", "overlap"),
        (
            lambda d: d["bitfield"]["battery_status"][0].update(enum="nope"),
            "bitfield.battery_status[0].enum",
            "no enum",
        ),
        (lambda d: d["bitfield"].pop("battery_mode"), "command.BatteryMode.decoder", "no [[bitfield.battery_mode]]"),
        (lambda d: d["enum"]["error_code"].update(x="y"), "enum.error_code.x", "not an integer"),
        (lambda d: d["filler"].update(words="0xFFFF"), "filler.words", "must be a list"),
        (lambda d: d.update(command={"a": 1}), "command", "must be a list"),
    ],
)
def test_broken_tables_raise_profile_error_with_key_path(mutate: Any, key_path: str, reason: str) -> None:
    err = broken(mutate)
    assert err.key_path == key_path, str(err)
    assert reason in err.reason, str(err)
    assert str(err).startswith("broken.toml: ")


def test_load_table_reports_unreadable_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="cannot read"):
        load_table(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("schema_version = = 1\n")
    with pytest.raises(ProfileError, match="not valid TOML") as info:
        load_table(bad)
    assert info.value.file == "bad.toml"


def test_shipped_file_round_trips_through_load_table() -> None:
    assert load_table(SBS_TABLE_FILE).commands == sbs_table().commands


_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**20), 2**20),
    st.floats(allow_nan=False),
    st.text(max_size=8),
    st.lists(st.integers(-5, 0x20000), max_size=3),
    st.dictionaries(st.text(max_size=4), st.text(max_size=4), max_size=2),
)


@given(
    index=st.integers(0, 32),
    key=st.sampled_from(sorted(COMMAND_KEYS | {"bogus"})),
    value=_values,
)
def test_any_mutated_entry_loads_or_raises_profile_error(index: int, key: str, value: Any) -> None:
    data = copy.deepcopy(raw_table())
    data["command"][index][key] = value
    try:
        parse_table(data, "fuzz.toml")
    except ProfileError:
        pass
    except SmartBattError as exc:  # pragma: no cover - would be a bug
        raise AssertionError(f"unexpected {type(exc).__name__}: {exc}") from exc
