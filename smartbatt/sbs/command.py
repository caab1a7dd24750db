"""The command record shared by the SBS table, chip profiles and PMBus-style tables.

One :class:`Command` describes one register of a device: its code, name, how it is accessed
on the wire and how its raw value becomes a value with a unit. The SBS 1.1 table
(:mod:`smartbatt.sbs.commands`) and every chip profile's extra commands are lists of these.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from types import MappingProxyType


class Access(StrEnum):
    """Who may do what with a command."""

    READ = "r"
    WRITE = "w"
    READ_WRITE = "rw"

    @property
    def readable(self) -> bool:
        return self is not Access.WRITE

    @property
    def writable(self) -> bool:
        return self is not Access.READ


class Kind(StrEnum):
    """Wire shape of a command's value."""

    #: 16-bit word, low byte first (SMBus read/write word).
    WORD = "word"
    #: one byte (SMBus read/write byte).
    BYTE = "byte"
    #: SMBus block of bytes, shown as hex.
    BLOCK = "block"
    #: SMBus block holding ASCII text, not NUL-terminated on the wire.
    STRING = "string"


class SpecScale(StrEnum):
    """Which SpecificationInfo scale factor applies (SBS 1.1 §5.1.26; sbs.md §4)."""

    NONE = ""
    #: × 10^VScale.
    VOLTAGE = "voltage"
    #: × 10^IPScale (currents and capacities).
    CURRENT = "current"
    #: × 10^(VScale + IPScale) (capacities in 10 mWh units).
    POWER = "power"


@dataclass(frozen=True)
class Command:
    """One device register."""

    #: command code on the wire.
    code: int
    #: name as the specification or the TRM spells it (``RelativeStateOfCharge``).
    name: str
    access: Access
    kind: Kind
    #: unit of the decoded value (``mV``, ``mA``, ``°C``, ``%``, ``min``); empty if none.
    unit: str = ""
    #: multiplier from raw integer to value in ``unit`` (before SpecificationInfo scaling).
    scale: float = 1.0
    #: raw word is two's-complement signed.
    signed: bool = False
    #: unit depends on BatteryMode.CAPACITY_MODE: mA/mAh when 0, 10 mW/10 mWh when 1.
    capacity_mode: bool = False
    #: SpecificationInfo scale factor that applies.
    spec_scale: SpecScale = SpecScale.NONE
    #: name of a structured decoder (``battery_mode``, ``battery_status``, ``specification_info``,
    #: ``manufacture_date``, ``temperature``, ``boolean``), or empty for plain numbers/text/bytes.
    decoder: str = ""
    #: raw values that mean something other than a number (0xFFFF → ``not discharging``).
    sentinels: Mapping[int, str] = field(default_factory=lambda: MappingProxyType({}))
    #: smallest and largest raw value a host may write (writable commands).
    minimum: int | None = None
    maximum: int | None = None
    #: exact block size in bytes, when fixed.
    size: int | None = None
    #: short label for tables and plots.
    label: str = ""
    #: one-sentence description (tooltips, ``--help``).
    description: str = ""
    #: raw values the device sends when it has no answer yet (0xFFFF, Sanyo 0x1717): retried and
    #: never decoded as data. Empty for commands where every raw value is a legal reading. For
    #: block and string commands: the byte values a filler block consists of (0xFF, 0x17).
    filler: frozenset[int] = frozenset()
    #: a write is confirmed by reading the command back (False for ManufacturerAccess, whose
    #: read returns the vendor command's result rather than the word written).
    verify: bool = True

    @property
    def readable(self) -> bool:
        return self.access.readable

    @property
    def writable(self) -> bool:
        return self.access.writable


#: the keys a data file may give a command: one per :class:`Command` field (SBS table, profiles).
COMMAND_KEYS: frozenset[str] = frozenset(f.name for f in fields(Command))

