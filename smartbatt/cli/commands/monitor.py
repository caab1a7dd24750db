"""``smartbatt monitor`` (live terminal view) and ``smartbatt log`` (record to a database).

Both run the library's :class:`~smartbatt.monitor.poller.Poller` on its I/O thread; this module
only renders and records. The terminal view redraws in place with rich's Live display.
"""

from __future__ import annotations

import argparse
import math
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from rich.console import Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from smartbatt.cli.context import CliContext, UsageError
from smartbatt.errors import ProfileError, SmartBattError
from smartbatt.gauge import flags as flagcodec
from smartbatt.monitor.alarms import AlarmEngine, load_limits
from smartbatt.monitor.cellmodel import CellModel
from smartbatt.monitor.live import LiveEstimator, estimator_for
from smartbatt.monitor.poller import LinkState, Poller, PollerStatus
from smartbatt.monitor.sample import Event, Sample, SampleBus, Severity
from smartbatt.monitor.store import PackInfo, Recorder, Store
from smartbatt.profiles.loader import load_profile
from smartbatt.sbs import codecs

_SEVERITY_STYLE = {
    Severity.INFO: "cyan",
    Severity.WARNING: "yellow",
    Severity.ALARM: "red",
    Severity.CRITICAL: "bold red",
}


def register(sub: Any) -> None:
    mon = sub.add_parser("monitor", help="live terminal view: pack, cells, flags, alarms")
    _poll_options(mon)
    mon.add_argument("--limits", default="default", help="alarm limits: a shipped name or a TOML file")
    mon.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (0 = until Ctrl-C)")
    mon.add_argument("--refresh", type=float, default=2.0, help="screen redraws per second (default 2)")
    mon.add_argument(
        "--model", help="cell model for our independent SOC estimate (smartbatt model fit); default: generic"
    )
    mon.set_defaults(handler=run_monitor)

    log = sub.add_parser("log", help="record samples and events to a SQLite database")
    _poll_options(log)
    log.add_argument("--db", required=True, help="recording database (created if absent)")
    log.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (0 = until Ctrl-C)")
    log.add_argument("--limits", default="default", help="alarm limits recorded as events")
    log.set_defaults(handler=run_log)


def _poll_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", help="chip profile (default: detect from DeviceName, no MAC writes)")
    parser.add_argument("--rate", type=float, default=2.0, help="fast-group polling rate, Hz (max 4 unless --fast)")
    parser.add_argument("--fast", action="store_true", help="allow polling faster than the gauge updates")


def _poller(args: argparse.Namespace, ctx: CliContext, bus: SampleBus) -> Poller:
    if args.rate <= 0:
        raise UsageError("--rate must be positive")
    if args.profile:
        try:
            load_profile(args.profile)  # a bad name is a usage error before anything starts
        except ProfileError as exc:
            raise UsageError(str(exc)) from None
    return Poller(
        ctx.device,
        bus,
        address=ctx.address,
        pec=ctx.pec,
        profile=args.profile,
        fast_hz=args.rate,
        allow_fast=args.fast,
    )


class _View:
    """Latest state for the renderer; written by bus threads, read by the render loop.

    It also runs our independent estimator on each sample (on the bus thread, never the render
    loop), built once the pack's identity is known.
    """

    def __init__(self, poller_status: Callable[[], PollerStatus], cell_model: CellModel | None = None) -> None:
        self.lock = threading.Lock()
        self.sample: Sample | None = None
        self.events: list[Event] = []
        self.estimate: Mapping[str, float] = {}
        self.estimate_note = "estimator waiting for the pack's identity"
        self._status = poller_status
        self._cell_model = cell_model
        self._estimator: LiveEstimator | None = None

    def _step_estimator(self, sample: Sample) -> Mapping[str, float]:
        if self._estimator is None:
            ident = self._status().identity
            if ident is None:
                return {}
            try:
                self._estimator = estimator_for(sample, ident.chemistry, ident.design_capacity, self._cell_model)
            except SmartBattError as exc:
                self.estimate_note = f"estimator not started: {exc}"
                return {}
        status = self._estimator.status()
        self.estimate_note = status.text
        return self._estimator.step(sample)

    def take(self, item: object) -> None:
        estimate = self._step_estimator(item) if isinstance(item, Sample) else None
        with self.lock:
            if isinstance(item, Sample):
                self.sample = item
                if estimate:
                    self.estimate = estimate
            elif isinstance(item, Event):
                self.events = [e for e in self.events if e.id != item.id or e.source != item.source][-50:]
                self.events.append(item)


