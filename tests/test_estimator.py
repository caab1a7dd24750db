"""The independent SOC estimator on data from the emulator's pack physics and from a foreign ECM.

The emulated pack (``smartbatt.emulator.pack``) has its own cell model, spread, heating and
ageing; the estimator only gets a model *fitted* from an emulated characterization log, so every
test here runs against a plant it does not know exactly. The data helpers are shared with
``test_fitting.py`` and ``test_cli_model.py``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import cache

import numpy as np
import pytest

from smartbatt.emulator.pack import Pack, PackConfig
from smartbatt.errors import RangeError
from smartbatt.monitor.cellmodel import CellModel
from smartbatt.monitor.estimator import (
    EstimatorConfig,
    SocEstimator,
    compare_with_gauge,
    run_log,
)
from smartbatt.monitor.fitting import fit_model, simulate
from smartbatt.monitor.logfile import LogData

CAPACITY_AH = 3.0

# --- data helpers ---------------------------------------------------------------------------------


ArrayLike = Sequence[float] | np.ndarray


def make_log(t: ArrayLike, v: ArrayLike, i: ArrayLike, temp: ArrayLike, name: str = "mem") -> LogData:
    n = len(t)
    return LogData(
        file=name,
        time_s=np.asarray(t, dtype=np.float64),
        voltage_v=np.asarray(v, dtype=np.float64),
        current_a=np.asarray(i, dtype=np.float64),
        temperature_c=np.asarray(temp, dtype=np.float64),
        line=np.arange(2, n + 2, dtype=np.int64),
        gap_before=np.zeros(n, dtype=np.bool_),
    )


class Recorder:
    """Drive an emulated pack with (duration, current, step) segments and record what a gauge sees."""

    def __init__(self, pack: Pack, t0: float = 0.0) -> None:
        self.pack = pack
        self.t = t0
        self.rows: list[tuple[float, float, float, float, float]] = []  # t, V, I, T, SOC
        self._sample(0.0)

    def _sample(self, current: float) -> None:
        p = self.pack
        self.rows.append((self.t, p.voltage, current, float(np.mean(p.cell_temperatures)), float(np.mean(p.cell_soc))))

    def run(self, seconds: float, current: float | Callable[[float], float], step: float = 1.0) -> None:
        end = self.t + seconds
        while self.t < end - 1e-9:
            dt = min(step, end - self.t)
            amps = current(self.t) if callable(current) else current
            self.pack.step(dt, amps)
            self.t += dt
            self._sample(amps)

    def until_voltage(self, current: float, v_stop: float, step: float) -> None:
        while self.pack.voltage > v_stop and len(self.rows) < 200000:
            self.run(step, current, step)

    def log(self, name: str = "emulated") -> LogData:
        a = np.asarray(self.rows)
        return make_log(a[:, 0], a[:, 1], a[:, 2], a[:, 3], name)

    @property
    def soc(self) -> np.ndarray:
        return np.asarray(self.rows)[:, 4]


def _cell_pack(initial_soc: float, **kw: float) -> Pack:
    config = PackConfig(
        chemistry="nmc", series=1, parallel=1, cell_capacity_ah=CAPACITY_AH, capacity_spread=0.0,
        resistance_spread=0.0, soc_spread=0.0, initial_soc=initial_soc, **kw,  # type: ignore[arg-type]
    )  # fmt: skip
    return Pack(config)


def full_discharge(c_rate: float, step: float) -> Recorder:
    """Rest, a constant-current discharge from full to 2.5 V, rest."""
    rec = Recorder(_cell_pack(1.0))
    rec.run(600, 0.0, 30)
    rec.until_voltage(-c_rate * CAPACITY_AH, 2.5, step)
    rec.run(1800, 0.0, 30)
    return rec


@cache
def characterization_parts() -> tuple[LogData, LogData]:
    """A C/10 full discharge; HPPC pulses (1C/2C discharge, 0.75C charge) at five SOC levels."""
    c = CAPACITY_AH
    rec = full_discharge(0.1, 30)
    hppc = Recorder(_cell_pack(0.95), t0=rec.t + 1)
    hppc.run(1200, 0.0, 30)
    hppc.run(60, 0.0, 1)
    for _ in range(5):
        for amps, seconds in ((-1.0 * c, 10), (0.0, 40), (0.75 * c, 10), (0.0, 40), (-2.0 * c, 10), (0.0, 300)):
            hppc.run(seconds, amps, 1)
        hppc.run(600, -1.0 * c, 5)  # next SOC level: −1/6
        hppc.run(1740, 0.0, 30)
        hppc.run(60, 0.0, 1)
    return rec.log("slow"), hppc.log("hppc")


def join(*logs: LogData) -> LogData:
    """Logs one after the other (their times must already follow each other)."""
    return make_log(
        np.concatenate([x.time_s for x in logs]),
        np.concatenate([x.voltage_v for x in logs]),
        np.concatenate([x.current_a for x in logs]),
        np.concatenate([x.temperature_c for x in logs]),
        "characterization",
    )


def characterization_log() -> LogData:
    return join(*characterization_parts())


@cache
def fitted_model() -> CellModel:
    return fit_model(characterization_log()).model


def drive_profile(t: float) -> float:
    """A varied discharge, 0.3–2 C (3 A cell), with a 20 s burst every 3 minutes."""
    base = -CAPACITY_AH * (0.8 + 0.5 * math.sin(t / 97.0) + 0.2 * math.sin(t / 13.0))
    return base - (1.0 * CAPACITY_AH if (t % 180.0) < 20.0 else 0.0)


def drive_log(
    initial_soc: float, *, rest_s: float = 0.0, drive_s: float = 2400.0, after_s: float = 0.0, **pack_kw: float
) -> tuple[LogData, np.ndarray]:
    rec = Recorder(_cell_pack(initial_soc, **pack_kw))
    if rest_s:
        rec.run(rest_s, 0.0, 5)
    rec.run(drive_s, drive_profile, 1)
    if after_s:
        rec.run(after_s, 0.0, 5)
    return rec.log("drive"), rec.soc


def errors_after(log: LogData, soc: np.ndarray, truth: np.ndarray, skip_s: float = 600.0) -> np.ndarray:
    mask = log.time_s >= log.time_s[0] + skip_s
    return np.asarray(soc[mask] - truth[mask])


# --- convergence ------------------------------------------------------------------------------------


@pytest.mark.parametrize("offset", [+0.25, -0.25])
def test_converges_from_a_wrong_start_on_an_aged_emulated_pack(offset: float) -> None:
    # the pack has aged (less capacity, more resistance) since the model was fitted
    log, truth = drive_log(0.7, drive_s=2400, cycles=300.0, age_days=200.0)
    start = float(np.clip(truth[0] + offset, 0.0, 1.0))
    out = run_log(fitted_model(), log, EstimatorConfig(initial_soc=start))
    assert abs(out.soc[0] - truth[0]) > 0.2  # it really started wrong
    err = errors_after(log, out.soc, truth)
    assert np.max(np.abs(err)) < 0.03, f"max error {np.max(np.abs(err)):.3f} after 10 min"
    assert math.sqrt(np.mean(err**2)) < 0.015
    # it reports its uncertainty, and the uncertainty shrank from the start's
    assert out.soc_sigma[-1] < 0.05 < out.soc_sigma[0]
    assert out.r0_growth[-1] > 1.05  # resistance growth seen


def test_finds_its_own_start_in_the_middle_of_a_discharge_under_load() -> None:
    log, truth = drive_log(0.55, drive_s=1800)
    cut = 300  # begin while the load is on: no rest anywhere in the log
    sliced = make_log(log.time_s[cut:], log.voltage_v[cut:], log.current_a[cut:], log.temperature_c[cut:])
    assert abs(sliced.current_a[0]) > 0.5 * CAPACITY_AH
    out = run_log(fitted_model(), sliced, EstimatorConfig())
    assert abs(out.soc[0] - truth[cut]) < 0.1  # the model inversion under load is already close
    err = errors_after(sliced, out.soc, truth[cut:])
    assert np.max(np.abs(err)) < 0.03


def test_tolerates_current_gain_and_offset_error() -> None:
    log, truth = drive_log(0.9, rest_s=600, drive_s=2400, after_s=1200)
    biased = replace(log, current_a=log.current_a * 1.02 + 0.03)  # +2 % gain, +30 mA (1 % C) offset
    out = run_log(fitted_model(), biased, EstimatorConfig(initial_soc=0.6))
    err = errors_after(biased, out.soc, truth)
    assert np.max(np.abs(err)) < 0.03
    # plain coulomb counting from the same wrong start stays 30 points off: the filter is doing the work
    cc = 0.6 + np.cumsum(biased.current_a * np.diff(biased.time_s, prepend=0.0)) / 3600 / fitted_model().capacity_ah
    assert np.max(np.abs(errors_after(biased, cc, truth))) > 0.25


# --- capacity and resistance on a foreign ECM ------------------------------------------------------------


def _foreign(model: CellModel) -> CellModel:
    """The same OCV and RC time constants, but 15 % less capacity, 40 % more R0, 20 % more R1."""
    return replace(
        model, capacity_ah=0.85 * model.capacity_ah, r0_ohm=tuple(1.4 * r for r in model.r0_ohm),
        r1_ohm=tuple(1.2 * r for r in model.r1_ohm), c1_f=tuple(c / 1.2 for c in model.c1_f),
    )  # fmt: skip


def _ecm_log(plant: CellModel, segments: Sequence[tuple[float, float]], soc0: float) -> tuple[LogData, np.ndarray]:
    t = [0.0]
    amps = [0.0]
    for seconds, current in segments:
        for _ in range(int(seconds)):
            t.append(t[-1] + 1.0)
            amps.append(current)
    ta, ia = np.asarray(t), np.asarray(amps)
    v = simulate(plant, ta, ia, None, soc0)
    truth = soc0 + np.cumsum(ia * np.diff(ta, prepend=0.0)) / 3600.0 / plant.capacity_ah
    return make_log(ta, v, ia, np.full(ta.size, 25.0), "ecm"), truth


def test_learns_capacity_from_two_rests_and_reports_soh() -> None:
    model = fitted_model()
    plant = _foreign(model)
    amps = -0.5 * plant.capacity_ah
    log, truth = _ecm_log(plant, [(1800, 0.0), (5040, amps), (2400, 0.0)], 0.95)  # 70 % SOC swing
    est = SocEstimator(model, EstimatorConfig(initial_soc=0.95))
    steps = [
        est.step(t, v, i, tc)
        for t, v, i, tc in zip(log.time_s, log.voltage_v, log.current_a, log.temperature_c, strict=True)
    ]
    assert len(est.capacity_readings) == 1
    last = steps[-1]
    assert last.capacity_ah == pytest.approx(plant.capacity_ah, rel=0.03)
    assert last.soh_pct == pytest.approx(85.0, abs=3.0)
    # one current step: the R1 change is partly folded into R0, but the growth is seen
    assert last.r0_growth == pytest.approx(1.4, rel=0.15)
    assert abs(last.soc - truth[-1]) < 0.02


def test_keeps_the_model_capacity_without_rests() -> None:
    # no settled rest anywhere: nothing to learn capacity from, so it must not wander
    model = fitted_model()
    log, _ = _ecm_log(model, [(3600, -0.5 * model.capacity_ah)], 0.9)
    out = run_log(model, log, EstimatorConfig(initial_soc=0.7))
    assert out.capacity_ah[-1] == pytest.approx(model.capacity_ah, rel=0.01)


# --- pack handling, gaps, errors ---------------------------------------------------------------------


def test_series_and_parallel_scale_voltage_current_capacity_and_resistance() -> None:
    model = fitted_model()
    log, _ = drive_log(0.8, drive_s=900)
    single = run_log(model, log, EstimatorConfig(initial_soc=0.7))
    pack_log = replace(log, voltage_v=log.voltage_v * 4, current_a=log.current_a * 2)
    pack = run_log(model, pack_log, EstimatorConfig(initial_soc=0.7, series=4, parallel=2))
    np.testing.assert_allclose(pack.soc, single.soc, atol=1e-9)
    np.testing.assert_allclose(pack.capacity_ah, 2 * single.capacity_ah, rtol=1e-9)
    np.testing.assert_allclose(pack.r0_ohm, 2 * single.r0_ohm, rtol=1e-9)  # 4 in series / 2 in parallel


def test_a_gap_widens_the_uncertainty() -> None:
    model = fitted_model()
    est = SocEstimator(model, EstimatorConfig(initial_soc=0.5))
    v = model.ocv(0.5)
    for t in range(0, 600, 5):
        step = est.step(float(t), v, 0.0, 25.0)
    before = step.soc_sigma
    after = est.step(4200.0, v, -1.0, 25.0, gap=True).soc_sigma
    assert after > 3 * before


def test_time_must_increase() -> None:
    est = SocEstimator(fitted_model())
    est.step(10.0, 3.7, 0.0)
    est.step(11.0, 3.7, 0.0)
    with pytest.raises(RangeError, match="not after"):
        est.step(11.0, 3.7, 0.0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"series": 0}, "series"),
        ({"parallel": 0}, "series and parallel"),
        ({"initial_soc": 1.2}, "0..1"),
        ({"capacity_ah": -1.0}, "capacity_ah"),
        ({"initial_soc_sigma": 0.0}, "sigma"),
    ],
)
def test_config_out_of_range_is_a_range_error(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(RangeError, match=match):
        SocEstimator(fitted_model(), EstimatorConfig(**kwargs))  # type: ignore[arg-type]


def test_capacity_override_and_nan_temperature() -> None:
    est = SocEstimator(fitted_model(), EstimatorConfig(capacity_ah=2.0, initial_soc=0.5))
    step = est.step(0.0, 3.7, 0.0, float("nan"))  # NaN temperature = the model's reference
    assert step.capacity_ah == pytest.approx(2.0)
    assert step.soh_pct == pytest.approx(100 * 2.0 / fitted_model().capacity_ah)


def test_divergence_from_the_gauge_is_located() -> None:
    log, truth = drive_log(0.8, drive_s=1200)
    out = run_log(fitted_model(), log, EstimatorConfig(initial_soc=float(truth[0])))
    gauge = 100 * truth.copy()
    gauge[1000] += 12.0  # the gauge jumps once
    div = compare_with_gauge(out, gauge, np.full(truth.size, 2900.0), skip_s=0.0)
    assert div.soc_max_at_s == pytest.approx(log.time_s[1000])
    assert div.soc_max_points is not None and div.soc_max_points < -10.0
    assert div.capacity_diff_ah == pytest.approx(out.capacity_ah[-1] - 2.9)
    empty = compare_with_gauge(out)
    assert empty.soc_rms_points is None and empty.capacity_diff_ah is None
