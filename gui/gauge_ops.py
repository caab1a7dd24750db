"""TI-driver operations for the Thresholds panel (no Qt; each runs on the poller's I/O thread).

Thin adapters from the GUI's needs to :mod:`smartbatt.gauge`: the security state and the key
sequences, data flash read/write by name with the driver's checks and read-back verify, and the
golden image (export, diff preview, import with a backup). Results are small frozen records the
panel can show directly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from smartbatt.errors import AccessDenied, SmartBattError
from smartbatt.gauge import security
from smartbatt.gauge.dataflash import DataFlash, load_image
from smartbatt.gauge.gauge import Gauge, SecurityState
from smartbatt.profiles.schema import DataFlashEntry, DFValue, Profile, SecurityLevel
from smartbatt.sbs.battery import Battery

BatteryFn = Callable[[Battery], Any]
Callback = Callable[[Any], None]

#: data-flash classes the Thresholds panel lists (the protection thresholds and their enables).
THRESHOLD_CLASSES = ("Protections",)
THRESHOLD_SUBCLASSES = (("Settings", "Protection"),)

LABELS = {
    SecurityLevel.SEALED: "Sealed",
    SecurityLevel.UNSEALED: "Unsealed",
    SecurityLevel.FULL_ACCESS: "Full access",
    SecurityLevel.UNKNOWN: "Unknown",
}


@dataclass(frozen=True)
class SecurityInfo:
    """The gauge's security mode and how it is known."""

    level: SecurityLevel | None
    #: where it was read, or why it is unknown (one sentence).
    source: str
    #: deduced from a refusal rather than read.
    inferred: bool = False
    #: the raw state register (OperationStatus) when it was read; FET and balancing state come
    #: from it on packs whose poller cannot read it (sealed bq40z: 0x54 refused, MAC 0x0054 not).
    state_register: str = ""
    state_raw: int | None = None

    @property
    def label(self) -> str:
        return "Unknown" if self.level is None else LABELS[self.level]

    @property
    def sealed(self) -> bool:
        return self.level is SecurityLevel.SEALED

    @property
    def writable(self) -> bool:
        """Data flash may be written (unsealed or full access)."""
        return self.level in (SecurityLevel.UNSEALED, SecurityLevel.FULL_ACCESS)


@dataclass(frozen=True)
class ThresholdRow:
    """One data-flash entry with its value on the pack (or why it has none)."""

    entry: DataFlashEntry
    value: DFValue | None = None
    #: the value as bqStudio shows it, or "" if unread.
    text: str = ""
    #: why it cannot be read or written ("" if it can).
    problem: str = ""

    @property
    def addressable(self) -> bool:
        return self.entry.address is not None


def threshold_entries(profile: Profile | None) -> list[DataFlashEntry]:
    """The profile's protection thresholds and protection enables, in file order."""
    if profile is None:
        return []
    return [
        e
        for e in profile.data_flash
        if e.class_name in THRESHOLD_CLASSES or (e.class_name, e.subclass) in THRESHOLD_SUBCLASSES
    ]


def threshold_rows(profile: Profile | None) -> list[ThresholdRow]:
    """Unread rows for every threshold entry (unaddressable ones say so)."""
    return [ThresholdRow(e, problem=_no_address(profile, e)) for e in threshold_entries(profile)]


def _no_address(profile: Profile | None, entry: DataFlashEntry) -> str:
    if entry.address is not None:
        return ""
    name = profile.name if profile is not None else "this profile"
    return f"address unknown for this chip in profile {name} (no public source gives it)"


def _gauge(battery: Battery, profile: Profile | None) -> Gauge:
    if profile is None:
        raise AccessDenied("no chip profile is known for this pack yet")
    return Gauge(battery, profile)


# --- security ------------------------------------------------------------------------------------------


def security_state(battery: Battery, profile: Profile | None) -> SecurityInfo:
    """Read the security mode (OperationStatus SEC) through the driver, with the raw register."""
    gauge = _gauge(battery, profile)
    state = gauge.security_state()
    register = gauge.profile.security.state_register or ""
    raw = None
    if register and not state.inferred and state.level is not None:
        try:
            raw = gauge.status(register).raw
        except SmartBattError:
            raw = None
    return SecurityInfo(state.level, state.source, state.inferred, register, raw)


