"""Fit a :class:`~smartbatt.monitor.cellmodel.CellModel` from a characterization log.

The log (format: :mod:`smartbatt.monitor.logfile`; one *cell*; current positive = charging) must
hold, in any order:

1. **A slow full discharge** at ≤ C/10 (C/20 is usual) at near-constant current, from full to
   the lower voltage limit (it must end in the end-of-discharge knee). It gives the capacity and
   the OCV curve: ``OCV = V − R_dc·I`` with the steady-state resistance ``R_dc = R0 + R1 + R2``
   fitted from the pulses (the IR drop at that current), binned to 1 % SOC and made strictly
   increasing by isotonic regression.
2. **HPPC-style current pulses** (≤ 120 s each, ≥ C/5, rest before and after), ideally with the
   usual HPPC SOC steps between them (a constant-current discharge of minutes followed by a long
   rest): the steps' relaxation is what identifies the slow RC pair.

A constant current-sensor offset — the current logged during rests — is measured and removed
first (a gauge reading +10 mA at rest would otherwise shift a C/20 capacity by 4 %).

Activity between rests forms *events* (runs less than 120 s apart); each event's window runs from
30 s before it to the end of the following rest (at most 1 h). Events at the same SOC (within
6 %) and temperature (within 3 K) form a *group* fitted together, with the terminal voltage
modelled as::

    V = c_w + ΔOCV(t) + Σ_j R0_j·I_j(t) + R1·f(t; τ1) + R2·f(t; τ2) + a_w·exp(−t/τ2)

``f(t; τ)`` is the exact response of an RC pair with unit resistance to the logged current,
``R0_j`` one series resistance per constant-current run (so pulses of different size give the
current dependence), ``c_w`` each window's rest voltage and ``a_w`` the slow relaxation still
under way when the window starts. For fixed ``(τ1, τ2)`` this is *linear* in everything else, so
the fitter scans a log grid of time constants and solves one linear least-squares problem per
point (numpy only — no scipy), keeping the best solution with non-negative resistances. Joint
least squares is used for R0 instead of the instantaneous voltage step because at a 1 Hz log
rate the first sample after a step already holds a second of the fast RC response.

The per-pulse R0 values are regressed as ``ln R0 = Σ hat_k(SOC)·β_k + (E/R)·(1/T − 1/Tref) −
k·|I|/Q`` (piecewise-linear SOC table, Arrhenius and current terms), the RC resistances the same
way without the current term. The temperature term is fitted only when the pulses span ≥ 5 K and
the current term only when pulse sizes differ by ≥ 1.5×; otherwise they stay 0 and the
estimator's online R0 adaptation covers the difference. The entropic coefficient is not fitted
(it needs OCV curves at two temperatures). A group whose RMS residual is more than
``BAD_GROUP_FACTOR`` times the median group's (typically the SOC step through the
end-of-discharge knee, which a 2-RC circuit cannot follow) stays in the report but is left out of
the RC tables, with a note: its fitted "slow resistance" is OCV curvature, not polarisation.

Errors: :class:`FitError` (a :class:`~smartbatt.errors.SmartBattError`) when the log has no
usable slow discharge or no pulses, saying what was found instead.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from smartbatt.errors import SmartBattError
from smartbatt.monitor.cellmodel import KELVIN, CellModel
from smartbatt.monitor.logfile import LogData

FloatArray = npt.NDArray[np.float64]

#: a slow discharge is at most this C-rate (C/10 with 10 % tolerance).
SLOW_MAX_C = 0.11
#: samples within this fraction of a run's current belong to the same constant-current step.
CC_TOLERANCE = 0.10
#: rest: |I| below this C-rate.
REST_C = 0.02
#: pulses are at most this long, s, and at least this large, C-rate.
PULSE_MAX_S = 120.0
PULSE_MIN_C = 0.2
#: constant-current runs longer than this are not part of an event (they are SOC moves), s.
STEP_MAX_S = 1800.0
#: runs closer than this (rest between them, s) form one event.
EVENT_JOIN_S = 120.0
#: window before an event and longest rest after it, s.
PRE_S, POST_S = 30.0, 3600.0
#: events this close in SOC and temperature (K) are fitted together.
GROUP_SOC, GROUP_K = 0.06, 3.0
#: a group whose RMS residual exceeds this many times the median group's is left out of the RC tables.
BAD_GROUP_FACTOR = 3.0
TAU1_GRID = np.geomspace(1.0, 100.0, 20)
TAU2_GRID = np.geomspace(60.0, 5000.0, 20)


class FitError(SmartBattError):
    """The characterization log cannot produce a model (no slow discharge, no pulses, …)."""


@dataclass(frozen=True)
class FitOptions:
    """What the log cannot tell: limits and labels. None = taken from the log (documented)."""

    #: lower / upper cell voltage limit, V; default: the slow discharge's end / the log's maximum.
    v_min_v: float | None = None
    v_max_v: float | None = None
    #: cell current limits, A (positive); default: the largest discharge / charge current logged.
    i_discharge_max_a: float | None = None
    i_charge_max_a: float | None = None
    name: str = ""
    chemistry: str = ""


@dataclass(frozen=True)
class PulseFit:
    """One pulse: where it was and the series resistance found for it."""

    line: int
    soc: float
    temperature_c: float
    current_a: float
    r0_ohm: float


@dataclass(frozen=True)
class GroupFit:
    """One group of events (one SOC level and temperature): its RC pairs and residual."""

    line: int
    soc: float
    temperature_c: float
    r1_ohm: float
    tau1_s: float
    r2_ohm: float
    tau2_s: float
    rms_mv: float
    max_mv: float


@dataclass(frozen=True)
class FitReport:
    """The fitted model and how well it explains the log."""

    model: CellModel
    #: first and last line of the slow discharge, its current (A, positive) and C-rate.
    slow_lines: tuple[int, int]
    slow_current_a: float
    slow_c_rate: float
    pulses: tuple[PulseFit, ...]
    groups: tuple[GroupFit, ...]
    #: RMS and largest voltage error of the final model over all event windows, mV.
    rms_mv: float
    max_mv: float
    #: RMS voltage error over the slow discharge (OCV + IR drop), mV.
    slow_rms_mv: float
    #: current-sensor offset found in the rests and removed before fitting, A.
    current_offset_a: float = 0.0
    notes: tuple[str, ...] = ()


# --- segmentation ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Run:
    start: int  # first index
    stop: int  # one past the last index
    current: float  # median current, A


def _cc_runs(current: FloatArray, rest_a: float) -> list[_Run]:
    """Maximal runs of near-constant, same-sign, non-rest current."""
    runs: list[_Run] = []
    n = current.size
    k = 0
    while k < n:
        ref = current[k]
        if abs(ref) < rest_a:
            k += 1
            continue
        j = k + 1
        while j < n and abs(current[j] - ref) <= CC_TOLERANCE * abs(ref) and (current[j] < 0) == (ref < 0):
            j += 1
        runs.append(_Run(k, j, float(np.median(current[k:j]))))
        k = j
    return runs


def _cumulative_ah(t: FloatArray, i: FloatArray) -> FloatArray:
    """Charge since the first sample, Ah (current held over each interval, + = charge)."""
    return np.concatenate([[0.0], np.cumsum(i[1:] * np.diff(t))]) / 3600.0


def _has_knee(t: FloatArray, i: FloatArray, v: FloatArray, ah: float) -> bool:
    """A full discharge ends in the end-of-discharge knee: over its last 5 % of charge the voltage
    falls much faster than across the middle of the curve."""
    done = -_cumulative_ah(t, i) / ah
    at = np.interp([0.3, 0.7, 0.95, 1.0], done, v)
    return bool((at[2] - at[3]) / 0.05 >= 2.0 * max((at[0] - at[1]) / 0.4, 1e-6))


def _find_slow_discharge(log: LogData) -> tuple[_Run, float]:
    t, i, v = log.time_s, log.current_a, log.voltage_v
    full: list[tuple[_Run, float]] = []
    partial: list[tuple[_Run, float]] = []
    # the capacity (and so C/50) is not known yet: split runs only where the current changes
    for run in _cc_runs(i, 1e-4 * max(float(np.max(np.abs(i))), 1e-3)):
        lo = max(run.start - 1, 0)
        if run.current >= 0 or t[run.stop - 1] - t[lo] < 600.0:
            continue
        ah = -float(_cumulative_ah(t[lo : run.stop], i[lo : run.stop])[-1])
        if ah > 0:
            sl = slice(run.start, run.stop)
            (full if _has_knee(t[sl], i[sl], v[sl], ah) else partial).append((run, ah))
    slow = [(run, ah) for run, ah in full if -run.current / ah <= SLOW_MAX_C]
    if slow:
        return max(slow, key=lambda pair: pair[1])
    if full:
        seen = "; ".join(
            f"{-run.current:.3g} A, {ah:.3g} Ah (C/{ah / -run.current:.2g}) at line {log.line[run.start]}"
            for run, ah in full[:3]
        )
        raise FitError(f"{log.file}: no slow (≤ C/10) full discharge for the OCV curve (saw full discharges: {seen})")
    if partial:
        run, ah = max(partial, key=lambda pair: pair[1])
        raise FitError(
            f"{log.file}: no slow (≤ C/10) full discharge for the OCV curve: the longest constant-current "
            f"discharge, lines {log.line[run.start]}–{log.line[run.stop - 1]} ({-run.current:.3g} A, {ah:.3g} Ah), "
            f"ends at {v[run.stop - 1]:.3f} V without the end-of-discharge knee"
        )
    raise FitError(f"{log.file}: no slow (≤ C/10) full discharge for the OCV curve (no discharge of 10 min or more)")


@dataclass(frozen=True)
class _Event:
    runs: tuple[_Run, ...]
    start: int  # window start index
    stop: int  # window stop index (exclusive)

    def pulses(self, t: FloatArray) -> list[_Run]:
        return [r for r in self.runs if t[r.stop - 1] - t[r.start - 1] <= PULSE_MAX_S]


def _find_events(log: LogData, capacity_ah: float, exclude: _Run) -> list[_Event]:
    t, i = log.time_s, log.current_a
    rest_a = REST_C * capacity_ah
    runs: list[_Run] = []
    for run in _cc_runs(i, rest_a):
        if exclude.start <= run.start < exclude.stop or run.start == 0:
            continue
        length = t[run.stop - 1] - t[run.start - 1]
        if length <= STEP_MAX_S and abs(run.current) >= PULSE_MIN_C * capacity_ah:
            runs.append(run)
    groups: list[list[_Run]] = []
    for run in runs:
        if groups:
            last = groups[-1][-1]
            quiet = bool(np.all(np.abs(i[last.stop : run.start]) < rest_a))
            if quiet and t[run.start] - t[last.stop - 1] <= EVENT_JOIN_S:
                groups[-1].append(run)
                continue
        groups.append([run])
    events: list[_Event] = []
    for runs_ in groups:
        first, last = runs_[0], runs_[-1]
        if abs(i[first.start - 1]) >= rest_a or (last.stop < i.size and abs(i[last.stop]) >= rest_a):
            continue  # not bounded by rest (e.g. part of a longer profile)
        start = first.start
        while start > 0 and abs(i[start - 1]) < rest_a and t[first.start] - t[start - 1] <= PRE_S:
            start -= 1
        stop = last.stop
        while stop < i.size and abs(i[stop]) < rest_a and t[stop] - t[last.stop - 1] <= POST_S:
            stop += 1
        if first.start - start >= 2:
            events.append(_Event(tuple(runs_), start, stop))
    return events


# --- OCV -------------------------------------------------------------------------------------------


def _isotonic(values: FloatArray) -> FloatArray:
    """Pool-adjacent-violators: the closest non-decreasing sequence (least squares)."""
    blocks: list[list[float]] = []  # [mean, weight]
    for value in values.tolist():
        blocks.append([value, 1.0])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, w2 = blocks.pop()
            m1, w1 = blocks.pop()
            blocks.append([(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2])
    out: list[float] = []
    for mean, weight in blocks:
        out.extend([mean] * int(weight))
    return np.asarray(out)


def _ocv_table(soc: FloatArray, ocv: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Bin to 1 % SOC (empty bins interpolated), then strictly increasing."""
    grid = np.linspace(0.0, 1.0, 101)
    values = np.full(grid.size, np.nan)
    for k, g in enumerate(grid):
        sel = np.abs(soc - g) <= 0.005
        if sel.any():
            values[k] = float(np.mean(ocv[sel]))
    good = ~np.isnan(values)
    values = np.interp(grid, grid[good], values[good])
    # a tiny ramp makes the table strictly increasing, so it can be inverted
    return grid, _isotonic(values) + np.arange(grid.size) * 1e-5


