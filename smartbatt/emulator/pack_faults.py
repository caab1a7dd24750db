"""Pack-level fault injection: what goes wrong in the pack rather than on the wire.

Each fault acts where it would act in a real pack, so it surfaces through the transport as the
register values real hardware would produce — never as a shortcut into the registers:

* **thermistor open / shorted** — the gauge's temperature measurement of one TS input reads absurdly
  cold (an open NTC: the divider sits at full scale) or hot (a shorted NTC: the divider sits at
  zero). The exact value a TI gauge reports for a railed TS input is not documented in the sources
  at hand (UNCONFIRMED); the emulator clamps to −40.0 °C and +150.0 °C, the ends of its thermistor
  model. The protections then act on the absurd reading (UTC/UTD on the cold one, OTC/OTD on the
  hot one) as they would on a real pack.
* **internal short on one cell** — a leak resistor across one series group through
  ``Pack.set_internal_short``: that cell's voltage sags and the imbalance grows.
* **thermal-runaway precursor on one cell** — a heat source ramping up on one group through
  ``Pack.set_extra_heat`` plus a soft internal short (separator breakdown), so the cell's temperature
  ramps and its voltage falls (dV/dt). Ramp rate, ceiling and leak are chosen values.
* **current-sensor offset drift** — the sense-resistor offset grows by a fixed mA/s; Current() at
  rest leaves the deadband and the coulomb counter drifts.
* **gauge reset** — handled by the gauge and device (INIT cleared, then set again about 1 s later).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Protocol

#: reading of an open NTC thermistor, °C (chosen: the cold end of the emulator's thermistor model).
OPEN_THERMISTOR_C = -40.0
#: reading of a shorted NTC thermistor, °C (chosen: the hot end of the emulator's thermistor model).
SHORTED_THERMISTOR_C = 150.0


class ThermistorFault(enum.Enum):
    OPEN = "open"
    SHORT = "short"


class _FaultablePack(Protocol):
    """The fault hooks of :class:`smartbatt.emulator.pack.Pack` used here."""

    def set_internal_short(self, group: int, resistance_ohm: float | None) -> None: ...

    def set_extra_heat(self, group: int, watts: float) -> None: ...


@dataclass
class RunawayPrecursor:
    """A heat source ramping on one group, with a soft internal short (chosen values)."""

    group: int
    #: heat ramp, W per simulated second.
    ramp_w_per_s: float = 0.02
    #: heat ceiling, W.
    max_w: float = 15.0
    #: leak across the cell while the precursor is active, Ω.
    leak_ohm: float = 10.0
    #: seconds since the precursor started.
    elapsed_s: float = 0.0

    @property
    def heat_w(self) -> float:
        return min(self.max_w, self.ramp_w_per_s * self.elapsed_s)


@dataclass
class PackFaults:
    """The pack and sensor faults of one emulated pack. Change them at any time; all off by default."""

    #: fault per thermistor input (index 0 = TS1).
    thermistors: dict[int, ThermistorFault] = field(default_factory=dict)
    #: current-sensor offset drift, mA per simulated second.
    offset_drift_ma_per_s: float = 0.0
    #: offset accumulated by the drift so far, mA.
    offset_drift_ma: float = 0.0
    #: leak resistance per shorted group (0-based), Ω.
    shorts: dict[int, float] = field(default_factory=dict)
    runaway: RunawayPrecursor | None = None
    _pack: _FaultablePack | None = None

    def attach(self, pack: _FaultablePack) -> None:
        """Apply the configured faults to ``pack`` (called once by the virtual pack)."""
        self._pack = pack
        for group, ohm in self.shorts.items():
            pack.set_internal_short(group, ohm)

    # --- API --------------------------------------------------------------------------------

    def thermistor(self, index: int, fault: ThermistorFault | None) -> None:
        """Open or short thermistor ``index`` (0 = TS1); None repairs it."""
        if index < 0:
            raise ValueError("thermistor index must not be negative")
        if fault is None:
            self.thermistors.pop(index, None)
        else:
            self.thermistors[index] = fault

    def internal_short(self, group: int, resistance_ohm: float | None = 5.0) -> None:
        """Put a leak of ``resistance_ohm`` across series group ``group`` (0-based); None heals it."""
        if resistance_ohm is not None and resistance_ohm <= 0:
            raise ValueError("short resistance must be positive")
        if resistance_ohm is None:
            self.shorts.pop(group, None)
        else:
            self.shorts[group] = resistance_ohm
        if self._pack is not None:
            self._pack.set_internal_short(group, resistance_ohm)

    def start_runaway(self, group: int, **kwargs: float) -> RunawayPrecursor:
        """Start a thermal-runaway precursor on ``group`` (0-based)."""
        self.runaway = RunawayPrecursor(group, **kwargs)
        if self._pack is not None:
            self._pack.set_internal_short(group, self.runaway.leak_ohm)
        return self.runaway

    def stop_runaway(self) -> None:
        if self.runaway is not None and self._pack is not None:
            self._pack.set_extra_heat(self.runaway.group, 0.0)
            self._pack.set_internal_short(self.runaway.group, self.shorts.get(self.runaway.group))
        self.runaway = None

    # --- simulation -------------------------------------------------------------------------------

    def step(self, dt_s: float) -> None:
        """Advance the time-dependent faults by ``dt_s`` seconds (before the physics step)."""
        self.offset_drift_ma += self.offset_drift_ma_per_s * dt_s
        if self.runaway is not None and self._pack is not None:
            self.runaway.elapsed_s += dt_s
            self._pack.set_extra_heat(self.runaway.group, self.runaway.heat_w)

    def thermistor_reading(self, index: int, true_c: float) -> float:
        """What TS input ``index`` reads when the cell it touches is at ``true_c`` °C."""
        fault = self.thermistors.get(index)
        if fault is ThermistorFault.OPEN:
            return OPEN_THERMISTOR_C
        if fault is ThermistorFault.SHORT:
            return SHORTED_THERMISTOR_C
        return true_c
