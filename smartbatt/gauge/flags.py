"""Decode status registers with a profile's bit maps, and tell what changed.

A status register arrives as an integer (SBS word) or as the bytes of a block (little-endian, as
TI returns SafetyStatus and friends). TI gauges of one family return different byte counts for the
same register (ti_gauges.md §2: "accept whatever byte count the gauge returns and decode only the
known bits"), so decoding never rejects a length: bits beyond the data read as clear, and set bits
that no flag describes are reported in :attr:`DecodedRegister.unknown_bits` instead of being lost.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from smartbatt.errors import DecodeError, UnknownCommand
from smartbatt.profiles.schema import BitField, BitGroup, Flag

__all__ = [
    "DecodedRegister",
    "FlagChange",
    "FlagState",
    "GroupState",
    "decode",
    "diff",
    "encode",
    "to_int",
]


@dataclass(frozen=True)
class FlagState:
    """One bit of a decoded register."""

    register: str
    bit: int
    name: str
    label: str
    description: str
    set: bool


@dataclass(frozen=True)
class GroupState:
    """A multi-bit field of a decoded register (SEC[1:0], EC[3:0])."""

    register: str
    name: str
    low: int
    width: int
    label: str
    description: str
    #: the field's value.
    value: int
    #: what the value means; ``reserved (n)`` for values the profile does not list, or the number
    #: itself for purely numeric fields (no listed values).
    meaning: str


@dataclass(frozen=True)
class DecodedRegister:
    """A status register decoded with one bit map."""

    register: str
    raw: int
    flags: tuple[FlagState, ...]
    groups: tuple[GroupState, ...]
    #: set bits that no flag or group describes (reserved, or newer firmware).
    unknown_bits: tuple[int, ...]

    @property
    def active(self) -> tuple[FlagState, ...]:
        """Flags that are set, lowest bit first."""
        return tuple(f for f in self.flags if f.set)

    def __getitem__(self, name: str) -> bool:
        """Whether the flag called ``name`` is set.

        :raises UnknownCommand: no such flag in this register.
        """
        for f in self.flags:
            if f.name == name:
                return f.set
        raise UnknownCommand(f"{self.register} has no flag {name!r}")

    def group(self, name: str) -> GroupState:
        """The group called ``name``.

        :raises UnknownCommand: no such group in this register.
        """
        for g in self.groups:
            if g.name == name:
                return g
        raise UnknownCommand(f"{self.register} has no bit group {name!r}")


@dataclass(frozen=True)
class FlagChange:
    """A flag or group whose value differs between two reads."""

    register: str
    name: str
    label: str
    #: flag bit, or the group's lowest bit.
    bit: int
    old: int
    new: int

    @property
    def raised(self) -> bool:
        """A flag went from clear to set."""
        return self.old == 0 and self.new != 0


def to_int(value: int | bytes | bytearray, width: int) -> int:
    """A register value as a non-negative integer.

    :param value: an integer, or block bytes (little-endian, any length).
    :param width: register width in bits; integers wider than this are accepted, their extra
        bits end up in ``unknown_bits``.
    :raises DecodeError: a negative integer, or not an integer/bytes.
    """
    if isinstance(value, bytes | bytearray):
        return int.from_bytes(value, "little")
    if isinstance(value, bool) or not isinstance(value, int):
        raise DecodeError(f"cannot decode {type(value).__name__} as a {width}-bit register")
    if value < 0:
        raise DecodeError(f"register value {value} is negative")
    return value


def decode(bitfield: BitField, value: int | bytes | bytearray) -> DecodedRegister:
    """Decode ``value`` with ``bitfield``.

    :raises DecodeError: see :func:`to_int`.
    """
    raw = to_int(value, bitfield.width)
    flags = tuple(
        FlagState(bitfield.name, f.bit, f.name, f.label, f.description, bool(raw >> f.bit & 1)) for f in bitfield.flags
    )
    groups = tuple(_group_state(bitfield.name, g, raw) for g in bitfield.groups)
    unknown = raw & ~bitfield.described_mask
    bits = tuple(b for b in range(unknown.bit_length()) if unknown >> b & 1)
    return DecodedRegister(bitfield.name, raw, flags, groups, bits)


def _group_state(register: str, group: BitGroup, raw: int) -> GroupState:
    value = (raw & group.mask) >> group.low
    # Numeric fields (VScale) list no values; enumerations name each value.
    meaning = group.values.get(value, f"reserved ({value})") if group.values else str(value)
    return GroupState(register, group.name, group.low, group.width, group.label, group.description, value, meaning)


def encode(bitfield: BitField, flags: Iterable[str] = (), groups: dict[str, int] | None = None) -> int:
    """Build a register value with the named flags set and groups at the given values.

    The inverse of :func:`decode`; the emulator uses it to publish status words.

    :raises UnknownCommand: a flag or group name the bit map does not have.
    :raises DecodeError: a group value that does not fit its width.
    """
    raw = 0
    by_name: dict[str, Flag] = {f.name: f for f in bitfield.flags}
    for name in flags:
        if name not in by_name:
            raise UnknownCommand(f"{bitfield.name} has no flag {name!r}")
        raw |= 1 << by_name[name].bit
    for name, value in (groups or {}).items():
        group = next((g for g in bitfield.groups if g.name == name), None)
        if group is None:
            raise UnknownCommand(f"{bitfield.name} has no bit group {name!r}")
        if not 0 <= value < 1 << group.width:
            raise DecodeError(f"{bitfield.name}.{name}: {value} does not fit {group.width} bits")
        raw |= value << group.low
    return raw


def diff(old: DecodedRegister, new: DecodedRegister) -> tuple[FlagChange, ...]:
    """What changed from ``old`` to ``new`` (flags and groups, lowest bit first).

    Bits no flag describes are compared too and reported as ``bit<n>`` so nothing changes
    silently.

    :raises DecodeError: the two values are not of the same register.
    """
    if old.register != new.register:
        raise DecodeError(f"cannot compare {old.register} with {new.register}")
    changes: list[FlagChange] = []
    for a, b in zip(old.flags, new.flags, strict=True):
        if a.set != b.set:
            changes.append(FlagChange(new.register, b.name, b.label, b.bit, int(a.set), int(b.set)))
    for ga, gb in zip(old.groups, new.groups, strict=True):
        if ga.value != gb.value:
            changes.append(FlagChange(new.register, gb.name, gb.label, gb.low, ga.value, gb.value))
    old_unknown, new_unknown = set(old.unknown_bits), set(new.unknown_bits)
    for bit in sorted(old_unknown ^ new_unknown):
        changes.append(FlagChange(new.register, f"bit{bit}", "", bit, int(bit in old_unknown), int(bit in new_unknown)))
    return tuple(sorted(changes, key=lambda c: c.bit))
