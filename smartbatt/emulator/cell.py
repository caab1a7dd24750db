"""Equivalent-circuit model of N cell groups, vectorised with numpy.

Each series group (``parallel`` identical-chemistry cells in parallel, lumped) is a Thevenin model
with two RC pairs::

    V = OCV(SOC, T) + I·R0 + v1 + v2          (SBS sign: I > 0 charges)
    dv_k/dt = -v_k/tau_k + I/C_k,  C_k = tau_k/R_k

The RC pairs use the exact solution for a current held over the step,
``v_k ← v_k·e^(-dt/tau_k) + R_k·I·(1 - e^(-dt/tau_k))``, so the update is stable at any ``dt``.
All three resistances follow the SOC multiplier table of the chemistry and an Arrhenius law in
temperature; the time constants are held fixed (C_k scales with 1/R_k). Parallel cells share
current in proportion to their conductance, which the caller expresses by passing the group's
lumped capacity (sum over the cells) and resistances (parallel combination).

Limits: the SOC state may run slightly outside 0..1 (a cell can be over-discharged or
over-charged to where the OCV table ends); at the table ends it is clamped, because an electrode
is then empty or full. A group pushed further sees an extra saturation resistance, so its
terminal voltage collapses under discharge or climbs under charge. Terminal voltages are floored
at 0 V: cell reversal is not modelled.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from smartbatt.emulator.chemistry import Chemistry, FloatArray

#: molar gas constant, J/(mol·K).
GAS_CONSTANT = 8.314462618
#: 0 °C in kelvin.
ZERO_C_K = 273.15
#: reference temperature of the chemistry data (25 °C), K.
T_REF_K = 298.15
#: 1 / T_REF_K, 1/K (precomputed: the step evaluates the Arrhenius term every second).
_INV_T_REF = 1.0 / T_REF_K
#: the ufunc reductions behind ndarray.min()/max(), called directly (same result, less overhead).
_array_min = np.minimum.reduce
_array_max = np.maximum.reduce


def arrhenius(temperature_c: FloatArray, activation_j_per_mol: float) -> FloatArray:
    """Resistance multiplier exp(Ea/R·(1/T − 1/T_ref)): >1 when cold, <1 when warm."""
    inverse = 1.0 / (np.asarray(temperature_c) + ZERO_C_K) - 1.0 / T_REF_K
    return np.asarray(np.exp((activation_j_per_mol / GAS_CONSTANT) * inverse))


class CellGroups:
    """Electrical state of N series groups: SOC and the two RC-pair voltages.

    :param chemistry: the cell chemistry.
    :param capacity_ah: usable capacity per group (0 → 100 % SOC), Ah, shape (N,).
    :param r0_ohm, r1_ohm, r2_ohm: resistances per group at 25 °C and 50 % SOC, ohm, shape (N,).
    :param soc: initial SOC per group, shape (N,); clamped to the table range.
    :param saturation_ohm: extra resistance per group at the table ends, ohm, shape (N,).
    :raises ValueError: on arrays of different shapes or non-positive capacities/resistances.
    """

    def __init__(
        self,
        chemistry: Chemistry,
        capacity_ah: npt.ArrayLike,
        r0_ohm: npt.ArrayLike,
        r1_ohm: npt.ArrayLike,
        r2_ohm: npt.ArrayLike,
        soc: npt.ArrayLike,
        saturation_ohm: npt.ArrayLike,
    ) -> None:
        arrays = [np.array(a, dtype=np.float64) for a in (capacity_ah, r0_ohm, r1_ohm, r2_ohm, soc, saturation_ohm)]
        shape = arrays[0].shape
        if len(shape) != 1 or any(a.shape != shape for a in arrays):
            raise ValueError("capacity, resistances, SOC and saturation must be 1-D arrays of one length")
        if np.any(arrays[0] <= 0) or any(np.any(a <= 0) for a in arrays[1:4]):
            raise ValueError("capacities and resistances must be positive")
        self.chemistry = chemistry
        self.capacity_ah, self.r0_base, self.r1_base, self.r2_base, soc_array, self.saturation_ohm = arrays
        #: SOC table ends (the chemistry computes them on each access).
        self._soc_floor = chemistry.soc_floor
        self._soc_ceiling = chemistry.soc_ceiling
        self.soc = np.clip(soc_array, self._soc_floor, self._soc_ceiling)
        self.v1 = np.zeros(shape)
        self.v2 = np.zeros(shape)
        # the resistance-vs-SOC multiplier resampled onto the OCV grid, so one lookup serves all tables
        self._soc_factor_on_grid = np.interp(chemistry.soc, chemistry.r_soc, chemistry.r_soc_factor)
        self._k_r0 = chemistry.ea_r0_j_per_mol / GAS_CONSTANT  # K
        self._k_rc = chemistry.ea_rc_j_per_mol / GAS_CONSTANT  # K
        self._decay_dt = -1.0
        self._e1 = self._e2 = 0.0
        # outputs of the last step (also valid before the first step: at rest)
        self.current = np.zeros(shape)
        self.r0 = self.r0_base.copy()
        self.r1 = self.r1_base.copy()
        self.r2 = self.r2_base.copy()
        self.ocv = np.zeros(shape)
        self.voltage = np.zeros(shape)
        self.update_outputs(np.full(shape, 25.0))

    # --- pieces of the step, also used by the pack for its own bookkeeping -------------------------

    def resistances(self, temperature_c: FloatArray) -> None:
        """Refresh R0, R1, R2 (ohm) for the present SOC and ``temperature_c`` (°C per group)."""
        chem = self.chemistry
        factor = np.interp(self.soc, chem.soc, self._soc_factor_on_grid)
        inverse = 1.0 / (temperature_c + ZERO_C_K) - _INV_T_REF
        np.multiply(self.r0_base * factor, np.exp(inverse * self._k_r0), out=self.r0)
        factor *= np.exp(inverse * self._k_rc)
        np.multiply(self.r1_base, factor, out=self.r1)
        np.multiply(self.r2_base, factor, out=self.r2)

    def update_outputs(self, temperature_c: FloatArray) -> None:
        """Recompute resistances, OCV and terminal voltage from the state and last current."""
        self.resistances(temperature_c)
        chem = self.chemistry
        soc = self.soc
        self.ocv = np.interp(soc, chem.soc, chem.ocv_v) + np.interp(soc, chem.soc, chem.docv_dt_v_per_k) * (
            temperature_c - 25.0
        )
        voltage = self.ocv + self.current * self.r0
        voltage += self.v1
        voltage += self.v2
        # cheap common case first: no group sits at a table end
        if _array_min(soc) <= self._soc_floor or _array_max(soc) >= self._soc_ceiling:
            self._saturate(voltage)
        np.maximum(voltage, 0.0, out=voltage)
        self.voltage = voltage

    def _saturate(self, voltage: FloatArray) -> None:
        """Add the saturation drop for groups clamped at a table end and pushed further."""
        at_floor = (self.soc <= self._soc_floor) & (self.current < 0)
        at_ceiling = (self.soc >= self._soc_ceiling) & (self.current > 0)
        pushed = at_floor | at_ceiling
        voltage += np.where(pushed, self.current * self.saturation_ohm, 0.0)

    def _decays(self, dt_s: float) -> tuple[float, float]:
        """e^(-dt/tau) of both pairs, cached for the last step length (steps are usually equal)."""
        if dt_s != self._decay_dt:
            self._decay_dt = dt_s
            self._e1 = math.exp(-dt_s / self.chemistry.tau1_s)
            self._e2 = math.exp(-dt_s / self.chemistry.tau2_s)
        return self._e1, self._e2

    def step(self, dt_s: float, current_a: FloatArray, temperature_c: FloatArray) -> None:
        """Advance by ``dt_s`` seconds with ``current_a`` (A per group, > 0 charges) at ``temperature_c``.

        The RC pairs are integrated exactly for the step with the resistances of the end of the
        previous step (SOC and temperature lag by one step, which is negligible at the seconds
        scale they change on); outputs (:attr:`ocv`, :attr:`voltage`, :attr:`r0`…) then describe
        the end of this step at ``temperature_c``.
        """
        e1, e2 = self._decays(dt_s)
        self.v1 *= e1
        self.v1 += self.r1 * (current_a * (1.0 - e1))
        self.v2 *= e2
        self.v2 += self.r2 * (current_a * (1.0 - e2))
        self.soc += current_a * (dt_s / 3600.0) / self.capacity_ah
        np.maximum(self.soc, self._soc_floor, out=self.soc)
        np.minimum(self.soc, self._soc_ceiling, out=self.soc)
        self.current[:] = current_a
        self.update_outputs(temperature_c)

    def rc_heat_w(self) -> FloatArray:
        """Power dissipated in the RC-pair resistors now, W per group (v²/R)."""
        return np.asarray(self.v1 * self.v1 / self.r1 + self.v2 * self.v2 / self.r2)
