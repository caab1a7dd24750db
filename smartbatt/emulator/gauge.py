"""Gauge behaviour: SBS registers computed the way a fuel gauge computes them, not read from the physics.

The gauge only sees what its ADCs measure: cell and pack voltages quantised to 1 mV with noise, the
current through the sense resistor quantised to 1 mA with an offset and noise (and a deadband, as TI
gauges report 0 mA for tiny currents), and the thermistor temperatures quantised to 0.1 K. From these
it keeps its own state of charge, so its numbers can be wrong in the ways a real gauge's are.

What is modelled (an Impedance-Track-like simplification, TI SLUUCH2/SLUUBT5C for the rules):

* **Operating mode** — CHARGE when Current() ≥ Chg Current Threshold, DISCHARGE when ≤ −Dsg Current
  Threshold, RELAX after |Current()| < Quit Current for the relax time. BatteryStatus[DSG] = 0 only in
  CHARGE (sbs.md §3).
* **Coulomb counting** of the *measured* current (offset included) into RemainingCapacity.
* **OCV correction at rest**: after ``ocv_rest_s`` in RELAX the gauge reads the (relaxed) cell voltages,
  converts the lowest through its OCV table (the ChemID equivalent, built from the emulator's chemistry
  at 25 °C) to a SOC and resets RemainingCapacity = FCC × SOC. The same reading initialises the gauge
  at power-up and after a reset.
* **End-of-discharge convergence**: real Impedance Track predicts where the cell voltage under the
  present load reaches Term Voltage and makes RemainingCapacity reach 0 there. This model does not
  simulate the cell's resistance; it caps RSOC at fixed points as the minimum cell voltage approaches
  Term Voltage (7 % at +250 mV, 3 % at +100 mV, 0 % at Term Voltage; the CEDV gauges' EDV2/EDV1/EDV0
  idea, values chosen). RemainingCapacity therefore jumps near the end when the learned FCC is off.
* **FCC learning** after a *qualified discharge*: a discharge that starts from a known state (a valid
  charge termination, or an OCV reading at ≥ 90 % SOC) and reaches Term Voltage without charge in
  between. FCC becomes the charge actually delivered (scaled by the starting SOC). It is therefore the
  capacity available at that rate down to Term Voltage — less than the physics' true capacity.
  Impedance Track's separate QMax/Ra learning and temperature compensation are not modelled.
* **CycleCount** by the TI rule: accumulated discharge ≥ Cycle Count Percentage (90 %) of
  DesignCapacity increments it (SLUUCH2 "Gas Gauging:Cycle:Cycle Count Percentage", default 90 %,
  [CCT] = 0 → DesignCapacity).
* **Charge termination** (valid charge termination, VCT): in CHARGE, AverageCurrent below the taper
  current and the max cell within Charge Term Voltage of the charging voltage for two 40 s periods →
  FC and TC set, RemainingCapacity = FCC.
* **FC/FD/TC/TD** flags set and cleared per the TI "SOC Flag Config" defaults (RSOC thresholds:
  SLUUCO9A TD 6 %/8 %, TC clear 95 %; SOC Flag Config B 0x8C, SLUUBT5C), combined with the
  protections into BatteryStatus per the TI alarm summary (SLUUBT5C §6.8).
* **ChargingCurrent/ChargingVoltage** from the advanced charging algorithm: temperature range
  (UT/LT/STL/RT/STH/HT/OT from T1..T6 with hysteresis) × voltage range (PV/LV/MV/HV of the max cell).
* **MaxError** grows with charge counted since the last correction; CONDITION_FLAG above 8 %.

Not modelled: Ra tables, QMax updates from two OCV points, temperature/rate compensation of
FCC, RSOC smoothing, charge inhibit/suspend, maintenance charge, SLEEP mode, lifetime data.
"""

from __future__ import annotations

import bisect
import enum
import math
import random
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import ClassVar, Protocol

import numpy as np
import numpy.typing as npt

from smartbatt.emulator.pack_faults import PackFaults
from smartbatt.emulator.protections import ProtectionInputs, ProtectionState

#: 0 °C in 0.1 K (SBS Temperature() unit; sbs.md §1 gives 2982 → 25.05 °C).
ZERO_C_DECI_K = 2731.5
#: SBS "not (dis)charging" sentinel for the time registers (sbs.md §1).
NOT_APPLICABLE = 0xFFFF
#: largest time a time register reports, min.
MAX_MINUTES = 0xFFFE


class _MeasuredPack(Protocol):
    """The parts of :class:`smartbatt.emulator.pack.Pack` the gauge measures."""

    @property
    def cell_voltages(self) -> npt.NDArray[np.float64]: ...

    @property
    def cell_temperatures(self) -> npt.NDArray[np.float64]: ...

    @property
    def current(self) -> float: ...


