"""The independent estimate next to the gauge's: SOC ± 1σ, SOH and state of power (no Qt).

Runs the monitoring core's :class:`~smartbatt.monitor.estimator.SocEstimator` (an EKF on the
user's cell model, from ``smartbatt model fit``) on every live sample and
:func:`~smartbatt.monitor.power.state_of_power_now` for the 10 s peak power, and returns the
``est_*`` channels of the sample table (``est_soc`` in %). It runs on the sample bus's thread,
inside a sample-bus subscriber (the GUI's live model, the terminal monitor), never on a UI thread.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass

from smartbatt.errors import SmartBattError
from smartbatt.monitor.cellmodel import CellModel
from smartbatt.monitor.estimator import EstimatorConfig, SocEstimator
from smartbatt.monitor.generic import chemistry_for, generic_model
from smartbatt.monitor.power import state_of_power_now
from smartbatt.monitor.sample import Sample

#: the state-of-power horizon the dashboard shows, s (the issue: "peak power for the next 10 s").
SOP_HORIZON_S = 10.0


@dataclass(frozen=True)
class EstimatorStatus:
    """What the dashboard says about the estimator."""

    running: bool
    #: one sentence: why it is not running, or what it runs on.
    text: str


class LiveEstimator:
    """SOC/SOH/SOP estimate fed with live samples.

    :param model: the cell model (one cell).
    :param series: cells in series (pack voltage / series = cell voltage), ≥ 1.
    :param design_capacity_ah: for SOH %; None = the model's capacity × parallel.
    :raises RangeError: invalid layout.
    """

    def __init__(self, model: CellModel, series: int, *, parallel: int = 1, design_capacity_ah: float | None = None):
        self.model = model
        self.series = series
        config = EstimatorConfig(series=series, parallel=parallel, design_capacity_ah=design_capacity_ah)
        self._filter = SocEstimator(model, config)
        self._lock = threading.Lock()
        self._last_t: float | None = None
        #: the last failure (the estimator then stops), or "".
        self.error = ""
        self.steps = 0

    def step(self, sample: Sample) -> Mapping[str, float]:
        """The ``est_*`` values after ``sample`` ({} if it lacks V/I or the estimator stopped)."""
        v, i, temp = sample.get("Voltage"), sample.get("Current"), sample.get("Temperature")
        if v is None or i is None or self.error:
            return {}
        with self._lock:
            if self._last_t is not None and sample.time <= self._last_t:
                return {}  # a repeated or out-of-order sample: the filter needs increasing time
            try:
                est = self._filter.step(sample.time, v, i, temp)
                sop = state_of_power_now(self._filter, temp, horizons=(SOP_HORIZON_S,))[0]
            except (SmartBattError, ValueError, ArithmeticError) as exc:
                self.error = f"estimator stopped: {exc}"
                return {}
            self._last_t = sample.time
            self.steps += 1
        out = {
            "est_soc": 100.0 * est.soc,
            "est_soc_sigma": 100.0 * est.soc_sigma,
            "est_soh": est.soh_pct,
            "est_capacity_ah": est.capacity_ah,
            "est_sop_discharge_10s_w": sop.discharge_power_w,
            "est_sop_charge_10s_w": sop.charge_power_w,
        }
        return {k: x for k, x in out.items() if math.isfinite(x)}

    def status(self) -> EstimatorStatus:
        if self.error:
            return EstimatorStatus(False, self.error)
        name = self.model.name or "cell model"
        hint = " — fit your cell for accuracy" if name.startswith("generic") else ""
        return EstimatorStatus(True, f"EKF on {name}, {self.series} cells in series{hint}")


#: a cell input reading below this is unused (TI gauges report unused inputs as 0 mV), V.
MIN_CELL_V = 0.5


def estimator_for(
    sample: Sample, chemistry: str, design_capacity_ah: float | None, cell_model: CellModel | None = None
) -> LiveEstimator:
    """An estimator for the pack that produced ``sample``.

    The cell count comes from the cell voltages the sample carries; the model is ``cell_model``
    (the user's, from ``smartbatt model fit``) or the generic model for the pack's
    DeviceChemistry scaled to its DesignCapacity — usable from the first sample (the filter
    adapts R0 and learns capacity), a fitted model being more accurate.

    :raises SmartBattError: no cell voltages to count the cells, or an invalid model.
    """
    series = sum(1 for v in sample.cells() if v > MIN_CELL_V)
    if series == 0:
        raise SmartBattError("no cell voltages to tell the cell count (name a chip profile)")
    capacity = design_capacity_ah
    if capacity is not None and not (math.isfinite(capacity) and capacity > 0):
        capacity = None
    model = cell_model or generic_model(chemistry_for(chemistry), capacity)
    return LiveEstimator(model, series, design_capacity_ah=capacity)