# --- RC fitting --------------------------------------------------------------------------------------


def _rc_response(t: FloatArray, i: FloatArray, tau: float) -> FloatArray:
    """Voltage of an RC pair with R = 1 Ω, from rest, driven by ``i`` (held over each interval).

    Vectorised: ``v_k = e^(−t_k/τ)·(v_prev + Σ_j e^(t_j/τ)(1 − a_j)·i_j)`` evaluated in chunks of
    at most 30 τ so the exponentials stay finite.
    """
    n = t.size
    out = np.zeros(n)
    dt = np.diff(t, prepend=t[0])
    inc = (1.0 - np.exp(-dt / tau)) * i
    v_prev, start = 0.0, 0
    while start < n:
        t_prev = t[start - 1] if start else t[0]
        stop = max(int(np.searchsorted(t, t_prev + 30.0 * tau, side="right")), start + 1)
        rel = (t[start:stop] - t_prev) / tau
        out[start:stop] = np.exp(-rel) * (v_prev + np.cumsum(np.exp(rel) * inc[start:stop]))
        v_prev = float(out[stop - 1])
        start = stop
    return out


@dataclass(frozen=True)
class _Window:
    """One event window prepared for the group fit."""

    t: FloatArray
    i: FloatArray
    y: FloatArray  # voltage minus the OCV change since the window start
    runs: tuple[tuple[int, int], ...]  # run spans relative to the window