class Mode(enum.Enum):
    """Gauge operating mode (TI: CHARGE, DISCHARGE, RELAX)."""

    CHARGE = "charge"
    DISCHARGE = "discharge"
    RELAX = "relax"


# ------------------------------------------------------------------------------------------------
# parameters (data flash of the emulated gauge)
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChargingRange:
    """Advanced charging algorithm settings for one temperature range (per cell)."""

    voltage_mv: int
    current_low_ma: int
    current_med_ma: int
    current_high_ma: int


#: TI default temperature ranges of the advanced charging algorithm, °C. Order and meaning from the
#: bq40z80/bq40z50 TRMs (ChargingStatus ranges UT < T1 ≤ LT < T2 ≤ STL < T5 ≤ RT < T6 ≤ STH < T3 ≤
#: HT < T4 ≤ OT); the values are UNCONFIRMED bq40z50 defaults. Hysteresis 1 °C: SLUUCH2
#: "Temperature Ranges:Hysteresis Temp T3/T4" default 1 °C.
DEFAULT_TEMPERATURES_C: Mapping[str, float] = {"T1": 0.0, "T2": 12.0, "T5": 20.0, "T6": 25.0, "T3": 45.0, "T4": 55.0}

#: Per-range charging voltage (mV/cell) and currents (mA) for the voltage ranges low/med/high.
#: Confirmed (SLUUCH2 / SLUUBT5C DF pages): Rec Temp 2508/4488/3520 mA, Standard Temp Low 1980/4004 mA,
#: Standard Temp High current low 1980 mA. The rest (voltages, LT, HT, the remaining STL/STH current) are
#: UNCONFIRMED bq40z50 defaults. TI states them for its default 4400 mAh design (UNCONFIRMED); the
#: emulator scales currents pro rata to the pack's DesignCapacity (see :meth:`ChargingParameters.scaled`).
DEFAULT_RANGES: Mapping[str, ChargingRange] = {
    "LT": ChargingRange(4000, 132, 352, 264),
    "STL": ChargingRange(4200, 1980, 4004, 2992),
    "RT": ChargingRange(4200, 2508, 4488, 3520),
    "STH": ChargingRange(4200, 1980, 4004, 2992),
    "HT": ChargingRange(4000, 1012, 1980, 1496),
}

#: Design capacity the TI charging/current defaults belong to, mAh (bq40z50 DF default, UNCONFIRMED).
TI_REFERENCE_CAPACITY_MAH = 4400


@dataclass(frozen=True)
class ChargingParameters:
    """TI advanced charging algorithm: temperature ranges × cell-voltage ranges."""

    temperatures_c: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_TEMPERATURES_C))
    hysteresis_c: float = 1.0
    ranges: Mapping[str, ChargingRange] = field(default_factory=lambda: dict(DEFAULT_RANGES))
    #: Charging Voltage Low/Med/High: the cell-voltage range borders, mV (UNCONFIRMED defaults).
    voltage_low_mv: int = 2900
    voltage_med_mv: int = 3600
    voltage_high_mv: int = 4000
    #: Pre-Charging current below Charging Voltage Low, mA (UNCONFIRMED default).
    precharge_ma: int = 88

    def __post_init__(self) -> None:
        t = self.temperatures_c
        order = [t[k] for k in ("T1", "T2", "T5", "T6", "T3", "T4")]
        if order != sorted(order):
            raise ValueError("charging temperatures must satisfy T1 ≤ T2 ≤ T5 ≤ T6 ≤ T3 ≤ T4")
        if not self.voltage_low_mv <= self.voltage_med_mv <= self.voltage_high_mv:
            raise ValueError("charging voltage ranges must satisfy Low ≤ Med ≤ High")
        if set(self.ranges) != {"LT", "STL", "RT", "STH", "HT"}:
            raise ValueError("charging ranges must be LT, STL, RT, STH and HT")

    def scaled(self, factor: float) -> ChargingParameters:
        """The same algorithm with every current multiplied by ``factor``."""
        ranges = {
            k: replace(
                r,
                current_low_ma=round(r.current_low_ma * factor),
                current_med_ma=round(r.current_med_ma * factor),
                current_high_ma=round(r.current_high_ma * factor),
            )
            for k, r in self.ranges.items()
        }
        return replace(self, ranges=ranges, precharge_ma=round(self.precharge_ma * factor))

    #: range names from cold to hot and the temperature key of each upper border.
    _ORDER: ClassVar[tuple[str, ...]] = ("UT", "LT", "STL", "RT", "STH", "HT", "OT")

    @cached_property
    def _borders(self) -> tuple[float, ...]:
        """The range borders T1, T2, T5, T6, T3, T4, °C (ascending: checked in ``__post_init__``)."""
        return tuple(self.temperatures_c[k] for k in ("T1", "T2", "T5", "T6", "T3", "T4"))

    def temperature_range(self, temp_c: float, previous: str | None = None) -> str:
        """ChargingStatus temperature range for ``temp_c``: the previous range is kept while the
        temperature is within the hysteresis of it (TI applies it when leaving a range)."""
        borders = self._borders
        # bisect_right on the ascending borders = the number of borders b with temp >= b
        if previous in self._ORDER:
            prev = self._ORDER.index(previous)
            low = bisect.bisect_right(borders, temp_c - self.hysteresis_c)
            if low <= prev <= bisect.bisect_right(borders, temp_c + self.hysteresis_c):
                return self._ORDER[prev]
        return self._ORDER[bisect.bisect_right(borders, temp_c)]

    def voltage_range(self, max_cell_mv: float) -> str:
        """ChargingStatus voltage range PV/LV/MV/HV of the max cell voltage (CELL_VAL = 0,0: SLUUCH2)."""
        if max_cell_mv < self.voltage_low_mv:
            return "PV"
        if max_cell_mv < self.voltage_med_mv:
            return "LV"
        if max_cell_mv < self.voltage_high_mv:
            return "MV"
        return "HV"

    def request(self, temp_range: str, voltage_range: str) -> tuple[int, int]:
        """(ChargingVoltage per cell mV, ChargingCurrent mA) before termination/protection overrides.

        :raises KeyError: an unknown temperature or voltage range name.
        """
        if temp_range in ("UT", "OT"):
            return 0, 0
        return self._requests[temp_range, voltage_range]

    @cached_property
    def _requests(self) -> Mapping[tuple[str, str], tuple[int, int]]:
        """Every (temperature range, voltage range) → request of :meth:`request`, built once."""
        table: dict[tuple[str, str], tuple[int, int]] = {}
        for name, settings in self.ranges.items():
            currents = {
                "PV": self.precharge_ma,
                "LV": settings.current_low_ma,
                "MV": settings.current_med_ma,
                "HV": settings.current_high_ma,
            }
            for voltage_range, current in currents.items():
                table[name, voltage_range] = (settings.voltage_mv, current)
        return table


