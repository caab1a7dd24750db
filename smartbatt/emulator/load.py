"""Loads and chargers that drive an emulated :class:`~smartbatt.emulator.pack.Pack`.

A load is asked, at each simulation step, for the pack current it requests (A, SBS sign:
negative = discharge, positive = charge). The device/gauge side applies FET states afterwards;
a load never opens a path itself.

* :class:`Rest`, :class:`ConstantCurrent`, :class:`ConstantPower`: the basic loads.
* :class:`CCCVCharger`: constant current until the pack reaches the charge voltage, then constant
  voltage until the current tapers below the termination current. The gauge's
  ChargingCurrent/ChargingVoltage drive it through :meth:`CCCVCharger.set_request`.
* :class:`ProfileReplay`: a recorded ``time_s,current_a`` or ``time_s,power_w`` CSV, held
  piecewise constant.
* :func:`scenario`: the named, pack-size-independent profiles of :mod:`smartbatt.emulator.scenarios`.
"""

from __future__ import annotations

import bisect
import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from smartbatt.emulator.pack import Pack

#: Names accepted by :func:`scenario`.
SCENARIOS = ("idle", "laptop", "drone", "powertool", "charge")

#: Below this pack voltage a constant-power load drops out (an electronic load cannot draw
#: power from a collapsed source), V.
MIN_POWER_VOLTAGE_V = 0.5


class Load(Protocol):
    """What drives a pack: the requested pack current at simulated time ``t_s``."""

    def current(self, t_s: float, pack: Pack) -> float:
        """Requested pack current, A (SBS sign: negative = discharge)."""
        ...


