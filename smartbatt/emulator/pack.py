"""A battery pack: series groups of parallel cells, with spread, heat, balancing, faults and ageing.

The physics side of the virtual smart battery. The gauge (``emulator/gauge.py``) measures this
pack and decides FETs, protections and which cells to balance; the physics never does.

Model summary (units SI, SBS sign convention: positive current charges):

* **Cells**: :class:`~smartbatt.emulator.cell.CellGroups`, a 2-RC equivalent circuit per series
  group. Parallel cells of a group are lumped: capacities add, resistances combine in parallel,
  and they share one SOC (parallel cells equalise through their interconnect).
* **Spread**: every cell draws its capacity, resistance and initial SOC from
  ``numpy.random.default_rng(seed)``, so two packs with one seed are identical and imbalance is real.
* **Group current** = pack current − balancing bleed − internal-short leak − self-discharge.
  The bleed and the leak flow inside the pack: the gauge's sense resistor does not see them.
* **Heat** per group: I²·R0 + Σ v_k²/R_k (RC pairs) + bleed resistor + short + ``extra_heat``;
  convection h·A to ambient and conduction to neighbouring groups; integrated with an exponential
  update that is stable at any step length.
* **Ageing**: capacity fades and resistance grows linearly with equivalent full cycles
  (throughput / 2 / capacity) and with the square root of calendar days.
* **Limits**: see :mod:`smartbatt.emulator.cell`: a group driven past an empty or full electrode
  stops changing SOC and its terminal voltage collapses (or climbs); voltages never go below 0 V.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np
import numpy.typing as npt

from smartbatt.emulator.cell import CellGroups
from smartbatt.emulator.chemistry import CHEMISTRIES, Chemistry, FloatArray, load_chemistry

#: seconds per day and per (30-day) month.
DAY_S = 86400.0
MONTH_S = 30 * DAY_S

#: How often (simulated seconds) ageing factors are refreshed; they move slowly.
AGEING_PERIOD_S = 60.0

#: Default bleed current of a balancing resistor, A (a few tens of mA is typical of
#: gauge-internal balancing FETs with external resistors).
DEFAULT_BALANCE_CURRENT_A = 0.05

#: Spread draws are clipped to ±4 standard deviations so a wide spread never yields a negative cell.
_SPREAD_CLIP = 4.0


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, not {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be in {low:g}..{high:g}, not {value!r}")


@dataclass(frozen=True)
class PackConfig:
    """Static description of an emulated pack. Out-of-range values raise ``ValueError`` naming the field."""

    #: ``nmc`` (NMC/graphite cylindrical), ``lco`` (LiCoO2 pouch) or ``lfp``.
    chemistry: str = "nmc"
    #: series groups, 1..16.
    series: int = 4
    #: cells in parallel per group, 1..4.
    parallel: int = 1
    #: nominal capacity of one cell, Ah (0.05..100).
    cell_capacity_ah: float = 3.0
    #: seed of the per-cell spread.
    seed: int = 0
    #: relative standard deviation of cell capacity (0..0.2).
    capacity_spread: float = 0.02
    #: relative standard deviation of cell resistances (0..0.5).
    resistance_spread: float = 0.05
    #: absolute standard deviation of initial cell SOC (0..0.2).
    soc_spread: float = 0.01
    #: mean initial SOC, 0..1.
    initial_soc: float = 0.8
    #: ambient (and initial cell) temperature, °C (-40..85).
    ambient_c: float = 25.0
    #: equivalent full cycles already done (ageing), >= 0.
    cycles: float = 0.0
    #: calendar age in days (ageing), >= 0.
    age_days: float = 0.0

    def __post_init__(self) -> None:
        if self.chemistry not in CHEMISTRIES:
            raise ValueError(f"chemistry must be one of {', '.join(CHEMISTRIES)}, not {self.chemistry!r}")
        for name, low, high in (("series", 1, 16), ("parallel", 1, 4)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValueError(f"{name} must be an integer in {low}..{high}, not {value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, not {self.seed!r}")
        _check_range("cell_capacity_ah", self.cell_capacity_ah, 0.05, 100.0)
        _check_range("capacity_spread", self.capacity_spread, 0.0, 0.2)
        _check_range("resistance_spread", self.resistance_spread, 0.0, 0.5)
        _check_range("soc_spread", self.soc_spread, 0.0, 0.2)
        _check_range("initial_soc", self.initial_soc, 0.0, 1.0)
        _check_range("ambient_c", self.ambient_c, -40.0, 85.0)
        _check_range("cycles", self.cycles, 0.0, 1e5)
        _check_range("age_days", self.age_days, 0.0, 1e5)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """Names of the configuration fields (for URI options and the CLI)."""
        return tuple(f.name for f in fields(cls))


def _spread(rng: np.random.Generator, size: int, sigma: float) -> FloatArray:
    """Standard-normal draws times ``sigma``, clipped at ±4 sigma. Always draws (keeps streams aligned)."""
    draws = np.clip(rng.standard_normal(size), -_SPREAD_CLIP, _SPREAD_CLIP)
    return np.asarray(draws * sigma)


def balance_mask(voltages: npt.ArrayLike, threshold_v: float) -> npt.NDArray[np.bool_]:
    """Groups to bleed: those more than ``threshold_v`` above the lowest group.

    A simple voltage-based passive balancing rule for tests and the standalone emulator; the
    gauge model may use its own (SOC-based) decision.

    :raises ValueError: for a negative or non-finite threshold.
    """
    _check_range("threshold_v", threshold_v, 0.0, 5.0)
    v = np.asarray(voltages, dtype=np.float64)
    return np.asarray(v > v.min() + threshold_v)


class Pack:
    """The emulated pack. See the module docstring for the model.

    :param config: the pack description.
    :raises ValueError: if ``config`` is not a :class:`PackConfig`.
    :raises ProfileError: if the chemistry data file is invalid.
    """

    def __init__(self, config: PackConfig) -> None:
        if not isinstance(config, PackConfig):
            raise ValueError("config must be a PackConfig")
        self.config = config
        self.chemistry: Chemistry = load_chemistry(config.chemistry)
        self.time_s = 0.0
        self._ambient_c = float(config.ambient_c)
        self.balance_current_a = DEFAULT_BALANCE_CURRENT_A
        n = config.series
        self._build_cells(config)
        self._build_thermal(config)
        self._balancing = np.zeros(n, dtype=bool)
        self._any_balancing = False
        self._short_siemens = np.zeros(n)  # conductance of each internal short, 0 = none
        self._any_short = False
        self._extra_heat = np.zeros(n)
        self._current = 0.0
        self._throughput_ah = np.zeros(n)
        self._next_ageing_s = AGEING_PERIOD_S
        self._apply_ageing()
        self.cells.update_outputs(self._temperature)

    # --- construction --------------------------------------------------------------------------

    def _build_cells(self, config: PackConfig) -> None:
        """Draw per-cell spreads and lump each group's parallel cells."""
        chem = load_chemistry(config.chemistry)
        n, p = config.series, config.parallel
        rng = np.random.default_rng(config.seed)
        cap_factor = 1.0 + _spread(rng, n * p, config.capacity_spread)
        res_factor = 1.0 + _spread(rng, n * p, config.resistance_spread)
        soc_offset = _spread(rng, n * p, config.soc_spread)
        cell_cap = (config.cell_capacity_ah * cap_factor).reshape(n, p)
        cell_res = res_factor.reshape(n, p) / config.cell_capacity_ah  # ohm per ohm·Ah
        cell_soc = np.clip(config.initial_soc + soc_offset, 0.0, 1.0).reshape(n, p)
        group_cap = cell_cap.sum(axis=1)
        group_res = 1.0 / (1.0 / cell_res).sum(axis=1)  # parallel combination, per unit ohm·Ah
        group_soc = (cell_cap * cell_soc).sum(axis=1) / group_cap  # charge-weighted: cells equalise
        #: fresh capacity per group, Ah (before fade).
        self._fresh_capacity_ah = group_cap
        self._fresh_r = {name: group_res * getattr(chem, f"{name}_ohm_ah") for name in ("r0", "r1", "r2")}
        self.cells = CellGroups(
            chem,
            capacity_ah=group_cap,
            r0_ohm=self._fresh_r["r0"],
            r1_ohm=self._fresh_r["r1"],
            r2_ohm=self._fresh_r["r2"],
            soc=group_soc,
            saturation_ohm=chem.saturation_ohm_ah / group_cap,
        )
        # self-discharge as a small constant leak, A per group (refreshed with ageing)
        self._self_discharge_a = group_cap * chem.self_discharge_per_month * 3600.0 / MONTH_S

    def _build_thermal(self, config: PackConfig) -> None:
        """Heat capacity and conductances per group, scaled from the chemistry's reference cell."""
        chem = self.chemistry
        n, p = config.series, config.parallel
        scale = config.cell_capacity_ah / chem.ref_capacity_ah
        mass = chem.ref_mass_kg * scale
        area = chem.ref_area_m2 * scale ** (2.0 / 3.0)
        #: heat capacity per group, J/K.
        self.heat_capacity_j_per_k = p * mass * chem.specific_heat_j_per_kg_k
        #: convective conductance to ambient per group, W/K.
        self.convection_w_per_k = p * area * chem.heat_transfer_w_per_m2_k
        self._k_neighbour = chem.neighbour_conductance_w_per_k if n > 1 else 0.0
        neighbours = np.full(n, 2.0)
        neighbours[0] = neighbours[-1] = 1.0  # the end groups have one neighbour (none when n == 1)
        self._conductance = self.convection_w_per_k + self._k_neighbour * neighbours  # W/K, total per group
        self._thermal_rate = self._conductance / self.heat_capacity_j_per_k  # 1/s
        self._thermal_dt = -1.0
        self._thermal_decay = np.zeros(n)
        self._temperature = np.full(n, float(config.ambient_c))
        self._neighbour_sum = np.zeros(n)

    # --- ageing --------------------------------------------------------------------------------

    @property
    def equivalent_cycles(self) -> FloatArray:
        """Equivalent full cycles per group: initial ``cycles`` + throughput / (2 × capacity)."""
        return np.asarray(self.config.cycles + self._throughput_ah / (2.0 * self._fresh_capacity_ah))

    @property
    def age_days(self) -> float:
        """Calendar age, days: initial ``age_days`` + simulated time."""
        return self.config.age_days + self.time_s / DAY_S

    def _apply_ageing(self) -> None:
        """Refresh capacity and base resistances from cycles and calendar age."""
        chem = self.chemistry
        cycles = self.equivalent_cycles
        root_days = math.sqrt(self.age_days)
        fade = np.clip(chem.fade_per_cycle * cycles + chem.fade_per_sqrt_day * root_days, 0.0, 0.9)
        growth = 1.0 + chem.growth_per_cycle * cycles + chem.growth_per_sqrt_day * root_days
        # SOC is a fraction of the present capacity: fade removes charge in proportion
        self.cells.capacity_ah = self._fresh_capacity_ah * (1.0 - fade)
        self.cells.r0_base = self._fresh_r["r0"] * growth
        self.cells.r1_base = self._fresh_r["r1"] * growth
        self.cells.r2_base = self._fresh_r["r2"] * growth
        self._self_discharge_a = self.cells.capacity_ah * chem.self_discharge_per_month * 3600.0 / MONTH_S

    # --- the step ------------------------------------------------------------------------------

    def step(self, dt_s: float, current_a: float) -> None:
        """Advance by ``dt_s`` seconds with pack current ``current_a`` (A; positive = charging).

        The caller has already applied FET states: it passes 0 when the path is open.

        :raises ValueError: for a negative or non-finite ``dt_s`` or a non-finite current.
        """
        if not (dt_s >= 0.0 and math.isfinite(dt_s)):
            raise ValueError(f"dt_s must be a finite number >= 0, not {dt_s!r}")
        if not math.isfinite(current_a):
            raise ValueError(f"current_a must be finite, not {current_a!r}")
        if dt_s == 0.0:
            return
        cells = self.cells
        temperature = self._temperature
        # internal flows that bypass the sense resistor; the short sees the OCV behind R0
        group_current = current_a - self._self_discharge_a
        bleed = self._balancing * self._balance_current_a if self._any_balancing else None
        if bleed is not None:
            group_current -= bleed
        leak = None
        if self._any_short:
            g = self._short_siemens
            leak = cells.ocv * g / (1.0 + g * cells.r0)
            group_current -= leak
        cells.step(dt_s, group_current, temperature)
        heat = group_current * group_current * cells.r0
        heat += cells.rc_heat_w()
        heat += self._extra_heat
        if bleed is not None:
            heat += bleed * cells.voltage  # the bleed resistor sits on the group
        if leak is not None:
            heat += leak * (cells.ocv - leak * cells.r0)  # dissipated in the short itself
        self._thermal_step(dt_s, heat)
        self._throughput_ah += np.abs(group_current) * (dt_s / 3600.0)
        self._current = float(current_a)
        self.time_s += dt_s
        if self.time_s >= self._next_ageing_s:
            self._next_ageing_s = self.time_s + AGEING_PERIOD_S
            self._apply_ageing()

    def _thermal_step(self, dt_s: float, heat_w: FloatArray) -> None:
        """Exponential relaxation towards the equilibrium set by ambient, neighbours and heat.

        T_eq = (hA·T_amb + k·(T_left + T_right) + Q) / (hA + n·k); T ← T_eq + (T − T_eq)·e^(−dt·(hA+n·k)/C).
        Each group moves towards a weighted mean of its surroundings, so it cannot overshoot.
        """
        t = self._temperature
        if dt_s != self._thermal_dt:
            self._thermal_dt = dt_s
            self._thermal_decay = np.exp(-self._thermal_rate * dt_s)
        ns = self._neighbour_sum
        if self._k_neighbour:
            ns[:] = 0.0
            ns[1:] += t[:-1]
            ns[:-1] += t[1:]
        equilibrium = (self.convection_w_per_k * self._ambient_c + self._k_neighbour * ns + heat_w) / self._conductance
        t -= equilibrium
        t *= self._thermal_decay
        t += equilibrium

    # --- measurements --------------------------------------------------------------------------

    @property
    def cell_voltages(self) -> FloatArray:
        """Terminal voltage per series group, V (index 0 = cell 1, bottom of the stack)."""
        return self.cells.voltage.copy()

    @property
    def cell_temperatures(self) -> FloatArray:
        """Temperature per series group, °C."""
        return self._temperature.copy()

    @property
    def cell_soc(self) -> FloatArray:
        """True SOC per series group, 0..1 (an over-charged or over-discharged group reads 1 or 0)."""
        return np.clip(self.cells.soc, 0.0, 1.0)

    @property
    def cell_ocv(self) -> FloatArray:
        """Open-circuit voltage per group at its SOC and temperature, V."""
        return self.cells.ocv.copy()

    @property
    def rc_voltages(self) -> FloatArray:
        """Voltage across both RC pairs per group, V (the relaxing part of the overpotential)."""
        return np.asarray(self.cells.v1 + self.cells.v2)

    @property
    def voltage(self) -> float:
        """Pack terminal voltage, V: the sum of the group voltages."""
        return float(self.cells.voltage.sum())

    @property
    def current(self) -> float:
        """The last pack current applied, A (positive = charging)."""
        return self._current

    @property
    def capacity_ah(self) -> FloatArray:
        """True present capacity per group (after fade), Ah."""
        return self.cells.capacity_ah.copy()

    @property
    def resistance_ohm(self) -> FloatArray:
        """Present R0 per group (after growth, at its present temperature and SOC), ohm."""
        return self.cells.r0.copy()

    def min_max_cell(self) -> tuple[float, float]:
        """Lowest and highest group terminal voltage, V."""
        v = self.cells.voltage
        return float(v.min()), float(v.max())

    # --- environment, balancing and fault hooks -----------------------------------------------

    @property
    def ambient_c(self) -> float:
        """Ambient temperature, °C; settable (-40..85)."""
        return self._ambient_c

    @ambient_c.setter
    def ambient_c(self, value: float) -> None:
        _check_range("ambient_c", value, -40.0, 85.0)
        self._ambient_c = float(value)

    @property
    def balance_current_a(self) -> float:
        """Bleed current of a balancing resistor when on, A (0..1)."""
        return self._balance_current_a

    @balance_current_a.setter
    def balance_current_a(self, value: float) -> None:
        _check_range("balance_current_a", value, 0.0, 1.0)
        self._balance_current_a = float(value)

    def set_balancing(self, mask: npt.ArrayLike) -> None:
        """Switch the bleed resistors: one bool per series group.

        :raises ValueError: if ``mask`` does not have one boolean per group.
        """
        m = np.asarray(mask)
        if m.shape != (self.config.series,) or m.dtype != np.bool_:
            raise ValueError(f"balancing mask must be {self.config.series} booleans, got {m.dtype} {m.shape}")
        self._balancing = m.copy()
        self._any_balancing = bool(m.any())

    @property
    def balancing(self) -> npt.NDArray[np.bool_]:
        """Which bleed resistors are on."""
        return self._balancing.copy()

    def _check_group(self, group: int) -> None:
        if isinstance(group, bool) or not isinstance(group, int | np.integer) or not 0 <= group < self.config.series:
            raise ValueError(f"group must be in 0..{self.config.series - 1}, not {group!r}")

    def set_internal_short(self, group: int, resistance_ohm: float | None) -> None:
        """Put a leak of ``resistance_ohm`` across one group (``None`` heals it).

        :raises ValueError: for a bad group index or a resistance that is not positive and finite.
        """
        self._check_group(group)
        if resistance_ohm is None:
            self._short_siemens[group] = 0.0
        else:
            _check_range("resistance_ohm", resistance_ohm, 1e-4, 1e9)
            self._short_siemens[group] = 1.0 / float(resistance_ohm)
        self._any_short = bool(self._short_siemens.any())

    def set_extra_heat(self, group: int, watts: float) -> None:
        """A heat source of ``watts`` (>= 0) inside one group (thermal-runaway precursor).

        :raises ValueError: for a bad group index or a negative or non-finite power.
        """
        self._check_group(group)
        _check_range("watts", watts, 0.0, 1e4)
        self._extra_heat[group] = float(watts)
