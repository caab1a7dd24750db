"""``smartbatt model fit`` / ``model show`` / ``estimate``: files in, files out, exit codes, one-line errors."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import numpy as np
import pytest

import smartbatt.cli.main as cli
from smartbatt.monitor.cellmodel import CellModel
from smartbatt.monitor.logfile import write_csv, write_log
from tests.test_estimator import characterization_log, drive_log

MODULE = "smartbatt.cli.commands.model"


@pytest.fixture(scope="module", autouse=True)
def _registered() -> Iterator[None]:
    # the lead adds the module to COMMAND_MODULES; until then register it for these tests
    with pytest.MonkeyPatch.context() as mp:
        if MODULE not in cli.COMMAND_MODULES:
            mp.setattr(cli, "COMMAND_MODULES", (*cli.COMMAND_MODULES, MODULE))
        yield


@cache
def _files(root: str) -> tuple[Path, Path]:
    base = Path(root)
    char = characterization_log()
    write_log(base / "char.csv", char.time_s, char.voltage_v, char.current_a, char.temperature_c)
    drive, truth = drive_log(0.8, rest_s=300, drive_s=1500)
    # a 3-series pack, with the gauge's RelativeStateOfCharge beside it
    write_csv(
        base / "drive.csv",
        {
            "time_s": drive.time_s,
            "voltage_V": 3 * drive.voltage_v,
            "current_A": drive.current_a,
            "temperature_C": drive.temperature_c,
            "rsoc_pct": np.round(100 * truth),
        },
        precision=9,
    )
    return base / "char.csv", base / "drive.csv"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, _registered: None) -> tuple[Path, Path, Path]:
    base = tmp_path_factory.mktemp("cli_model")
    char, drive = _files(str(base))
    model = base / "cell.json"
    assert cli.run(["model", "fit", str(char), "-o", str(model)]) == 0
    return char, drive, model


def _one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


def test_fit_writes_a_loadable_model(files, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    char, _, _ = files
    out = tmp_path / "m.json"
    assert cli.run(["model", "fit", str(char), "-o", str(out), "--name", "emu", "--v-min", "2.8"]) == 0
    text = capsys.readouterr().out
    assert "capacity" in text and "fit residual" in text and f"wrote {out}" in text
    model = CellModel.load(out)
    assert model.name == "emu" and model.v_min_v == 2.8
    assert cli.run(["model", "show", str(out)]) == 0
    assert "R0 mΩ" in capsys.readouterr().out


def test_estimate_writes_one_row_per_sample(files, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, drive, model = files
    out = tmp_path / "out.csv"
    code = cli.run(
        ["estimate", "--model", str(model), "--series", "3", "--initial-soc", "0.5", str(drive), "-o", str(out)]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "vs gauge RelativeStateOfCharge" in text
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    with open(drive, newline="") as handle:
        assert len(rows) == len(list(csv.DictReader(handle)))
    assert list(rows[0])[:5] == ["time_s", "soc", "soc_sigma", "capacity_ah", "r0_ohm"]
    assert float(rows[0]["soc"]) == 0.5
    last = rows[-1]
    assert abs(float(last["soc"]) - float(last["gauge_soc"])) < 0.03  # converged to the truth
    assert 0 < float(last["soc_sigma"]) < 0.05


def test_estimate_with_state_of_power(files, tmp_path: Path) -> None:
    _, drive, model = files
    out = tmp_path / "sop.csv"
    assert cli.run(["estimate", "--model", str(model), "--series", "3", "--sop", str(drive), "-o", str(out)]) == 0
    with open(out, newline="") as handle:
        row = next(csv.DictReader(handle))
    for h in ("2", "10", "30"):
        assert float(row[f"p_discharge_{h}s_w"]) > 0
    assert float(row["i_discharge_2s_a"]) >= float(row["i_discharge_30s_a"])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["estimate", "--model", "{model}", "--initial-soc", "80", "{drive}", "-o", "{out}"], "write 0.8"),
        (["estimate", "--model", "{model}", "--series", "0", "{drive}", "-o", "{out}"], "at least 1"),
        (["estimate", "--model", "{model}", "{missing}", "-o", "{out}"], "no such file"),
        (["estimate", "--model", "{missing}", "{drive}", "-o", "{out}"], "no such file"),
        (["estimate", "{drive}", "-o", "{out}"], "--model"),
        (["model", "fit", "{drive}"], "--output"),
        (["model"], "needs an action"),
    ],
)
def test_usage_errors_exit_2(
    files, tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    _, drive, model = files
    names = {"model": model, "drive": drive, "out": tmp_path / "o.csv", "missing": tmp_path / "missing.csv"}
    assert cli.run([a.format(**names) for a in argv]) == cli.EXIT_USAGE
    assert message in _one_line(capsys.readouterr().err)


def test_bad_rows_exit_3_with_line_numbers_or_are_skipped(
    files, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, drive, model = files
    lines = drive.read_text().splitlines()
    lines[5] = lines[5].replace(lines[5].split(",")[1], "nan", 1)
    lines[9] = "0" + lines[9][lines[9].index(",") :]  # time goes back
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(lines) + "\n")
    out = tmp_path / "o.csv"
    assert cli.run(["estimate", "--model", str(model), str(bad), "-o", str(out)]) == cli.EXIT_DEVICE
    err = _one_line(capsys.readouterr().err)
    assert "line 6: voltage_V is nan" in err and "line 10: time 0 s is not after" in err
    assert not out.exists()
    assert cli.run(["estimate", "--model", str(model), "--skip-bad", str(bad), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "2 bad row(s) skipped" in err and "line 6" in err and "line 10" in err
    assert out.exists()


def test_bad_model_and_unfittable_log_exit_3(files, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, drive, _ = files
    broken = tmp_path / "broken.json"
    broken.write_text('{"schema_version": 1}')
    assert cli.run(["estimate", "--model", str(broken), str(drive), "-o", str(tmp_path / "o.csv")]) == cli.EXIT_DEVICE
    assert "capacity_ah: missing" in _one_line(capsys.readouterr().err)
    # a drive log has no slow discharge: not a characterization log
    assert cli.run(["model", "fit", str(drive), "-o", str(tmp_path / "m.json")]) == cli.EXIT_DEVICE
    assert "no slow (≤ C/10) full discharge" in _one_line(capsys.readouterr().err)
    assert not (tmp_path / "m.json").exists()