@dataclass(frozen=True)
class GaugeParameters:
    """The gauge's configuration (its data flash). Currents in mA, voltages in mV (per cell unless noted)."""

    design_capacity_mah: int = 3000
    design_voltage_mv: int = 14400
    cells: int = 4
    #: Gas Gauging:Cycle:Cycle Count Percentage, % of DesignCapacity (SLUUCH2, default 90 %).
    cycle_count_percentage: float = 90.0
    #: Term Voltage per cell, mV (UNCONFIRMED bq40z50 default 3000 mV/cell).
    term_voltage_mv: float = 3000.0
    #: end-of-discharge caps: (mV above Term Voltage, highest RSOC %) — chosen, see module docstring.
    edv_points: tuple[tuple[float, float], ...] = ((250.0, 7.0), (100.0, 3.0), (0.0, 0.0))
    #: Current Thresholds (UNCONFIRMED bq40z50 defaults).
    dsg_current_threshold_ma: float = 100.0
    chg_current_threshold_ma: float = 250.0
    quit_current_ma: float = 10.0
    dsg_relax_time_s: float = 1.0
    chg_relax_time_s: float = 60.0
    #: rest before an OCV reading is trusted, s (chosen: 30 min, a fully relaxed cell).
    ocv_rest_s: float = 1800.0
    #: Current() reads 0 within ± this, mA (UNCONFIRMED TI "Deadband" 3 mA).
    deadband_ma: float = 3.0
    #: valid charge termination (UNCONFIRMED TI defaults: taper 250 mA, 75 mV, 2 × 40 s).
    taper_current_ma: float = 250.0
    charge_term_voltage_mv: float = 75.0
    termination_window_s: float = 80.0
    #: SOC flag RSOC thresholds, %. TD/TC: SLUUCO9A defaults; FC/FD: UNCONFIRMED.
    td_set_rsoc: float = 6.0
    td_clear_rsoc: float = 8.0
    tc_clear_rsoc: float = 95.0
    fc_clear_rsoc: float = 95.0
    fd_set_rsoc: float = 0.0
    fd_clear_rsoc: float = 5.0
    #: MaxError above this sets BatteryMode[CONDITION_FLAG], % (UNCONFIRMED).
    max_error_limit: float = 8.0
    #: SOC at or above which an OCV reading starts a qualified discharge (chosen).
    learning_start_soc: float = 0.9
    #: measurement noise (1 σ): cell voltage mV, current mA, temperature °C (chosen).
    voltage_noise_mv: float = 0.5
    current_noise_ma: float = 0.5
    temperature_noise_c: float = 0.05
    #: largest sense-resistor offset drawn per pack, mA (chosen; a calibrated pack stays within ±1 mA).
    max_current_offset_ma: float = 1.0
    charging: ChargingParameters = field(default_factory=ChargingParameters)

    def __post_init__(self) -> None:
        if self.design_capacity_mah <= 0 or self.design_voltage_mv <= 0:
            raise ValueError("design capacity and voltage must be positive")
        if self.cells < 1:
            raise ValueError("cells must be at least 1")
        if not 0 < self.cycle_count_percentage <= 100:
            raise ValueError("cycle_count_percentage must be within 0..100")

    @classmethod
    def for_pack(cls, capacity_mah: int, cells: int, nominal_cell_mv: int = 3600, **kwargs: object) -> GaugeParameters:
        """Parameters a pack integrator would program: design values of the pack, currents pro rata.

        The TI current defaults (charging table, taper current) belong to a 4400 mAh design; they are
        scaled by ``capacity_mah / 4400`` so a small pack is not charged at a big pack's current.
        """
        factor = capacity_mah / TI_REFERENCE_CAPACITY_MAH
        params = cls(
            design_capacity_mah=capacity_mah,
            design_voltage_mv=nominal_cell_mv * cells,
            cells=cells,
            taper_current_ma=round(250.0 * factor),
            charging=ChargingParameters().scaled(factor),
        )
        return replace(params, **kwargs)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------
