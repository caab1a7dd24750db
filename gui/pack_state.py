"""What the dashboard derives from a sample: power, SOH, FET, security and balancing state (no Qt).

FET, security and balancing states come from the chip profile's bit maps of OperationStatus
(ti_gauges.md §5.3: DSG bit 1, CHG bit 2, SEC[1:0] at bits 8–9, CB bit 28 on the bq40z family) —
never from bit numbers written here, so a profile that names them differently or lacks them
gives "unknown" instead of a wrong answer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from smartbatt.errors import SmartBattError
from smartbatt.gauge.flags import decode
from smartbatt.monitor.sample import Sample
from smartbatt.profiles.schema import Profile, SecurityLevel


@dataclass(frozen=True)
class PackState:
    """Derived state of one sample; None = unknown (not readable on this pack or profile)."""

    #: V × I, W (positive = charging).
    power_w: float | None = None
    #: FullChargeCapacity / design capacity, %.
    soh_pct: float | None = None
    charge_fet: bool | None = None
    discharge_fet: bool | None = None
    #: ``sealed``, ``unsealed``, ``full_access`` or None.
    security: SecurityLevel | None = None
    #: any cell bleeding (OperationStatus CB).
    balancing: bool | None = None
    #: highest minus lowest cell voltage, V.
    cell_spread_v: float | None = None

    @property
    def sealed(self) -> bool | None:
        if self.security is None:
            return None
        return self.security is SecurityLevel.SEALED


SECURITY_LABELS = {
    SecurityLevel.SEALED: "Sealed",
    SecurityLevel.UNSEALED: "Unsealed",
    SecurityLevel.FULL_ACCESS: "Full access",
    SecurityLevel.UNKNOWN: "Unknown",
}


def _flag(profile: Profile | None, sample: Sample, register: str, name: str) -> bool | None:
    if profile is None or register not in sample.status or register not in profile.bitfields:
        return None
    bitfield = profile.bitfields[register]
    if not any(f.name == name for f in bitfield.flags):
        return None
    try:
        return decode(bitfield, sample.status[register])[name]
    except SmartBattError:
        return None


def security_state(profile: Profile | None, sample: Sample) -> SecurityLevel | None:
    """The security mode from the profile's state register and group (SEC), or None."""
    if profile is None:
        return None
    sec = profile.security
    register, group = sec.state_register, sec.state_group
    if register is None or group is None or register not in sample.status or register not in profile.bitfields:
        return None
    try:
        value = decode(profile.bitfields[register], sample.status[register]).group(group).value
    except SmartBattError:
        return None
    return sec.states.get(value, SecurityLevel.UNKNOWN)


def derive(sample: Sample, profile: Profile | None, design_capacity_ah: float | None) -> PackState:
    """Everything the dashboard shows beyond the raw channels."""
    v, i = sample.get("Voltage"), sample.get("Current")
    power = v * i if v is not None and i is not None else None
    fcc = sample.get("FullChargeCapacity")
    soh = None
    design = design_capacity_ah
    if fcc is not None and design is not None and math.isfinite(design) and design > 0:
        soh = 100.0 * fcc / design
    cells = sample.cells()
    spread = max(cells) - min(cells) if len(cells) >= 2 else None
    return PackState(
        power_w=power,
        soh_pct=soh,
        charge_fet=_flag(profile, sample, "OperationStatus", "CHG"),
        discharge_fet=_flag(profile, sample, "OperationStatus", "DSG"),
        security=security_state(profile, sample),
        balancing=_flag(profile, sample, "OperationStatus", "CB"),
        cell_spread_v=spread,
    )
