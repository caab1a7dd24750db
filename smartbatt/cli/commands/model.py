"""Cell-model and independent-estimator subcommands: ``model fit``, ``model show``, ``estimate``.

``smartbatt model fit LOG.csv -o cell.json`` fits an equivalent-circuit cell model to a
characterization log (a slow ≤ C/10 full discharge plus HPPC pulses; see
:mod:`smartbatt.monitor.fitting`). ``smartbatt estimate --model cell.json LOG.csv -o out.csv``
replays any log through the independent SOC / capacity / resistance estimator
(:mod:`smartbatt.monitor.estimator`) and writes ``time_s, soc, soc_sigma, capacity_ah, r0_ohm``
per row (plus ``gauge_soc, soc_minus_gauge`` when the log holds the gauge's ``rsoc_pct``, and the
state of power with ``--sop``).

Log columns: ``time_s, voltage_V, current_A, temperature_C`` (current positive = charging, as in
SBS). Bad rows (NaN, non-numbers, time going backwards, gaps) stop the command with their line
numbers; ``--skip-bad`` drops them instead and lists them on stderr.

None of these commands opens a device. Exit codes: 0 ok, 2 usage error (bad option value,
missing input file), 3 unusable file (bad log, bad model, no slow discharge or pulses in a
characterization log, output not writable) — always one line, never a traceback.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import numpy.typing as npt
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from smartbatt.cli.context import CliContext, UsageError
from smartbatt.cli.main import EXIT_OK
from smartbatt.monitor.cellmodel import CellModel
from smartbatt.monitor.estimator import (
    EstimateSeries,
    EstimatorConfig,
    SocEstimator,
    compare_with_gauge,
    run_log,
)
from smartbatt.monitor.fitting import FitOptions, FitReport, fit_model
from smartbatt.monitor.logfile import DEFAULT_MAX_GAP_S, GAUGE_FCC, GAUGE_RSOC, LogData, read_log, write_csv
from smartbatt.monitor.power import HORIZONS_S, state_of_power_now

#: logs longer than this many rows get a progress bar (on a terminal).
PROGRESS_ROWS = 20000


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text} must be a positive number")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be at least 1")
    return value


def _soc(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        hint = f" (for {value:g} % write {value / 100:g})" if 1.0 < value <= 100.0 else ""
        raise argparse.ArgumentTypeError(f"SOC {text} is outside 0..1{hint}")
    return value


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``model`` (``fit``, ``show``) and ``estimate`` to the ``smartbatt`` parser."""
    model = sub.add_parser("model", help="fit or show an equivalent-circuit cell model (no device needed)")
    actions = model.add_subparsers(dest="model_action", metavar="ACTION", parser_class=type(model))
    model.set_defaults(handler=_need_action)

    fit = actions.add_parser("fit", help="fit a cell model to a characterization log (C/20 discharge + HPPC)")
    fit.add_argument("log", metavar="LOG.csv", help="time_s, voltage_V, current_A[, temperature_C] of one cell")
    fit.add_argument("-o", "--output", required=True, metavar="cell.json", help="model file to write")
    fit.add_argument("--name", default="", help="model name stored in the file")
    fit.add_argument("--chemistry", default="", help="chemistry label stored in the file")
    fit.add_argument("--v-min", type=_positive, help="cell lower voltage limit, V (default: end of the slow discharge)")
    fit.add_argument("--v-max", type=_positive, help="cell upper voltage limit, V (default: highest logged voltage)")
    fit.add_argument(
        "--i-max-discharge", type=_positive, help="cell discharge current limit, A (default: largest logged)"
    )
    fit.add_argument("--i-max-charge", type=_positive, help="cell charge current limit, A (default: largest logged)")
    _log_options(fit)
    fit.set_defaults(handler=cmd_fit)

    show = actions.add_parser("show", help="summarise a cell model file")
    show.add_argument("model", metavar="cell.json")
    show.set_defaults(handler=cmd_show)

    est = sub.add_parser("estimate", help="replay a log through the independent SOC/capacity estimator")
    est.add_argument("log", metavar="LOG.csv", help="time_s, voltage_V, current_A[, temperature_C] (+ = charging)")
    est.add_argument("--model", required=True, metavar="cell.json", help="cell model (from `model fit`)")
    est.add_argument("-o", "--output", required=True, metavar="out.csv", help="estimate per row")
    est.add_argument("--series", type=_count, default=1, help="cells in series: pack voltage / N (default 1)")
    est.add_argument("--parallel", type=_count, default=1, help="cells in parallel: capacity × N (default 1)")
    est.add_argument(
        "--capacity-ah", type=_positive, help="pack capacity to start from, Ah (default: model × parallel)"
    )
    est.add_argument(
        "--initial-soc", type=_soc, metavar="S", help="starting SOC 0..1 (default: found from the first samples)"
    )
    est.add_argument(
        "--sop",
        action="store_true",
        help=f"add peak power/current columns for {', '.join(f'{h:g}' for h in HORIZONS_S)} s",
    )
    _log_options(est)
    est.set_defaults(handler=cmd_estimate)


