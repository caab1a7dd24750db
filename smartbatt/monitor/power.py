"""State of power: the peak current and power a pack can take or give for the next 2, 10 or 30 s.

Method (the "constant-current over a horizon" limit, as used for HPPC-style power capability):
for a constant cell current ``I`` held for the horizon ``h`` the model predicts

* SOC at the end: ``SOC + I·h / (3600·Q)``,
* each RC pair: ``V_k(h) = V_k·e^(−h/τk) + R_k·I·(1 − e^(−h/τk))`` (exact for constant current),
* terminal voltage: ``OCV(SOC_h, T) + V1 + V2 + r·R0(SOC_h, T, |I|)·I``.

Because an RC voltage can move either way over the horizon (toward the new steady state), the
check uses, for each pair, the worse of its value now and at ``h`` — a guaranteed bound on the
lowest (discharge) or highest (charge) voltage during the whole pulse. The largest ``|I|`` that
keeps that bound inside the cell's ``[v_min, v_max]``, keeps SOC inside 0..1 and stays below the
cell current limit is found by bisection (the voltage is monotone in ``I``). Power is that
current times the bounded voltage: the power the pack can hold for the *whole* horizon.

Pack values: cell current × ``parallel``, cell voltage × ``series``. The model sees the average
cell; an unbalanced pack reaches its limits earlier on its weakest cell (give ``margin_v``).

The gauge's own answer is the SBS AtRate mechanism (sbs.md §1): the host writes AtRate (mA,
negative = discharge), then AtRateOK is non-zero when the pack can supply that *extra* load for
10 s (always true for AtRate ≥ 0) and AtRateTimeToEmpty is the predicted run time at AtRate
(65535 = not discharging). :func:`compare_at_rate` puts our 10 s answer next to it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from smartbatt.errors import RangeError
from smartbatt.monitor.cellmodel import CellModel
from smartbatt.monitor.estimator import SocEstimator

#: the horizons a pilot or a tool asks about, s.
HORIZONS_S = (2.0, 10.0, 30.0)
_ITERATIONS = 30


@dataclass(frozen=True)
class PowerLimit:
    """Peak capability over one horizon (pack values; currents and powers as positive magnitudes)."""

    horizon_s: float
    discharge_current_a: float
    discharge_power_w: float
    #: what stops a larger discharge: ``"voltage"``, ``"current"`` or ``"soc"``.
    discharge_limited_by: str
    charge_current_a: float
    charge_power_w: float
    charge_limited_by: str


@dataclass(frozen=True)
class _Cell:
    """Everything the per-horizon calculation needs, per cell."""

    model: CellModel
    soc: float
    v1: float
    v2: float
    temperature_c: float | None
    r0_scale: float
    capacity_ah: float


def _voltage_bound(cell: _Cell, current: float, horizon: float, rc: tuple[float, float, float, float]) -> float:
    """Worst-case terminal voltage over the horizon at constant ``current`` (cell A, + = charge)."""
    m = cell.model
    soc_h = cell.soc + current * horizon / (3600.0 * cell.capacity_ah)
    r1, tau1, r2, tau2 = rc
    worst = min if current < 0 else max
    v_rc = 0.0
    for v0, r, tau in ((cell.v1, r1, tau1), (cell.v2, r2, tau2)):
        decay = math.exp(-horizon / tau)
        v_rc += worst(v0, v0 * decay + r * current * (1.0 - decay))
    # the larger of R0 now and at the end of the pulse is the worse in either direction
    r0 = cell.r0_scale * max(m.r0(cell.soc, cell.temperature_c, current), m.r0(soc_h, cell.temperature_c, current))
    return m.ocv(soc_h, cell.temperature_c) + v_rc + r0 * current


def _peak(cell: _Cell, horizon: float, sign: int, limit_a: float, v_limit: float) -> tuple[float, float, str]:
    """Largest |I| in ``sign`` direction within the limits: (current A, voltage bound V, limited by)."""
    rc = cell.model.rc(cell.soc, cell.temperature_c)
    q_as = 3600.0 * cell.capacity_ah
    room = (cell.soc if sign < 0 else 1.0 - cell.soc) * q_as / horizon  # SOC limit as a current
    cap = min(limit_a, max(room, 0.0))

    def ok(x: float) -> bool:
        v = _voltage_bound(cell, sign * x, horizon, rc)
        return v >= v_limit if sign < 0 else v <= v_limit

    if not ok(0.0):
        return 0.0, _voltage_bound(cell, 0.0, horizon, rc), "voltage"
    if ok(cap):
        return cap, _voltage_bound(cell, sign * cap, horizon, rc), "current" if cap >= limit_a else "soc"
    lo, hi = 0.0, cap
    for _ in range(_ITERATIONS):
        mid = 0.5 * (lo + hi)
        if ok(mid):
            lo = mid
        else:
            hi = mid
    return lo, _voltage_bound(cell, sign * lo, horizon, rc), "voltage"


def state_of_power(
    model: CellModel,
    soc: float,
    v1: float = 0.0,
    v2: float = 0.0,
    temperature_c: float | None = None,
    *,
    r0_scale: float = 1.0,
    capacity_ah: float | None = None,
    series: int = 1,
    parallel: int = 1,
    horizons: Sequence[float] = HORIZONS_S,
    margin_v: float = 0.0,
) -> tuple[PowerLimit, ...]:
    """Peak discharge and charge current and power for each horizon.

    :param soc: present SOC 0..1; ``v1``, ``v2`` the RC voltages per cell (V, 0 = relaxed).
    :param r0_scale: the estimator's R0 correction (1 = as the model says).
    :param capacity_ah: cell capacity, Ah (default the model's).
    :param margin_v: kept away from both voltage limits per cell, V (cell imbalance, sensor error).
    :raises RangeError: for a horizon ≤ 0, SOC outside 0..1, or a pack layout < 1.
    """
    if not 0.0 <= soc <= 1.0:
        raise RangeError(f"SOC must lie in 0..1, got {soc}")
    if series < 1 or parallel < 1:
        raise RangeError(f"series and parallel must be ≥ 1 (got {series}, {parallel})")
    if any(not h > 0 for h in horizons):
        raise RangeError(f"horizons must be > 0 s, got {list(horizons)}")
    cell = _Cell(model, soc, v1, v2, temperature_c, r0_scale, capacity_ah or model.capacity_ah)
    out = []
    for h in horizons:
        i_d, v_d, why_d = _peak(cell, h, -1, model.i_discharge_max_a, model.v_min_v + margin_v)
        i_c, v_c, why_c = _peak(cell, h, +1, model.i_charge_max_a, model.v_max_v - margin_v)
        out.append(
            PowerLimit(
                horizon_s=h,
                discharge_current_a=i_d * parallel,
                discharge_power_w=i_d * parallel * max(v_d, 0.0) * series,
                discharge_limited_by=why_d,
                charge_current_a=i_c * parallel,
                charge_power_w=i_c * parallel * v_c * series,
                charge_limited_by=why_c,
            )
        )
    return tuple(out)


def state_of_power_now(
    estimator: SocEstimator,
    temperature_c: float | None = None,
    horizons: Sequence[float] = HORIZONS_S,
    margin_v: float = 0.0,
) -> tuple[PowerLimit, ...]:
    """:func:`state_of_power` for an estimator's present state, capacity and pack layout."""
    soc, v1, v2, r0_scale = estimator.state()
    cfg = estimator.config
    return state_of_power(
        estimator.model,
        min(max(soc, 0.0), 1.0),
        v1,
        v2,
        temperature_c,
        r0_scale=r0_scale,
        capacity_ah=estimator.cell_capacity_ah,
        series=cfg.series,
        parallel=cfg.parallel,
        horizons=horizons,
        margin_v=margin_v,
    )


# --- the gauge's AtRate answer ------------------------------------------------------------------------

#: AtRateTimeToEmpty's "not discharging" value (sbs.md §1, as for 0x11/0x12).
NOT_DISCHARGING = 0xFFFF


@dataclass(frozen=True)
class AtRateComparison:
    """Our 10 s state of power next to the gauge's AtRateOK / AtRateTimeToEmpty."""

    at_rate_ma: int
    #: gauge: AtRateOK != 0; None if not read.
    gauge_ok: bool | None
    #: ours: the extra load fits in the 10 s discharge (or charge) limit.
    our_ok: bool
    #: gauge's AtRateTimeToEmpty, min (None: not read or 65535).
    gauge_time_to_empty_min: int | None
    #: ours: remaining charge / |AtRate|, min (None for AtRate ≥ 0).
    our_time_to_empty_min: float | None
    #: the answers agree (same OK; run times within 10 % or 2 min).
    agree: bool
    note: str


def compare_at_rate(
    limit_10s: PowerLimit,
    at_rate_ma: int,
    *,
    present_current_a: float,
    remaining_ah: float,
    gauge_ok: int | bool | None = None,
    gauge_time_to_empty_min: int | None = None,
) -> AtRateComparison:
    """Compare our 10 s peak with the gauge's AtRate answer (current mode, CAPACITY_MODE = 0).

    :param limit_10s: our :class:`PowerLimit` for the 10 s horizon.
    :param at_rate_ma: the AtRate written, mA (signed: negative = discharge), −32768..32767.
    :param present_current_a: the pack current now, A (+ = charge); AtRate is *extra* load.
    :param remaining_ah: our remaining charge, Ah (SOC × capacity).
    :raises RangeError: if ``limit_10s`` is not for 10 s or ``at_rate_ma`` is not an s16.
    """
    if limit_10s.horizon_s != 10.0:
        raise RangeError(f"AtRateOK is a 10 s answer; got a {limit_10s.horizon_s:g} s limit")
    if not -32768 <= at_rate_ma <= 32767:
        raise RangeError(f"AtRate is a signed 16-bit mA value, got {at_rate_ma}")
    extra = at_rate_ma / 1000.0
    if extra >= 0:
        # SBS: AtRateOK is always true for AtRate ≥ 0; our check is the charge side
        our_ok = True
        tte = None
    else:
        required = max(-present_current_a, 0.0) - extra
        our_ok = required <= limit_10s.discharge_current_a
        tte = 60.0 * max(remaining_ah, 0.0) / -extra
    g_ok = None if gauge_ok is None else bool(gauge_ok)
    g_tte = None if gauge_time_to_empty_min in (None, NOT_DISCHARGING) else gauge_time_to_empty_min
    agree = g_ok is None or g_ok == our_ok
    if tte is not None and g_tte is not None:
        agree = agree and abs(tte - g_tte) <= max(2.0, 0.1 * g_tte)
    notes = []
    if g_ok is not None and g_ok != our_ok:
        notes.append(f"gauge says {'OK' if g_ok else 'not OK'}, model says {'OK' if our_ok else 'not OK'}")
    if tte is not None and g_tte is not None and abs(tte - g_tte) > max(2.0, 0.1 * g_tte):
        notes.append(f"run time {tte:.0f} min vs gauge {g_tte} min")
    return AtRateComparison(at_rate_ma, g_ok, our_ok, g_tte, tte, agree, "; ".join(notes) or "agree")
