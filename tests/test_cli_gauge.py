"""CLI: profiles, flags, mac, cells, unseal/fullaccess/seal, df, flashstream — output, exit codes,
one-line errors, keys that never show."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from smartbatt.cli import main
from smartbatt.errors import NoAcknowledge
from smartbatt.gauge.dataflash import DataFlash

SEALED = "emulated:bq4050?speed=0"
UNSEALED = "emulated:bq4050?speed=0&security=unsealed"


@pytest.fixture(autouse=True)
def gauge_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    """Until the lead adds the module to COMMAND_MODULES."""
    if "smartbatt.cli.commands.gauge" not in main.COMMAND_MODULES:
        monkeypatch.setattr(main, "COMMAND_MODULES", (*main.COMMAND_MODULES, "smartbatt.cli.commands.gauge"))


def cli(capsys: Any, *argv: str) -> tuple[int, str, str]:
    code = main.run(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err and lines[0].startswith("smartbatt: ")
    return lines[0]


def test_profiles_needs_no_device(capsys: Any) -> None:
    code, out, err = cli(capsys, "--device", "nosuchadapter:", "profiles")
    assert (code, err) == (0, "")
    for name in ("bq20z65", "bq28z610", "bq4050", "bq40z50", "bq40z80", "bq78350", "generic-sbs"):
        assert name in out
    code, out, _ = cli(capsys, "--device", "nosuchadapter:", "profiles", "bq4050")
    assert code == 0 and "TI SLUUAQ3A BQ4050 TRM" in out and "31 of 31 addressed" in out
    code, _, err = cli(capsys, "profiles", "bq9999")
    assert code == 3 and "no shipped profile named 'bq9999'" in one_line_error(err)


def test_flags_shows_profile_security_and_every_status_word(capsys: Any) -> None:
    code, out, err = cli(capsys, "-d", UNSEALED, "flags")
    assert (code, err) == (0, "")
    assert "bq4050 (DeviceType 0x9E34 identifies bq4050" in out and "security: UNSEALED" in out
    for register in ("BatteryStatus", "SafetyAlert", "SafetyStatus", "OperationStatus", "ManufacturingStatus"):
        assert register in out
    assert "Cell overvoltage" in out and "SET" in out  # descriptions, set bits marked


def test_flags_when_sealed_names_what_is_missing(capsys: Any) -> None:
    code, out, _ = cli(capsys, "-d", SEALED, "flags", "--set-only")
    assert code == 0 and "security: SEALED" in out
    assert "SafetyStatus: SafetyStatus is not readable while the gauge is SEALED" in out.replace("\n", " ")


def test_flags_json(capsys: Any) -> None:
    code, out, _ = cli(capsys, "-d", UNSEALED, "flags", "--json")
    data = json.loads(out)
    assert code == 0 and set(data["OperationStatus"]["set"]) >= {"DSG", "CHG"}
    assert data["OperationStatus"]["groups"] == {"SEC": "Unsealed"}
    assert data["SafetyStatus"]["set"] == [] and data["SafetyStatus"]["source"] == "SBS 0x51"


def test_generic_sbs_without_the_probe(capsys: Any) -> None:
    code, out, _ = cli(capsys, "-d", "emulated:bq40z50?speed=0", "flags", "--no-mac-probe")
    assert code == 0 and "generic-sbs" in out and "matches no chip profile" in out
    assert "security: unknown" in out and "SafetyStatus" not in out
    code, _, err = cli(capsys, "-d", "emulated:bq40z50?speed=0", "cells", "--no-mac-probe")
    assert code == 3 and "no per-cell voltages" in one_line_error(err)
    code, _, err = cli(capsys, "-d", "emulated:bq40z50?speed=0", "mac", "DeviceType", "--no-mac-probe")
    assert code == 3 and "never sends ManufacturerAccess" in one_line_error(err)


def test_mac_reads_and_decodes(capsys: Any) -> None:
    code, out, _ = cli(capsys, "-d", "emulated:bq40z50?speed=0", "mac", "FirmwareVersion", "--profile", "bq40z50")
    assert code == 0 and "via 0x44" in out and "DeviceNumber" in out and "17664" in out
    code, out, _ = cli(capsys, "-d", UNSEALED, "mac", "0x0054")
    assert code == 0 and "SEC=Unsealed" in out
    code, _, err = cli(capsys, "-d", UNSEALED, "mac", "Frobnicate")
    assert code == 2 and "no MAC subcommand 'Frobnicate'" in one_line_error(err)
    code, _, err = cli(capsys, "-d", UNSEALED, "mac", "DeviceType", "--data", "zz")
    assert code == 2 and "not hex bytes" in one_line_error(err)


def test_cells(capsys: Any) -> None:
    code, out, _ = cli(capsys, "-d", SEALED, "cells")
    assert code == 0 and "Cells (words)" in out and "spread:" in out
    code, out, _ = cli(capsys, "-d", UNSEALED, "cells", "--json", "--method", "dastatus1")
    values = json.loads(out)
    assert code == 0 and len(values) == 4 and all(3000 < v < 4300 for v in values)
    code, _, err = cli(capsys, "-d", SEALED, "cells", "--method", "dastatus1")
    assert code == 3 and "SEALED" in one_line_error(err)


def test_unseal_fullaccess_seal(capsys: Any) -> None:
    code, out, _ = cli(capsys, "-d", SEALED, "unseal")
    assert code == 0 and "security UNSEALED" in out and "default key" in out
    code, _, err = cli(capsys, "-d", SEALED, "fullaccess")
    assert code == 3 and "unseal it first" in one_line_error(err)
    code, out, _ = cli(capsys, "-d", UNSEALED, "fullaccess")
    assert code == 0 and "FULL ACCESS" in out
    code, out, _ = cli(capsys, "-d", UNSEALED, "seal")
    assert code == 0 and "security SEALED" in out


def test_a_wrong_key_does_not_unseal_says_so_and_never_shows_the_key(
    capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = cli(capsys, "-v", "-d", SEALED, "unseal", "--key", "5A17:C0DE")
    line = one_line_error(err.strip().splitlines()[-1])
    assert code == 3 and "wrong key: the gauge is still SEALED" in line
    assert "[redacted]" in err  # -v logs the key writes without data
    for shown in (out, err):
        assert "5A17" not in shown.upper() and "17 5A" not in shown.upper() and "C0DE" not in shown.upper()
    monkeypatch.setenv("SMARTBATT_KEY", "0414:3672")
    code, out, err = cli(capsys, "-v", "-d", SEALED, "unseal")
    assert code == 0 and "the given key" in out
    assert "14 04" not in err and "72 36" not in err
    monkeypatch.setattr("getpass.getpass", lambda prompt="": "0414:3672")
    monkeypatch.delenv("SMARTBATT_KEY")
    code, out, _ = cli(capsys, "-d", SEALED, "unseal", "--key", "-")
    assert code == 0 and "UNSEALED" in out
    code, _, err = cli(capsys, "-d", SEALED, "unseal", "--key", "xyz")
    assert code == 2 and "WORD1:WORD2" in one_line_error(err) and "xyz" not in err


def test_df_get_set_and_errors(capsys: Any) -> None:
    code, out, _ = cli(capsys, "-d", UNSEALED, "df", "get", "Protections:CUV:Threshold")
    assert (code, out.strip()) == (0, "Protections:CUV:Threshold = 2500 mV")
    code, out, _ = cli(capsys, "-d", UNSEALED, "df", "set", "protections:cov:threshold rec temp", "4150")
    assert code == 0 and "Protections:COV:Threshold Rec Temp = 4150 mV (written, read back)" in out
    code, out, _ = cli(capsys, "-d", UNSEALED, "df", "get", "Settings:Protection:Enabled Protections A")
    assert code == 0 and "= 0xFF hex" in out
    code, _, err = cli(capsys, "-d", UNSEALED, "df", "set", "Protections:CUV:Threshold", "40000")
    assert code == 2 and "outside I2 range" in one_line_error(err)
    code, _, err = cli(capsys, "-d", UNSEALED, "df", "get", "Protections:CUV:Thresh")
    assert code == 2 and "did you mean" in one_line_error(err)
    code, _, err = cli(capsys, "-d", SEALED, "df", "set", "Protections:CUV:Threshold", "2600")
    assert code == 3 and "SEALED; run `smartbatt unseal` first" in one_line_error(err)
    code, _, err = cli(
        capsys, "-d", "emulated:bq40z50?speed=0&security=unsealed", "df", "get", "Protections:CUV:Threshold"
    )
    assert code == 3 and "address unknown for this chip in profile bq40z50" in one_line_error(err)
    code, _, err = cli(capsys, "-d", UNSEALED, "df")
    assert code == 2 and "needs an action" in one_line_error(err)


def test_df_list_with_and_without_a_device(capsys: Any) -> None:
    code, out, _ = cli(capsys, "--device", "nosuchadapter:", "df", "list", "--profile", "bq40z50")
    assert code == 0 and "0x4938" in out and "unknown" in out
    code, out, _ = cli(capsys, "-d", UNSEALED, "df", "list", "--read")
    assert code == 0 and "4300" in out and "0x447D" in out


def test_df_export_and_import_all_formats(capsys: Any, tmp_path: Path) -> None:
    image, gg, fs = tmp_path / "g.json", tmp_path / "g.gg.csv", tmp_path / "g.df.fs"
    source = "emulated:bq4050?speed=0&security=unsealed&seed=1"
    assert cli(capsys, "-d", source, "df", "export", str(image))[0] == 0
    assert cli(capsys, "-d", source, "df", "export", str(gg))[0] == 0
    code, out, _ = cli(capsys, "-d", source, "df", "export", str(fs))
    assert code == 0 and "3 data-flash block(s)" in out
    doc = json.loads(image.read_text())
    next(e for e in doc["entries"] if e["key"] == "Protections:CUV:Threshold")["value"] = 2700
    image.write_text(json.dumps(doc))

    target = "emulated:bq4050?speed=0&security=unsealed&seed=2"
    code, out, _ = cli(
        capsys, "-d", target, "df", "import", str(image), "--dry-run", "--backup-dir", str(tmp_path / "b")
    )
    assert code == 0 and "Protections:CUV:Threshold" in out and "2700" in out and "dry run: nothing written" in out
    assert not (tmp_path / "b").exists()
    code, out, _ = cli(capsys, "-d", target, "df", "import", str(image), "--backup-dir", str(tmp_path / "b"))
    assert code == 0 and "wrote and verified 1 entries" in out.replace("\n", " ")
    assert len(list((tmp_path / "b").glob("*.backup.json"))) == 1
    code, out, _ = cli(capsys, "-d", target, "df", "import", str(gg), "--dry-run")
    assert code == 0 and "0 to write" in out
    code, _, err = cli(capsys, "-d", target, "df", "import", str(fs))
    assert code == 2 and "smartbatt flashstream" in one_line_error(err)


def test_an_interrupted_import_names_what_was_written(
    capsys: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = tmp_path / "g.json"
    assert cli(capsys, "-d", "emulated:bq4050?speed=0&security=unsealed&seed=1", "df", "export", str(image))[0] == 0
    doc = json.loads(image.read_text())
    for entry in doc["entries"]:
        if entry["key"].startswith("Protections:COV:Threshold"):
            entry["value"] = 4100
    image.write_text(json.dumps(doc))
    original = DataFlash._write_verified
    calls = []

    def flaky(self: DataFlash, *args: Any) -> None:  # the harness fails on the third entry
        calls.append(args)
        if len(calls) == 3:
            raise NoAcknowledge("no acknowledge at byte 0", byte_index=0)
        original(self, *args)

    monkeypatch.setattr(DataFlash, "_write_verified", flaky)
    target = "emulated:bq4050?speed=0&security=unsealed&seed=2"
    code, _, err = cli(capsys, "-d", target, "df", "import", str(image), "--backup-dir", str(tmp_path))
    line = one_line_error(err)
    assert code == 3 and "interrupted at Protections:COV:Threshold High Temp by NoAcknowledge" in line
    assert (
        "Written and verified: 2 (Protections:COV:Threshold Low Temp, Protections:COV:Threshold Standard Temp)" in line
    )
    assert "not written: 1 (Protections:COV:Threshold Rec Temp)" in line and "Run the same import again" in line


def test_flashstream_dry_run_needs_no_device_and_a_run_reports(capsys: Any, tmp_path: Path) -> None:
    fs = tmp_path / "g.df.fs"
    assert cli(capsys, "-d", "emulated:bq4050?speed=0&security=unsealed&seed=1", "df", "export", str(fs))[0] == 0
    code, out, err = cli(
        capsys, "--device", "nosuchadapter:", "flashstream", str(fs), "--dry-run", "--profile", "bq4050"
    )
    assert (code, err) == (0, "") and "dry run: nothing sent" in out and "9 lines: 6 writes" in out
    code, out, _ = cli(capsys, "-d", "emulated:bq4050?speed=0&security=unsealed&seed=2", "flashstream", str(fs))
    assert code == 0 and "ran 9 lines (6 writes, 3 compares passed)" in out
    lines = fs.read_text().splitlines()
    lines[4] = lines[4][:-2] + ("00" if not lines[4].endswith("00") else "01")
    fs.write_text("\r\n".join(lines) + "\r\n")
    code, _, err = cli(capsys, "-d", "emulated:bq4050?speed=0&security=unsealed&seed=2", "flashstream", str(fs))
    assert code == 3 and "g.df.fs:5: SCL" in one_line_error(err)
    code, _, err = cli(capsys, "flashstream", str(tmp_path / "missing.fs"))
    assert code == 2 and "no such file" in one_line_error(err)