def _finite(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, not {value!r}")
    return float(value)


class Rest:
    """No current: the pack relaxes (self-discharge and balancing still act)."""

    def current(self, t_s: float, pack: Pack) -> float:
        return 0.0


class ConstantCurrent:
    """A fixed pack current ``current_a``, A (negative = discharge)."""

    def __init__(self, current_a: float) -> None:
        self.current_a = _finite("current_a", current_a)

    def current(self, t_s: float, pack: Pack) -> float:
        return self.current_a


class ConstantPower:
    """A fixed power ``power_w``, W (negative = discharge): I = P / V_pack.

    :param max_current_a: magnitude limit of the drawn current, A (``None``: no limit).
    """

    def __init__(self, power_w: float, max_current_a: float | None = None) -> None:
        self.power_w = _finite("power_w", power_w)
        if max_current_a is not None and _finite("max_current_a", max_current_a) <= 0:
            raise ValueError("max_current_a must be positive")
        self.max_current_a = max_current_a

    def current(self, t_s: float, pack: Pack) -> float:
        voltage = pack.voltage
        if voltage < MIN_POWER_VOLTAGE_V:
            return 0.0
        current = self.power_w / voltage
        if self.max_current_a is not None:
            current = max(-self.max_current_a, min(self.max_current_a, current))
        return current


class CCCVCharger:
    """A constant-current / constant-voltage charger.

    CC phase: ``current_a`` until the pack terminal voltage would exceed ``voltage_v``. CV phase:
    the current that holds the terminal voltage at ``voltage_v`` (from the pack's OCV, RC-pair
    voltages and R0), never more than ``current_a``. When the CV current falls below
    ``termination_a`` the charge is done and the charger outputs 0 until the request changes or
    :meth:`reset` is called.

    :raises ValueError: for negative or non-finite settings.
    """

    def __init__(self, current_a: float, voltage_v: float, termination_a: float) -> None:
        self._check(current_a, voltage_v)
        self.current_a = float(current_a)
        self.voltage_v = float(voltage_v)
        if _finite("termination_a", termination_a) < 0:
            raise ValueError("termination_a must be >= 0")
        self.termination_a = float(termination_a)
        #: True once the taper current fell below ``termination_a``.
        self.done = False
        #: True while regulating voltage.
        self.in_cv = False

    @staticmethod
    def _check(current_a: float, voltage_v: float) -> None:
        if _finite("current_a", current_a) < 0:
            raise ValueError("current_a must be >= 0 (a charger only charges)")
        if _finite("voltage_v", voltage_v) < 0:
            raise ValueError("voltage_v must be >= 0")

    def set_request(self, current_a: float, voltage_v: float) -> None:
        """Apply a new ChargingCurrent (A) / ChargingVoltage (V) request, as a smart charger does.

        A changed request re-arms a finished charge; 0 A or 0 V stops charging.
        """
        self._check(current_a, voltage_v)
        if (current_a, voltage_v) != (self.current_a, self.voltage_v):
            self.done = False
        self.current_a = float(current_a)
        self.voltage_v = float(voltage_v)

    def reset(self) -> None:
        """Start a new charge with the present request."""
        self.done = False
        self.in_cv = False

    def current(self, t_s: float, pack: Pack) -> float:
        if self.done or self.current_a <= 0.0 or self.voltage_v <= 0.0:
            return 0.0
        # terminal voltage = Σ(OCV + v_rc) + I·ΣR0: solve for the I that reaches voltage_v
        open_circuit = float(pack.cell_ocv.sum() + pack.rc_voltages.sum())
        resistance = float(pack.resistance_ohm.sum())
        cv_current = (self.voltage_v - open_circuit) / resistance
        if cv_current >= self.current_a:
            self.in_cv = False
            return self.current_a
        self.in_cv = True
        if cv_current < self.termination_a:
            self.done = True
            return 0.0
        return cv_current


class ProfileReplay:
    """Replay of a recorded profile, held constant between samples.

    :param times_s: strictly increasing sample times, s (first >= 0).
    :param values: current (A) or power (W) per sample, SBS sign.
    :param kind: ``"current_a"`` or ``"power_w"``.
    :param loop: repeat the profile after its end; otherwise the load is 0 after the last sample
        time plus the last interval.
    :raises ValueError: on mismatched, empty, unsorted or non-finite data.
    """

    def __init__(self, times_s: Sequence[float], values: Sequence[float], kind: str, *, loop: bool = False) -> None:
        if kind not in ("current_a", "power_w"):
            raise ValueError(f"kind must be 'current_a' or 'power_w', not {kind!r}")
        if not times_s or len(times_s) != len(values):
            raise ValueError("a profile needs as many values as times, at least one")
        self.times_s = [_finite("time_s", t) for t in times_s]
        self.values = [_finite(kind, v) for v in values]
        if self.times_s[0] < 0 or any(b <= a for a, b in zip(self.times_s, self.times_s[1:], strict=False)):
            raise ValueError("profile times must start at >= 0 and be strictly increasing")
        self.kind = kind
        self.loop = loop
        last_interval = self.times_s[-1] - self.times_s[-2] if len(self.times_s) > 1 else 1.0
        #: profile length, s: the last sample holds for one more interval.
        self.duration_s = self.times_s[-1] + last_interval

    @classmethod
    def from_csv(cls, path: str | Path, *, loop: bool = False) -> ProfileReplay:
        """Read a profile CSV: a header ``time_s,current_a`` or ``time_s,power_w``, then one sample a row.

        Blank lines and lines starting with ``#`` are skipped.

        :raises ValueError: naming the file and line for a bad header, a short or long row, a value
            that is not a finite number or a time that does not increase.
        :raises OSError: if the file cannot be read.
        """
        path = Path(path)
        times: list[float] = []
        values: list[float] = []
        kind = ""
        with path.open(newline="", encoding="utf-8") as handle:
            for line_no, row in enumerate(csv.reader(handle), start=1):
                if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
                    continue
                cells = [c.strip() for c in row]
                if not kind:
                    kind = cls._parse_header(path, line_no, cells)
                    continue
                time_s, value = cls._parse_row(path, line_no, cells)
                if times and time_s <= times[-1]:
                    previous = times[-1]
                    raise ValueError(f"{path}:{line_no}: time {time_s:g} s does not increase (previous {previous:g} s)")
                times.append(time_s)
                values.append(value)
        if not kind:
            raise ValueError(f"{path}: empty profile (expected a header time_s,current_a or time_s,power_w)")
        if not times:
            raise ValueError(f"{path}: no samples after the header")
        return cls(times, values, kind, loop=loop)

    @staticmethod
    def _parse_header(path: Path, line_no: int, cells: list[str]) -> str:
        if len(cells) != 2 or cells[0] != "time_s" or cells[1] not in ("current_a", "power_w"):
            found = ",".join(cells)
            raise ValueError(f"{path}:{line_no}: header must be time_s,current_a or time_s,power_w, not {found}")
        return cells[1]

    @staticmethod
    def _parse_row(path: Path, line_no: int, cells: list[str]) -> tuple[float, float]:
        if len(cells) != 2:
            raise ValueError(f"{path}:{line_no}: expected 2 columns, got {len(cells)}")
        numbers = []
        for column, text in zip(("time_s", "value"), cells, strict=True):
            try:
                number = float(text)
            except ValueError:
                raise ValueError(f"{path}:{line_no}: {column} {text!r} is not a number") from None
            if not math.isfinite(number):
                raise ValueError(f"{path}:{line_no}: {column} {text!r} is not finite")
            numbers.append(number)
        if numbers[0] < 0:
            raise ValueError(f"{path}:{line_no}: time {numbers[0]:g} s is negative")
        return numbers[0], numbers[1]

    def value_at(self, t_s: float) -> float:
        """The profile value (A or W) at ``t_s``; 0 before the first sample and after the end."""
        if self.loop and t_s >= self.duration_s:
            t_s = math.fmod(t_s, self.duration_s)
        if t_s < self.times_s[0] or t_s >= self.duration_s:
            return 0.0
        return self.values[bisect.bisect_right(self.times_s, t_s) - 1]

    def current(self, t_s: float, pack: Pack) -> float:
        value = self.value_at(t_s)
        if self.kind == "current_a" or value == 0.0:
            return value
        voltage = pack.voltage
        return value / voltage if voltage >= MIN_POWER_VOLTAGE_V else 0.0


def scenario(name: str, *, seed: int = 0) -> Load:
    """A named scenario (one of :data:`SCENARIOS`), scaled to whatever pack it drives.

    :param seed: seed of the scenario's random variations (same seed → same profile).
    :raises ValueError: for an unknown name.
    """
    from smartbatt.emulator import scenarios  # scenarios builds on the loads defined here

    return scenarios.build(name, seed=seed)