def _fmt(value: float | None, unit: str, digits: int = 2) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:.{digits}f} {unit}"


def _pack_table(sample: Sample, estimate: Mapping[str, float]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="dim")
    table.add_column(justify="right")
    table.add_column(style="dim")
    table.add_column(justify="right")
    v, i = sample.get("Voltage"), sample.get("Current")
    power = v * i if v is not None and i is not None else None
    rows = [
        ("Voltage", _fmt(v, "V", 3), "Gauge SOC", _fmt(sample.get("RelativeStateOfCharge"), "%", 0)),
        ("Current", _fmt(i, "A", 3), "Remaining", _fmt(sample.get("RemainingCapacity"), "Ah", 3)),
        ("Power", _fmt(power, "W", 1), "Full charge", _fmt(sample.get("FullChargeCapacity"), "Ah", 3)),
        (
            "Temperature",
            _fmt(sample.get("Temperature"), "°C", 1),
            "Time to empty",
            _fmt(sample.get("AverageTimeToEmpty"), "min", 0),
        ),
        (
            "Avg current",
            _fmt(sample.get("AverageCurrent"), "A", 3),
            "Time to full",
            _fmt(sample.get("AverageTimeToFull"), "min", 0),
        ),
        (
            "Cycle count",
            _fmt(sample.get("CycleCount"), "", 0),
            "Charge request",
            f"{_fmt(sample.get('ChargingCurrent'), 'A', 2)} / {_fmt(sample.get('ChargingVoltage'), 'V', 2)}",
        ),
        ("Our SOC", _our_soc(estimate), "Peak power 10 s", _fmt(estimate.get("est_sop_discharge_10s_w"), "W", 0)),
        (
            "Our SOH",
            _fmt(estimate.get("est_soh"), "%", 1),
            "Our capacity",
            _fmt(estimate.get("est_capacity_ah"), "Ah", 3),
        ),
    ]
    for row in rows:
        table.add_row(*row)
    return table


def _our_soc(estimate: Mapping[str, float]) -> str:
    soc, sigma = estimate.get("est_soc"), estimate.get("est_soc_sigma")
    if soc is None:
        return "—"
    return f"{soc:.1f} ± {sigma:.1f} %" if sigma is not None else f"{soc:.1f} %"


def _cells_table(sample: Sample) -> Table:
    cells = sample.cells()
    table = Table(box=None, padding=(0, 1), show_header=False)
    if not cells:
        table.add_row(Text("no cell voltages (generic SBS pack, or name a --profile)", style="dim"))
        return table
    low, high = min(cells), max(cells)
    for n, volts in enumerate(cells, start=1):
        width = max(0, min(30, round((volts - 3.0) / 1.2 * 30)))
        style = "yellow" if volts in (low, high) and high - low > 0.03 else "green"
        table.add_row(f"Cell {n}", f"{volts:.3f} V", Text("█" * width, style=style))
    table.add_row("Spread", f"{(high - low) * 1000:.0f} mV", "")
    return table


def _flags_text(sample: Sample, profile_name: str) -> Text:
    text = Text()
    status = sample.status.get("BatteryStatus")
    if status is not None:
        decoded = codecs.decode_bits("battery_status", status)
        text.append("BatteryStatus: ", style="dim")
        text.append(" ".join(f.short or f.name for f in decoded.flags) or "—")
        text.append("\n")
    try:
        profile = load_profile(profile_name)
    except SmartBattError:
        return text
    for name, raw in sample.status.items():
        bitfield = profile.bitfields.get(name)
        if bitfield is None or name == "BatteryStatus":
            continue
        decoded_reg = flagcodec.decode(bitfield, raw)
        set_flags = [f.name for f in decoded_reg.active]
        text.append(f"{name}: ", style="dim")
        alarm = name in ("SafetyStatus", "PFStatus", "PFAlert", "SafetyAlert") and set_flags
        text.append(" ".join(set_flags) or "—", style="bold red" if alarm else "")
        text.append("\n")
    return text


def _events_table(events: list[Event]) -> Table:
    table = Table(box=None, padding=(0, 1), show_header=False)
    standing = [e for e in events if e.standing][-8:]
    if not standing:
        table.add_row(Text("no active alarms", style="green"))
    for e in standing:
        when = time.strftime("%H:%M:%S", time.localtime(e.time))
        table.add_row(when, Text(e.severity.name, style=_SEVERITY_STYLE[e.severity]), e.message)
    return table


