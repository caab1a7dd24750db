"""Typed, frozen records for a chip profile (``firmware_profiles/*.toml``).

A profile says everything chip-specific that the driver, the emulator and the GUI need: how to
recognise the chip, its extra SBS-range commands, its ManufacturerAccess (MAC) subcommands with
payload layouts, its status bit maps, block layouts (DAStatus1/2, lifetime data), how to seal and
unseal it, its data-flash map and its timing needs. :mod:`smartbatt.profiles.loader` builds these
records from TOML and validates them; nothing here does I/O.

Everything is immutable (frozen dataclasses, tuples, read-only mappings) so one loaded profile can
be shared between threads (the GUI worker and the emulator) without copies.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from smartbatt.errors import DecodeError, RangeError
from smartbatt.sbs.command import Command

#: The schema version this code reads. A profile file must state exactly this number.
SCHEMA_VERSION = 1


def _empty_map() -> Mapping[Any, Any]:
    return MappingProxyType({})


class SecurityLevel(StrEnum):
    """Lowest security state in which a command is available (TI SE/US/FA columns)."""

    SEALED = "sealed"
    UNSEALED = "unsealed"
    FULL_ACCESS = "full_access"
    #: the documentation we could check does not say.
    UNKNOWN = "unknown"


class MacAccess(StrEnum):
    """Direction of a ManufacturerAccess subcommand."""

    #: send the subcommand, then read a result.
    READ = "r"
    #: send the subcommand (optionally with data); nothing to read.
    WRITE = "w"
    READ_WRITE = "rw"


class BusKind(StrEnum):
    """Physical protocol of the gauge's host interface."""

    SMBUS = "smbus"
    I2C = "i2c"


class StandardCommands(StrEnum):
    """Which standard command table applies in addition to the profile's own commands."""

    #: SBS 1.1 commands 0x00-0x23 (``smartbatt.sbs.commands``).
    SBS = "sbs"
    #: none (e.g. I2C gauges with their own command pairs); only the profile's commands apply.
    NONE = "none"


class DataFlashAccessMethod(StrEnum):
    """How data flash is reached (ti_gauges.md §7)."""

    #: bq40z family: physical address as MAC subcommand through ManufacturerBlockAccess (0x44).
    MAC_BLOCK = "mac_block"
    #: bq28z610-class I2C gauges: address through AltManufacturerAccess (0x3E), data at 0x40.
    ALT_MAC = "alt_mac"
    #: older bq20z family: DataFlashSubClassID (0x77) then DataFlashSubClassPage1..8 (0x78..).
    SUBCLASS = "subclass"
    #: unknown or not supported.
    NONE = "none"


class SecurityMethod(StrEnum):
    """How a gauge is unsealed."""

    #: two Write Word commands to ManufacturerAccess (0x00) within a time window.
    MAC_WORD_PAIR = "mac_word_pair"
    #: no security scheme is known; never send a key.
    NONE = "none"


# --- data flash value types ----------------------------------------------------------------------


class DFType(StrEnum):
    """Data-flash value types as TI's data-flash tables name them (I2 = signed 2 bytes, ...)."""

    I1 = "I1"
    I2 = "I2"
    I4 = "I4"
    U1 = "U1"
    U2 = "U2"
    U4 = "U4"
    F4 = "F4"
    #: text of ``length`` bytes.
    S = "S"
    #: hexadecimal bit/byte field of ``length`` bytes.
    H = "H"

    @property
    def fixed_size(self) -> int | None:
        """Size in bytes for numeric types; None for S and H (their size is ``length``)."""
        return _DF_SIZES.get(self)

    @property
    def is_integer(self) -> bool:
        return self in _DF_INT_RANGES


_DF_SIZES: dict[DFType, int] = {
    DFType.I1: 1,
    DFType.I2: 2,
    DFType.I4: 4,
    DFType.U1: 1,
    DFType.U2: 2,
    DFType.U4: 4,
    DFType.F4: 4,
}

_DF_INT_RANGES: dict[DFType, tuple[int, int]] = {
    DFType.I1: (-(2**7), 2**7 - 1),
    DFType.I2: (-(2**15), 2**15 - 1),
    DFType.I4: (-(2**31), 2**31 - 1),
    DFType.U1: (0, 2**8 - 1),
    DFType.U2: (0, 2**16 - 1),
    DFType.U4: (0, 2**32 - 1),
}

#: a data-flash value as a program sees it: number (already scaled), text, or raw hex field.
DFValue = int | float | str


