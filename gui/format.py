"""Channel metadata and value formatting for the desktop app (no Qt: tested as plain data).

Every value the app shows goes through :func:`format_value`, so units are never missing and the
number of decimals matches what the gauge can resolve (SBS quantises voltage and current to
1 mV / 1 mA and temperature to 0.1 K; sbs.md §1). The user's unit choices (°C or °F, A or mA,
V or mV, Ah or mAh) live in :class:`UnitPrefs` and are applied here, once.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

#: shown for a value that is missing, not finite or not applicable.
MISSING = "—"


@dataclass(frozen=True)
class ChannelInfo:
    """How one sample channel is labelled and shown (units as in ``smartbatt.monitor.sample``)."""

    #: short label for tables, legends and tiles.
    label: str
    #: unit of the value in the sample (the library's display unit).
    unit: str
    #: decimals shown in that unit.
    decimals: int
    #: which quantity it is, for unit preferences: ``voltage``, ``current``, ``temperature``,
    #: ``capacity``, ``percent``, ``time``, ``count`` or ``other``.
    quantity: str = "other"


#: channel name → how to show it. Channels not listed are shown with :func:`channel_info`'s guess.
CHANNELS: Mapping[str, ChannelInfo] = MappingProxyType(
    {
        "Voltage": ChannelInfo("Pack voltage", "V", 3, "voltage"),
        "Current": ChannelInfo("Current", "A", 3, "current"),
        "AverageCurrent": ChannelInfo("Average current", "A", 3, "current"),
        "Temperature": ChannelInfo("Temperature", "°C", 1, "temperature"),
        "RelativeStateOfCharge": ChannelInfo("SOC (gauge)", "%", 0, "percent"),
        "AbsoluteStateOfCharge": ChannelInfo("Absolute SOC", "%", 0, "percent"),
        "RemainingCapacity": ChannelInfo("Remaining capacity", "Ah", 3, "capacity"),
        "FullChargeCapacity": ChannelInfo("Full-charge capacity", "Ah", 3, "capacity"),
        "RunTimeToEmpty": ChannelInfo("Time to empty", "min", 0, "time"),
        "AverageTimeToEmpty": ChannelInfo("Avg. time to empty", "min", 0, "time"),
        "AverageTimeToFull": ChannelInfo("Time to full", "min", 0, "time"),
        "CycleCount": ChannelInfo("Cycle count", "", 0, "count"),
        "MaxError": ChannelInfo("Max error", "%", 0, "percent"),
        "ChargingCurrent": ChannelInfo("Charging current", "A", 3, "current"),
        "ChargingVoltage": ChannelInfo("Charging voltage", "V", 3, "voltage"),
        "Power": ChannelInfo("Power", "W", 2, "power"),
        "est_soc": ChannelInfo("SOC (estimate)", "%", 1, "percent"),
        "est_soc_sigma": ChannelInfo("SOC uncertainty", "%", 1, "percent"),
        "est_soh": ChannelInfo("SOH (estimate)", "%", 1, "percent"),
        "est_capacity_ah": ChannelInfo("Capacity (estimate)", "Ah", 3, "capacity"),
        "est_sop_discharge_10s_w": ChannelInfo("Peak discharge 10 s", "W", 0, "power"),
        "est_sop_charge_10s_w": ChannelInfo("Peak charge 10 s", "W", 0, "power"),
    }
)


def channel_info(name: str) -> ChannelInfo:
    """Metadata of ``name``: from :data:`CHANNELS`, or guessed from the name (cells, temperatures)."""
    info = CHANNELS.get(name)
    if info is not None:
        return info
    if name.startswith("CellVoltage") and name[11:].isdigit():
        return ChannelInfo(f"Cell {name[11:]}", "V", 3, "voltage")
    if name.startswith("Temperature"):
        return ChannelInfo(name, "°C", 1, "temperature")
    return ChannelInfo(name, "", 3, "other")


@dataclass(frozen=True)
class UnitPrefs:
    """The user's display units (persisted in the settings)."""

    #: ``C``, ``F`` or ``K``.
    temperature: str = "C"
    #: ``A`` or ``mA``.
    current: str = "A"
    #: ``V`` or ``mV``.
    voltage: str = "V"
    #: ``Ah`` or ``mAh``.
    capacity: str = "Ah"

    def __post_init__(self) -> None:
        for name, allowed in UNIT_CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} unit must be one of {', '.join(allowed)}, not {getattr(self, name)!r}")