@dataclass(frozen=True)
class _GroupSolution:
    r0: tuple[float, ...]  # one per run, in window order
    r1: float
    tau1: float
    r2: float
    tau2: float
    residual: FloatArray


def _fit_group(windows: Sequence[_Window]) -> _GroupSolution | None:
    """Grid over (τ1, τ2); linear least squares for the rest (see the module docstring)."""
    n_runs = sum(len(w.runs) for w in windows)
    rows = sum(w.t.size for w in windows)
    fixed = np.zeros((rows, 2 * len(windows) + n_runs))
    y = np.concatenate([w.y for w in windows])
    r1_cols = {tau: np.concatenate([_rc_response(w.t, w.i, tau) for w in windows]) for tau in TAU1_GRID}
    r2_cols = {tau: np.concatenate([_rc_response(w.t, w.i, tau) for w in windows]) for tau in TAU2_GRID}
    rel = np.concatenate([w.t - w.t[0] for w in windows])
    row, col = 0, 2 * len(windows)
    window_rows: list[slice] = []
    for k, w in enumerate(windows):
        sl = slice(row, row + w.t.size)
        window_rows.append(sl)
        fixed[sl, 2 * k] = 1.0
        for start, stop in w.runs:
            fixed[row + start : row + stop, col] = w.i[start:stop]
            col += 1
        row += w.t.size
    best: tuple[float, _GroupSolution] | None = None
    for tau2 in TAU2_GRID:
        decay = np.exp(-rel / tau2)
        for k, sl in enumerate(window_rows):
            fixed[:, 2 * k + 1] = 0.0
            fixed[sl, 2 * k + 1] = decay[sl]
        for tau1 in TAU1_GRID:
            if tau2 < 4.0 * tau1:
                continue
            A = np.column_stack([fixed, r1_cols[tau1], r2_cols[tau2]])
            coef, *_ = np.linalg.lstsq(A, y, rcond=None)
            r0s = coef[2 * len(windows) : -2]
            r1, r2 = float(coef[-2]), float(coef[-1])
            if np.any(r0s <= 0) or r1 < 0 or r2 < 0:
                continue
            residual = y - A @ coef
            sse = float(residual @ residual)
            if best is None or sse < best[0]:
                solution = _GroupSolution(tuple(float(r) for r in r0s), r1, float(tau1), r2, float(tau2), residual)
                best = (sse, solution)
    return None if best is None else best[1]


