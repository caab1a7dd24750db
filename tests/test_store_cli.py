"""``smartbatt sessions / replay / events / export`` against a recording made in the test."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from smartbatt.cli import main as cli_main
from smartbatt.cli.commands.monitor_store import parse_since
from smartbatt.cli.context import UsageError
from smartbatt.monitor.sample import Event, Sample, Severity
from smartbatt.monitor.store import PackInfo, Store

T0 = 1_750_000_000.0  # 2025-06-15T15:06:40Z


@pytest.fixture(autouse=True)
def _registered(monkeypatch: pytest.MonkeyPatch) -> None:
    if "smartbatt.cli.commands.monitor_store" not in cli_main.COMMAND_MODULES:
        monkeypatch.setattr(
            cli_main, "COMMAND_MODULES", (*cli_main.COMMAND_MODULES, "smartbatt.cli.commands.monitor_store")
        )


@pytest.fixture
def rec(tmp_path: Path) -> Path:
    path = tmp_path / "rec.db"
    with Store(path) as s:
        pack = s.add_pack(PackInfo("smartbatt", "EMU-4S3000", "4660"))
        first = s.start_session(pack, started=T0, source="emulated:", note="flight 1")
        s.append(
            first,
            [Sample(T0 + i, {"Voltage": 16.0 + i / 1000, "Current": -2.5}, {"BatteryStatus": 0xC0}) for i in range(5)],
        )
        second = s.start_session(pack, started=T0 + 3600)
        s.append(second, [Sample(T0 + 3600 + i, {"Voltage": 15.0, "Temperature": 30.0}) for i in range(3)])
        s.record_event(
            Event(
                1,
                T0 + 2,
                Severity.WARNING,
                "Temperature",
                "over_temperature",
                "warm",
                56.0,
                55.0,
                True,
                session_id=first,
            )
        )
        s.record_event(
            Event(2, T0 + 3601, Severity.CRITICAL, "Temperature", "runaway_heating", "hot", session_id=second).with_ack(
                T0 + 3700
            )
        )
    return path


def run(*argv: str) -> int:
    return cli_main.run(list(argv))


def test_sessions_lists_both(rec: Path, capsys: pytest.CaptureFixture[str]):
    assert run("sessions", "--db", str(rec)) == 0
    out = capsys.readouterr().out
    assert "flight 1" in out and "emulated:" in out and "2025-06-15T15:06:40.000Z" in out
    assert len([ln for ln in out.splitlines() if ln.strip()]) == 3  # header + 2 sessions


def test_replay_prints_the_latest_session_by_default(rec: Path, capsys: pytest.CaptureFixture[str]):
    assert run("replay", "--db", str(rec), "--speed", "0") == 0
    cap = capsys.readouterr()
    lines = cap.out.splitlines()
    assert lines == [f"2025-06-15T16:06:4{i}.000Z  Voltage 15 V  Temperature 30 °C" for i in range(3)]
    assert "replayed 3 samples of session 2" in cap.err


def test_replay_chosen_session_and_channels(rec: Path, capsys: pytest.CaptureFixture[str]):
    assert run("replay", "--db", str(rec), "--session", "1", "--speed", "0", "--channels", "Volt*,BatteryStatus") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == "2025-06-15T15:06:41.000Z  Voltage 16.001 V  BatteryStatus 0x00C0"
    assert len(lines) == 5


def test_replay_usage_errors(rec: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert run("replay", "--db", str(rec), "--session", "9") == 2
    assert "no session 9 (have 1, 2)" in capsys.readouterr().err
    assert run("replay", "--db", str(rec), "--speed", "-1") == 2
    assert run("replay", "--db", str(tmp_path / "nope.db")) == 2
    assert "no such recording database" in capsys.readouterr().err


def test_not_a_recording_is_a_device_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not sqlite at all" * 300)
    assert run("events", "--db", str(junk)) == 3
    err = capsys.readouterr().err
    assert err.startswith("smartbatt: error:") and "Traceback" not in err


def test_events_table_and_filters(rec: Path, capsys: pytest.CaptureFixture[str]):
    assert run("events", "--db", str(rec)) == 0
    out = capsys.readouterr().out
    assert "over_temperature" in out and "runaway_heating" in out and "active, acknowledged" in out
    assert run("events", "--db", str(rec), "--severity", "critical") == 0
    out = capsys.readouterr().out
    assert "runaway_heating" in out and "over_temperature" not in out
    assert run("events", "--db", str(rec), "--since", "2025-06-15T15:30") == 0
    out = capsys.readouterr().out
    assert "runaway_heating" in out and "over_temperature" not in out
    assert run("events", "--db", str(rec), "--session", "1", "--json") == 0
    [record] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert record == {
        "id": 1,
        "session": 1,
        "time": "2025-06-15T15:06:42.000Z",
        "severity": "warning",
        "source": "Temperature",
        "code": "over_temperature",
        "message": "warm",
        "value": 56.0,
        "limit": 55.0,
        "latched": True,
        "acknowledged": False,
        "cleared": None,
    }


def test_events_bad_options(rec: Path, capsys: pytest.CaptureFixture[str]):
    assert run("events", "--db", str(rec), "--since", "yesterday-ish") == 2
    assert "--since 'yesterday-ish'" in capsys.readouterr().err
    assert run("events", "--db", str(rec), "--severity", "loud") == 2


def test_export_to_file_and_stdout(rec: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    out = tmp_path / "s1.csv"
    assert run("export", "--db", str(rec), "--session", "1", "-o", str(out)) == 0
    rows = list(csv.reader(out.open(encoding="utf-8")))
    assert rows[0] == ["time", "unix_s", "Voltage [V]", "Current [A]", "BatteryStatus"]
    assert rows[5] == ["2025-06-15T15:06:44.000Z", "1750000004.000", "16.004", "-2.500", "192"]
    assert "exported 5 samples of session 1" in capsys.readouterr().err
    assert run("export", "--db", str(rec), "-o", "-") == 0
    assert capsys.readouterr().out.splitlines()[0] == "time,unix_s,Voltage [V],Temperature [°C]"
    assert run("export", "--db", str(rec), "-o", str(tmp_path / "no" / "dir.csv")) == 2


def test_parse_since_forms():
    now = T0 + 10_000
    assert parse_since("30m", now) == now - 1800
    assert parse_since("2h", now) == now - 7200
    assert parse_since("1.5d", now) == now - 1.5 * 86400
    assert parse_since("1750000000") == T0
    assert parse_since("2025-06-15T15:06:40Z") == T0
    assert parse_since("2025-06-15T17:06:40+02:00") == T0
    assert parse_since("2025-06-15") == T0 - (15 * 3600 + 6 * 60 + 40)
    for bad in ("", "soon", "5 parsecs", "nan"):
        with pytest.raises(UsageError):
            parse_since(bad, now)