def _log_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--skip-bad", action="store_true", help="drop bad rows (listed on stderr) instead of failing")
    parser.add_argument(
        "--max-gap", type=_positive, default=DEFAULT_MAX_GAP_S, metavar="S",
        help=f"longest step between samples before it counts as a gap, s (default {DEFAULT_MAX_GAP_S:g})",
    )  # fmt: skip


def _need_action(args: argparse.Namespace, ctx: CliContext) -> int:
    raise UsageError("model needs an action: fit or show")


def _input(path: str) -> str:
    if not Path(path).is_file():
        raise UsageError(f"{path}: no such file")
    return path


def _read(args: argparse.Namespace, ctx: CliContext) -> LogData:
    log = read_log(_input(args.log), skip_bad=args.skip_bad, max_gap_s=args.max_gap)
    if log.bad_rows:
        ctx.err.print(f"smartbatt: warning: {log.file}: {len(log.bad_rows)} bad row(s) skipped or bridged:")
        for row in log.bad_rows[:20]:
            ctx.err.print(f"  {row}", markup=False)
        if len(log.bad_rows) > 20:
            ctx.err.print(f"  … and {len(log.bad_rows) - 20} more")
    return log


# --- model fit / show -------------------------------------------------------------------------------


def cmd_fit(args: argparse.Namespace, ctx: CliContext) -> int:
    log = _read(args, ctx)
    options = FitOptions(
        v_min_v=args.v_min, v_max_v=args.v_max, i_discharge_max_a=args.i_max_discharge,
        i_charge_max_a=args.i_max_charge, name=args.name, chemistry=args.chemistry,
    )  # fmt: skip
    report = fit_model(log, options)
    report.model.save(args.output)
    _print_fit(ctx, report, args.output)
    return EXIT_OK


def _print_fit(ctx: CliContext, report: FitReport, output: str) -> None:
    m = report.model
    ctx.console.print(
        f"slow discharge: lines {report.slow_lines[0]}–{report.slow_lines[1]}, {report.slow_current_a:.3g} A "
        f"(C/{1 / report.slow_c_rate:.0f}) → capacity {m.capacity_ah:.4g} Ah"
    )
    ctx.console.print(f"pulses: {len(report.pulses)} in {len(report.groups)} SOC/temperature groups")
    if report.current_offset_a:
        ctx.console.print(f"current offset in the rests: {1000 * report.current_offset_a:+.1f} mA (removed)")
    _model_table(ctx, m)
    ctx.console.print(
        f"fit residual: RMS {report.rms_mv:.1f} mV, max {report.max_mv:.1f} mV over the pulse windows; "
        f"slow discharge RMS {report.slow_rms_mv:.1f} mV"
    )
    for note in report.notes:
        ctx.console.print(f"note: {note}")
    ctx.console.print(f"wrote {output}")


def _model_table(ctx: CliContext, m: CellModel) -> None:
    table = Table(title=m.name or "cell model", show_header=True)
    for column in ("SOC", "OCV V", "R0 mΩ", "R1 mΩ", "τ1 s", "R2 mΩ", "τ2 s"):
        table.add_column(column, justify="right")
    for soc in m.r_soc:
        r1, tau1, r2, tau2 = m.rc(soc)
        table.add_row(
            f"{soc:.2f}", f"{m.ocv(soc):.3f}", f"{1000 * m.r0(soc):.1f}", f"{1000 * r1:.1f}", f"{tau1:.1f}",
            f"{1000 * r2:.1f}", f"{tau2:.0f}",
        )  # fmt: skip
    ctx.console.print(table)
    ctx.console.print(
        f"capacity {m.capacity_ah:.4g} Ah at {m.temperature_ref_c:g} °C; limits {m.v_min_v:.3g}–{m.v_max_v:.3g} V, "
        f"−{m.i_discharge_max_a:.3g}/+{m.i_charge_max_a:.3g} A; E/R R0 {m.r0_activation_k:.0f} K, "
        f"RC {m.rc_activation_k:.0f} K; R0 current coefficient {m.r0_current_coeff:.3f} per C"
    )