# measurement
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Measurement:
    """One ADC/CC sample as the gauge sees it (integers in register units)."""

    cell_mv: tuple[int, ...]
    #: Voltage(): sum of the measured cells (BAT), mV.
    voltage_mv: int
    #: Current(): mA, + = charge, after the deadband.
    current_ma: int
    #: thermistor readings, 0.1 K (TS1…).
    ts_deci_k: tuple[int, ...]
    # Derived values, computed once in __post_init__: a measurement never changes and the gauge,
    # the protections and the lifetime collection each read them every simulated second.
    #: highest and lowest cell voltage, mV.
    max_cell_mv: int = field(init=False, repr=False, compare=False)
    min_cell_mv: int = field(init=False, repr=False, compare=False)
    #: thermistor readings, °C.
    ts_c: tuple[float, ...] = field(init=False, repr=False, compare=False)
    #: Temperature(): the hottest thermistor, 0.1 K (DA Configuration cell-temperature mode "max"
    #: chosen; TI also offers the average).
    temperature_deci_k: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        cells, ts = self.cell_mv, self.ts_deci_k
        setter = object.__setattr__  # the frozen dataclass way to fill derived fields
        setter(self, "max_cell_mv", max(cells))
        setter(self, "min_cell_mv", min(cells))
        setter(self, "ts_c", tuple([(t - ZERO_C_DECI_K) / 10 for t in ts]))
        setter(self, "temperature_deci_k", max(ts))


def thermistor_groups(series: int) -> tuple[int, ...]:
    """Series group each TS input sits on: one per group up to four (bq40z50 has TS1–TS4), spread
    evenly over longer stacks."""
    count = min(series, 4)
    if count == 1:
        return (0,)
    return tuple(round(k * (series - 1) / (count - 1)) for k in range(count))


class OcvTable:
    """The gauge's OCV→SOC table (its ChemID), monotonic in OCV."""

    def __init__(self, soc: Sequence[float], ocv_v: Sequence[float]) -> None:
        s = np.asarray(soc, dtype=float)
        v = np.asarray(ocv_v, dtype=float)
        if s.shape != v.shape or s.size < 2 or np.any(np.diff(v) <= 0) or np.any(np.diff(s) <= 0):
            raise ValueError("OCV table must be strictly increasing in SOC and OCV")
        self._soc = s
        self._ocv_mv = v * 1000.0

    def soc(self, ocv_mv: float) -> float:
        """SOC 0..1 of a relaxed cell at ``ocv_mv``."""
        return float(np.clip(np.interp(ocv_mv, self._ocv_mv, self._soc), 0.0, 1.0))


# ------------------------------------------------------------------------------------------------
# the gauge
# ------------------------------------------------------------------------------------------------


class _Noise(random.Random):
    """The gauge's random source: :class:`random.Random` plus a batch of ``gauss(0, 1)`` draws.

    :meth:`normals` returns exactly what as many ``gauss(0.0, 1.0)`` calls would (the same
    Box–Muller pairs, the spare kept in ``gauss_next``, as CPython 3.11 ``random.py`` does), without
    the per-call overhead: the gauge draws 9 of them every simulated second.
    """

    gauss_next: float | None

    def normals(self, count: int) -> list[float]:
        """``count`` standard-normal draws, as ``[self.gauss() for _ in range(count)]``."""
        out: list[float] = []
        spare = self.gauss_next
        uniform = self.random
        for _ in range(count):
            if spare is None:
                x2pi = uniform() * _TWO_PI
                g2rad = math.sqrt(-2.0 * math.log(1.0 - uniform()))
                out.append(math.cos(x2pi) * g2rad)
                spare = math.sin(x2pi) * g2rad
            else:
                out.append(spare)
                spare = None
        self.gauss_next = spare
        return out


