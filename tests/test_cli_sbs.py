"""CLI: scan, info, dump, read, write, decode — output, exit codes and one-line errors."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest

from smartbatt.cli.main import run
from smartbatt.sbs.commands import sbs_table

STATIC = "emulated:?model=static"


def cli(capsys: Any, *argv: str) -> tuple[int, str, str]:
    code = run(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith("smartbatt: ")
    return lines[0]


# --- decode: no device ---------------------------------------------------------------------------


def test_decode_needs_no_device(capsys: Any) -> None:
    # a device URI that cannot be opened proves decode never opens one
    code, out, err = cli(capsys, "--device", "nosuchadapter:", "decode", "Voltage", "0x3E80")
    assert (code, err) == (0, "")
    assert out == "Voltage: 16000 mV (raw 0x3E80)\n"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["decode", "Temperature", "A6", "0B"], "Temperature: 25.05 °C (raw 0x0BA6)"),
        (["decode", "temperature", "A6 0B"], "Temperature: 25.05 °C (raw 0x0BA6)"),
        (["decode", "0x0A", "0C", "FE"], "Current: -500 mA (raw 0xFE0C)"),
        (["decode", "RunTimeToEmpty", "0xFFFF"], "RunTimeToEmpty: not discharging (raw 0xFFFF)"),
        (["decode", "DeviceChemistry", "04 4C 49 4F 4E"], "DeviceChemistry: LION (raw 4C 49 4F 4E)"),
        (["decode", "RemainingCapacity", "0x01DB", "--capacity-mode"], "RemainingCapacity: 4750 mWh (raw 0x01DB)"),
        (["decode", "Voltage", "1600", "--spec-info", "0x0131"], "Voltage: 16000 mV (raw 0x0640)"),
        (["decode", "ManufactureDate", "0x4B5B"], "ManufactureDate: 2017-10-27 (raw 0x4B5B)"),
        (["decode", "Voltage", "FF FF"], "Voltage: no answer yet: 0xFFFF is a filler value, not data (raw 0xFFFF)"),
    ],
)
def test_decode_outputs(capsys: Any, argv: list[str], expected: str) -> None:
    code, out, err = cli(capsys, *argv)
    assert code == 0, err
    assert out.splitlines()[0] == expected


def test_decode_bit_field_lists_flags(capsys: Any) -> None:
    code, out, _ = cli(capsys, "decode", "BatteryStatus", "0x02C0")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "BatteryStatus: DSG, INIT, RCA, error: OK (raw 0x02C0)"
    assert any("REMAINING_CAPACITY_ALARM" in line for line in lines[1:])


def test_decode_json(capsys: Any) -> None:
    code, out, _ = cli(capsys, "decode", "Current", "-500", "--json")
    assert code == 0
    assert json.loads(out) == {"Current": {"raw": 0xFE0C, "value": -500, "unit": "mA"}}


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["decode", "Voltage", "zz"], "not a raw value"),
        (["decode", "Voltage", "80 3E 00"], "expected 2 bytes"),
        (["decode", "Voltage", "-5"], "unsigned"),
        (["decode", "SpecificationInfo", "0x0431"], "outside 0..3"),
        (["decode", "Voltage", "1", "--spec-info", "0xF031"], "outside 0..3"),
        (["decode", "Voltage", "1", "--spec-info", "0xFFFF"], "filler"),
        (["decode", "NoSuchCommand", "1"], "unknown command 'NoSuchCommand'"),
        (["decode", "0x1D", "1"], "no command 0x1D"),
        (["decode", "Voltage"], "usage error"),
    ],
)
def test_decode_bad_input_is_usage_error(capsys: Any, argv: list[str], fragment: str) -> None:
    code, out, err = cli(capsys, *argv)
    assert code == 2 and out == ""
    assert fragment in assert_one_line_error(err)


# --- read / dump / info / scan against the static register file ---------------------------------


def test_read(capsys: Any) -> None:
    code, out, err = cli(capsys, "-d", STATIC, "read", "Voltage")
    assert (code, out, err) == (0, "Voltage: 16120 mV (raw 0x3EF8)\n", "")
    code, out, _ = cli(capsys, "-d", STATIC, "read", "0x21", "--json")
    assert code == 0 and json.loads(out) == {
        "DeviceName": {"raw": "45 4D 55 2D 34 53 33 30 30 30", "value": "EMU-4S3000", "unit": ""}
    }


def test_read_unknown_command_is_usage_error(capsys: Any) -> None:
    code, _, err = cli(capsys, "-d", STATIC, "read", "Voltag")
    assert code == 2 and "unknown command" in assert_one_line_error(err)


def test_dump_json_shape(capsys: Any) -> None:
    code, out, err = cli(capsys, "-d", STATIC, "dump", "--json")
    assert code == 0 and err == ""
    data = json.loads(out)
    assert list(data) == [c.name for c in sbs_table().readable()]
    for name, entry in data.items():
        assert set(entry) <= {"raw", "value", "unit", "meaning"}, name
        assert {"raw", "value", "unit"} <= set(entry), name
    assert data["Voltage"] == {"raw": 16120, "value": 16120, "unit": "mV"}
    assert data["Temperature"] == {"raw": 2982, "value": 25.05, "unit": "°C"}
    assert data["RunTimeToEmpty"] == {"raw": 65535, "value": None, "unit": "min", "meaning": "not discharging"}
    assert data["BatteryStatus"]["value"]["INITIALIZED"] is True
    assert data["ManufactureDate"]["value"] == "2025-03-14"
    assert data["SpecificationInfo"]["value"]["pec"] is True


def test_dump_csv(capsys: Any) -> None:
    code, out, _ = cli(capsys, "-d", STATIC, "dump", "--csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == len(sbs_table().readable())
    voltage = next(r for r in rows if r["name"] == "Voltage")
    assert voltage == {"code": "0x09", "name": "Voltage", "raw": "0x3EF8", "value": "16120", "unit": "mV", "error": ""}
    run_time = next(r for r in rows if r["name"] == "RunTimeToEmpty")
    assert run_time["value"] == "not discharging"


def test_dump_table_is_aligned_with_units(capsys: Any) -> None:
    code, out, _ = cli(capsys, "-d", STATIC, "dump")
    assert code == 0
    voltage = next(line for line in out.splitlines() if "Voltage " in line and "Design" not in line)
    assert "0x09" in voltage and "16120 mV" in voltage and "0x3EF8" in voltage
    columns = {line.index("0x") for line in out.splitlines() if line.strip().startswith("0x")}
    assert len(columns) == 1  # codes right-aligned in one column


def test_info(capsys: Any) -> None:
    code, out, _ = cli(capsys, "-d", STATIC, "info")
    assert code == 0
    for text in ("EMU-4S3000", "smartbatt", "LION", "3000 mAh", "25.05 °C", "2025-03-14"):
        assert text in out, text


def test_scan(capsys: Any) -> None:
    code, out, _ = cli(capsys, "-d", STATIC, "scan")
    assert code == 0
    assert "0x0B" in out and "battery" in out and "EMU-4S3000" in out


# --- device and bus errors: exit 3, one line naming the transaction -------------------------------


@pytest.mark.parametrize("argv", [["read", "Temperature"], ["dump"], ["dump", "--json"], ["info"]])
def test_nack_is_one_line_with_address_and_command(capsys: Any, argv: list[str]) -> None:
    code, out, err = cli(capsys, "-d", "emulated:?model=static&nack_every=1", *argv)
    assert code == 3 and out == ""
    line = assert_one_line_error(err)
    assert "no acknowledge" in line and "address 0x0B" in line and "command 0x" in line
    assert "asleep" in line and "SDA/SCL" in line


def test_pec_failure_is_one_line(capsys: Any) -> None:
    code, _, err = cli(capsys, "-d", "emulated:?model=static&corrupt_pec_every=1", "--pec", "read", "Temperature")
    assert code == 3
    line = assert_one_line_error(err)
    assert "PEC" in line and "address 0x0B, command 0x08" in line and "expected 0x" in line


def test_stuck_bus_and_timeout(capsys: Any) -> None:
    code, _, err = cli(capsys, "-d", "emulated:?model=static&stuck=1", "read", "Voltage")
    assert code == 3 and "stuck" in assert_one_line_error(err)
    code, _, err = cli(capsys, "-d", "emulated:?model=static&stretch_ms=40", "read", "Voltage")
    assert code == 3 and "25 ms timeout" in assert_one_line_error(err)


def test_scan_with_nothing_answering_exits_3(capsys: Any) -> None:
    code, out, err = cli(capsys, "-d", "emulated:?model=static&nack_every=1", "scan")
    assert code == 3 and out == ""
    assert "no device acknowledged" in assert_one_line_error(err)


def test_wrong_address_exits_3(capsys: Any) -> None:
    code, _, err = cli(capsys, "-d", STATIC, "--address", "0x0C", "read", "Temperature")
    assert code == 3 and "address 0x0C" in assert_one_line_error(err)


def test_bad_uri_option_is_usage_error(capsys: Any) -> None:
    code, _, err = cli(capsys, "-d", "emulated:?model=static&colour=red", "read", "Voltage")
    assert code == 2 and "colour" in assert_one_line_error(err)


# --- write ------------------------------------------------------------------------------------------


def test_write_verifies(capsys: Any) -> None:
    code, out, err = cli(capsys, "-d", STATIC, "write", "RemainingCapacityAlarm", "400")
    assert (code, err) == (0, "")
    assert out == "RemainingCapacityAlarm: wrote and verified 400 mAh (raw 0x0190)\n"
    code, out, _ = cli(capsys, "-d", STATIC, "write", "AtRate", "-1000")
    assert code == 0 and "-1000 mA" in out
    code, out, _ = cli(capsys, "-d", STATIC, "write", "ManufacturerAccess", "0x0006")
    assert code == 0 and "not verifiable" in out


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["write", "Voltage", "1"], "read-only"),
        (["write", "RemainingCapacityAlarm", "70000"], "outside the range"),
        (["write", "AtRate", "1.5"], "not a multiple"),
        (["write", "BatteryMode", "0x0004"], "reserved bits"),
        (["write", "RemainingTimeAlarm", "ten"], "not a number"),
        (["write", "Bogus", "1"], "unknown command"),
    ],
)
def test_write_bad_input_is_usage_error(capsys: Any, argv: list[str], fragment: str) -> None:
    code, out, err = cli(capsys, "-d", STATIC, *argv)
    assert code == 2 and out == ""
    assert fragment in assert_one_line_error(err)


def test_write_nack_exits_3(capsys: Any) -> None:
    code, _, err = cli(
        capsys, "-d", "emulated:?model=static&nack_every=1", "--no-pec", "write", "RemainingTimeAlarm", "5"
    )
    assert code == 3 and "address 0x0B, command 0x02" in assert_one_line_error(err)
