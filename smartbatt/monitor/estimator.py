"""Independent SOC / SOH estimator: a joint extended Kalman filter on an equivalent-circuit model.

Why an EKF (and not a UKF / sigma-point filter): the cell model is linear in every state except
SOC, and its only nonlinearity there — the OCV curve — is smooth and nearly linear across the
SOC change of one sample (≤ 1 s at several C moves SOC by < 0.1 %). The analytic Jacobian is
exact up to the local OCV slope, so a sigma-point filter would buy nothing measurable while
costing 13 model evaluations a step instead of one. What *does* matter on real packs is model
error (a fitted ECM is tens of mV off in a hot, high-rate flight), and the filter handles it
with three explicit mechanisms instead of hoping a better linearisation fixes it:

* **Joint estimation of R0** — a slow random-walk state ``r`` scales the model's R0(SOC, T, |I|)
  and is updated every step (resistance growth, temperature and current effects the model
  misses).
* **Model error as noise where it lives** — the voltage variance grows with the predicted
  distance from equilibrium, ``(α·|V − OCV|)²``, with the recent load (``β·R_dc·Ī_30min``: the
  slow diffusion the two RC pairs miss) and, at rest, with how fast the voltage is still moving
  (``|dV/dt|·1800 s``); the slow RC voltage gets a load-proportional random walk so correlated
  error under load is absorbed there rather than in SOC. Under heavy load the filter therefore
  leans on coulomb counting, and a settled cell's voltage pins SOC to the OCV curve (that is how
  rests correct SOC).
* **Capacity and current offset as states** (dual estimation) — ``w = Q_model/Q`` (inverse
  capacity scale) and ``b`` (current-sensor offset, A) are slow random-walk states whose
  covariance is carried, so their uncertainty shows in ``soc_sigma``. The voltage update treats
  them as Schmidt "consider" states: ``b`` is updated only during settled rests once SOC has
  converged, ``w`` never. Capacity is learned from *pairs of qualified rests* (current below
  ``rest_current_c`` for ``rest_min_s``, voltage settled): each pair with a large enough SOC
  swing yields ``Q = ∫I dt / ΔSOC_OCV``, fused into ``w`` with its own uncertainty. Voltage
  under load — even a rest that is still relaxing — would otherwise drag capacity along with
  every model error.

State vector ``x = [SOC, V1, V2, r, b, w]`` per *cell* (pack voltage / ``series``, pack current /
``parallel``); outputs are converted back to the pack. Current positive = charging (SBS).
Numerical robustness: Joseph-form covariance update, a covariance floor, symmetrisation,
innovation gating (5 σ) and clipped states.

A gain error of the current sensor cannot be told apart from a capacity error: the capacity this
filter learns is in the sensor's frame (``Q_true × gain``), and SOC — a ratio — is unaffected.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from smartbatt.errors import RangeError
from smartbatt.monitor.cellmodel import CellModel
from smartbatt.monitor.logfile import LogData

FloatArray = npt.NDArray[np.float64]

SOC, V1, V2, R, B, W = range(6)
_N = 6


@dataclass(frozen=True)
class EstimatorConfig:
    """Pack layout, starting point and filter tuning. Defaults suit Li-ion logs sampled at ~1 Hz.

    :raises RangeError: from :class:`SocEstimator` if a value is out of range.
    """

    #: cells in series (pack voltage / series = cell voltage), ≥ 1.
    series: int = 1
    #: cells in parallel (pack current / parallel = cell current; capacity × parallel), ≥ 1.
    parallel: int = 1
    #: pack capacity to start from, Ah; None = model capacity × parallel.
    capacity_ah: float | None = None
    #: design (new) pack capacity for SOH %, Ah; None = model capacity × parallel.
    design_capacity_ah: float | None = None
    #: starting SOC 0..1; None = found from the first sample (works under load).
    initial_soc: float | None = None
    #: 1σ trust in a given ``initial_soc``.
    initial_soc_sigma: float = 0.15
    #: 1σ relative uncertainty of the model's R0 at the start (ageing, temperature, cell to cell).
    r0_sigma: float = 0.5
    #: 1σ relative uncertainty of the starting capacity.
    capacity_sigma: float = 0.10
    #: 1σ of the voltage measurement per cell (quantisation + noise), V.
    voltage_sigma_v: float = 0.004
    #: model-error fraction α of the polarisation |V − OCV| added to the voltage noise.
    model_error_frac: float = 0.15
    #: 1σ white current noise, in C-rate units (× capacity = A).
    current_sigma_c: float = 0.004
    #: R0-scale random walk, 1/√s.
    r0_walk: float = 1e-2
    #: capacity-scale random walk, 1/√s (ageing is slow).
    capacity_walk: float = 2e-6
    #: current-offset random walk, C-rate/√s.
    offset_walk_c: float = 2e-6
    #: RC-voltage process noise, V/√s (absorbs relaxation the two RC pairs do not model).
    rc_walk_v: float = 2e-4
    #: load-dependent random walk of the slow RC voltage, per √s, × (R1 + R2)·|I|: the slow
    #: polarisation under load that the model gets wrong is absorbed there, not in SOC.
    rc_load_walk: float = 0.005
    #: the offset is learned only during settled rests and while soc_sigma is below this.
    learn_gate_sigma: float = 0.03
    #: slow-relaxation error: this fraction of R_dc × the 30-min mean |I| is added to the voltage noise.
    relaxation_error_frac: float = 0.3
    #: time constant of that mean, s.
    relaxation_tau_s: float = 1800.0
    #: at rest, the voltage's present |dV/dt| times this is added to the voltage noise, s.
    relaxation_horizon_s: float = 1800.0
    #: 1σ of the current-sensor offset at the start, C-rate.
    offset_sigma_c: float = 0.002
    #: |I| below this C-rate counts as rest.
    rest_current_c: float = 0.02
    #: rest length before an OCV reading is taken for capacity learning, s.
    rest_min_s: float = 300.0
    #: |dV/dt| per cell below which a rest counts as settled, V/s.
    rest_settled_v_per_s: float = 2e-5
    #: smallest SOC swing between two rests used for a capacity measurement.
    capacity_min_delta_soc: float = 0.3
    #: a step longer than this is a gap: the current during it is unknown, s.
    max_gap_s: float = 60.0

    def check(self) -> None:
        """Raise :class:`RangeError` for values outside their range."""
        if self.series < 1 or self.parallel < 1:
            raise RangeError(f"series and parallel must be ≥ 1 (got {self.series}, {self.parallel})")
        if self.initial_soc is not None and not 0.0 <= self.initial_soc <= 1.0:
            raise RangeError(f"initial SOC must lie in 0..1, got {self.initial_soc}")
        for name in ("capacity_ah", "design_capacity_ah"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise RangeError(f"{name} must be a positive number of Ah, got {value}")
        if not 0 < self.initial_soc_sigma <= 1 or not 0 < self.capacity_sigma <= 1:
            raise RangeError("initial_soc_sigma and capacity_sigma must lie in (0, 1]")


@dataclass(frozen=True)
class EstimateStep:
    """The estimator's answer after one sample (pack values unless named per cell)."""

    time_s: float
    #: state of charge 0..1 (of the estimated capacity).
    soc: float
    #: 1σ uncertainty of ``soc``.
    soc_sigma: float
    #: estimated pack capacity, Ah (in the current sensor's frame).
    capacity_ah: float
    capacity_sigma_ah: float
    #: estimated capacity as % of the design capacity.
    soh_pct: float
    #: pack series resistance at the present SOC, temperature and current, Ω.
    r0_ohm: float
    #: R0 relative to the model (1.0 = as fitted): resistance growth.
    r0_growth: float
    #: estimated current-sensor offset, A (pack).
    current_offset_a: float
    #: measured minus predicted cell voltage before the update, V.
    residual_v: float
    #: the pack is at rest (|I| below the rest threshold).
    resting: bool