@dataclass(frozen=True)
class DataFlashEntry:
    """One data-flash parameter.

    Values have two forms: *raw* (the integer/float/bytes stored in flash, little-endian) and
    *display* (``raw × scale`` in ``unit``, as bqStudio shows it and ``.gg.csv`` files store it).
    """

    #: TI class, subclass and parameter name, e.g. ``Protections``, ``CUV``, ``Threshold``.
    class_name: str
    subclass: str
    name: str
    type: DFType
    #: physical data-flash address; None when no source we could check publishes it (then the
    #: entry can be matched by name, e.g. in a ``.gg.csv`` file, but not read or written).
    address: int | None = None
    #: size in bytes for S and H types (numeric types have a fixed size).
    length: int | None = None
    #: display unit (``mV``, ``°C``, ``s``, ``hex``); empty if none.
    unit: str = ""
    #: display value = raw × scale (e.g. 0.1 for temperatures stored in 0.1 °C).
    scale: float = 1.0
    #: limits and default as *display* values, when published.
    minimum: float | None = None
    maximum: float | None = None
    default: DFValue | None = None
    description: str = ""

    @property
    def key(self) -> str:
        """``Class:Subclass:Name`` — unique within a profile."""
        return f"{self.class_name}:{self.subclass}:{self.name}"

    @property
    def size(self) -> int:
        """Bytes the value occupies in flash."""
        fixed = self.type.fixed_size
        if fixed is not None:
            return fixed
        assert self.length is not None  # guaranteed by the loader's validation
        return self.length

    # --- display <-> raw ---------------------------------------------------------------------

    def parse_display(self, text: str) -> DFValue:
        """Parse a display string (``"2800"``, ``"55.0"``, ``"ff"``, ``"Texas Instruments"``).

        :raises DecodeError: the text is not a value of this entry's type.
        :raises RangeError: the value is outside the entry's range.
        """
        text = text.strip()
        value: DFValue
        if self.type is DFType.S:
            value = text
        elif self.type is DFType.H:
            try:
                value = int(text, 16)
            except ValueError:
                raise DecodeError(f"{self.key}: {text!r} is not a hexadecimal value") from None
        else:
            try:
                number = float(text)
            except ValueError:
                raise DecodeError(f"{self.key}: {text!r} is not a number") from None
            if not math.isfinite(number):
                raise DecodeError(f"{self.key}: {text!r} is not a finite number")
            value = number if (self.type is DFType.F4 or self.scale != 1.0) else _exact_int(self, number)
        self.check(value)
        return value

    def format_display(self, value: DFValue) -> str:
        """Format a display value the way bqStudio writes it (hex lower case, scaled decimals)."""
        self.check(value)
        if self.type is DFType.S:
            return str(value)
        if self.type is DFType.H:
            return f"{int(value):0{2 * self.size}x}"
        if self.type is DFType.F4:
            return repr(float(value))
        if self.scale == 1.0:
            return str(int(value))
        decimals = max(0, -math.floor(math.log10(abs(self.scale)) + 1e-9))
        return f"{float(value):.{decimals}f}"

    def check(self, value: DFValue) -> None:
        """Check a display value against type, published limits and raw range.

        :raises RangeError: out of range, or text too long.
        :raises DecodeError: wrong Python type for this entry.
        """
        if self.type is DFType.S:
            if not isinstance(value, str):
                raise DecodeError(f"{self.key}: expected text, got {value!r}")
            if len(value.encode("latin-1", "replace")) > self.size - 1:
                raise RangeError(f"{self.key}: text longer than {self.size - 1} characters")
            return
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise DecodeError(f"{self.key}: expected a number, got {value!r}")
        if self.minimum is not None and value < self.minimum:
            raise RangeError(f"{self.key}: {value:g} is below the minimum {self.minimum:g}")
        if self.maximum is not None and value > self.maximum:
            raise RangeError(f"{self.key}: {value:g} is above the maximum {self.maximum:g}")
        if self.type is DFType.H:
            if not isinstance(value, int) or not 0 <= value < 1 << (8 * self.size):
                raise RangeError(f"{self.key}: {value!r} does not fit {self.size} byte(s)")
            return
        if self.type.is_integer:
            raw = round(value / self.scale)
            low, high = _DF_INT_RANGES[self.type]
            if not low <= raw <= high:
                raise RangeError(f"{self.key}: raw value {raw} outside {self.type} range {low}..{high}")

    def to_raw(self, value: DFValue) -> int | float | str:
        """Display value → raw stored number (integer types are rounded to the nearest step)."""
        if isinstance(value, str) or self.type in (DFType.F4, DFType.S, DFType.H):
            return value
        return round(value / self.scale)

    def from_raw(self, raw: int | float | str) -> DFValue:
        """Raw stored number → display value."""
        if isinstance(raw, str) or self.type in (DFType.F4, DFType.S, DFType.H) or self.scale == 1.0:
            return raw
        return raw * self.scale

    # --- raw <-> bytes -------------------------------------------------------------------------

    def encode(self, value: DFValue) -> bytes:
        """Display value → the bytes stored in flash (little-endian).

        S values are stored as a length byte followed by the text, padded with zeros to
        ``length`` — the layout bqStudio's ``S21`` notation suggests; **UNCONFIRMED** on hardware.

        :raises RangeError, DecodeError: see :meth:`check`.
        """
        self.check(value)
        if self.type is DFType.S:
            text = str(value).encode("latin-1", "replace")
            return bytes([len(text)]) + text + bytes(self.size - 1 - len(text))
        if self.type is DFType.H:
            return int(value).to_bytes(self.size, "little")
        if self.type is DFType.F4:
            return struct.pack("<f", float(value))
        raw = self.to_raw(value)
        assert isinstance(raw, int)
        return raw.to_bytes(self.size, "little", signed=self.type.value.startswith("I"))

    def decode(self, data: bytes) -> DFValue:
        """Bytes from flash → display value.

        :raises DecodeError: wrong number of bytes, or a text length byte that does not fit.
        """
        if len(data) != self.size:
            raise DecodeError(f"{self.key}: expected {self.size} byte(s), got {len(data)}")
        if self.type is DFType.S:
            length = data[0]
            if length > self.size - 1:
                raise DecodeError(f"{self.key}: text length byte {length} exceeds {self.size - 1}")
            return data[1 : 1 + length].decode("latin-1")
        if self.type is DFType.H:
            return int.from_bytes(data, "little")
        if self.type is DFType.F4:
            return float(struct.unpack("<f", data)[0])
        raw = int.from_bytes(data, "little", signed=self.type.value.startswith("I"))
        return self.from_raw(raw)


