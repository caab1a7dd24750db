"""The examples in examples/ run as written (README promises it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize("script", ["read_pack.py", "pmbus_rails.py"])
def test_example_runs(script: str) -> None:
    cmd = [sys.executable, str(EXAMPLES / script)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert "error" not in result.stderr.lower()
    assert result.stdout.strip()


def test_example_reports_a_bus_error_in_one_line() -> None:
    uri = "emulated:?model=static&stuck=1"
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "read_pack.py"), uri], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 3
    assert result.stderr.count("\n") == 1 and "bus stuck" in result.stderr