@dataclass
class _Rest:
    """A qualified rest: an OCV-based SOC reading and the charge counter when it was taken."""

    soc: float
    sigma: float
    ah: float


@dataclass
class _RestTracker:
    duration_s: float = 0.0
    start_v: float = 0.0
    window: list[tuple[float, float]] = field(default_factory=list)
    reading: _Rest | None = None


class SocEstimator:
    """Feed samples with :meth:`step`; read :class:`EstimateStep` records back.

    :param model: the cell model (per cell).
    :param config: pack layout, starting point and tuning.
    :raises RangeError: if ``config`` is out of range.
    """

    def __init__(self, model: CellModel, config: EstimatorConfig | None = None) -> None:
        self.model = model
        self.config = config or EstimatorConfig()
        self.config.check()
        cfg = self.config
        #: capacity (Ah) per cell the SOC equation is scaled to; w = q0 / Q.
        self.q0 = model.capacity_ah
        start_q = (cfg.capacity_ah / cfg.parallel) if cfg.capacity_ah is not None else model.capacity_ah
        self.design_ah = cfg.design_capacity_ah or model.capacity_ah * cfg.parallel
        self.x = np.zeros(_N)
        self.x[R] = 1.0
        self.x[W] = self.q0 / start_q
        self.P = np.zeros((_N, _N))
        self._floor = np.array([4e-6, 1e-8, 1e-8, 1e-6, 1e-8, 1e-7])
        self._initialised = False
        self._t: float | None = None
        self._elapsed = 0.0
        self._ah = 0.0  # sensor-frame charge counter per cell, Ah (offset-corrected)
        self._slow_current = 0.0  # mean |I| per cell over the last ~relaxation_tau_s, A
        self._rest = _RestTracker()
        self._last_rest: _Rest | None = None
        #: capacity measurements from rest pairs: (Ah per pack, 1σ).
        self.capacity_readings: list[tuple[float, float]] = []

    # --- public --------------------------------------------------------------------------------

    def step(
        self,
        time_s: float,
        voltage_v: float,
        current_a: float,
        temperature_c: float | None = None,
        *,
        gap: bool = False,
    ) -> EstimateStep:
        """Advance to ``time_s`` with one pack sample and return the new estimate.

        :param voltage_v: pack terminal voltage, V.
        :param current_a: pack current, A, positive = charging; taken as the mean over the
            interval since the previous sample.
        :param temperature_c: cell temperature, °C (None or NaN: the model's reference).
        :param gap: the interval before this sample is a gap of unknown current.
        :raises RangeError: if ``time_s`` is not after the previous sample's time.
        """
        cfg = self.config
        v = voltage_v / cfg.series
        i_m = current_a / cfg.parallel
        temp = None if temperature_c is None or math.isnan(temperature_c) else temperature_c
        if not self._initialised:
            self._initialise(v, i_m, temp)
            self._t = time_s
            return self._record(time_s, i_m, temp, 0.0)
        assert self._t is not None
        dt = time_s - self._t
        if not dt > 0:
            raise RangeError(f"time {time_s} s is not after the previous sample's {self._t} s")
        self._t = time_s
        self._elapsed += dt
        self._predict(dt, i_m, temp, gap or dt > cfg.max_gap_s)
        residual = self._update(v, i_m, temp)
        self._track_rest(dt, v, i_m, temp)
        return self._record(time_s, i_m, temp, residual)

    @property
    def soc(self) -> float:
        """Present SOC estimate 0..1."""
        return min(max(float(self.x[SOC]), 0.0), 1.0)

    @property
    def cell_capacity_ah(self) -> float:
        """Present capacity estimate of one cell, Ah."""
        return self.q0 / float(self.x[W])

    def state(self) -> tuple[float, float, float, float]:
        """``(SOC, V1 V, V2 V, R0 scale)`` per cell, for the state-of-power calculation."""
        return float(self.x[SOC]), float(self.x[V1]), float(self.x[V2]), float(self.x[R])

    # --- initialisation -------------------------------------------------------------------------

    def _initialise(self, v: float, i_m: float, temp: float | None) -> None:
        cfg, m = self.config, self.model
        resting = abs(i_m) < cfg.rest_current_c * self.q0
        r1, _, r2, _ = m.rc(0.5, temp)
        if resting:
            v1 = v2 = 0.0
            s1 = s2 = 0.0
        else:
            # Under load the polarisation history is unknown (a burst may have begun a second
            # ago, or a climb ten minutes ago): assume both pairs half way, with uncertainty
            # covering "just started" to "settled".
            v1, s1 = 0.5 * r1 * i_m, 0.5 * abs(r1 * i_m)
            v2, s2 = 0.5 * r2 * i_m, 0.5 * abs(r2 * i_m)
        soc = 0.5
        for _ in range(3):  # fixed point: R0 and the OCV depend on the SOC being solved for
            soc = m.soc_from_ocv(v - v1 - v2 - m.r0(soc, temp, i_m) * i_m, temp)
        if cfg.initial_soc is not None:
            soc, sigma = cfg.initial_soc, cfg.initial_soc_sigma
        else:
            slope = max(m.ocv_slope(soc), 0.05)
            v_sigma = math.hypot(s1, s2, cfg.voltage_sigma_v, 0.3 * m.r0(soc, temp, i_m) * abs(i_m))
            sigma = min(max(v_sigma / slope, 0.03) + (0.0 if resting else 0.02), 0.5)
        self.x[SOC], self.x[V1], self.x[V2] = soc, v1, v2
        self._slow_current = abs(i_m)  # unknown history: as if this load had lasted
        self.P = np.diag(
            [
                sigma**2,
                s1**2 + 1e-8,
                s2**2 + 1e-8,
                cfg.r0_sigma**2,
                (cfg.offset_sigma_c * self.q0) ** 2,
                cfg.capacity_sigma**2,
            ]
        )
        self._initialised = True

    # --- filter ---------------------------------------------------------------------------------

    def _predict(self, dt: float, i_m: float, temp: float | None, gap: bool) -> None:
        cfg, m, x = self.config, self.model, self.x
        q0s = 3600.0 * self.q0
        i = i_m - x[B]
        soc = float(x[SOC])
        r1, tau1, r2, tau2 = m.rc(soc, temp)
        a1, a2 = math.exp(-dt / tau1), math.exp(-dt / tau2)
        F = np.eye(_N)
        F[SOC, B] = -x[W] * dt / q0s
        F[SOC, W] = i * dt / q0s
        F[V1, V1], F[V1, B] = a1, -r1 * (1 - a1)
        F[V2, V2], F[V2, B] = a2, -r2 * (1 - a2)
        x[SOC] = soc + x[W] * i * dt / q0s
        x[V1] = a1 * x[V1] + r1 * (1 - a1) * i
        x[V2] = a2 * x[V2] + r2 * (1 - a2) * i
        self._ah += i * dt / 3600.0
        k = math.exp(-dt / cfg.relaxation_tau_s)
        self._slow_current = k * self._slow_current + (1 - k) * abs(i_m)
        sigma_i = cfg.current_sigma_c * self.q0
        q = np.array(
            [
                (sigma_i * dt / q0s) ** 2,
                cfg.rc_walk_v**2 * dt,
                (cfg.rc_walk_v**2 + (cfg.rc_load_walk * (r1 + r2) * abs(i)) ** 2) * dt,
                cfg.r0_walk**2 * dt,
                (cfg.offset_walk_c * self.q0) ** 2 * dt,
                cfg.capacity_walk**2 * dt,
            ]
        )
        if gap:
            # unknown current during the gap: up to the last current plus 5 % C either way
            q[SOC] += min(((abs(i_m) + 0.05 * self.q0) * dt / q0s) ** 2, 0.25)
            q[V1] += (r1 * abs(i_m)) ** 2
            q[V2] += (r2 * abs(i_m)) ** 2
        self.P = F @ self.P @ F.T + np.diag(q)

    def _update(self, v: float, i_m: float, temp: float | None) -> float:
        cfg, m, x = self.config, self.model, self.x
        i = i_m - x[B]
        soc = float(x[SOC])
        r0 = m.r0(soc, temp, i)
        ocv = m.ocv(soc, temp)
        polarisation = x[V1] + x[V2] + x[R] * r0 * i
        predicted = ocv + polarisation
        H = np.array([m.ocv_slope(soc), 1.0, 1.0, r0 * i, -x[R] * r0, 0.0])
        # slow relaxation the two RC pairs miss scales with the recent load: ``_slow_current``
        relaxation = cfg.relaxation_error_frac * m.dc_resistance(soc, temp, i) * self._slow_current
        # at rest, a voltage still visibly moving is relaxing more slowly than the model says:
        # what it may still do over the next ``relaxation_horizon_s`` is not evidence about SOC
        drift = self._rest_rate() * cfg.relaxation_horizon_s
        noise = cfg.voltage_sigma_v**2 + (cfg.model_error_frac * polarisation) ** 2 + relaxation**2 + drift**2
        residual = float(v - predicted)
        # The offset learns only from voltage the model explains well: during a settled rest,
        # once SOC has converged. Under load the model error is correlated over minutes.
        learn = self._rest.reading is not None and math.sqrt(self.P[SOC, SOC]) < cfg.learn_gate_sigma
        self._apply(H, residual, noise, learn)
        return residual

    def _apply(self, H: FloatArray, residual: float, noise: float, learn: bool) -> None:
        """Scalar measurement update, Joseph form, with gating and the consider-state rule."""
        P = self.P
        PHt = P @ H
        S = float(H @ PHt) + noise
        if residual * residual > 25.0 * S:
            # an outlier for the current covariance: weaken it to a 5 σ innovation, not drop it,
            # so a filter that is wrong (not the sample) still recovers
            noise += residual * residual / 25.0 - S
            S = float(H @ PHt) + noise
        K = PHt / S
        # Schmidt "consider" states: their covariance is carried (so SOC uncertainty includes
        # them) but the voltage does not move them. Capacity is never learned from the voltage
        # directly — only from pairs of settled rests (_capacity_from_rests), because even a
        # rest's voltage is still relaxing and would drag capacity along; the offset is learned
        # only during settled rests.
        K[W] = 0.0
        if not learn:
            K[B] = 0.0
        self.x = self.x + K * residual
        A = np.eye(_N) - np.outer(K, H)
        self.P = A @ P @ A.T + noise * np.outer(K, K)
        self._condition()

    def _condition(self) -> None:
        x, P = self.x, self.P
        x[SOC] = min(max(x[SOC], -0.05), 1.05)
        x[R] = min(max(x[R], 0.2), 5.0)
        x[W] = min(max(x[W], 0.5), 2.0)
        limit = 0.05 * self.q0
        x[B] = min(max(x[B], -limit), limit)
        P = 0.5 * (P + P.T)
        d = np.maximum(np.diag(P), self._floor)
        np.fill_diagonal(P, d)
        self.P = P

    # --- rests and capacity learning --------------------------------------------------------------

    def _rest_rate(self) -> float:
        """|dV/dt| per cell over the last minute of the present rest, V/s (0 when not resting)."""
        window = self._rest.window
        if len(window) < 2:
            return 0.0
        (t0, v0), (t1, v1) = window[0], window[-1]
        return abs(v1 - v0) / max(t1 - t0, 1e-9)

    def _track_rest(self, dt: float, v: float, i_m: float, temp: float | None) -> None:
        cfg, rest = self.config, self._rest
        if abs(i_m) >= cfg.rest_current_c * self.q0:
            if rest.reading is not None:
                self._last_rest = rest.reading  # the most relaxed reading of the rest that ended
            self._rest = _RestTracker()
            return
        rest.duration_s += dt
        rest.window.append((rest.duration_s, v))
        while rest.window and rest.window[0][0] < rest.duration_s - 60.0:
            rest.window.pop(0)
        if rest.duration_s < cfg.rest_min_s or len(rest.window) < 2:
            return
        (t0, v0), (t1, v1) = rest.window[0], rest.window[-1]
        rate = abs(v1 - v0) / max(t1 - t0, 1e-9)
        if rate > cfg.rest_settled_v_per_s:
            return
        m = self.model
        polar = float(self.x[V1] + self.x[V2])
        soc = m.soc_from_ocv(v - polar, temp)
        slope = max(m.ocv_slope(soc), 0.05)
        # remaining relaxation: the present rate over ~10 min more, plus the model's own residue
        v_sigma = math.hypot(cfg.voltage_sigma_v, rate * 600.0, cfg.model_error_frac * polar)
        first = rest.reading is None
        rest.reading = _Rest(soc=soc, sigma=v_sigma / slope, ah=self._ah)
        if first and self._last_rest is not None:
            self._capacity_from_rests(self._last_rest, rest.reading)

    def _capacity_from_rests(self, previous: _Rest, reading: _Rest) -> None:
        """Two OCV readings at rest and the charge between them: one capacity measurement."""
        delta_soc = reading.soc - previous.soc
        if abs(delta_soc) < self.config.capacity_min_delta_soc:
            return
        q_cell = (reading.ah - previous.ah) / delta_soc
        if q_cell <= 0:
            return
        rel = math.hypot(reading.sigma, previous.sigma) / abs(delta_soc)
        self.capacity_readings.append((q_cell * self.config.parallel, q_cell * rel * self.config.parallel))
        w_meas = self.q0 / q_cell
        H = np.zeros(_N)
        H[W] = 1.0
        noise = (w_meas * rel) ** 2
        PHt = self.P @ H
        K = PHt / (float(H @ PHt) + noise)
        self.x = self.x + K * (w_meas - float(self.x[W]))
        A = np.eye(_N) - np.outer(K, H)
        self.P = A @ self.P @ A.T + noise * np.outer(K, K)
        self._condition()

    # --- output ---------------------------------------------------------------------------------

    def _record(self, time_s: float, i_m: float, temp: float | None, residual: float) -> EstimateStep:
        cfg, m, x = self.config, self.model, self.x
        cap_cell = self.q0 / float(x[W])
        cap_sigma = cap_cell * math.sqrt(self.P[W, W]) / float(x[W])
        r0_cell = float(x[R]) * m.r0(float(x[SOC]), temp, i_m - float(x[B]))
        return EstimateStep(
            time_s=time_s,
            soc=self.soc,
            soc_sigma=math.sqrt(float(self.P[SOC, SOC])),
            capacity_ah=cap_cell * cfg.parallel,
            capacity_sigma_ah=cap_sigma * cfg.parallel,
            soh_pct=100.0 * cap_cell * cfg.parallel / self.design_ah,
            r0_ohm=r0_cell * cfg.series / cfg.parallel,
            r0_growth=float(x[R]),
            current_offset_a=float(x[B]) * cfg.parallel,
            residual_v=residual,
            resting=abs(i_m) < cfg.rest_current_c * self.q0,
        )


