"""The CSV log reader: good logs, and bad rows reported with their line numbers."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from smartbatt.errors import SmartBattError
from smartbatt.monitor.logfile import LogError, read_log, write_csv, write_log


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "log.csv"
    path.write_text(text)
    return path


def test_reads_columns_in_any_order_and_case_and_ignores_extras(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "note,Current_A,TIME_S,voltage_v,temperature_C,rsoc_pct,fcc_mah\n"
        "a,-1.5,0,16.1,25.0,80,2900\n"
        "b,-1.5,1,16.0,25.1,80,2900\n"
        "\n"
        "c,0,2.5,16.2,25.2,79,2890\n",
    )
    log = read_log(path)
    assert len(log) == 3
    np.testing.assert_array_equal(log.time_s, [0, 1, 2.5])
    np.testing.assert_array_equal(log.current_a, [-1.5, -1.5, 0])
    np.testing.assert_array_equal(log.line, [2, 3, 5])
    assert log.has_temperature and log.temperature_c[2] == 25.2
    np.testing.assert_array_equal(log.gauge["rsoc_pct"], [80, 80, 79])
    np.testing.assert_array_equal(log.gauge["fcc_mah"], [2900, 2900, 2890])
    assert not log.bad_rows


def test_temperature_is_optional(tmp_path: Path) -> None:
    log = read_log(_write(tmp_path, "time_s,voltage_V,current_A\n0,4,0\n1,4,0\n"))
    assert not log.has_temperature and math.isnan(log.temperature_c[0])


BAD = (
    "time_s,voltage_V,current_A,temperature_C\n"
    "0,4.0,-1,25\n"  # 2
    "1,nan,-1,25\n"  # 3 NaN
    "2,4.0,-1\n"  # 4 too few fields
    "3,4.0,abc,25\n"  # 5 not a number
    "-0.5,4.0,-1,25\n"  # 6 time goes back
    "4,4.0,-1,25\n"  # 7 fine
    "4,4.0,-1,25\n"  # 8 duplicate time
    "500,4.0,-1,inf\n"  # 9 infinite
    "600,4.0,-1,25\n"  # 10 gap of 596 s
    "601,4.0,-1,25\n"  # 11
)


def test_bad_rows_are_reported_with_line_numbers(tmp_path: Path) -> None:
    with pytest.raises(LogError) as info:
        read_log(_write(tmp_path, BAD))
    err = info.value
    assert isinstance(err, SmartBattError)
    assert [row.line for row in err.bad_rows] == [3, 4, 5, 6, 8, 9, 10]
    reasons = {row.line: row.reason for row in err.bad_rows}
    assert "voltage_V is nan" in reasons[3]
    assert "has 3 fields" in reasons[4]
    assert "'abc' is not a number" in reasons[5]
    assert "time -0.5 s is not after the previous sample's 0 s" in reasons[6]
    assert "not after" in reasons[8]
    assert "temperature_C is inf" in reasons[9]
    assert "gap of 596 s" in reasons[10]
    assert "line 3:" in str(err) and "7 bad row(s)" in str(err)


def test_skip_bad_drops_rows_and_marks_gaps(tmp_path: Path) -> None:
    log = read_log(_write(tmp_path, BAD), skip_bad=True)
    np.testing.assert_array_equal(log.line, [2, 7, 10, 11])
    np.testing.assert_array_equal(log.gap_before, [False, False, True, False])
    assert len(log.bad_rows) == 7
    assert read_log(_write(tmp_path, BAD), skip_bad=True, max_gap_s=1000).gap_before.sum() == 0


def test_long_error_lists_are_shortened(tmp_path: Path) -> None:
    rows = "".join(f"{k},x,0\n" for k in range(30))
    with pytest.raises(LogError, match="and 22 more") as info:
        read_log(_write(tmp_path, "time_s,voltage_V,current_A\n" + rows))
    assert len(info.value.bad_rows) == 30


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "empty file"),
        ("time_s,voltage_V\n0,4\n", "missing column.*current_A"),
        ("time_s,voltage_V,current_A\n0,4,0\n", "at least 2 good samples"),
    ],
)
def test_unusable_files(tmp_path: Path, text: str, match: str) -> None:
    with pytest.raises(LogError, match=match):
        read_log(_write(tmp_path, text))


def test_missing_and_binary_files(tmp_path: Path) -> None:
    with pytest.raises(LogError, match="cannot read"):
        read_log(tmp_path / "nope.csv")
    (tmp_path / "b.csv").write_bytes(b"\xff\xfe\xfa")
    with pytest.raises(LogError, match="UTF-8"):
        read_log(tmp_path / "b.csv")


def test_write_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    write_log(path, [0.0, 1.0], [4.1, 4.05], [0.0, -2.5], [25.0, 25.5])
    log = read_log(path)
    np.testing.assert_allclose(log.voltage_v, [4.1, 4.05])
    np.testing.assert_allclose(log.temperature_c, [25.0, 25.5])
    with pytest.raises(LogError, match="differ in length"):
        write_csv(path, {"a": [1.0], "b": [1.0, 2.0]})
    with pytest.raises(LogError, match="cannot write"):
        write_csv(tmp_path / "no" / "such" / "dir.csv", {"a": [1.0]})
