"""A generic cell model per chemistry, for estimating a pack nobody has characterised yet.

The live monitor and the GUI need a cell model to run the independent estimator from the first
sample. Until the user fits one from a characterization log (``smartbatt model fit``), this module
builds one from the published cell data the emulator's chemistry files cite (NMC: Chen2020 / LG
M50; LCO: Ai2020; LFP: Prada2013 — see ``smartbatt/emulator/chemistries/*.toml``), scaled to the
pack's DesignCapacity. The estimator adapts R0 and learns capacity online, so a generic start is
usable; a fitted model is what makes it accurate.
"""

from __future__ import annotations

import numpy as np

from smartbatt.emulator.chemistry import Chemistry, load_chemistry
from smartbatt.monitor.cellmodel import CellModel, ModelError

#: gas constant, J/(mol·K): Arrhenius activation energy → activation temperature E/R.
GAS_CONSTANT = 8.314462618

#: SBS DeviceChemistry text → chemistry file (Linux sbs-battery maps LION/LiP/… by prefix; sbs.md §1).
_CHEMISTRY_PREFIXES = (("LIFE", "lfp"), ("LFP", "lfp"), ("LIP", "lco"), ("LCO", "lco"), ("LION", "nmc"))

#: discharge limit of the generic model, C-rate: a high-rate cell (drone, power tool) assumption;
#: the state of power is then bounded by the cell voltage limits, which are the chemistry's.
DISCHARGE_C_MAX = 10.0


def chemistry_for(device_chemistry: str) -> str:
    """The chemistry file for a DeviceChemistry string (``LION`` → ``nmc``); ``nmc`` if unknown."""
    text = device_chemistry.strip().upper()
    for prefix, name in _CHEMISTRY_PREFIXES:
        if text.startswith(prefix):
            return name
    return "nmc"


def generic_model(chemistry: str = "nmc", capacity_ah: float | None = None) -> CellModel:
    """A cell model from published chemistry data, scaled to ``capacity_ah`` per cell.

    :param chemistry: ``nmc``, ``lco`` or ``lfp``.
    :param capacity_ah: capacity of one cell (one parallel group's share); None = the data's cell.
    :raises ModelError: unknown chemistry.
    """
    try:
        chem = load_chemistry(chemistry)
    except ValueError as exc:
        raise ModelError("<generic model>", "chemistry", str(exc)) from None
    capacity = chem.ref_capacity_ah if capacity_ah is None else capacity_ah
    soc = np.linspace(0.0, 1.0, 41)
    ocv = np.interp(soc, chem.soc, chem.ocv_v)
    docv = np.interp(soc, chem.soc, chem.docv_dt_v_per_k)
    r_soc = np.clip(chem.r_soc, 0.0, 1.0)
    factor = chem.r_soc_factor
    r1 = chem.r1_ohm_ah / capacity * factor
    r2 = chem.r2_ohm_ah / capacity * factor
    return CellModel(
        capacity_ah=capacity,
        ocv_soc=tuple(float(x) for x in soc),
        ocv_v=tuple(float(x) for x in ocv),
        r_soc=tuple(float(x) for x in r_soc),
        r0_ohm=tuple(float(x) for x in chem.r0_ohm_ah / capacity * factor),
        r1_ohm=tuple(float(x) for x in r1),
        c1_f=tuple(float(chem.tau1_s / x) for x in r1),
        r2_ohm=tuple(float(x) for x in r2),
        c2_f=tuple(float(chem.tau2_s / x) for x in r2),
        v_min_v=chem.v_min,
        v_max_v=chem.v_max,
        i_discharge_max_a=DISCHARGE_C_MAX * capacity,
        i_charge_max_a=chem.charge_c_rate * capacity,
        r0_activation_k=chem.ea_r0_j_per_mol / GAS_CONSTANT,
        rc_activation_k=chem.ea_rc_j_per_mol / GAS_CONSTANT,
        docv_dt_v_per_k=tuple(float(x) for x in docv),
        name=f"generic {chem.label}",
        chemistry=chem.name,
        source=_source(chem),
    )


def _source(chem: Chemistry) -> str:
    return (
        f"generic model from smartbatt's {chem.name} chemistry data (published cell data, see "
        "smartbatt/emulator/chemistries); fit your own cell with `smartbatt model fit` for accuracy"
    )