#: unit preference → allowed values.
UNIT_CHOICES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {"temperature": ("C", "F", "K"), "current": ("A", "mA"), "voltage": ("V", "mV"), "capacity": ("Ah", "mAh")}
)


def convert(value: float, info: ChannelInfo, prefs: UnitPrefs) -> tuple[float, str, int]:
    """``value`` (in ``info.unit``) in the preferred unit: ``(value, unit, decimals)``."""
    q = info.quantity
    if q == "temperature" and info.unit == "°C":
        if prefs.temperature == "F":
            return value * 9.0 / 5.0 + 32.0, "°F", info.decimals
        if prefs.temperature == "K":
            return value + 273.15, "K", info.decimals
    if q == "current" and info.unit == "A" and prefs.current == "mA":
        return value * 1000.0, "mA", max(0, info.decimals - 3)
    if q == "voltage" and info.unit == "V" and prefs.voltage == "mV":
        return value * 1000.0, "mV", max(0, info.decimals - 3)
    if q == "capacity" and info.unit == "Ah" and prefs.capacity == "mAh":
        return value * 1000.0, "mAh", max(0, info.decimals - 3)
    return value, info.unit, info.decimals


def format_number(value: float | None, decimals: int, unit: str = "") -> str:
    """``3.742 V``; :data:`MISSING` for None, NaN or infinity. Uses a real minus sign."""
    if value is None or not math.isfinite(value):
        return MISSING
    text = f"{value:,.{decimals}f}".replace("-", "−")
    return f"{text} {unit}" if unit else text


def format_value(name: str, value: float | None, prefs: UnitPrefs | None = None) -> str:
    """Channel ``name``'s ``value`` with its unit, in the user's preferred units."""
    if value is None or not math.isfinite(value):
        return MISSING
    info = channel_info(name)
    if info.quantity == "time":
        return format_minutes(value)
    shown, unit, decimals = convert(value, info, prefs or UnitPrefs())
    return format_number(shown, decimals, unit)


def format_minutes(minutes: float | None) -> str:
    """A time in minutes as ``2 h 05 min`` / ``45 min``; :data:`MISSING` if unknown."""
    if minutes is None or not math.isfinite(minutes) or minutes < 0:
        return MISSING
    total = round(minutes)
    if total < 60:
        return f"{total} min"
    hours, mins = divmod(total, 60)
    if hours < 48:
        return f"{hours} h {mins:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def format_time(unix_s: float, *, date: bool = False) -> str:
    """Local wall-clock time ``14:03:07`` (``2026-11-21 14:03:07`` with ``date``)."""
    when = dt.datetime.fromtimestamp(unix_s)
    return when.strftime("%Y-%m-%d %H:%M:%S" if date else "%H:%M:%S")


def format_hex(raw: int | bytes, width_bits: int = 16) -> str:
    """``0x3EF8`` for a word (zero-padded to ``width_bits``), ``4C 49 4F 4E`` for bytes."""
    if isinstance(raw, bytes):
        return raw.hex(" ").upper() if raw else "(empty)"
    digits = max(1, (width_bits + 3) // 4)
    return f"0x{raw:0{digits}X}"


def first_sentence(text: str, limit: int = 240) -> str:
    """The first line of an error message, shortened to ``limit`` characters.

    Errors are shown as one readable sentence; the whole text goes to the bus monitor's log.
    """
    line = text.strip().splitlines()[0] if text.strip() else "unknown error"
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"