def cmd_show(args: argparse.Namespace, ctx: CliContext) -> int:
    model = CellModel.load(_input(args.model))
    _model_table(ctx, model)
    if model.fit_rms_mv is not None:
        ctx.console.print(f"fit residual: RMS {model.fit_rms_mv:.1f} mV, max {model.fit_max_mv or 0:.1f} mV")
    if model.source:
        ctx.console.print(f"source: {model.source}", markup=False)
    return EXIT_OK


# --- estimate ---------------------------------------------------------------------------------------


@contextmanager
def _progress(ctx: CliContext, rows: int) -> Iterator[Callable[[int, int], None] | None]:
    if rows < PROGRESS_ROWS or not ctx.err.is_terminal:
        yield None
        return
    with Progress(
        TextColumn("estimating"), BarColumn(), TextColumn("{task.completed}/{task.total} rows"),
        TimeRemainingColumn(), console=ctx.err, transient=True,
    ) as bar:  # fmt: skip
        task = bar.add_task("estimate", total=rows)
        yield lambda done, total: bar.update(task, completed=done)


def cmd_estimate(args: argparse.Namespace, ctx: CliContext) -> int:
    model = CellModel.load(_input(args.model))
    log = _read(args, ctx)
    config = EstimatorConfig(
        series=args.series, parallel=args.parallel, capacity_ah=args.capacity_ah, initial_soc=args.initial_soc,
        max_gap_s=args.max_gap,
    )  # fmt: skip
    sop_rows: list[list[float]] = []

    def observe(est: SocEstimator, k: int) -> None:
        temp = float(log.temperature_c[k])
        limits = state_of_power_now(est, None if math.isnan(temp) else temp)
        sop_rows.append([x for lim in limits for x in (lim.discharge_power_w, lim.discharge_current_a,
                                                         lim.charge_power_w, lim.charge_current_a)])  # fmt: skip

    with _progress(ctx, len(log)) as progress:
        series = run_log(model, log, config, progress, observe if args.sop else None)
    columns: dict[str, npt.NDArray[np.float64]] = dict(series.columns())
    rsoc = log.gauge.get(GAUGE_RSOC)
    if rsoc is not None:
        columns["gauge_soc"] = rsoc / 100.0
        columns["soc_minus_gauge"] = series.soc - rsoc / 100.0
    if args.sop:
        table = np.asarray(sop_rows)
        for h_index, h in enumerate(HORIZONS_S):
            for k, name in enumerate(("p_discharge", "i_discharge", "p_charge", "i_charge")):
                unit = "w" if name.startswith("p") else "a"
                columns[f"{name}_{h:g}s_{unit}"] = table[:, 4 * h_index + k]
    write_csv(args.output, columns)
    _print_summary(ctx, log, series, config, model)
    ctx.console.print(f"wrote {args.output} ({len(log)} rows)")
    return EXIT_OK


def _print_summary(
    ctx: CliContext, log: LogData, series: EstimateSeries, config: EstimatorConfig, model: CellModel
) -> None:
    design = config.design_capacity_ah or model.capacity_ah * config.parallel
    cap = float(series.capacity_ah[-1])
    ctx.console.print(
        f"end: SOC {100 * series.soc[-1]:.1f} % ± {100 * series.soc_sigma[-1]:.1f}, capacity {cap:.3f} Ah "
        f"({100 * cap / design:.1f} % of {design:.3g} Ah), R0 {1000 * series.r0_ohm[-1]:.1f} mΩ "
        f"(× {series.r0_growth[-1]:.2f} of the model), current offset {1000 * series.current_offset_a[-1]:+.0f} mA"
    )
    for q, sigma in series.capacity_readings:
        ctx.console.print(f"capacity from a pair of rests: {q:.3f} ± {sigma:.3f} Ah")
    div = compare_with_gauge(series, log.gauge.get(GAUGE_RSOC), log.gauge.get(GAUGE_FCC))
    if div.soc_rms_points is not None and div.soc_max_points is not None and div.soc_max_at_s is not None:
        ctx.console.print(
            f"vs gauge RelativeStateOfCharge: RMS {div.soc_rms_points:.1f} points, largest {div.soc_max_points:+.1f} "
            f"points at t = {div.soc_max_at_s:.0f} s"
        )
    if div.capacity_diff_ah is not None and div.capacity_diff_pct is not None:
        ctx.console.print(
            f"vs gauge FullChargeCapacity: {div.capacity_diff_ah:+.3f} Ah ({div.capacity_diff_pct:+.1f} %)"
        )
