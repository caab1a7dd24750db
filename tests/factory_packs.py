"""Emulated packs for the factory tests: a good pack and each kind of bad one.

Built from the emulator's public pieces the way ``emulated:`` URIs build them, with the few knobs
a URI does not offer (cell SOC spread, manufacture date, serial). Nothing is bent: a bad pack is a
pack whose physics or configuration is bad (cells assembled at different states of charge, an
over-voltage event latched as a permanent failure, a gauge left unsealed, an old date).
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import smartbatt.cli.main as cli_main
from smartbatt.emulator.chemistry import load_chemistry
from smartbatt.emulator.clock import SimClock
from smartbatt.emulator.device import PROFILES, EmulatedGauge, GaugeIdentity, VirtualPack
from smartbatt.emulator.factory import SECURITY_MODES, pack_configuration
from smartbatt.emulator.gauge import GaugeParameters
from smartbatt.emulator.pack import PackConfig
from smartbatt.emulator.protections import ProtectionParameters
from smartbatt.emulator.target import EmulatedBus
from smartbatt.factory.runner import Outcome, RunResult, StepResult, StepStatus
from smartbatt.factory.steps import Measurement, Verdict
from smartbatt.sbs.codecs import encode_date
from smartbatt.transports.emulated import EmulatedTransport

#: the factory tests run on this day (the runner gets a fixed clock).
TODAY = datetime.date(2026, 11, 21)
NOW = datetime.datetime(2026, 11, 21, 9, 30, tzinfo=datetime.UTC)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
DATA = Path(__file__).resolve().parent / "data" / "factory"


def clock() -> datetime.datetime:
    return NOW


@dataclass
class Pack:
    """An emulated pack on its own bus."""

    transport: EmulatedTransport
    gauge: EmulatedGauge

    @property
    def vpack(self) -> VirtualPack:
        return self.gauge.vpack

    def latch_permanent_failure(self) -> None:
        """A cell over-voltage event that latches PFStatus[SOV]: the threshold is set below the
        present cells and the simulation runs past the delay, as a real SOV event would."""
        params = self.vpack.protections.params
        params["SOV:Threshold"] = max(self.gauge.vpack.gauge.measurement.cell_mv) - 50
        self.vpack.advance(5)
        assert self.vpack.protections.permanent_failure

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> Pack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def make_pack(
    *,
    cells: int = 4,
    capacity: int = 5000,
    chemistry: str = "lco",
    soc: float = 0.25,
    soc_spread: float = 0.002,
    seed: int = 3,
    security: str = "unsealed",
    made: datetime.date | None = None,
    serial: int = 1234,
    device_name: str | None = None,
    manufacturer: str = "smartbatt",
    scenario: str = "idle",
    profile: str = "bq40z50",
) -> Pack:
    """A pack at rest on a speed-0 clock (time moves only through ``vpack.advance``)."""
    config = PackConfig(
        chemistry=chemistry,
        series=cells,
        parallel=1,
        cell_capacity_ah=capacity / 1000.0,
        seed=seed,
        initial_soc=soc,
        soc_spread=soc_spread,
    )
    chem = load_chemistry(chemistry)
    prot = ProtectionParameters()
    params = pack_configuration(
        GaugeParameters.for_pack(capacity, cells), prot, scenario, (chem.v_min, chem.v_nominal, chem.v_max)
    )
    vpack = VirtualPack(config, clock=SimClock(None), gauge_params=params, protection_params=prot)
    identity = GaugeIdentity(
        manufacturer_name=manufacturer.encode(),
        device_name=(device_name or f"EMU-{cells}S{capacity}").encode(),
        device_chemistry=b"LiP" if chemistry == "lco" else b"LION",
        serial_number=serial,
        manufacture_date=encode_date(made or TODAY - datetime.timedelta(days=2)),
    )
    gauge = EmulatedGauge(vpack, PROFILES[profile], identity=identity)
    gauge.security = SECURITY_MODES[security]
    return Pack(EmulatedTransport(EmulatedBus([gauge])), gauge)


# --- result records and the CLI ---------------------------------------------------------------

T0 = datetime.datetime(2026, 11, 21, 8, 0, tzinfo=datetime.UTC)


def make_result(
    run_id: str,
    *,
    serial: int | None = 100,
    outcome: Outcome = Outcome.PASS,
    station: str = "EOL-1",
    lot: str = "lot-a",
    started: datetime.datetime = T0,
    spread: int = 8,
) -> RunResult:
    status = StepStatus.PASS if outcome is Outcome.PASS else StepStatus.FAIL
    verdict = Verdict.PASS if outcome is Outcome.PASS else Verdict.FAIL
    measurements = (
        Measurement("voltage", 15000, Verdict.PASS, "mV", 12000.0, 16800.0),
        Measurement("cell_spread", spread, verdict, "mV", None, 20.0),
        Measurement("temperature", 25.05, Verdict.PASS, "°C", 15.0, 35.0),
        Measurement("device_name", "EMU-4S5000", Verdict.PASS, expected="= 'EMU-4S5000'"),
        Measurement("manufacture_date", None, Verdict.PASS, expected="within 30 days", detail="not set"),
    )
    steps = (
        StepResult("voltages", "measure", "Voltages", status, measurements, started, 0.0125, ""),
        StepResult("sealed", "security", "Sealed", StepStatus.SKIPPED, (), None, 0.0, "not run: step 'voltages' failed")
        if outcome is not Outcome.PASS
        else StepResult("sealed", "security", "Sealed", StepStatus.PASS, (), started, 0.001, ""),
    )
    return RunResult(
        run_id=run_id,
        plan_name="drone-4s-5000",
        plan_title="Drone",
        plan_hash="ab" * 32,
        plan_file="/plans/drone.toml",
        product="EMU-4S5000",
        station=station,
        operator="ana",
        lot=lot,
        serial=serial,
        device_name="EMU-4S5000",
        started_at=started,
        finished_at=started + datetime.timedelta(seconds=2),
        outcome=outcome,
        steps=steps,
        message="" if outcome is Outcome.PASS else "voltages: cell_spread",
        bus_time_s=0.05,
        transactions=40,
    )


EOL_MODULE = "smartbatt.cli.commands.eol"


def run_cli(argv: Sequence[str], *, pack: Pack | None = None, **pack_kw: Any) -> int:
    """Run ``smartbatt ARGV`` with the station's adapter connected to an emulated pack."""
    pack_kw.setdefault("made", datetime.date.today() - datetime.timedelta(days=1))
    pack = pack or make_pack(**pack_kw)
    modules = cli_main.COMMAND_MODULES
    if EOL_MODULE not in modules:  # until the lead registers the module in main.py
        modules = (*modules, EOL_MODULE)
    with (
        mock.patch.object(cli_main, "COMMAND_MODULES", modules),
        mock.patch("smartbatt.cli.context.open_transport", lambda uri: pack.transport),
    ):
        try:
            return cli_main.run(list(argv))
        finally:
            pack.close()
