"""``smartbatt emulate``, and the emulated pack reached over a Bus Pirate pty."""

from __future__ import annotations

import re
import threading

import pytest

import smartbatt.cli.commands.emulate as emulate_cmd
import smartbatt.cli.main as cli_main
from smartbatt.emulator.buspirate_pty import open_pty
from smartbatt.emulator.factory import EmulatorOptions, build_physics
from smartbatt.transports import open_transport

BAT = 0x0B


@pytest.fixture(autouse=True)
def with_emulate_command(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register the subcommand even before the lead adds it to COMMAND_MODULES."""
    if "smartbatt.cli.commands.emulate" not in cli_main.COMMAND_MODULES:
        monkeypatch.setattr(cli_main, "COMMAND_MODULES", (*cli_main.COMMAND_MODULES, "smartbatt.cli.commands.emulate"))


def test_fast_status_lines(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli_main.run(["emulate", "--speed", "0", "--duration", "30", "--scenario", "drone", "--seed", "3"])
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert len(out) == 3  # one line per 10 simulated seconds
    assert out[-1].startswith("t=00:00:30")
    assert " V " in out[0] and "mA" in out[0] and "CHG DSG" in out[0]
    currents = [int(line.split(" V ")[1].split(" mA")[0]) for line in out]
    assert min(currents) < -5000  # the drone takes off


def test_status_shows_protection_state(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli_main.run(["emulate", "--speed", "0", "--duration", "10", "--thermistor", "short"])
    out = capsys.readouterr().out
    assert code == 0
    assert re.search(r" 1(49|50)\.\d °C", out) and "CHG dsg" in out and "OTA" in out


@pytest.mark.parametrize(
    "argv",
    [
        ["emulate", "--cells", "9"],
        ["emulate", "--pty", "--speed", "0"],
        ["emulate", "--short-cell", "7", "--speed", "0"],
        ["emulate", "--nack-rate", "2", "--speed", "0"],
        ["emulate", "--scenario", "rocket"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main.run(argv) == 2
    assert "usage error" in capsys.readouterr().err


def _interrupted(stop: threading.Event, seconds: float) -> bool:
    """The wait of the emulate loop, interrupted by Ctrl-C."""
    raise KeyboardInterrupt


def test_ctrl_c_is_a_clean_exit(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(emulate_cmd, "_wait", _interrupted)
    assert cli_main.run(["emulate", "--speed", "1"]) == 0
    assert "stopped" in capsys.readouterr().err


def test_pty_mode_prints_the_path_and_stops(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(emulate_cmd, "_wait", _interrupted)
    assert cli_main.run(["emulate", "--pty", "--speed", "5"]) == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith("/dev/")


def test_the_buspirate_backend_talks_to_the_emulated_pack_over_a_pty() -> None:
    bus, gauge = build_physics("bq40z50", EmulatorOptions(speed=1.0, seed=2))
    with open_pty(bus) as session, open_transport(f"buspirate:{session.path}") as t:
        voltage = t.read_word(BAT, 0x09, pec=True)
        assert voltage == gauge.vpack.gauge.measurement.voltage_mv
        with t.exclusive():
            t.write_word(BAT, 0x00, 0x0414)
            t.write_word(BAT, 0x00, 0x3672)
        t.write_block(BAT, 0x44, b"\x54\x00")
        status = t.read_block(BAT, 0x44)
        assert status[:2] == b"\x54\x00"
        assert (int.from_bytes(status[2:6], "little") >> 8) & 3 == 2  # UNSEALED
        assert len(t.read_block(BAT, 0x71)) == 32


def test_no_thread_leaks_from_the_cli() -> None:
    before = threading.active_count()
    assert cli_main.run(["emulate", "--speed", "0", "--duration", "5"]) == 0
    assert threading.active_count() == before