# --- replay ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EstimateSeries:
    """The estimator's output for a whole log, one entry per good sample."""

    time_s: FloatArray
    soc: FloatArray
    soc_sigma: FloatArray
    capacity_ah: FloatArray
    r0_ohm: FloatArray
    r0_growth: FloatArray
    current_offset_a: FloatArray
    soh_pct: FloatArray
    capacity_readings: tuple[tuple[float, float], ...] = ()

    def columns(self) -> dict[str, FloatArray]:
        """The output CSV columns: ``time_s, soc, soc_sigma, capacity_ah, r0_ohm``."""
        return {
            "time_s": self.time_s,
            "soc": self.soc,
            "soc_sigma": self.soc_sigma,
            "capacity_ah": self.capacity_ah,
            "r0_ohm": self.r0_ohm,
        }


def run_log(
    model: CellModel,
    log: LogData,
    config: EstimatorConfig | None = None,
    progress: Callable[[int, int], None] | None = None,
    observer: Callable[[SocEstimator, int], None] | None = None,
) -> EstimateSeries:
    """Replay ``log`` through a fresh :class:`SocEstimator`.

    :param progress: called as ``progress(done, total)`` every 1000 samples and at the end.
    :param observer: called as ``observer(estimator, index)`` after every sample (e.g. for the
        state of power).
    :raises RangeError: if ``config`` is out of range.
    """
    est = SocEstimator(model, config)
    n = len(log)
    out = np.empty((8, n))
    temps: Sequence[float] = log.temperature_c.tolist()
    times, volts, amps, gaps = log.time_s.tolist(), log.voltage_v.tolist(), log.current_a.tolist(), log.gap_before
    for k in range(n):
        s = est.step(times[k], volts[k], amps[k], temps[k], gap=bool(gaps[k]))
        out[:, k] = (
            s.time_s, s.soc, s.soc_sigma, s.capacity_ah, s.r0_ohm, s.r0_growth, s.current_offset_a, s.soh_pct,
        )  # fmt: skip
        if observer is not None:
            observer(est, k)
        if progress is not None and (k % 1000 == 999 or k == n - 1):
            progress(k + 1, n)
    return EstimateSeries(
        time_s=out[0],
        soc=out[1],
        soc_sigma=out[2],
        capacity_ah=out[3],
        r0_ohm=out[4],
        r0_growth=out[5],
        current_offset_a=out[6],
        soh_pct=out[7],
        capacity_readings=tuple(est.capacity_readings),
    )