# --- regression over SOC, temperature, current ------------------------------------------------------


def _hat_basis(soc: FloatArray, nodes: FloatArray) -> FloatArray:
    """Piecewise-linear interpolation weights of each ``soc`` on ``nodes`` (rows sum to 1)."""
    out = np.zeros((soc.size, nodes.size))
    if nodes.size == 1:
        out[:, 0] = 1.0
        return out
    for row, s in enumerate(np.clip(soc, nodes[0], nodes[-1])):
        k = int(np.clip(np.searchsorted(nodes, s) - 1, 0, nodes.size - 2))
        frac = (s - nodes[k]) / (nodes[k + 1] - nodes[k])
        out[row, k] = 1.0 - frac
        out[row, k + 1] = frac
    return out


def _log_regression(
    values: FloatArray, soc: FloatArray, nodes: FloatArray, x_temp: FloatArray | None, c_rate: FloatArray | None
) -> tuple[FloatArray, float, float]:
    """``ln value = hat(soc)·β + E·x_temp − k·c_rate``; returns (table at nodes, E, k)."""
    cols = [_hat_basis(soc, nodes)]
    if x_temp is not None:
        cols.append(x_temp[:, None])
    if c_rate is not None:
        cols.append(-c_rate[:, None])
    A = np.hstack(cols)
    y = np.log(values)
    # light second-difference smoothing keeps sparse or noisy SOC tables well posed
    smooth = []
    for k in range(1, nodes.size - 1):
        r = np.zeros(A.shape[1])
        r[k - 1 : k + 2] = [0.3, -0.6, 0.3]
        smooth.append(r)
    if smooth:
        A = np.vstack([A, np.asarray(smooth)])
        y = np.concatenate([y, np.zeros(len(smooth))])
    coef, *_ = np.linalg.lstsq(A, y, rcond=None)
    pos = nodes.size
    energy = float(coef[pos]) if x_temp is not None else 0.0
    pos += x_temp is not None
    k_c = float(coef[pos]) if c_rate is not None else 0.0
    return np.exp(coef[: nodes.size]), energy, k_c