def _exact_int(entry: DataFlashEntry, number: float) -> int:
    if number != int(number):
        raise DecodeError(f"{entry.key}: {number} is not a whole number")
    return int(number)


# --- status bit maps --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Flag:
    """One named bit of a status register."""

    bit: int
    #: TI abbreviation (``CUV``, ``XCHG``) — unique within its register.
    name: str
    #: short label for tables (``Cell undervoltage``).
    label: str = ""
    description: str = ""


@dataclass(frozen=True)
class BitGroup:
    """A multi-bit field of a status register whose value is an enumeration (SEC[1:0], EC[3:0])."""

    name: str
    #: lowest bit and number of bits.
    low: int
    width: int
    label: str = ""
    description: str = ""
    #: meaning of each value; values not listed decode as ``reserved``.
    values: Mapping[int, str] = field(default_factory=_empty_map)

    @property
    def mask(self) -> int:
        return ((1 << self.width) - 1) << self.low


@dataclass(frozen=True)
class BitField:
    """The bit map of one status register (SafetyStatus, OperationStatus, ...)."""

    #: register name (``SafetyStatus``) — unique within a profile.
    name: str
    #: register width in bits (8, 16, 24 or 32).
    width: int
    flags: tuple[Flag, ...] = ()
    groups: tuple[BitGroup, ...] = ()
    description: str = ""

    def flag(self, name: str) -> Flag:
        """The flag called ``name``.

        :raises KeyError: no such flag.
        """
        for f in self.flags:
            if f.name == name:
                return f
        raise KeyError(name)

    @property
    def described_mask(self) -> int:
        """Bits that have a meaning (flags and groups)."""
        mask = 0
        for f in self.flags:
            mask |= 1 << f.bit
        for g in self.groups:
            mask |= g.mask
        return mask