def unseal(battery: Battery, profile: Profile | None, key: str | None) -> SecurityInfo:
    """Unseal with ``key`` or the profile's published default; the driver confirms via the SEC bits.

    :raises SecurityError: the key was refused (the gauge is still sealed).
    :raises DecodeError: the key text is not a key.
    """
    return _info(security.unseal(_gauge(battery, profile), key=key or None))


def full_access(battery: Battery, profile: Profile | None, key: str | None) -> SecurityInfo:
    """Unsealed → full access with ``key`` or the profile's default. :raises SecurityError: refused."""
    return _info(security.full_access(_gauge(battery, profile), key=key or None))


def seal(battery: Battery, profile: Profile | None) -> SecurityInfo:
    """Seal and confirm. :raises SecurityError: the gauge did not seal."""
    return _info(security.seal(_gauge(battery, profile)))


def _info(state: SecurityState) -> SecurityInfo:
    return SecurityInfo(state.level, state.source, state.inferred)


# --- data flash --------------------------------------------------------------------------------------------


def _dataflash(battery: Battery, profile: Profile | None) -> DataFlash:
    return DataFlash(_gauge(battery, profile))


def read_thresholds(battery: Battery, profile: Profile | None) -> list[ThresholdRow]:
    """Read every addressable threshold; a failing entry carries its error, never stops the rest.

    :raises SealedError: the gauge is sealed (nothing is readable then).
    """
    df = _dataflash(battery, profile)
    entries = threshold_entries(profile)
    addressed = [e.key for e in entries if e.address is not None]
    values = df.read_all(addressed) if addressed else {}
    rows = []
    for entry in entries:
        problem = _no_address(profile, entry)
        if problem or entry.key not in values:
            rows.append(ThresholdRow(entry, problem=problem or "not read"))
            continue
        value = values[entry.key]
        rows.append(ThresholdRow(entry, value, entry.format_display(value)))
    return rows


def write_entry(battery: Battery, profile: Profile | None, entry: DataFlashEntry, value: DFValue) -> ThresholdRow:
    """Write one entry (type/range checked, verified by read-back) and return the value read back.

    :raises SealedError: the gauge is sealed. :raises RangeError: out of range.
    :raises VerifyError: the read-back differs.
    """
    entry.check(value)
    back = _dataflash(battery, profile).write(entry.key, value)
    return ThresholdRow(entry, back, entry.format_display(back))


@dataclass(frozen=True)
class ImportPreview:
    """What importing an image would change, before anything is written."""

    path: Path
    #: (key, old text, new text, unit) per differing entry.
    changes: tuple[tuple[str, str, str, str], ...]
    #: entries already at the image's value.
    unchanged: int = 0
    #: entries of the image that cannot be written here, with why.
    skipped: tuple[tuple[str, str], ...] = ()


def export_image(battery: Battery, profile: Profile | None, path: Path) -> str:
    """Save every addressed entry as a golden image file; returns a one-line summary."""
    image = _dataflash(battery, profile).export_image(path)
    return f"Data flash exported to {path} ({len(image.values)} entries)"


def preview_import(battery: Battery, profile: Profile | None, path: Path) -> ImportPreview:
    """The diff between an image file and the pack.

    :raises FileFormatError: not an image, or one for another profile.
    """
    df = _dataflash(battery, profile)
    image = load_image(path, df.profile)
    plan = df.diff(image.values, str(path))
    changes = []
    for c in plan.changes:
        entry = df.profile.df_entry(c.key)
        changes.append((c.key, entry.format_display(c.old), entry.format_display(c.new), c.unit))
    return ImportPreview(path, tuple(changes), len(plan.unchanged), tuple(plan.skipped))


def import_image(battery: Battery, profile: Profile | None, path: Path, backup_dir: Path) -> str:
    """Write an image: backup first, then entry by entry with verify; returns a one-line summary.

    :raises InterruptedWrite: a bus failure stopped it; the message names the written, in-doubt
        and remaining entries. Running it again completes it.
    """
    backup_dir.mkdir(parents=True, exist_ok=True)
    result = _dataflash(battery, profile).import_image(path, backup_dir=backup_dir)
    backup = f", previous values saved to {result.backup}" if result.backup else ""
    return f"Data flash imported from {path.name}: {len(result.written)} entries written and verified{backup}"