# --- the fitter ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Context:
    log: LogData
    temp: FloatArray
    capacity: float
    t_ref: float
    slow: _Run
    options: FitOptions


def fit_model(log: LogData, options: FitOptions | None = None) -> FitReport:
    """Fit a cell model to a characterization log.

    :raises FitError: no slow (≤ C/10) full discharge, no pulses, or no fit with positive
        resistances.
    """
    log, offset = _remove_offset(log)
    t, v, i = log.time_s, log.voltage_v, log.current_a
    temp = log.temperature_c if log.has_temperature else np.full(t.size, 25.0)
    slow, capacity = _find_slow_discharge(log)
    events = _find_events(log, capacity, slow)
    if not any(e.pulses(t) for e in events):
        raise FitError(
            f"{log.file}: no current pulses found (rest, then ≤ {PULSE_MAX_S:g} s at ≥ {PULSE_MIN_C:g} C, "
            "then rest): cannot fit R0 and the RC pairs"
        )
    sl = slice(slow.start, slow.stop)
    ctx = _Context(log, temp, capacity, float(np.mean(temp[sl])), slow, options or FitOptions())
    slow_soc = 1.0 + _cumulative_ah(t[sl], i[sl]) / capacity
    # first OCV guess: IR drop from the voltage step into the slow discharge
    r_pre = max((v[slow.start - 1] - v[min(slow.start + 5, slow.stop - 1)]) / -slow.current, 0.0) if slow.start else 0.0
    ocv = _ocv_table(slow_soc, v[sl] - r_pre * i[sl])
    for _ in range(2):  # event SOCs come from the OCV, the OCV needs R_dc from the events
        model, pulses, groups, notes = _fit_resistances(ctx, events, ocv)
        r_dc = np.asarray([model.dc_resistance(s, tc, ic) for s, tc, ic in zip(slow_soc, temp[sl], i[sl], strict=True)])
        ocv = _ocv_table(slow_soc, v[sl] - r_dc * i[sl])
    model, pulses, groups, notes = _fit_resistances(ctx, events, ocv)
    rms, worst = _event_residuals(model, ctx, events)
    pred = np.asarray(
        [
            model.ocv(s, tc) + model.dc_resistance(s, tc, ic) * ic
            for s, tc, ic in zip(slow_soc, temp[sl], i[sl], strict=True)
        ]
    )
    slow_rms = 1000.0 * float(np.sqrt(np.mean((v[sl] - pred) ** 2)))
    return FitReport(
        model=replace(model, fit_rms_mv=round(rms, 3), fit_max_mv=round(worst, 3)),
        slow_lines=(int(log.line[slow.start]), int(log.line[slow.stop - 1])),
        slow_current_a=-slow.current,
        slow_c_rate=-slow.current / capacity,
        pulses=tuple(pulses),
        groups=tuple(groups),
        rms_mv=rms,
        max_mv=worst,
        slow_rms_mv=slow_rms,
        current_offset_a=offset,
        notes=tuple(notes),
    )


