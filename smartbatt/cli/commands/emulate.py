"""``smartbatt emulate``: run an emulated smart battery — as a Bus Pirate on a pty, or as a live status line.

``smartbatt emulate --pty`` opens a pseudo-terminal that speaks the Bus Pirate binary I2C protocol
with the emulated pack on its I2C pins, prints the pty path and runs until Ctrl-C, so the
``buspirate:`` backend or any serial tool talks to it as to real hardware::

    smartbatt emulate --pty --scenario drone --speed 10
    smartbatt --device buspirate:/dev/pts/7 info

Without ``--pty`` it prints the state of the emulated pack once per interval (a demo, or a quick
look at a scenario); ``--speed 0`` runs as fast as possible. Ctrl-C ends either cleanly (exit 0).
"""

from __future__ import annotations

import argparse
import threading
import time
from typing import Any

from rich.live import Live
from rich.text import Text

from smartbatt.cli.context import CliContext
from smartbatt.emulator.device import PROFILES, EmulatedGauge
from smartbatt.emulator.factory import SECURITY_MODES, EmulatorOptions, build_physics
from smartbatt.emulator.faults import BusFaults
from smartbatt.emulator.gauge import FC, FD, OTA, RCA, RTA, TCA, TDA, ZERO_C_DECI_K
from smartbatt.emulator.load import SCENARIOS
from smartbatt.errors import SmartBattError

#: simulated seconds per status line when running as fast as possible (--speed 0).
FAST_STEP_S = 10.0

_FLAG_NAMES = ((TCA, "TCA"), (TDA, "TDA"), (OTA, "OTA"), (RCA, "RCA"), (RTA, "RTA"), (FC, "FC"), (FD, "FD"))


def _wait(stop: threading.Event, seconds: float) -> bool:
    """Wait up to ``seconds`` host seconds for ``stop``; Ctrl-C arrives here as KeyboardInterrupt."""
    return stop.wait(seconds)


class EmulateUsageError(SmartBattError):
    """An ``emulate`` option is invalid (reported as a usage error)."""