#: 2π as ``random.py`` computes it.
_TWO_PI = 2.0 * math.pi


@dataclass
class _Window:
    """Time-weighted rolling mean over the last ``span_s`` seconds (AverageCurrent: one minute)."""

    span_s: float = 60.0
    _samples: deque[tuple[float, float]] = field(default_factory=deque)
    _time_s: float = 0.0
    _sum: float = 0.0

    def add(self, dt_s: float, value: float) -> None:
        self._samples.append((dt_s, value))
        self._time_s += dt_s
        self._sum += dt_s * value
        while self._samples and self._time_s - self._samples[0][0] >= self.span_s - 1e-9:
            old_dt, old_value = self._samples.popleft()
            self._time_s -= old_dt
            self._sum -= old_dt * old_value
        if not self._samples:
            self._time_s, self._sum = 0.0, 0.0

    @property
    def mean(self) -> float:
        return self._sum / self._time_s if self._time_s > 0 else 0.0

    def clear(self) -> None:
        self._samples.clear()
        self._time_s, self._sum = 0.0, 0.0


class Gauge:
    """The gauge's view of the pack: measurement, state of charge, flags and SBS values.

    :param params: the gauge configuration.
    :param ocv_table: the gauge's OCV→SOC table.
    :param seed: seeds the measurement noise and the sense-resistor offset (deterministic per seed).
    :param faults: sensor faults (thermistors, offset drift) applied to the measurement.
    """

    #: time INIT stays cleared after a reset, s ("INIT cleared then set again after about 1 s").
    INIT_DELAY_S = 1.0

    def __init__(
        self,
        params: GaugeParameters,
        ocv_table: OcvTable,
        *,
        seed: int = 0,
        faults: PackFaults | None = None,
        series: int | None = None,
    ) -> None:
        self.params = params
        self.ocv_table = ocv_table
        self.faults = faults or PackFaults()
        self._rng = _Noise(seed * 7919 + 17)
        self.current_offset_ma = self._rng.uniform(-params.max_current_offset_ma, params.max_current_offset_ma)
        self.ts_groups = thermistor_groups(series if series is not None else params.cells)
        # learned values (data flash): survive a reset
        self.fcc_mah = float(params.design_capacity_mah)
        self.cycle_count = 0
        self._cycle_acc_mah = 0.0
        self.fcc_updates = 0
        # RAM state
        self.remaining_mah = 0.0
        self.measurement = Measurement((0,) * params.cells, 0, 0, (2982,) * len(self.ts_groups))
        self.average = _Window()
        self.mode = Mode.RELAX
        self._mode_timer_s = 0.0
        self.rest_s = 0.0
        self.ocv_taken = False
        self.max_error = 100.0
        self.initialized = False
        self._init_timer_s = 0.0
        self.fc = self.fd = self.tc = self.td = False
        self.vct = False
        self._term_timer_s = 0.0
        self.edv = False
        #: qualified discharge in progress: (starting SOC, charge delivered since then mAh).
        self._learning: tuple[float, float] | None = None
        self.temp_range = "RT"
        self.voltage_range = "MV"
        self.time_s = 0.0

    # --- measurement ------------------------------------------------------------------------------

    def measure(self, pack: _MeasuredPack) -> Measurement:
        """Sample the pack's ADCs (noise, quantisation, offset, deadband, sensor faults)."""
        p = self.params
        volts: list[float] = pack.cell_voltages.tolist()
        groups = self.ts_groups
        n = len(volts)
        # one noise draw per cell, then the current, then each thermistor (the order gauss() was called in);
        # each term is ``0.0 + z * sigma``, the value gauss(0.0, sigma) returns
        z = self._rng.normals(n + 1 + len(groups))
        sigma = p.voltage_noise_mv
        cells = tuple([round(v * 1000.0 + (0.0 + dz * sigma)) for v, dz in zip(volts, z, strict=False)])
        raw_ma = pack.current * 1000.0 + self.current_offset_ma + self.faults.offset_drift_ma
        current = round(raw_ma + (0.0 + z[n] * p.current_noise_ma))
        if abs(current) <= p.deadband_ma:
            current = 0
        temps: list[float] = pack.cell_temperatures.tolist()
        sigma = p.temperature_noise_c
        faults = self.faults
        reading = faults.thermistor_reading if faults.thermistors else None
        ts_noise = z[n + 1 :]
        if reading is None:
            ts = tuple([
                round(10 * (temps[g] + (0.0 + dz * sigma)) + ZERO_C_DECI_K)
                for g, dz in zip(groups, ts_noise, strict=True)
            ])
        else:
            ts = tuple([
                round(10 * (reading(i, temps[g]) + (0.0 + ts_noise[i] * sigma)) + ZERO_C_DECI_K)
                for i, g in enumerate(groups)
            ])
        return Measurement(cells, sum(cells), current, ts)

    # --- lifecycle ------------------------------------------------------------------------------------

    def initialize(self, pack: _MeasuredPack, *, settled: bool = False) -> None:
        """Power-up / reset: measure and take an OCV reading as the starting state of charge.

        ``settled``: the gauge has been running for a while already (an emulated pack is created as
        if it had been powered long ago), so INIT is set at once instead of about 1 s later.
        """
        self.measurement = self.measure(pack)
        self.average.clear()
        self.average.add(1e-3, self.measurement.current_ma)
        soc = self.ocv_table.soc(self.measurement.min_cell_mv)
        self.remaining_mah = self.fcc_mah * soc
        self.mode = Mode.RELAX if self.measurement.current_ma == 0 else (
            Mode.CHARGE if self.measurement.current_ma > 0 else Mode.DISCHARGE)
        self._mode_timer_s = 0.0
        self.rest_s = 0.0
        self.ocv_taken = self.measurement.current_ma == 0
        # an OCV reading under load is only an estimate: MaxError tells (chosen 1 % / 10 %)
        self.max_error = 1.0 if self.ocv_taken else 10.0
        self.fc = self.tc = False
        self.fd = self.td = False
        self.vct = False
        self._term_timer_s = 0.0
        self.edv = False
        self._learning = (soc, 0.0) if self.ocv_taken and soc >= self.params.learning_start_soc else None
        self.initialized = settled
        self._init_timer_s = 0.0
        self._update_flags()

    def reset(self, pack: _MeasuredPack) -> None:
        """Gauge reset: RAM state restarts from a fresh OCV reading; FCC and CycleCount persist (DF)."""
        self.initialize(pack)

    # --- per-step update ----------------------------------------------------------------------------

    def update(self, dt_s: float, pack: _MeasuredPack, *, charging_voltage_cell_mv: float) -> Measurement:
        """Measure and advance the gauge state by ``dt_s`` seconds.

        ``charging_voltage_cell_mv`` is the present per-cell charging voltage request (for VCT).
        """
        self.time_s += dt_s
        if not self.initialized:
            self._init_timer_s += dt_s
            if self._init_timer_s >= self.INIT_DELAY_S:
                self.initialized = True
        m = self.measure(pack)
        self.measurement = m
        self.average.add(dt_s, m.current_ma)
        self._update_mode(dt_s, m.current_ma)
        self._count(dt_s, m.current_ma)
        self._rest_correction(dt_s, m)
        self._end_of_discharge(m)
        self._termination(dt_s, m, charging_voltage_cell_mv)
        self._update_flags()
        return m

    def _update_mode(self, dt_s: float, current_ma: int) -> None:
        p = self.params
        if current_ma >= p.chg_current_threshold_ma:
            new = Mode.CHARGE
        elif current_ma <= -p.dsg_current_threshold_ma:
            new = Mode.DISCHARGE
        elif abs(current_ma) < p.quit_current_ma:
            self._mode_timer_s += dt_s
            relax_after = p.chg_relax_time_s if self.mode is Mode.CHARGE else p.dsg_relax_time_s
            new = Mode.RELAX if self.mode is Mode.RELAX or self._mode_timer_s >= relax_after else self.mode
        else:
            new = self.mode
        if abs(current_ma) >= p.quit_current_ma:
            self._mode_timer_s = 0.0
        if new is not self.mode:
            self.mode = new
            self.rest_s = 0.0
            self.ocv_taken = False
        if self.mode is Mode.RELAX:
            self.rest_s += dt_s

    def _count(self, dt_s: float, current_ma: int) -> None:
        p = self.params
        dq = current_ma * dt_s / 3600.0
        self.remaining_mah = min(self.fcc_mah, max(0.0, self.remaining_mah + dq))
        if dq < 0:
            self._cycle_acc_mah -= dq
            threshold = p.design_capacity_mah * p.cycle_count_percentage / 100.0
            while self._cycle_acc_mah >= threshold:
                self._cycle_acc_mah -= threshold
                self.cycle_count = min(0xFFFF, self.cycle_count + 1)
            if self._learning is not None:
                start, delivered = self._learning
                self._learning = (start, delivered - dq)
        elif dq > 0 and self._learning is not None and self.mode is Mode.CHARGE:
            self._learning = None  # a charge in between disqualifies the discharge
        # MaxError grows 0.5 % per 10 % of DesignCapacity counted without a correction (chosen)
        self.max_error = min(100.0, self.max_error + abs(dq) / p.design_capacity_mah * 5.0)

    def _rest_correction(self, dt_s: float, m: Measurement) -> None:
        if self.mode is not Mode.RELAX or self.ocv_taken or self.rest_s < self.params.ocv_rest_s:
            return
        soc = self.ocv_table.soc(m.min_cell_mv)
        self.remaining_mah = self.fcc_mah * soc
        self.ocv_taken = True
        self.max_error = 1.0
        if soc >= self.params.learning_start_soc:
            self._learning = (soc, 0.0)

    def _end_of_discharge(self, m: Measurement) -> None:
        p = self.params
        self.edv = False
        if self.mode is not Mode.DISCHARGE:
            return
        margin = m.min_cell_mv - p.term_voltage_mv
        for above_mv, cap_pct in p.edv_points:
            if margin <= above_mv:
                self.remaining_mah = min(self.remaining_mah, self.fcc_mah * cap_pct / 100.0)
        if margin <= 0:
            self.edv = True
            self.remaining_mah = 0.0
            self._learn()

    def _learn(self) -> None:
        """A qualified discharge reached Term Voltage: FCC := delivered charge / starting SOC."""
        if self._learning is None:
            return
        start, delivered = self._learning
        self._learning = None
        if delivered < 0.5 * self.params.design_capacity_mah * start:
            return  # too short to learn from (chosen: at least half the design capacity)
        design = self.params.design_capacity_mah
        self.fcc_mah = min(1.2 * design, max(0.5 * design, delivered / start))
        self.fcc_updates += 1
        self.max_error = 1.0

    def _termination(self, dt_s: float, m: Measurement, charging_voltage_cell_mv: float) -> None:
        p = self.params
        avg = self.average.mean
        near_cv = charging_voltage_cell_mv > 0 and m.max_cell_mv >= charging_voltage_cell_mv - p.charge_term_voltage_mv
        if self.mode is Mode.CHARGE and 0 < avg < p.taper_current_ma and near_cv:
            self._term_timer_s += dt_s
        elif self.mode is Mode.CHARGE and m.current_ma > 0:
            self._term_timer_s = 0.0
        if self._term_timer_s >= p.termination_window_s and not self.vct:
            self.vct = True
            self.fc = self.tc = True
            self.remaining_mah = self.fcc_mah
            self.max_error = 1.0
            self._learning = (1.0, 0.0)
        if self.mode is not Mode.CHARGE:
            self._term_timer_s = 0.0
            if self.vct and self.mode is Mode.DISCHARGE:
                self.vct = False

    def _update_flags(self) -> None:
        p = self.params
        rsoc = self.rsoc
        if self.fc and rsoc <= p.fc_clear_rsoc:
            self.fc = False
        if self.tc and rsoc <= p.tc_clear_rsoc:
            self.tc = False
        if rsoc <= p.fd_set_rsoc:
            self.fd = True
        elif rsoc >= p.fd_clear_rsoc:
            self.fd = False
        if rsoc <= p.td_set_rsoc:
            self.td = True
        elif rsoc >= p.td_clear_rsoc:
            self.td = False

    # --- charging algorithm -------------------------------------------------------------------------

    def update_ranges(self) -> None:
        """Re-evaluate the charging temperature and voltage ranges from the last measurement."""
        c = self.params.charging
        temp_c = (self.measurement.temperature_deci_k - ZERO_C_DECI_K) / 10.0
        self.temp_range = c.temperature_range(temp_c, self.temp_range)
        self.voltage_range = c.voltage_range(self.measurement.max_cell_mv)

    def charging_request(self, *, charge_disabled: bool) -> tuple[int, int]:
        """(ChargingVoltage mV for the pack, ChargingCurrent mA) per the charging algorithm.

        0/0 when charging is disabled (OperationStatus[XCHG]) or in UT/OT (SLUUBT5C ChargingVoltage
        table); the current is 0 after a valid charge termination (no maintenance charge).
        """
        if charge_disabled:
            return 0, 0
        cell_mv, current = self.params.charging.request(self.temp_range, self.voltage_range)
        if self.fc:
            current = 0
        return cell_mv * self.params.cells, current

    # --- derived values -------------------------------------------------------------------------------

    @property
    def rsoc(self) -> float:
        """RelativeStateOfCharge, % (unrounded)."""
        return 100.0 * self.remaining_mah / self.fcc_mah if self.fcc_mah > 0 else 0.0

    @property
    def asoc(self) -> float:
        return 100.0 * self.remaining_mah / self.params.design_capacity_mah

    @property
    def average_current_ma(self) -> int:
        return round(self.average.mean)

    @property
    def learning(self) -> bool:
        """A qualified discharge is in progress (GaugingStatus[VDQ])."""
        return self._learning is not None

    @property
    def charging(self) -> bool:
        return self.mode is Mode.CHARGE

    @property
    def relaxed(self) -> bool:
        return self.mode is Mode.RELAX

    def protection_inputs(self) -> ProtectionInputs:
        m = self.measurement
        ts = m.ts_c
        return ProtectionInputs(
            max_cell_mv=m.max_cell_mv,
            min_cell_mv=m.min_cell_mv,
            current_ma=m.current_ma,
            max_temp_c=max(ts),
            min_temp_c=min(ts),
            charging=self.charging,
            relaxed=self.relaxed,
            temp_range=self.temp_range,
        )

    def energy(self, mah: float) -> float:
        """Capacity in 10 mWh units (CAPACITY_MODE = 1), at DesignVoltage."""
        return mah * self.params.design_voltage_mv / 10000.0

    def time_to_empty(self, current_ma: float, *, capacity_mode: bool = False) -> int:
        """Minutes until empty at ``current_ma`` (negative = discharge); 0xFFFF when not discharging.

        With CAPACITY_MODE set the same quantity is computed on the power basis (energy / power at the
        measured pack voltage), as SBS 1.1 asks (sbs.md §1).
        """
        if current_ma >= 0:
            return NOT_APPLICABLE
        if capacity_mode:
            power_10mw = -current_ma * self.measurement.voltage_mv / 10_000.0
            minutes = 60.0 * self.energy(self.remaining_mah) / max(power_10mw, 1e-9)
        else:
            minutes = 60.0 * self.remaining_mah / -current_ma
        return min(MAX_MINUTES, int(minutes))

    def time_to_full(self, current_ma: float) -> int:
        """Minutes until full at ``current_ma`` (positive = charge); 0xFFFF when not charging."""
        if current_ma <= 0:
            return NOT_APPLICABLE
        return min(MAX_MINUTES, int(60.0 * max(0.0, self.fcc_mah - self.remaining_mah) / current_ma))


