"""Equivalent-circuit cell model: OCV(SOC, T), R0(SOC, T, |I|) and two RC pairs, as versioned data.

The model is the one the independent estimator (:mod:`smartbatt.monitor.estimator`), the
state-of-power calculation (:mod:`smartbatt.monitor.power`) and the fitter
(:mod:`smartbatt.monitor.fitting`) share. All values are per *cell*; a pack divides its voltage by
the number of series cells and its current by the number of parallel cells before using it.

Sign convention: current is positive when charging, as in SBS 1.1 ``Current()`` (sbs.md §1), so
the terminal voltage is ``OCV + V1 + V2 + R0·I`` and rises while charging.

Temperature and current dependence (why: a model fitted at one temperature and one pulse current
is off by tens of mV in a hot, high-rate flight):

* every resistance follows Arrhenius, ``R(T) = R(Tref) · exp(E/R · (1/T − 1/Tref))``, with the
  activation temperature ``E/R`` in kelvin stored separately for R0 and for the RC resistances
  (0 = no temperature dependence, the value when the characterization log covers one temperature);
* R0 has a mild current dependence ``exp(−k · |I|/Q)`` with ``k`` per C-rate (Butler–Volmer
  charge-transfer resistance falls as current rises; 0 = none), held constant above the C-rate it
  was measured up to (``r0_current_max_c``: extrapolating it would drive R0 toward 0) and kept
  within 0.5..2;
* the OCV may carry an entropic coefficient ``dOCV/dT`` (V/K) per SOC point.

The RC time constants ``τ = R·C`` stay fixed with temperature (C scales inversely with R): only
the resistance part of the response is temperature dependent.

The JSON file format (``schema_version`` 1)::

    {"schema_version": 1, "name": "...", "chemistry": "...", "source": "...",
     "capacity_ah": 5.0, "temperature_ref_c": 25.0,
     "limits": {"v_min": 2.5, "v_max": 4.2, "i_discharge_max_a": 10.0, "i_charge_max_a": 5.0},
     "ocv": {"soc": [...], "voltage_v": [...], "docv_dt_v_per_k": [...] (optional)},
     "resistance": {"soc": [...], "r0_ohm": [...], "r1_ohm": [...], "c1_f": [...],
                    "r2_ohm": [...], "c2_f": [...],
                    "r0_activation_k": 0.0, "rc_activation_k": 0.0, "r0_current_coeff": 0.0,
                    "r0_current_max_c": 10.0},
     "fit": {"rms_mv": 3.1, "max_mv": 12.0} (optional)}

Unknown keys, wrong types and inconsistent tables are rejected on load with one
:class:`ModelError` naming the file and the key path (STYLE.md §4).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from smartbatt.errors import ProfileError

#: version of the JSON layout this module reads and writes.
SCHEMA_VERSION = 1

#: 0 °C in kelvin.
KELVIN = 273.15

FloatArray = npt.NDArray[np.float64]


class ModelError(ProfileError):
    """A cell-model file or value is invalid (``file: key.path: reason``)."""


@dataclass(frozen=True)
class CellModel:
    """One cell's equivalent circuit. Immutable; validated when constructed.

    :raises ModelError: if any table is empty, of mismatched length, not increasing where it must
        be, or holds a non-finite or non-positive value where a positive one is required.
    """

    #: nominal usable capacity of one cell at the reference temperature, Ah (> 0).
    capacity_ah: float
    #: SOC breakpoints of the OCV table, 0..1, strictly increasing, first 0 and last 1.
    ocv_soc: tuple[float, ...]
    #: open-circuit voltage at ``ocv_soc``, V, strictly increasing (so it can be inverted).
    ocv_v: tuple[float, ...]
    #: SOC breakpoints of the resistance tables, 0..1, strictly increasing (one point = constant).
    r_soc: tuple[float, ...]
    #: series (ohmic + fast) resistance at ``r_soc``, ``temperature_ref_c`` and low current, Ω.
    r0_ohm: tuple[float, ...]
    #: first (fast) RC pair resistance, Ω (≥ 0), and capacitance, F (> 0), at ``r_soc``.
    r1_ohm: tuple[float, ...]
    c1_f: tuple[float, ...]
    #: second (slow) RC pair resistance, Ω (≥ 0), and capacitance, F (> 0), at ``r_soc``.
    r2_ohm: tuple[float, ...]
    c2_f: tuple[float, ...]
    #: lowest and highest allowed cell voltage, V (state of power stays inside them).
    v_min_v: float
    v_max_v: float
    #: largest allowed cell discharge and charge current, A, both given as positive magnitudes.
    i_discharge_max_a: float
    i_charge_max_a: float
    #: temperature the tables were measured at, °C.
    temperature_ref_c: float = 25.0
    #: Arrhenius activation temperature E/R of R0, K (0 = no temperature dependence).
    r0_activation_k: float = 0.0
    #: Arrhenius activation temperature E/R of R1 and R2, K.
    rc_activation_k: float = 0.0
    #: R0 current dependence k in ``exp(−k·|I|/Q)``, per C-rate, −1..1.
    r0_current_coeff: float = 0.0
    #: C-rate up to which ``r0_current_coeff`` was measured; the factor is held beyond it (> 0).
    r0_current_max_c: float = 10.0
    #: entropic coefficient dOCV/dT at ``ocv_soc``, V/K; empty = none.
    docv_dt_v_per_k: tuple[float, ...] = ()
    #: free text: what the model describes and where it came from.
    name: str = ""
    chemistry: str = ""
    source: str = ""
    #: fit residuals recorded by the fitter (RMS and max terminal-voltage error, mV); None if unknown.
    fit_rms_mv: float | None = None
    fit_max_mv: float | None = None

    def __post_init__(self) -> None:
        _validate(self)

    # --- tables as arrays ------------------------------------------------------------------------

    @cached_property
    def _ocv_soc(self) -> FloatArray:
        return np.asarray(self.ocv_soc, dtype=np.float64)

    @cached_property
    def _ocv_v(self) -> FloatArray:
        return np.asarray(self.ocv_v, dtype=np.float64)

    @cached_property
    def _slope_soc(self) -> FloatArray:
        return 0.5 * (self._ocv_soc[1:] + self._ocv_soc[:-1])

    @cached_property
    def _slope(self) -> FloatArray:
        return np.diff(self._ocv_v) / np.diff(self._ocv_soc)

    @cached_property
    def _docv_dt(self) -> FloatArray | None:
        return np.asarray(self.docv_dt_v_per_k, dtype=np.float64) if self.docv_dt_v_per_k else None

    @cached_property
    def _r_tables(self) -> FloatArray:
        rows = [self.r0_ohm, self.r1_ohm, self.c1_f, self.r2_ohm, self.c2_f]
        return np.asarray(rows, dtype=np.float64)

    # --- OCV -------------------------------------------------------------------------------------

    def ocv(self, soc: float, temperature_c: float | None = None) -> float:
        """Open-circuit voltage, V, at ``soc`` (0..1; extrapolated linearly outside) and °C."""
        s = self._ocv_soc
        v = self._ocv_v
        if soc < 0.0:
            value = v[0] + self._slope[0] * soc
        elif soc > 1.0:
            value = v[-1] + self._slope[-1] * (soc - 1.0)
        else:
            value = float(np.interp(soc, s, v))
        return float(value) + self._entropic(soc, temperature_c)

    def ocv_slope(self, soc: float) -> float:
        """dOCV/dSOC, V per unit SOC (> 0), smoothed between table segments."""
        return float(np.interp(soc, self._slope_soc, self._slope))

    def soc_from_ocv(self, voltage_v: float, temperature_c: float | None = None) -> float:
        """Inverse of :meth:`ocv`: the SOC (clipped to 0..1) whose OCV is ``voltage_v``."""
        soc = float(np.interp(voltage_v - self._entropic(0.5, temperature_c), self._ocv_v, self._ocv_soc))
        if self._docv_dt is not None and temperature_c is not None:
            # one refinement: the entropic term depends (weakly) on the SOC being solved for
            soc = float(np.interp(voltage_v - self._entropic(soc, temperature_c), self._ocv_v, self._ocv_soc))
        return soc

    def _entropic(self, soc: float, temperature_c: float | None) -> float:
        table = self._docv_dt
        if table is None or temperature_c is None:
            return 0.0
        coeff = float(np.interp(soc, self._ocv_soc, table))
        return coeff * (temperature_c - self.temperature_ref_c)

    # --- resistances -----------------------------------------------------------------------------

    def arrhenius(self, activation_k: float, temperature_c: float | None) -> float:
        """Resistance factor at ``temperature_c`` relative to the reference temperature (> 0)."""
        if temperature_c is None or activation_k == 0.0:
            return 1.0
        t = max(temperature_c, -40.0) + KELVIN
        return math.exp(activation_k * (1.0 / t - 1.0 / (self.temperature_ref_c + KELVIN)))

    @cached_property
    def _r_grid(self) -> FloatArray:
        return np.asarray(self.r_soc, dtype=np.float64)

    def _r_row(self, row: int, soc: float) -> float:
        tables = self._r_tables
        if tables.shape[1] == 1:
            return float(tables[row, 0])
        return float(np.interp(soc, self._r_grid, tables[row]))

    def r0(self, soc: float, temperature_c: float | None = None, current_a: float = 0.0) -> float:
        """Series resistance, Ω, at ``soc`` (0..1), °C and cell current (A, either sign)."""
        base = self._r_row(0, soc)
        # "mild": the current factor stays within 0.5..2 however far a current is extrapolated
        c_rate = min(abs(current_a) / self.capacity_ah, self.r0_current_max_c)
        factor = math.exp(-self.r0_current_coeff * c_rate)
        return base * self.arrhenius(self.r0_activation_k, temperature_c) * min(max(factor, 0.5), 2.0)

    def rc(self, soc: float, temperature_c: float | None = None) -> tuple[float, float, float, float]:
        """``(R1 Ω, τ1 s, R2 Ω, τ2 s)`` at ``soc`` and °C; τ stays at its reference value."""
        r1, c1, r2, c2 = (self._r_row(row, soc) for row in (1, 2, 3, 4))
        k = self.arrhenius(self.rc_activation_k, temperature_c)
        return r1 * k, r1 * c1, r2 * k, r2 * c2

    def dc_resistance(self, soc: float, temperature_c: float | None = None, current_a: float = 0.0) -> float:
        """R0 + R1 + R2, Ω: the steady-state resistance a long constant current sees."""
        r1, _, r2, _ = self.rc(soc, temperature_c)
        return self.r0(soc, temperature_c, current_a) + r1 + r2

    def terminal_voltage(
        self, soc: float, v1: float, v2: float, current_a: float, temperature_c: float | None = None
    ) -> float:
        """``OCV + V1 + V2 + R0·I``, V (current positive = charging)."""
        return self.ocv(soc, temperature_c) + v1 + v2 + self.r0(soc, temperature_c, current_a) * current_a

    def with_capacity(self, capacity_ah: float) -> CellModel:
        """A copy with another cell capacity (Ah, > 0)."""
        return replace(self, capacity_ah=capacity_ah)

    # --- JSON ------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready mapping of this model (``schema_version`` first)."""
        ocv: dict[str, Any] = {"soc": list(self.ocv_soc), "voltage_v": list(self.ocv_v)}
        if self.docv_dt_v_per_k:
            ocv["docv_dt_v_per_k"] = list(self.docv_dt_v_per_k)
        data: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "name": self.name,
            "chemistry": self.chemistry,
            "source": self.source,
            "capacity_ah": self.capacity_ah,
            "temperature_ref_c": self.temperature_ref_c,
            "limits": {
                "v_min": self.v_min_v,
                "v_max": self.v_max_v,
                "i_discharge_max_a": self.i_discharge_max_a,
                "i_charge_max_a": self.i_charge_max_a,
            },
            "ocv": ocv,
            "resistance": {
                "soc": list(self.r_soc),
                "r0_ohm": list(self.r0_ohm),
                "r1_ohm": list(self.r1_ohm),
                "c1_f": list(self.c1_f),
                "r2_ohm": list(self.r2_ohm),
                "c2_f": list(self.c2_f),
                "r0_activation_k": self.r0_activation_k,
                "rc_activation_k": self.rc_activation_k,
                "r0_current_coeff": self.r0_current_coeff,
                "r0_current_max_c": self.r0_current_max_c,
            },
        }
        if self.fit_rms_mv is not None or self.fit_max_mv is not None:
            data["fit"] = {"rms_mv": self.fit_rms_mv, "max_mv": self.fit_max_mv}
        return data

    def save(self, path: str | Path) -> None:
        """Write the model as JSON to ``path``.

        :raises ModelError: if the file cannot be written.
        """
        text = json.dumps(self.to_dict(), indent=1)
        try:
            Path(path).write_text(text + "\n", encoding="utf-8")
        except OSError as exc:
            raise ModelError(str(path), "", f"cannot write: {exc.strerror or exc}") from None

    @classmethod
    def from_dict(cls, data: Any, file: str = "<model>") -> CellModel:
        """Build a model from a parsed JSON mapping; all-or-nothing.

        :raises ModelError: naming ``file`` and the offending key path.
        """
        return _Reader(file).model(data)

    @classmethod
    def load(cls, path: str | Path) -> CellModel:
        """Read a model JSON file.

        :raises ModelError: if the file cannot be read, is not JSON, or fails validation.
        """
        name = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ModelError(name, "", f"cannot read: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise ModelError(name, "", "not a UTF-8 text file") from None
        try:
            data = json.loads(text, parse_constant=_reject_constant)
        except (json.JSONDecodeError, ValueError) as exc:
            raise ModelError(name, "", f"not valid JSON: {exc}") from None
        return cls.from_dict(data, name)


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number")


# --- validation ------------------------------------------------------------------------------------


def _fail(key: str, reason: str) -> ModelError:
    return ModelError("<model>", key, reason)


def _check_finite(key: str, values: Sequence[float]) -> None:
    if not values:
        raise _fail(key, "must not be empty")
    for i, v in enumerate(values):
        if not math.isfinite(v):
            raise _fail(f"{key}[{i}]", f"{v} is not a finite number")


def _check_grid(key: str, grid: Sequence[float], *, full_range: bool) -> None:
    _check_finite(key, grid)
    for i in range(1, len(grid)):
        if grid[i] <= grid[i - 1]:
            raise _fail(f"{key}[{i}]", "SOC breakpoints must be strictly increasing")
    if grid[0] < 0.0 or grid[-1] > 1.0:
        raise _fail(key, "SOC breakpoints must lie in 0..1")
    if full_range and (grid[0] != 0.0 or grid[-1] != 1.0):
        raise _fail(key, "the OCV table must run from SOC 0 to SOC 1")


def _validate(m: CellModel) -> None:
    if not (math.isfinite(m.capacity_ah) and m.capacity_ah > 0):
        raise _fail("capacity_ah", f"must be a positive number of Ah, got {m.capacity_ah}")
    _check_grid("ocv.soc", m.ocv_soc, full_range=True)
    if len(m.ocv_soc) < 2:
        raise _fail("ocv.soc", "needs at least two points")
    _check_finite("ocv.voltage_v", m.ocv_v)
    if len(m.ocv_v) != len(m.ocv_soc):
        raise _fail("ocv.voltage_v", f"has {len(m.ocv_v)} values for {len(m.ocv_soc)} SOC points")
    for i in range(1, len(m.ocv_v)):
        if m.ocv_v[i] <= m.ocv_v[i - 1]:
            raise _fail(f"ocv.voltage_v[{i}]", "OCV must rise strictly with SOC (it is inverted for SOC)")
    if m.docv_dt_v_per_k:
        _check_finite("ocv.docv_dt_v_per_k", m.docv_dt_v_per_k)
        if len(m.docv_dt_v_per_k) != len(m.ocv_soc):
            raise _fail("ocv.docv_dt_v_per_k", "must have one value per OCV SOC point")
    _check_grid("resistance.soc", m.r_soc, full_range=False)
    for key, values, positive in (
        ("r0_ohm", m.r0_ohm, True),
        ("r1_ohm", m.r1_ohm, False),
        ("c1_f", m.c1_f, True),
        ("r2_ohm", m.r2_ohm, False),
        ("c2_f", m.c2_f, True),
    ):
        path = f"resistance.{key}"
        _check_finite(path, values)
        if len(values) != len(m.r_soc):
            raise _fail(path, f"has {len(values)} values for {len(m.r_soc)} SOC points")
        for i, v in enumerate(values):
            if v < 0 or (positive and v == 0):
                raise _fail(f"{path}[{i}]", f"must be {'> 0' if positive else '≥ 0'}, got {v}")
    for key, value, low, high in (
        ("temperature_ref_c", m.temperature_ref_c, -60.0, 150.0),
        ("resistance.r0_activation_k", m.r0_activation_k, 0.0, 20000.0),
        ("resistance.rc_activation_k", m.rc_activation_k, 0.0, 20000.0),
        ("resistance.r0_current_coeff", m.r0_current_coeff, -1.0, 1.0),
        ("resistance.r0_current_max_c", m.r0_current_max_c, 1e-3, 1000.0),
    ):
        if not (math.isfinite(value) and low <= value <= high):
            raise _fail(key, f"must lie in {low}..{high}, got {value}")
    _validate_limits(m)


def _validate_limits(m: CellModel) -> None:
    for key, value in (
        ("limits.v_min", m.v_min_v),
        ("limits.v_max", m.v_max_v),
        ("limits.i_discharge_max_a", m.i_discharge_max_a),
        ("limits.i_charge_max_a", m.i_charge_max_a),
    ):
        if not (math.isfinite(value) and value > 0):
            raise _fail(key, f"must be a positive number, got {value}")
    if m.v_min_v >= m.v_max_v:
        raise _fail("limits.v_min", f"must be below limits.v_max ({m.v_min_v} ≥ {m.v_max_v})")


# --- typed JSON reader ------------------------------------------------------------------------------


class _Reader:
    """Convert parsed JSON into a :class:`CellModel` through our own typed schema."""

    def __init__(self, file: str) -> None:
        self.file = file

    def fail(self, key: str, reason: str) -> ModelError:
        return ModelError(self.file, key, reason)

    def mapping(self, value: Any, key: str, allowed: set[str], required: set[str]) -> Mapping[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(key, f"must be an object, got {type(value).__name__}")
        unknown = sorted(set(value) - allowed)
        if unknown:
            where = f"{key}.{unknown[0]}" if key else unknown[0]
            raise self.fail(where, "unknown key (misspelt, or from a newer schema version)")
        missing = sorted(required - set(value))
        if missing:
            raise self.fail(f"{key}.{missing[0]}" if key else missing[0], "missing")
        return value

    def number(self, value: Any, key: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(key, f"must be a number, got {json.dumps(value)[:40]}")
        return float(value)

    def numbers(self, value: Any, key: str) -> tuple[float, ...]:
        if not isinstance(value, list):
            raise self.fail(key, "must be a list of numbers")
        return tuple(self.number(v, f"{key}[{i}]") for i, v in enumerate(value))

    def text(self, value: Any, key: str) -> str:
        if not isinstance(value, str):
            raise self.fail(key, "must be a string")
        return value

    def optional_number(self, value: Any, key: str) -> float | None:
        return None if value is None else self.number(value, key)

    def model(self, data: Any) -> CellModel:
        top = self.mapping(
            data,
            "",
            {
                "schema_version", "name", "chemistry", "source", "capacity_ah", "temperature_ref_c",
                "limits", "ocv", "resistance", "fit",
            },
            {"schema_version", "capacity_ah", "limits", "ocv", "resistance"},
        )  # fmt: skip
        version = top["schema_version"]
        if version != SCHEMA_VERSION or isinstance(version, bool):
            raise self.fail("schema_version", f"is {json.dumps(version)}; this smartbatt reads {SCHEMA_VERSION}")
        limits = self.mapping(
            top["limits"], "limits", {"v_min", "v_max", "i_discharge_max_a", "i_charge_max_a"},
            {"v_min", "v_max", "i_discharge_max_a", "i_charge_max_a"},
        )  # fmt: skip
        ocv = self.mapping(top["ocv"], "ocv", {"soc", "voltage_v", "docv_dt_v_per_k"}, {"soc", "voltage_v"})
        res_keys = {"soc", "r0_ohm", "r1_ohm", "c1_f", "r2_ohm", "c2_f"}
        res_optional = {"r0_activation_k", "rc_activation_k", "r0_current_coeff", "r0_current_max_c"}
        res = self.mapping(top["resistance"], "resistance", res_keys | res_optional, res_keys)
        fit = self.mapping(top.get("fit", {}), "fit", {"rms_mv", "max_mv"}, set())
        try:
            return CellModel(
                name=self.text(top.get("name", ""), "name"),
                chemistry=self.text(top.get("chemistry", ""), "chemistry"),
                source=self.text(top.get("source", ""), "source"),
                capacity_ah=self.number(top["capacity_ah"], "capacity_ah"),
                temperature_ref_c=self.number(top.get("temperature_ref_c", 25.0), "temperature_ref_c"),
                v_min_v=self.number(limits["v_min"], "limits.v_min"),
                v_max_v=self.number(limits["v_max"], "limits.v_max"),
                i_discharge_max_a=self.number(limits["i_discharge_max_a"], "limits.i_discharge_max_a"),
                i_charge_max_a=self.number(limits["i_charge_max_a"], "limits.i_charge_max_a"),
                ocv_soc=self.numbers(ocv["soc"], "ocv.soc"),
                ocv_v=self.numbers(ocv["voltage_v"], "ocv.voltage_v"),
                docv_dt_v_per_k=self.numbers(ocv.get("docv_dt_v_per_k", []), "ocv.docv_dt_v_per_k"),
                r_soc=self.numbers(res["soc"], "resistance.soc"),
                r0_ohm=self.numbers(res["r0_ohm"], "resistance.r0_ohm"),
                r1_ohm=self.numbers(res["r1_ohm"], "resistance.r1_ohm"),
                c1_f=self.numbers(res["c1_f"], "resistance.c1_f"),
                r2_ohm=self.numbers(res["r2_ohm"], "resistance.r2_ohm"),
                c2_f=self.numbers(res["c2_f"], "resistance.c2_f"),
                r0_activation_k=self.number(res.get("r0_activation_k", 0.0), "resistance.r0_activation_k"),
                rc_activation_k=self.number(res.get("rc_activation_k", 0.0), "resistance.rc_activation_k"),
                r0_current_coeff=self.number(res.get("r0_current_coeff", 0.0), "resistance.r0_current_coeff"),
                r0_current_max_c=self.number(res.get("r0_current_max_c", 10.0), "resistance.r0_current_max_c"),
                fit_rms_mv=self.optional_number(fit.get("rms_mv"), "fit.rms_mv"),
                fit_max_mv=self.optional_number(fit.get("max_mv"), "fit.max_mv"),
            )
        except ModelError as exc:
            raise ModelError(self.file, exc.key_path, exc.reason) from None