def _remove_offset(log: LogData) -> tuple[LogData, float]:
    """Take out a current-sensor offset: during rests the logged current *is* the offset.

    A characterization logged through a gauge (not a lab cycler) reads e.g. +10 mA at rest; left
    in, it would shift a C/20 capacity by 4 %. Rest = |I| below 1 % of the largest current, and
    at least 20 such samples are needed; a median is used so a stray sample cannot move it.
    """
    i = log.current_a
    rest = np.abs(i) < 0.01 * float(np.max(np.abs(i)))
    if int(np.count_nonzero(rest)) < 20:
        return log, 0.0
    offset = float(np.median(i[rest]))
    return replace(log, current_a=i - offset), offset


def _window(ctx: _Context, ev: _Event, ocv: tuple[FloatArray, FloatArray]) -> tuple[_Window, FloatArray]:
    """The event's window and its SOC: OCV of the rest before it, then coulomb counting."""
    log = ctx.log
    sl = slice(ev.start, ev.stop)
    t, i, v = log.time_s[sl], log.current_a[sl], log.voltage_v[sl]
    first = ev.runs[0].start - ev.start
    soc0 = float(np.interp(v[first - 1], ocv[1], ocv[0]))
    ah = _cumulative_ah(t, i)
    soc = soc0 + (ah - ah[first]) / ctx.capacity
    drift = np.interp(soc, ocv[0], ocv[1])
    runs = tuple((r.start - ev.start, r.stop - ev.start) for r in ev.runs)
    return _Window(t, i, v - (drift - drift[0]), runs), soc


def _group_events(ctx: _Context, events: Sequence[_Event], socs: Sequence[float]) -> list[list[int]]:
    temp = ctx.temp
    groups: list[list[int]] = []
    for k, ev in enumerate(events):
        t_k = float(temp[ev.runs[0].start])
        if groups:
            j = groups[-1][0]
            t_j = float(temp[events[j].runs[0].start])
            if abs(socs[k] - socs[j]) <= GROUP_SOC and abs(t_k - t_j) <= GROUP_K:
                groups[-1].append(k)
                continue
        groups.append([k])
    return groups


def _fit_resistances(
    ctx: _Context, events: Sequence[_Event], ocv: tuple[FloatArray, FloatArray]
) -> tuple[CellModel, list[PulseFit], list[GroupFit], list[str]]:
    log, t = ctx.log, ctx.log.time_s
    prepared = [_window(ctx, ev, ocv) for ev in events]
    socs = [
        float(np.clip(soc[ev.runs[0].start - ev.start], 0.0, 1.0))
        for ev, (_, soc) in zip(events, prepared, strict=True)
    ]
    pulse_rows: list[PulseFit] = []
    group_rows: list[GroupFit] = []
    for members in _group_events(ctx, events, socs):
        sol = _fit_group([prepared[k][0] for k in members])
        if sol is None:
            continue
        r0s = iter(sol.r0)
        for k in members:
            ev, soc = events[k], prepared[k][1]
            for run in ev.runs:
                r0 = next(r0s)
                if run in ev.pulses(t):
                    temp_c = float(np.mean(ctx.temp[run.start : run.stop]))
                    run_soc = float(np.clip(soc[run.start - ev.start], 0.0, 1.0))
                    pulse_rows.append(PulseFit(int(log.line[run.start]), run_soc, temp_c, run.current, r0))
        first = events[members[0]]
        group_rows.append(
            GroupFit(
                line=int(log.line[first.start]),
                soc=float(np.mean([socs[k] for k in members])),
                temperature_c=float(np.mean([ctx.temp[events[k].runs[0].start] for k in members])),
                r1_ohm=sol.r1, tau1_s=sol.tau1, r2_ohm=sol.r2, tau2_s=sol.tau2,
                rms_mv=1000.0 * float(np.sqrt(np.mean(sol.residual**2))),
                max_mv=1000.0 * float(np.max(np.abs(sol.residual))),
            )
        )  # fmt: skip
    if not pulse_rows or not group_rows:
        raise FitError(f"{log.file}: pulses were found but none could be fitted with positive resistances")
    return _build_model(ctx, ocv, pulse_rows, group_rows)