def render(view: _View, status: PollerStatus) -> RenderableType:
    """One frame of the terminal view."""
    with view.lock:
        sample, events, estimate, note = view.sample, list(view.events), view.estimate, view.estimate_note
    ident = status.identity
    title = f"{ident.manufacturer_name} {ident.device_name} #{ident.serial_number}" if ident else status.device
    link_style = {LinkState.CONNECTED: "green", LinkState.LOST: "bold red"}.get(status.link, "yellow")
    header = Text.assemble(
        (title, "bold"),
        "  ",
        (status.link.value.upper(), link_style),
        f"  {status.samples} samples, {status.missing} missing  bus {status.bus_load:.0%}",
    )
    if status.last_error and status.link is not LinkState.CONNECTED:
        header.append(f"\n{status.last_error}", style="red")
    if sample is None:
        return Panel(Group(header, Text("waiting for the first sample…", style="dim")), title="smartbatt monitor")
    profile = ident.profile if ident else "generic-sbs"
    body = Group(
        header,
        Panel(_pack_table(sample, estimate), title="Pack", subtitle=note, subtitle_align="left", title_align="left"),
        Panel(_cells_table(sample), title="Cells", title_align="left"),
        Panel(_flags_text(sample, profile), title="Flags", title_align="left"),
        Panel(_events_table(events), title="Alarms", title_align="left"),
    )
    return Panel(body, title="smartbatt monitor", subtitle="Ctrl-C to quit")


def _run_for(duration: float, tick: float, each: Any) -> None:
    deadline = time.monotonic() + duration if duration > 0 else math.inf
    while time.monotonic() < deadline:
        each()
        time.sleep(min(tick, max(0.0, deadline - time.monotonic())))


def run_monitor(args: argparse.Namespace, ctx: CliContext) -> int:
    if args.refresh <= 0:
        raise UsageError("--refresh must be positive")
    cell_model = CellModel.load(args.model) if args.model else None
    with SampleBus() as bus:
        engine = AlarmEngine(load_limits(args.limits))
        engine.attach(bus)
        poller = _poller(args, ctx, bus)
        view = _View(lambda: poller.status, cell_model)
        bus.subscribe(view.take, name="terminal view", accept=(Sample, Event))
        poller.start()
        try:
            with Live(render(view, poller.status), console=ctx.console, refresh_per_second=args.refresh) as live:
                _run_for(args.duration, 1.0 / args.refresh, lambda: live.update(render(view, poller.status)))
        except KeyboardInterrupt:
            pass
        finally:
            poller.stop()
    return 0


def run_log(args: argparse.Namespace, ctx: CliContext) -> int:
    with SampleBus() as bus:
        poller = _poller(args, ctx, bus)
        poller.start()
        try:
            identity = _wait_identity(poller, timeout=10.0)
            store = Store(args.db)
            try:
                pack_id = store.add_pack(
                    PackInfo(
                        manufacturer=identity.manufacturer_name,
                        device_name=identity.device_name,
                        serial=str(identity.serial_number),
                        manufacture_date=identity.manufacture_date.isoformat() if identity.manufacture_date else "",
                        chemistry=identity.chemistry,
                        design_capacity_ah=identity.design_capacity,
                        design_voltage_v=identity.design_voltage,
                        cells=identity.cells or None,
                        pack_type=args.limits,
                    )
                )
                session = store.start_session(pack_id, source=ctx.device)
            finally:
                store.close()
            recorder = Recorder(args.db, session)
            recorder.attach(bus)
            AlarmEngine(load_limits(args.limits)).attach(bus)
            ctx.err.print(f"recording session {session} of pack {identity.serial_number} to {args.db}")
            try:
                _progress(args.duration, recorder, poller, ctx)
            except KeyboardInterrupt:
                pass
            finally:
                poller.stop()
                bus.wait_idle(5.0)
                recorder.close(end_session=True)
            ctx.console.print(f"recorded {recorder.samples_written} samples, {recorder.events_written} events")
        finally:
            poller.stop()
    return 0


def _wait_identity(poller: Poller, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = poller.status
        if status.identity is not None and status.link is LinkState.CONNECTED:
            return status.identity
        time.sleep(0.05)
    raise SmartBattError(f"no pack answered within {timeout:.0f} s: {poller.status.last_error or 'no reply'}")


def _progress(duration: float, recorder: Recorder, poller: Poller, ctx: CliContext) -> None:
    columns = [TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=ctx.err, transient=True) as progress:
        task = progress.add_task("recording", total=duration or None)
        start = time.monotonic()

        def each() -> None:
            st = poller.status
            progress.update(
                task,
                completed=time.monotonic() - start,
                description=f"recording: {recorder.samples_written} samples, link {st.link.value}",
            )

        _run_for(duration, 0.25, each)
