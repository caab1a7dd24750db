"""Cell chemistries of the emulator: OCV tables, resistances, thermal and ageing data.

The numbers live in ``smartbatt/emulator/chemistries/<name>.toml``, each with its published
source next to it. :func:`load_chemistry` reads one file through a strict typed schema (unknown
keys, missing keys, wrong types and implausible values are all errors) and only then builds the
frozen :class:`Chemistry`, so nothing is ever half-loaded. Every failure is one
:class:`~smartbatt.errors.ProfileError` naming the file and the key.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from smartbatt.errors import ProfileError

#: Directory of the chemistry data files shipped with the package.
DATA_DIR = Path(__file__).with_name("chemistries")

#: Schema version the loader understands.
SCHEMA_VERSION = 1

#: Chemistries shipped with smartbatt (file stems in :data:`DATA_DIR`).
CHEMISTRIES = ("nmc", "lco", "lfp")

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Chemistry:
    """Per-cell parameters of one chemistry. Arrays are read-only.

    Specific resistances are in ohm·Ah: a cell of capacity ``C`` Ah has ``R = r_ohm_ah / C``.
    """

    #: short name (``nmc``, ``lco``, ``lfp``).
    name: str
    #: human label for the GUI and CLI.
    label: str
    #: discharge cut-off voltage, V.
    v_min: float
    #: charge voltage, V.
    v_max: float
    #: nominal voltage, V.
    v_nominal: float
    #: SOC grid of the OCV table (strictly increasing; contains 0 and 1; ends may lie outside 0..1).
    soc: FloatArray
    #: OCV at 25 °C on :attr:`soc`, V (strictly increasing).
    ocv_v: FloatArray
    #: dOCV/dT on :attr:`soc`, V/K.
    docv_dt_v_per_k: FloatArray
    #: R0 at 25 °C and 50 % SOC, ohm·Ah.
    r0_ohm_ah: float
    #: fast RC pair resistance, ohm·Ah, and time constant, s.
    r1_ohm_ah: float
    tau1_s: float
    #: slow RC pair resistance, ohm·Ah, and time constant, s.
    r2_ohm_ah: float
    tau2_s: float
    #: Arrhenius activation energies of R0 and of the RC pairs, J/mol.
    ea_r0_j_per_mol: float
    ea_rc_j_per_mol: float
    #: extra resistance while a cell is pushed past an end of its table, ohm·Ah.
    saturation_ohm_ah: float
    #: resistance multiplier versus SOC, on its own grid.
    r_soc: FloatArray
    r_soc_factor: FloatArray
    #: reference cell for the thermal data: capacity Ah, mass kg, cooling area m².
    ref_capacity_ah: float
    ref_mass_kg: float
    ref_area_m2: float
    #: specific heat, J/(kg·K); heat-transfer coefficient, W/(m²·K).
    specific_heat_j_per_kg_k: float
    heat_transfer_w_per_m2_k: float
    #: conductance between neighbouring series groups, W/K.
    neighbour_conductance_w_per_k: float
    #: relative capacity loss per equivalent full cycle and per sqrt(day).
    fade_per_cycle: float
    fade_per_sqrt_day: float
    #: relative resistance growth per equivalent full cycle and per sqrt(day).
    growth_per_cycle: float
    growth_per_sqrt_day: float
    #: fraction of capacity lost per month (30 days) at rest.
    self_discharge_per_month: float
    #: standard CC-CV charge rate and taper termination, in C.
    charge_c_rate: float
    termination_c_rate: float

    @property
    def soc_floor(self) -> float:
        """Lowest SOC the cell can reach (table start: the negative electrode is empty)."""
        return float(self.soc[0])

    @property
    def soc_ceiling(self) -> float:
        """Highest SOC the cell can reach (table end: an electrode is full)."""
        return float(self.soc[-1])

    def ocv(self, soc: npt.ArrayLike, temperature_c: npt.ArrayLike = 25.0) -> FloatArray:
        """Open-circuit voltage, V, at ``soc`` (clipped to the table) and ``temperature_c`` (°C)."""
        s = np.asarray(soc, dtype=np.float64)
        base = np.interp(s, self.soc, self.ocv_v)
        slope = np.interp(s, self.soc, self.docv_dt_v_per_k)
        return np.asarray(base + slope * (np.asarray(temperature_c, dtype=np.float64) - 25.0))


# --- loading ------------------------------------------------------------------------------------


class _Reader:
    """Typed access to one parsed TOML table; every failure names file and key path."""

    def __init__(self, file: str, table: dict[str, Any], path: str = "") -> None:
        self.file = file
        self.table = table
        self.path = path
        self.used: set[str] = set()

    def _key(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def error(self, key: str, reason: str) -> ProfileError:
        return ProfileError(self.file, self._key(key), reason)

    def _get(self, key: str) -> Any:
        if key not in self.table:
            raise self.error(key, "missing")
        self.used.add(key)
        return self.table[key]

    def string(self, key: str) -> str:
        value = self._get(key)
        if not isinstance(value, str) or not value:
            raise self.error(key, f"expected a non-empty string, got {value!r}")
        return value

    def number(self, key: str, low: float, high: float) -> float:
        """A finite number in [low, high] (TOML int or float; bool is refused)."""
        value = self._get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(key, f"expected a number, got {value!r}")
        number = float(value)
        if not math.isfinite(number) or not low <= number <= high:
            raise self.error(key, f"{number!r} is outside {low}..{high}")
        return number

    def array(self, key: str, low: float, high: float, *, increasing: bool = False) -> FloatArray:
        """A list of at least two finite numbers in [low, high], optionally strictly increasing."""
        value = self._get(key)
        if not isinstance(value, list) or len(value) < 2:
            raise self.error(key, "expected a list of at least two numbers")
        for index, item in enumerate(value):
            if isinstance(item, bool) or not isinstance(item, int | float) or not math.isfinite(item):
                raise self.error(f"{key}[{index}]", f"expected a finite number, got {item!r}")
            if not low <= item <= high:
                raise self.error(f"{key}[{index}]", f"{item!r} is outside {low}..{high}")
        result = np.asarray(value, dtype=np.float64)
        if increasing and np.any(np.diff(result) <= 0):
            bad = int(np.argmax(np.diff(result) <= 0)) + 1
            raise self.error(f"{key}[{bad}]", "values must be strictly increasing")
        result.setflags(write=False)
        return result

    def sub(self, key: str) -> _Reader:
        value = self._get(key)
        if not isinstance(value, dict):
            raise self.error(key, "expected a table")
        return _Reader(self.file, value, self._key(key))

    def finish(self) -> None:
        """Refuse keys the schema does not know (a typo must not be silently ignored)."""
        unknown = sorted(set(self.table) - self.used)
        if unknown:
            raise self.error(unknown[0], "unknown key")


def _same_length(reader: _Reader, key: str, values: FloatArray, grid: FloatArray) -> None:
    if len(values) != len(grid):
        raise reader.error(key, f"has {len(values)} values for {len(grid)} SOC points")


def _parse_voltage(root: _Reader) -> tuple[float, float, float]:
    table = root.sub("voltage")
    v_min = table.number("minimum", 1.0, 4.5)
    v_max = table.number("maximum", 1.0, 5.0)
    v_nominal = table.number("nominal", 1.0, 5.0)
    table.finish()
    if not v_min < v_nominal < v_max:
        raise table.error("nominal", f"expected minimum < nominal < maximum, got {v_min}, {v_nominal}, {v_max}")
    return v_min, v_max, v_nominal


def _parse_ocv(root: _Reader, v_min: float, v_max: float) -> tuple[FloatArray, FloatArray, FloatArray]:
    table = root.sub("ocv")
    soc = table.array("soc", -0.5, 1.5, increasing=True)
    ocv = table.array("ocv_v", 0.0, 5.5, increasing=True)
    docv = table.array("docv_dt_mv_per_k", -5.0, 5.0)
    _same_length(table, "ocv_v", ocv, soc)
    _same_length(table, "docv_dt_mv_per_k", docv, soc)
    for edge, limit, name in ((0.0, v_min, "minimum"), (1.0, v_max, "maximum")):
        hits = np.flatnonzero(soc == edge)
        if len(hits) != 1:
            raise table.error("soc", f"must contain the point {edge:g}")
        if abs(ocv[hits[0]] - limit) > 0.005:
            raise table.error(
                f"ocv_v[{hits[0]}]", f"OCV at SOC {edge:g} is {ocv[hits[0]]} V, not voltage.{name} = {limit} V"
            )
    derivation = table.sub("derivation")  # provenance only: names and stoichiometry windows
    for key in ("negative_ocp", "positive_ocp", "negative_entropy"):
        derivation.string(key)
    for key in ("x_0", "x_100", "y_0", "y_100"):
        derivation.number(key, 0.0, 1.0)
    derivation.finish()
    table.finish()
    docv_v = np.asarray(docv / 1000.0)
    docv_v.setflags(write=False)
    return soc, ocv, docv_v


def _parse_resistance(root: _Reader) -> dict[str, Any]:
    table = root.sub("resistance")
    values: dict[str, Any] = {
        "r0_ohm_ah": table.number("r0_ohm_ah", 1e-4, 1.0),
        "r1_ohm_ah": table.number("r1_ohm_ah", 1e-5, 1.0),
        "tau1_s": table.number("tau1_s", 0.1, 1e4),
        "r2_ohm_ah": table.number("r2_ohm_ah", 1e-5, 1.0),
        "tau2_s": table.number("tau2_s", 0.1, 1e5),
        "ea_r0_j_per_mol": table.number("activation_energy_r0_j_per_mol", 0.0, 1e5),
        "ea_rc_j_per_mol": table.number("activation_energy_rc_j_per_mol", 0.0, 1e5),
        "saturation_ohm_ah": table.number("saturation_ohm_ah", 0.0, 100.0),
        "r_soc": table.array("soc", 0.0, 1.0, increasing=True),
        "r_soc_factor": table.array("soc_factor", 0.1, 10.0),
    }
    _same_length(table, "soc_factor", values["r_soc_factor"], values["r_soc"])
    if values["tau1_s"] >= values["tau2_s"]:
        raise table.error("tau2_s", "the slow pair must be slower than the fast pair (tau1_s < tau2_s)")
    table.finish()
    return values


def _parse_thermal(root: _Reader) -> dict[str, Any]:
    table = root.sub("thermal")
    values = {
        "ref_capacity_ah": table.number("reference_capacity_ah", 0.01, 1000.0),
        "ref_mass_kg": table.number("reference_mass_kg", 1e-4, 100.0),
        "ref_area_m2": table.number("reference_area_m2", 1e-5, 10.0),
        "specific_heat_j_per_kg_k": table.number("specific_heat_j_per_kg_k", 100.0, 5000.0),
        "heat_transfer_w_per_m2_k": table.number("heat_transfer_w_per_m2_k", 0.1, 1000.0),
        "neighbour_conductance_w_per_k": table.number("neighbour_conductance_w_per_k", 0.0, 100.0),
    }
    table.finish()
    return values


def _parse_ageing_and_charge(root: _Reader) -> dict[str, Any]:
    ageing = root.sub("ageing")
    values = {
        "fade_per_cycle": ageing.number("capacity_fade_per_cycle", 0.0, 0.01),
        "fade_per_sqrt_day": ageing.number("capacity_fade_per_sqrt_day", 0.0, 0.05),
        "growth_per_cycle": ageing.number("resistance_growth_per_cycle", 0.0, 0.05),
        "growth_per_sqrt_day": ageing.number("resistance_growth_per_sqrt_day", 0.0, 0.1),
        "self_discharge_per_month": ageing.number("self_discharge_per_month", 0.0, 0.5),
    }
    ageing.finish()
    charge = root.sub("charge")
    values["charge_c_rate"] = charge.number("standard_c_rate", 0.01, 10.0)
    values["termination_c_rate"] = charge.number("termination_c_rate", 0.001, 1.0)
    charge.finish()
    return values


def parse_chemistry(file: str, data: dict[str, Any]) -> Chemistry:
    """Validate a parsed chemistry table and build the :class:`Chemistry`.

    :raises ProfileError: on a wrong schema version, a missing, unknown or mistyped key, a value
        out of its plausible range or inconsistent tables.
    """
    root = _Reader(file, data)
    version = root.number("schema_version", 0, 1000)
    if version != SCHEMA_VERSION:
        raise root.error("schema_version", f"unsupported version {version:g} (this smartbatt reads {SCHEMA_VERSION})")
    name = root.string("name")
    label = root.string("label")
    v_min, v_max, v_nominal = _parse_voltage(root)
    soc, ocv, docv = _parse_ocv(root, v_min, v_max)
    resistance = _parse_resistance(root)
    thermal = _parse_thermal(root)
    ageing = _parse_ageing_and_charge(root)
    root.finish()
    return Chemistry(
        name=name,
        label=label,
        v_min=v_min,
        v_max=v_max,
        v_nominal=v_nominal,
        soc=soc,
        ocv_v=ocv,
        docv_dt_v_per_k=docv,
        **resistance,
        **thermal,
        **ageing,
    )


def load_chemistry_file(path: Path) -> Chemistry:
    """Read and validate one chemistry file.

    :raises ProfileError: if the file is missing, not TOML, or fails validation.
    """
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise ProfileError(path.name, "", f"cannot read: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(path.name, "", f"not valid TOML: {exc}") from exc
    chemistry = parse_chemistry(path.name, data)
    if chemistry.name != path.stem:
        raise ProfileError(path.name, "name", f"{chemistry.name!r} does not match the file name")
    return chemistry


@cache
def load_chemistry(name: str) -> Chemistry:
    """The shipped chemistry called ``name`` (one of :data:`CHEMISTRIES`), loaded once.

    :raises ValueError: for an unknown name.
    :raises ProfileError: if the shipped file is invalid.
    """
    if name not in CHEMISTRIES:
        raise ValueError(f"unknown chemistry {name!r}; choose one of {', '.join(CHEMISTRIES)}")
    return load_chemistry_file(DATA_DIR / f"{name}.toml")