def register(sub: Any) -> None:
    """Add the ``emulate`` subcommand."""
    p: argparse.ArgumentParser = sub.add_parser(
        "emulate",
        help="run an emulated smart battery (Bus Pirate on a pty, or a live status line)",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    p.add_argument("--pty", action="store_true", help="serve the pack as a Bus Pirate on a pseudo-terminal")
    p.add_argument("--profile", default="bq40z50", choices=sorted(PROFILES), help="emulated chip (default bq40z50)")
    p.add_argument("--scenario", default="idle", choices=SCENARIOS, help="load scenario (default idle)")
    p.add_argument("--speed", type=float, default=1.0, help="1 = real time, N = N× real time, 0 = as fast as possible")
    p.add_argument("--cells", type=int, default=4, help="series cells (default 4)")
    p.add_argument("--capacity", type=int, default=3000, help="design capacity, mAh (default 3000)")
    p.add_argument("--chemistry", default="nmc", choices=("nmc", "lco", "lfp"))
    p.add_argument("--seed", type=int, default=0, help="seed of the pack spread and the noise (default 0)")
    p.add_argument("--soc", type=float, default=0.8, help="initial state of charge 0..1 (default 0.8)")
    p.add_argument("--ambient", type=float, default=25.0, help="ambient temperature, °C (default 25)")
    p.add_argument("--charger", action="store_true", help="also attach a Smart Battery Charger at 0x09")
    p.add_argument("--security", default="sealed", choices=sorted(SECURITY_MODES), help="security mode at start")
    faults = p.add_argument_group("pack faults")
    faults.add_argument("--thermistor", choices=("open", "short"), help="TS1 thermistor open or shorted")
    faults.add_argument("--short-cell", type=int, default=0, metavar="N", help="internal short on cell N (1 = bottom)")
    faults.add_argument("--runaway-cell", type=int, default=0, metavar="N", help="thermal-runaway precursor on cell N")
    faults.add_argument("--offset-drift", type=float, default=0.0, metavar="MA_PER_S", help="current-offset drift")
    faults.add_argument("--reset-at", type=float, default=0.0, metavar="S", help="reset the gauge at simulated time S")
    wire = p.add_argument_group("wire faults (with --pty)")
    wire.add_argument("--nack-every", type=int, default=0, metavar="N", help="NACK every N-th transaction")
    wire.add_argument("--nack-rate", type=float, default=0.0, metavar="P", help="NACK with probability P")
    wire.add_argument("--corrupt-pec-every", type=int, default=0, metavar="N", help="corrupt every N-th PEC")
    wire.add_argument("--stretch-ms", type=float, default=0.0, metavar="MS", help="clock stretch per transaction")
    wire.add_argument("--stuck", action="store_true", help="hold the bus stuck")
    p.add_argument("--duration", type=float, default=0.0, metavar="S",
                   help="stop after S seconds (simulated without --pty, host seconds with --pty; 0 = until Ctrl-C)")
    p.add_argument("--interval", type=float, default=1.0, metavar="S", help="status line period, host s (default 1)")
    p.set_defaults(handler=run)


def _options(args: argparse.Namespace) -> EmulatorOptions:
    try:
        return EmulatorOptions(
            cells=args.cells,
            capacity=args.capacity,
            chemistry=args.chemistry,
            scenario=args.scenario,
            seed=args.seed,
            speed=args.speed,
            soc=args.soc,
            ambient=args.ambient,
            charger=args.charger,
            security=args.security,
            thermistor=args.thermistor or "",
            short_cell=args.short_cell,
            runaway_cell=args.runaway_cell,
            offset_drift=args.offset_drift,
            reset_at=args.reset_at,
        )
    except ValueError as exc:
        raise EmulateUsageError(str(exc)) from None


def _wire_faults(args: argparse.Namespace) -> BusFaults:
    faults = BusFaults(
        nack_every=args.nack_every,
        nack_rate=args.nack_rate,
        corrupt_pec_every=args.corrupt_pec_every,
        stretch_s=args.stretch_ms / 1e3,
        stuck=args.stuck,
        seed=args.seed,
    )
    try:
        faults.validate()
    except ValueError as exc:
        raise EmulateUsageError(str(exc)) from None
    return faults


def status_line(gauge: EmulatedGauge) -> str:
    """One line describing the emulated pack now (what the gauge reports, plus FET state)."""
    vp = gauge.vpack
    g = vp.gauge
    m = g.measurement
    status = gauge.battery_status()
    flags = " ".join(name for bit, name in _FLAG_NAMES if status & bit) or "-"
    fets = ("CHG " if not vp.protections.charge_disabled else "chg ") + (
        "DSG" if not vp.protections.discharge_disabled else "dsg")
    t = int(vp.time_s)
    return (
        f"t={t // 3600:02d}:{t % 3600 // 60:02d}:{t % 60:02d} {m.voltage_mv / 1000:7.3f} V {m.current_ma:+6d} mA "
        f"{min(100, round(g.rsoc)):3d} % {(m.temperature_deci_k - ZERO_C_DECI_K) / 10:5.1f} °C "
        f"cells {'/'.join(str(v) for v in m.cell_mv)} mV  {fets}  {flags}"
    )


def run(args: argparse.Namespace, ctx: CliContext) -> int:
    """Handler of ``smartbatt emulate``."""
    try:
        opts = _options(args)
        wire = _wire_faults(args)
        if args.interval <= 0 or args.duration < 0:
            raise EmulateUsageError("--interval must be positive and --duration not negative")
        if args.pty and args.speed <= 0:
            raise EmulateUsageError("--pty needs a real-time clock: give --speed > 0")
    except EmulateUsageError as exc:
        ctx.err.print(f"smartbatt: usage error: {exc}")
        return 2
    bus, gauge = build_physics(args.profile, opts)
    try:
        if args.pty:
            return _serve_pty(bus, gauge, wire, args, ctx)
        return _show_status(gauge, args, ctx)
    except KeyboardInterrupt:
        ctx.err.print("smartbatt: emulator stopped")
        return 0


def _serve_pty(bus: Any, gauge: EmulatedGauge, wire: BusFaults, args: argparse.Namespace, ctx: CliContext) -> int:
    from smartbatt.emulator.buspirate_pty import open_pty

    session = open_pty(bus, latency_s=0.0, faults=wire)
    try:
        ctx.console.print(session.path)
        ctx.err.print(f"emulated {args.profile} on {session.path} (Bus Pirate binary I2C); Ctrl-C to stop")
        stop = threading.Event()
        started = time.monotonic()
        while not _wait(stop, args.interval):
            if args.duration and time.monotonic() - started >= args.duration:
                break
    finally:
        session.close()
    return 0


def _show_status(gauge: EmulatedGauge, args: argparse.Namespace, ctx: CliContext) -> int:
    vp = gauge.vpack
    fast = args.speed <= 0
    stop = threading.Event()
    live = Live(Text(status_line(gauge)), console=ctx.console, auto_refresh=False) if ctx.console.is_terminal else None
    if live is not None:
        live.start()
    try:
        while True:
            if fast:
                vp.advance(min(FAST_STEP_S, args.duration - vp.time_s) if args.duration else FAST_STEP_S)
            elif _wait(stop, args.interval):
                break
            vp.sync()
            line = status_line(gauge)
            if live is not None:
                live.update(Text(line), refresh=True)
            else:
                ctx.console.print(line)
            if args.duration and vp.time_s >= args.duration - 1e-9:
                break
    finally:
        if live is not None:
            live.stop()
    return 0