def _build_model(
    ctx: _Context, ocv: tuple[FloatArray, FloatArray], pulse_rows: list[PulseFit], group_rows: list[GroupFit]
) -> tuple[CellModel, list[PulseFit], list[GroupFit], list[str]]:
    notes: list[str] = []
    rc_rows = _well_fitted(group_rows, notes)  # all groups stay in the report
    p_soc = np.asarray([p.soc for p in pulse_rows])
    p_temp = np.asarray([p.temperature_c for p in pulse_rows])
    p_c = np.asarray([abs(p.current_a) for p in pulse_rows]) / ctx.capacity
    g_soc = np.asarray([g.soc for g in rc_rows])
    g_temp = np.asarray([g.temperature_c for g in rc_rows])
    inv_t_ref = 1.0 / (ctx.t_ref + KELVIN)
    use_temp = float(np.ptp(p_temp)) >= 5.0
    use_current = float(np.max(p_c)) >= 1.5 * float(np.min(p_c)) and float(np.ptp(p_c)) >= 0.3
    if not use_temp:
        notes.append("pulses span < 5 K: no Arrhenius fit (activation 0; the estimator adapts R0 online)")
    if not use_current:
        notes.append("pulses of one size: no R0 current dependence fitted")
    nodes = _cluster(g_soc)
    x_p = 1.0 / (p_temp + KELVIN) - inv_t_ref if use_temp else None
    r0, r0_e, r0_k = _log_regression(
        np.asarray([p.r0_ohm for p in pulse_rows]), p_soc, nodes, x_p, p_c if use_current else None
    )
    x_g = 1.0 / (g_temp + KELVIN) - inv_t_ref if float(np.ptp(g_temp)) >= 5.0 else None
    r1, r1_e, _ = _log_regression(np.asarray([max(g.r1_ohm, 1e-6) for g in rc_rows]), g_soc, nodes, x_g, None)
    r2, r2_e, _ = _log_regression(np.asarray([max(g.r2_ohm, 1e-6) for g in rc_rows]), g_soc, nodes, x_g, None)
    basis = _hat_basis(g_soc, nodes)
    weight = np.maximum(basis.sum(axis=0), 1e-12)
    tau1 = np.exp(basis.T @ np.log([g.tau1_s for g in rc_rows]) / weight)
    tau2 = np.exp(basis.T @ np.log([g.tau2_s for g in rc_rows]) / weight)
    log, opts = ctx.log, ctx.options
    i, v = log.current_a, log.voltage_v
    model = CellModel(
        capacity_ah=ctx.capacity,
        ocv_soc=tuple(float(x) for x in ocv[0]),
        ocv_v=tuple(float(x) for x in ocv[1]),
        r_soc=tuple(float(x) for x in nodes),
        r0_ohm=tuple(float(x) for x in r0),
        r1_ohm=tuple(float(x) for x in r1),
        c1_f=tuple(float(x) for x in tau1 / r1),
        r2_ohm=tuple(float(x) for x in r2),
        c2_f=tuple(float(x) for x in tau2 / r2),
        temperature_ref_c=round(ctx.t_ref, 2),
        r0_activation_k=float(np.clip(r0_e, 0.0, 20000.0)),
        rc_activation_k=float(np.clip(0.5 * (r1_e + r2_e), 0.0, 20000.0)),
        r0_current_coeff=float(np.clip(r0_k, -1.0, 1.0)),
        r0_current_max_c=float(np.max(p_c)),
        v_min_v=opts.v_min_v if opts.v_min_v is not None else float(v[ctx.slow.stop - 1]),
        v_max_v=opts.v_max_v if opts.v_max_v is not None else float(np.max(v)),
        i_discharge_max_a=opts.i_discharge_max_a
        if opts.i_discharge_max_a is not None
        else float(max(-np.min(i), 1e-3)),
        i_charge_max_a=opts.i_charge_max_a if opts.i_charge_max_a is not None else float(max(np.max(i), 1e-3)),
        name=opts.name,
        chemistry=opts.chemistry,
        source=f"fitted by smartbatt from {log.file}",
    )
    return model, pulse_rows, group_rows, notes