@dataclass(frozen=True)
class StatusSource:
    """Where a status register can be read (ti_gauges.md §2: 0x50-0x57 mirror MAC 0x0050-0x0057)."""

    #: bit map name (a key of :attr:`Profile.bitfields`).
    register: str
    #: SBS command that returns it (block or word), if any.
    sbs: int | None = None
    #: ``block`` or ``word`` for the SBS command.
    sbs_kind: str = "block"
    #: MAC subcommand that returns it, if any.
    mac: int | None = None
    #: bytes the gauge returns (may be fewer than width/8 on some firmware: decode known bits).
    size: int = 4
    #: lowest security state in which the SBS command can be read.
    security: SecurityLevel = SecurityLevel.UNKNOWN


# --- block layouts ----------------------------------------------------------------------------------


class FieldType(StrEnum):
    """Field types for block layouts (little-endian unless ``be``)."""

    U8 = "u8"
    I8 = "i8"
    U16 = "u16"
    I16 = "i16"
    U32 = "u32"
    I32 = "i32"
    U16BE = "u16be"
    U32BE = "u32be"
    #: raw bytes of ``length``.
    BYTES = "bytes"

    @property
    def fixed_size(self) -> int | None:
        return _FIELD_SIZES.get(self)


_FIELD_SIZES: dict[FieldType, int] = {
    FieldType.U8: 1,
    FieldType.I8: 1,
    FieldType.U16: 2,
    FieldType.I16: 2,
    FieldType.U32: 4,
    FieldType.I32: 4,
    FieldType.U16BE: 2,
    FieldType.U32BE: 4,
}


@dataclass(frozen=True)
class LayoutField:
    """One field of a block layout."""

    name: str
    offset: int
    type: FieldType
    #: size for ``bytes`` fields.
    length: int | None = None
    unit: str = ""
    #: value = raw × scale.
    scale: float = 1.0
    description: str = ""

    @property
    def size(self) -> int:
        fixed = self.type.fixed_size
        if fixed is not None:
            return fixed
        assert self.length is not None  # guaranteed by the loader
        return self.length


@dataclass(frozen=True)
class BlockLayout:
    """Byte layout of a block result (DAStatus1, LifetimeDataBlock1, FirmwareVersion, ...).

    :attr:`struct` is the layout compiled to a ``construct`` Struct at load time (gaps become
    padding) — use it to build bytes (the emulator) or to parse a complete block.
    """

    name: str
    #: nominal size in bytes (gauges may return fewer or more; see :meth:`decode`).
    size: int
    fields: tuple[LayoutField, ...]
    description: str = ""
    struct: Any = field(default=None, compare=False, repr=False)

    def decode(self, data: bytes) -> dict[str, int | float | bytes]:
        """Decode the fields that lie completely inside ``data``.

        Gauges of one family return different lengths for the same block (ti_gauges.md §4.2:
        DAStatus2 is 14, 16 or 26 bytes), so a short block decodes its leading fields and a long
        one ignores the unknown tail, instead of failing.
        """
        out: dict[str, int | float | bytes] = {}
        for f in self.fields:
            end = f.offset + f.size
            if end > len(data):
                continue
            chunk = data[f.offset : end]
            value: int | float | bytes
            if f.type is FieldType.BYTES:
                value = bytes(chunk)
            else:
                signed = f.type.value.startswith("i")
                big = f.type.value.endswith("be")
                value = int.from_bytes(chunk, "big" if big else "little", signed=signed)
                if f.scale != 1.0:
                    value = value * f.scale
            out[f.name] = value
        return out


# --- MAC subcommands, security, timing, identity ----------------------------------------------------


@dataclass(frozen=True)
class MacCommand:
    """One ManufacturerAccess subcommand."""

    code: int
    name: str
    access: MacAccess
    #: lowest security state in which it is available.
    security: SecurityLevel = SecurityLevel.UNKNOWN
    #: layout of the result (read subcommands), by name.
    layout: str | None = None
    #: bit map of the result (status subcommands), by name.
    bitfield: str | None = None
    #: delay the gauge needs after the subcommand before results are valid (ms), if known.
    delay_ms: float | None = None
    description: str = ""
    #: compiled ``construct`` Struct of :attr:`layout` (set by the loader).
    response: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Security:
    """How to seal, unseal and reach full access."""

    method: SecurityMethod = SecurityMethod.NONE
    #: MAC subcommand that seals the gauge.
    seal_mac: int | None = None
    #: vendor-published default keys (two 16-bit words, sent in this order); None = unknown.
    default_unseal_key: tuple[int, int] | None = None
    default_full_access_key: tuple[int, int] | None = None
    #: the two words must arrive within this time (s).
    key_window_s: float | None = None
    #: MAC subcommand that reads/changes the keys.
    keys_mac: int | None = None
    #: SHA-1 challenge/response authentication is supported.
    sha1_authentication: bool = False
    #: where the security state is read: bit map name and group name (OperationStatus, SEC).
    state_register: str | None = None
    state_group: str | None = None
    #: group value → state.
    states: Mapping[int, SecurityLevel] = field(default_factory=_empty_map)