#: BatteryStatus bits (sbs.md §3).
OCA, TCA, OTA, TDA, RCA, RTA = 0x8000, 0x4000, 0x1000, 0x0800, 0x0200, 0x0100
INIT, DSG, FC, FD = 0x0080, 0x0040, 0x0020, 0x0010


def battery_status(
    gauge: Gauge,
    protections: ProtectionState,
    *,
    remaining_capacity_alarm_mah: float,
    remaining_time_alarm_min: int,
    error_code: int = 0,
) -> int:
    """BatteryStatus() from the gauge flags and the protections, per the TI alarm summary.

    TI (SLUUBT5C §6.8 / SLUUCN4A): TCA on a charge-side SafetyAlert, PFAlert[SOV], any PFStatus, or
    GaugingStatus[TC] in CHARGE; TDA likewise for discharge, or TD while not charging (SBS: TDA only
    while discharging; DISCHARGE and RELAX both report DSG = 1); FD on SafetyStatus[CUV], PFStatus[SUV]
    or GaugingStatus[FD]; OTA on SafetyStatus[OTC]/[OTD]; FC = GaugingStatus[FC]. RCA/RTA only while
    not charging (sbs.md §3, TI note). OCA needs the overcharge protection, which is not modelled.
    """
    word = error_code & 0x0F
    alarms = protections.alarms()
    if "TCA" in alarms or (gauge.tc and gauge.charging):
        word |= TCA
    if "TDA" in alarms or (gauge.td and not gauge.charging):
        word |= TDA
    if "OTA" in alarms:
        word |= OTA
    if gauge.fd or protections.tripped("CUV") or protections.tripped("SUV"):
        word |= FD
    if gauge.fc:
        word |= FC
    if not gauge.charging:
        word |= DSG
        if remaining_capacity_alarm_mah and gauge.remaining_mah < remaining_capacity_alarm_mah:
            word |= RCA
        ate = gauge.time_to_empty(gauge.average_current_ma)
        if remaining_time_alarm_min and ate != NOT_APPLICABLE and ate < remaining_time_alarm_min:
            word |= RTA
    if gauge.initialized:
        word |= INIT
    return word


def build_ocv_table(ocv_at: Callable[[float], float], points: int = 101) -> OcvTable:
    """An :class:`OcvTable` sampled from ``ocv_at(soc) -> V`` over 0..1, made strictly monotonic."""
    soc = np.linspace(0.0, 1.0, points)
    ocv = np.array([ocv_at(float(s)) for s in soc])
    ocv = np.maximum.accumulate(ocv) + np.arange(points) * 1e-9
    return OcvTable(soc.tolist(), ocv.tolist())


__all__ = [
    "ChargingParameters",
    "ChargingRange",
    "Gauge",
    "GaugeParameters",
    "Measurement",
    "Mode",
    "OcvTable",
    "battery_status",
    "build_ocv_table",
]
