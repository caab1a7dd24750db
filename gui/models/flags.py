"""The flags sub-model: every status word decoded with the profile's bit maps, and what changed when.

Decoding uses :mod:`smartbatt.gauge.flags` with the chip profile in use (the generic SBS
profile has BatteryStatus, BatteryMode and SpecificationInfo; TI profiles add SafetyStatus,
PFStatus, OperationStatus …). Each new sample is compared with the previous decode of the same
register and every changed flag or field is logged with the sample's time.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from PySide6.QtCore import QObject, Signal

from smartbatt.errors import SmartBattError
from smartbatt.gauge.flags import DecodedRegister, FlagChange, decode, diff
from smartbatt.monitor.sample import Sample
from smartbatt.profiles.loader import load_profile
from smartbatt.profiles.schema import Profile

#: changes kept in the log.
MAX_CHANGES = 2000


@dataclass(frozen=True)
class LoggedChange:
    """A flag change with the time of the sample that showed it (unix s)."""

    time: float
    change: FlagChange


class FlagsModel(QObject):
    """Signals (GUI thread): ``flags_changed()`` after a sample changed any register;
    ``log_changed()`` when changes were appended to the log."""

    flags_changed = Signal()
    log_changed = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.profile: Profile = load_profile("generic-sbs")
        #: register → latest decode.
        self.registers: dict[str, DecodedRegister] = {}
        self.changes: deque[LoggedChange] = deque(maxlen=MAX_CHANGES)

    def set_profile(self, profile: Profile | None) -> None:
        self.profile = profile or load_profile("generic-sbs")
        self.registers = {}
        self.flags_changed.emit()

    def reset(self) -> None:
        self.registers = {}
        self.changes.clear()
        self.flags_changed.emit()
        self.log_changed.emit()

    def update(self, sample: Sample) -> None:
        """Decode the status words of ``sample``; log what changed since the previous one."""
        changed = False
        logged = False
        for name, raw in sample.status.items():
            bitfield = self.profile.bitfields.get(name)
            if bitfield is None:
                continue
            try:
                decoded = decode(bitfield, raw)
            except SmartBattError:
                continue
            old = self.registers.get(name)
            if old is not None and old.raw == decoded.raw:
                continue
            changed = True
            self.registers[name] = decoded
            if old is not None:
                for change in diff(old, decoded):
                    self.changes.append(LoggedChange(sample.time, change))
                    logged = True
        if changed:
            self.flags_changed.emit()
        if logged:
            self.log_changed.emit()

    def descriptions(self, register: str) -> dict[str, str]:
        """flag/group name → description (tooltips) for ``register``."""
        bitfield = self.profile.bitfields.get(register)
        if bitfield is None:
            return {}
        out = {f.name: f.description or f.label for f in bitfield.flags}
        out.update({g.name: g.description or g.label for g in bitfield.groups})
        return out