@dataclass(frozen=True)
class Timing:
    """Waits and speeds the hardware needs."""

    #: wait after a MAC write before reading its result (ms).
    mac_delay_ms: float | None = None
    #: wait between data-flash block writes (ms).
    df_write_delay_ms: float | None = None
    #: highest bus clock known to work (Hz).
    bus_hz: int | None = None


@dataclass(frozen=True)
class Bus:
    """Host interface."""

    kind: BusKind = BusKind.SMBUS
    #: 7-bit address, if fixed.
    address: int | None = None
    standard_commands: StandardCommands = StandardCommands.SBS


@dataclass(frozen=True)
class DataFlashAccess:
    """How the data flash is reached and its address range."""

    method: DataFlashAccessMethod = DataFlashAccessMethod.NONE
    first: int | None = None
    last: int | None = None
    #: largest data block one write carries (bytes).
    block_size: int = 32


@dataclass(frozen=True)
class Identity:
    """How the chip is recognised."""

    #: values of MAC DeviceType (0x0001).
    device_types: tuple[int, ...] = ()
    #: regular expressions matched (case-insensitively, anywhere) against DeviceName (0x21).
    device_name_patterns: tuple[str, ...] = ()
    #: the same for ManufacturerName (0x20) — a hint only, packs rename it.
    manufacturer_patterns: tuple[str, ...] = ()
    #: detection may send a ManufacturerAccess write (0x00) to read DeviceType.
    mac_probe: bool = False
    #: this profile is the fallback when nothing else matches.
    fallback: bool = False


@dataclass(frozen=True)
class Variant:
    """A firmware variant (bq40z50-R1, -R3, ...) — only what differs from the base profile."""

    name: str
    title: str = ""
    sources: tuple[str, ...] = ()
    device_name_patterns: tuple[str, ...] = ()


@dataclass(frozen=True)
class Profile:
    """A fully loaded, validated chip profile."""

    name: str
    title: str
    #: the profile this one extends (already merged in), if any.
    extends: str | None
    #: document numbers and sections the data comes from (this file and its parents).
    sources: tuple[str, ...]
    #: variant applied, if any.
    variant: str | None
    #: variants defined for this profile (name, title, sources, DeviceName patterns).
    variants: tuple[Variant, ...]
    identity: Identity
    bus: Bus
    timing: Timing
    security: Security
    data_flash_access: DataFlashAccess
    commands: tuple[Command, ...]
    #: lowest security state per extra command code, where known.
    command_security: Mapping[int, SecurityLevel]
    mac: tuple[MacCommand, ...]
    bitfields: Mapping[str, BitField]
    layouts: Mapping[str, BlockLayout]
    status_sources: Mapping[str, StatusSource]
    data_flash: tuple[DataFlashEntry, ...]
    #: file the profile was loaded from (for messages).
    file: str = ""

    def command(self, key: int | str) -> Command:
        """An extra command by code or name.

        :raises KeyError: not in this profile.
        """
        for c in self.commands:
            if key in (c.code, c.name):
                return c
        raise KeyError(key)

    def mac_command(self, key: int | str) -> MacCommand:
        """A MAC subcommand by code or name (any case; ``DAStatus1`` also finds ``DAStatus1MAC``,
        the MAC twin of an SBS command of the same name).

        :raises KeyError: not in this profile.
        """
        for m in self.mac:
            if key in (m.code, m.name):
                return m
        if isinstance(key, str):
            wanted = key.casefold()
            for candidate in (wanted, wanted + "mac"):
                for m in self.mac:
                    if m.name.casefold() == candidate:
                        return m
        raise KeyError(key)

    def df_entry(self, key: str) -> DataFlashEntry:
        """A data-flash entry by ``Class:Subclass:Name``.

        :raises KeyError: not in this profile.
        """
        for e in self.data_flash:
            if e.key == key:
                return e
        raise KeyError(key)

    @property
    def sends_mac(self) -> bool:
        """Whether any ManufacturerAccess write is ever needed (False for generic SBS mode)."""
        return bool(self.mac) or self.security.method is not SecurityMethod.NONE