# --- comparison with the gauge -------------------------------------------------------------------------


@dataclass(frozen=True)
class GaugeDivergence:
    """Where the independent estimate and the gauge's own figures disagree."""

    #: RMS and largest |our SOC − gauge RelativeStateOfCharge|, SOC points (%), after ``skip_s``.
    soc_rms_points: float | None
    soc_max_points: float | None
    #: time of the largest SOC disagreement, s.
    soc_max_at_s: float | None
    #: our capacity − the gauge's FullChargeCapacity at the end of the log, Ah and % of the gauge's.
    capacity_diff_ah: float | None
    capacity_diff_pct: float | None


def compare_with_gauge(
    series: EstimateSeries,
    rsoc_pct: FloatArray | None = None,
    fcc_mah: FloatArray | None = None,
    *,
    skip_s: float = 600.0,
) -> GaugeDivergence:
    """Compare the estimate with the gauge's RelativeStateOfCharge (%) and FullChargeCapacity (mAh).

    ``skip_s`` leaves out the estimator's own convergence at the start of the log.
    """
    soc_rms = soc_max = soc_at = cap_diff = cap_pct = None
    if rsoc_pct is not None and rsoc_pct.size == series.soc.size:
        mask = series.time_s >= series.time_s[0] + skip_s
        if not mask.any():
            mask = np.ones_like(mask)
        diff = 100.0 * series.soc[mask] - rsoc_pct[mask]
        k = int(np.argmax(np.abs(diff)))
        soc_rms = float(np.sqrt(np.mean(diff**2)))
        soc_max = float(diff[k])
        soc_at = float(series.time_s[mask][k])
    if fcc_mah is not None and fcc_mah.size == series.soc.size and fcc_mah[-1] > 0:
        gauge_ah = float(fcc_mah[-1]) / 1000.0
        cap_diff = float(series.capacity_ah[-1]) - gauge_ah
        cap_pct = 100.0 * cap_diff / gauge_ah
    return GaugeDivergence(soc_rms, soc_max, soc_at, cap_diff, cap_pct)
