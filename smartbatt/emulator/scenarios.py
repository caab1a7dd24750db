"""Named usage scenarios: realistic, seeded load profiles that scale with the pack.

Profiles are written per unit of pack so that one scenario fits any configuration: discharge
currents in C-rate of the pack's nominal capacity (``parallel × cell_capacity_ah``), powers in
watts per cell (``series × parallel`` cells). The reference packs below set the numbers:

* ``drone``: a 15-minute multirotor flight. Reference 4S 5 Ah: hover 10–15 A (2–3C) with bursts
  of 30–40 A (6–8C) for a few seconds, take-off and climb at 4–6C, descent and landing.
* ``laptop``: 5–25 W on a 4-cell laptop pack (1.25–6.25 W per cell), idle / light / heavy phases
  of tens of seconds, two hours.
* ``powertool``: trigger pulls of 20–40 A on a 5 Ah pack (4–8C) for 1–6 s with rests, ten minutes.
* ``idle``: an hour at rest (self-discharge and balancing only).
* ``charge``: the chemistry's standard CC-CV charge at the gauge's request, up to four hours.

These levels are engineering estimates of typical use, not measurements of a product.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from smartbatt.emulator.load import SCENARIOS, CCCVCharger, Load
from smartbatt.emulator.pack import Pack


@dataclass(frozen=True)
class Segment:
    """A stretch of constant load: ``level`` for ``duration_s`` seconds."""

    duration_s: float
    #: C-rate (``c_rate`` schedules) or W per cell (``w_per_cell`` schedules); negative = discharge.
    level: float


class ScheduleLoad:
    """A piecewise-constant profile in pack-relative units; 0 after ``duration_s``.

    :param unit: ``"c_rate"`` (level × nominal capacity = A) or ``"w_per_cell"`` (level × cells = W).
    :raises ValueError: for an empty schedule, a non-positive segment or an unknown unit.
    """

    def __init__(self, name: str, unit: str, segments: list[Segment]) -> None:
        if unit not in ("c_rate", "w_per_cell"):
            raise ValueError(f"unit must be 'c_rate' or 'w_per_cell', not {unit!r}")
        if not segments or any(s.duration_s <= 0 for s in segments):
            raise ValueError("a schedule needs segments of positive duration")
        self.name = name
        self.unit = unit
        self.starts: list[float] = []
        self.levels: list[float] = []
        t = 0.0
        for segment in segments:
            self.starts.append(t)
            self.levels.append(segment.level)
            t += segment.duration_s
        #: length of the profile, s.
        self.duration_s = t

    def level_at(self, t_s: float) -> float:
        """The schedule level at ``t_s`` (0 outside the profile)."""
        if t_s < 0.0 or t_s >= self.duration_s:
            return 0.0
        return self.levels[bisect.bisect_right(self.starts, t_s) - 1]

    def current(self, t_s: float, pack: Pack) -> float:
        level = self.level_at(t_s)
        if level == 0.0:
            return 0.0
        config = pack.config
        if self.unit == "c_rate":
            return level * config.parallel * config.cell_capacity_ah
        voltage = pack.voltage
        if voltage < 0.5:  # collapsed pack: a power load cannot draw
            return 0.0
        return level * config.series * config.parallel / voltage


class ChargeScenario(CCCVCharger):
    """The chemistry's standard CC-CV charge, sized from the pack it first sees.

    Until :meth:`set_request` is called (by the gauge, from ChargingCurrent/ChargingVoltage) it
    charges at the chemistry's standard C-rate to ``series × v_max`` and stops at its termination
    C-rate.
    """

    name = "charge"
    duration_s = 4 * 3600.0

    def __init__(self) -> None:
        super().__init__(0.0, 0.0, 0.0)
        self._sized = False

    def set_request(self, current_a: float, voltage_v: float) -> None:
        super().set_request(current_a, voltage_v)
        self._sized = True

    def current(self, t_s: float, pack: Pack) -> float:
        if not self._sized:
            chem, config = pack.chemistry, pack.config
            capacity = config.parallel * config.cell_capacity_ah
            self.current_a = chem.charge_c_rate * capacity
            self.voltage_v = chem.v_max * config.series
            self.termination_a = chem.termination_c_rate * capacity
            self._sized = True
        if t_s >= self.duration_s:
            return 0.0
        return super().current(t_s, pack)


# --- profile builders ----------------------------------------------------------------------------


def _idle(rng: np.random.Generator) -> ScheduleLoad:
    return ScheduleLoad("idle", "c_rate", [Segment(3600.0, 0.0)])


def _drone(rng: np.random.Generator) -> ScheduleLoad:
    """Arm, take off, climb, hover with manoeuvre bursts, descend, land: 900 s."""
    flight_s = 900.0
    segments = [Segment(5.0, -0.05), Segment(3.0, -6.0), Segment(15.0, -4.0)]
    landing = [Segment(30.0, -1.6), Segment(5.0, -1.2)]
    cruise_end = flight_s - sum(s.duration_s for s in landing)
    t = sum(s.duration_s for s in segments)
    next_burst = t + rng.uniform(30.0, 60.0)
    hover = 2.5
    while t < cruise_end:
        if t >= next_burst:
            length = rng.uniform(2.0, 5.0)
            level = -rng.uniform(6.0, 8.0)
            next_burst = t + length + rng.uniform(45.0, 90.0)
        else:
            length = rng.uniform(2.0, 6.0)
            hover = float(np.clip(hover + rng.normal(0.0, 0.15), 2.0, 3.0))  # wind gusts, trim
            level = -hover
        length = min(length, cruise_end - t)
        segments.append(Segment(length, level))
        t += length
    return ScheduleLoad("drone", "c_rate", segments + landing)


def _laptop(rng: np.random.Generator) -> ScheduleLoad:
    """Idle / light / heavy use phases of tens of seconds: 5–25 W on 4 cells, 2 h."""
    phases = (  # (probability, W per cell low, high)
        (0.50, 1.25, 2.0),  # idle, screen on: 5-8 W
        (0.35, 2.0, 3.5),  # browsing, office: 8-14 W
        (0.15, 3.75, 6.25),  # compile, video call: 15-25 W
    )
    weights = [p for p, _, _ in phases]
    segments = []
    t = 0.0
    while t < 7200.0:
        low, high = phases[int(rng.choice(len(phases), p=weights))][1:]
        length = min(rng.uniform(10.0, 90.0), 7200.0 - t)
        segments.append(Segment(length, -rng.uniform(low, high)))
        t += length
    return ScheduleLoad("laptop", "w_per_cell", segments)


def _powertool(rng: np.random.Generator) -> ScheduleLoad:
    """Trigger pulls of 4–8C for 1–6 s with 2–12 s rests, 600 s."""
    segments = []
    t = 0.0
    while t < 600.0:
        for drawn, level in ((rng.uniform(1.0, 6.0), -rng.uniform(4.0, 8.0)), (rng.uniform(2.0, 12.0), 0.0)):
            length = min(drawn, 600.0 - t)
            if length > 0:
                segments.append(Segment(length, level))
                t += length
    return ScheduleLoad("powertool", "c_rate", segments)


_BUILDERS: dict[str, Callable[[np.random.Generator], ScheduleLoad]] = {
    "idle": _idle,
    "laptop": _laptop,
    "drone": _drone,
    "powertool": _powertool,
}


def build(name: str, *, seed: int = 0) -> Load:
    """Build scenario ``name`` (one of :data:`~smartbatt.emulator.load.SCENARIOS`) with ``seed``.

    :raises ValueError: for an unknown name.
    """
    if name == "charge":
        return ChargeScenario()
    if name not in _BUILDERS:
        raise ValueError(f"unknown scenario {name!r}; choose one of {', '.join(SCENARIOS)}")
    return _BUILDERS[name](np.random.default_rng(seed))


def duration_s(load: Load) -> float:
    """The nominal length of a scenario load, s (``inf`` for loads without one)."""
    return float(getattr(load, "duration_s", float("inf")))
