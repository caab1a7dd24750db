"""``smartbatt monitor`` and ``smartbatt log`` end to end against the emulated pack."""

from __future__ import annotations

from pathlib import Path

import pytest

from smartbatt.cli.main import run
from smartbatt.monitor.store import Store

DEVICE = "emulated:bq40z50?speed=20&scenario=drone&security=unsealed"


def test_monitor_draws_pack_cells_flags_and_alarms(capsys: pytest.CaptureFixture[str]) -> None:
    code = run(["--device", DEVICE, "monitor", "--profile", "bq40z50", "--duration", "1.5", "--rate", "4"])
    out = capsys.readouterr().out
    assert code == 0
    for heading in ("Pack", "Cells", "Flags", "Alarms", "CONNECTED", "Cell 4", "OperationStatus", "Our SOC", "EKF on"):
        assert heading in out


def test_monitor_without_a_pack_says_why_and_does_not_hang(capsys: pytest.CaptureFixture[str]) -> None:
    code = run(["--device", DEVICE, "--address", "0x0C", "monitor", "--duration", "1"])
    out = capsys.readouterr().out
    assert code == 0
    assert "no acknowledge" in out


def test_log_records_a_session(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "rec.db"
    code = run(["--device", DEVICE, "log", "--db", str(db), "--duration", "1.5", "--rate", "4"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    store = Store(db, readonly=True)
    try:
        sessions = store.sessions()
        assert len(sessions) == 1
        assert store.count(sessions[0].id) >= 3
        window = store.window(sessions[0].id)
        assert "Voltage" in window.channels if hasattr(window, "channels") else True
    finally:
        store.close()
    assert "recorded" in captured.out


def test_bad_arguments_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["monitor", "--profile", "bq99"]) == 2
    assert "bq99" in capsys.readouterr().err
    assert run(["log"]) == 2