def _well_fitted(group_rows: list[GroupFit], notes: list[str]) -> list[GroupFit]:
    """The groups whose RC fit explains their window (RMS ≤ ``BAD_GROUP_FACTOR`` × the median).

    Why: a group that a 2-RC circuit cannot follow — typically the SOC step through the
    end-of-discharge knee, where the OCV curvature is read as a huge slow resistance — would put
    that resistance into the table and make the model pessimistic under any sustained load there.
    Its neighbours' values are held instead (the tables are constant beyond their end nodes).
    """
    limit = BAD_GROUP_FACTOR * float(np.median([g.rms_mv for g in group_rows]))
    kept = [g for g in group_rows if g.rms_mv <= limit]
    for g in group_rows:
        if g.rms_mv > limit:
            notes.append(
                f"group at line {g.line} (SOC {g.soc:.2f}, {g.temperature_c:.0f} °C) left out of the RC tables: "
                f"RMS {g.rms_mv:.1f} mV > {limit:.1f} mV (a 2-RC circuit does not follow it)"
            )
    return kept or group_rows


def _cluster(soc: FloatArray, width: float = GROUP_SOC) -> FloatArray:
    """SOC nodes of the resistance tables: the means of clusters of group SOCs."""
    ordered = np.sort(soc)
    clusters: list[list[float]] = [[float(ordered[0])]]
    for s in ordered[1:].tolist():
        if s - clusters[-1][-1] <= width:
            clusters[-1].append(s)
        else:
            clusters.append([s])
    return np.asarray([float(np.mean(c)) for c in clusters])


def simulate(
    model: CellModel, time_s: FloatArray, current_a: FloatArray, temperature_c: FloatArray | None, soc0: float
) -> FloatArray:
    """Terminal voltage of ``model`` for a cell current profile (A, + = charge) from rest at ``soc0``."""
    out = np.empty(time_s.size)
    soc, v1, v2 = soc0, 0.0, 0.0
    q = 3600.0 * model.capacity_ah
    for k in range(time_s.size):
        tc = None if temperature_c is None else float(temperature_c[k])
        ik = float(current_a[k])
        if k:
            dt = float(time_s[k] - time_s[k - 1])
            r1, tau1, r2, tau2 = model.rc(soc, tc)
            a1, a2 = math.exp(-dt / tau1), math.exp(-dt / tau2)
            v1 = a1 * v1 + r1 * (1.0 - a1) * ik
            v2 = a2 * v2 + r2 * (1.0 - a2) * ik
            soc += ik * dt / q
        out[k] = model.terminal_voltage(soc, v1, v2, ik, tc)
    return out


def _event_residuals(model: CellModel, ctx: _Context, events: Sequence[_Event]) -> tuple[float, float]:
    """Voltage error of the final model over every event window (from rest at the window start), mV."""
    log = ctx.log
    errors = []
    for ev in events:
        sl = slice(ev.start, ev.stop)
        soc0 = model.soc_from_ocv(float(log.voltage_v[ev.start]), float(ctx.temp[ev.start]))
        errors.append(log.voltage_v[sl] - simulate(model, log.time_s[sl], log.current_a[sl], ctx.temp[sl], soc0))
    err = np.concatenate(errors)
    return 1000.0 * float(np.sqrt(np.mean(err**2))), 1000.0 * float(np.max(np.abs(err)))
