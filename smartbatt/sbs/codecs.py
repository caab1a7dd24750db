"""Raw ↔ value conversions for SBS commands: numbers, bit fields, dates, text.

Everything here is pure (no I/O) and driven by the :class:`~smartbatt.sbs.command.Command`
record and the bit-field layouts of the command table. Rules, with their sources:

* Words are unsigned 16-bit, low byte first on the wire; ``signed`` commands are two's
  complement (AtRate, Current, AverageCurrent: sbs.md §1). Positive current = charging.
* ``capacity_mode`` commands report mA / mAh when BatteryMode.CAPACITY_MODE = 0 and 10 mW / 10 mWh
  when it is 1; the value is then given in mW / mWh (raw × 10) — sbs.md §1.
* SpecificationInfo scaling (sbs.md §4): voltages × 10^VScale, currents and capacities ×
  10^IPScale, capacities in 10 mWh × 10^(VScale + IPScale). VScale and IPScale outside 0..3
  are not valid SBS and raise :class:`DecodeError`.
* Temperature: 0.1 K → °C with 273.15 (SBS 1.1 §5.1.8; sbs.md §1 lists drivers that use 273.0
  or 273.1 — we use the exact offset).
* Strings (SBS 1.1 §5.1.20–22): ASCII, not NUL-terminated on the wire. Trailing NUL and 0xFF
  padding is dropped; any other byte outside printable ASCII is kept as a ``\\xNN`` escape, so a
  string always decodes and no byte is lost silently (the raw bytes stay in the Reading).
* Fillers (0xFFFF, 0x1717, blocks of 0x17 / 0xFF) are recognised per command (see the table)
  and are never turned into a number.

The bit-field layouts (BatteryMode, BatteryStatus, SpecificationInfo, ManufactureDate) are
compiled into ``construct`` ``BitStruct``s from the table's ``[[bitfield.*]]`` data.
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import construct as cs

from smartbatt.errors import DecodeError, RangeError
from smartbatt.sbs.command import Command, Kind, SpecScale
from smartbatt.sbs.commands import BitField, CommandTable, sbs_table

#: 0 °C in kelvin (SBS 1.1 §5.1.8 reports 0.1 K).
ZERO_CELSIUS_K = 273.15
#: largest VScale / IPScale SBS 1.1 defines (sbs.md §4).
MAX_SCALE_EXPONENT = 3
#: SpecificationInfo version meaning "SBS 1.1 with optional PEC" (sbs.md §4; Linux, ArduPilot).
PEC_VERSION = 3

#: units a capacity_mode command switches to when CAPACITY_MODE = 1 (value = raw × 10).
_POWER_UNITS = {"mAh": "mWh", "mA": "mW"}


# ------------------------------------------------------------------------------------------------
# decoded records
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Flag:
    """One set flag of a bit-field word."""

    #: name as the spec spells it (``REMAINING_CAPACITY_ALARM``).
    name: str
    #: short name (``RCA``).
    short: str
    description: str


@dataclass(frozen=True)
class BitFields:
    """A decoded bit-field word (BatteryMode, BatteryStatus, …).

    ``fields`` holds every defined field's value (flags as 0/1, multi-bit fields as numbers);
    ``flags`` lists the set single-bit flags; ``reserved`` keeps any reserved bits that were set.
    """

    #: layout name (``battery_status``).
    layout: str
    raw: int
    fields: Mapping[str, int]
    flags: tuple[Flag, ...]
    #: reserved bits that were set (0 on a well-behaved gauge).
    reserved: int = 0
    #: text of enumerated fields (``ERROR_CODE`` → ``Busy``).
    enum_text: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def __getitem__(self, name: str) -> int:
        try:
            return self.fields[name]
        except KeyError:
            raise DecodeError(f"{self.layout} has no field {name!r}") from None

    def is_set(self, name: str) -> bool:
        """True if the flag ``name`` (spec name or short name) is set."""
        for f in self.flags:
            if name in (f.name, f.short):
                return True
        if name not in self.fields and not any(name == s for s in _short_names(self.layout)):
            raise DecodeError(f"{self.layout} has no flag {name!r}")
        return False

    @property
    def error_code(self) -> int:
        """BatteryStatus error code (0 = OK); 0 for layouts without one."""
        return self.fields.get("ERROR_CODE", 0)

    @property
    def error_text(self) -> str:
        return self.enum_text.get("ERROR_CODE", "")

    def text(self) -> str:
        parts = [f.short for f in self.flags] or ["no flags set"]
        if "ERROR_CODE" in self.fields:
            parts.append(f"error: {self.error_text}")
        if self.reserved:
            parts.append(f"reserved bits 0x{self.reserved:04X} set")
        return ", ".join(parts)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {name: bool(v) if self._is_flag(name) else v for name, v in self.fields.items()}
        for name, text in self.enum_text.items():
            out[f"{name}_TEXT"] = text
        if self.reserved:
            out["RESERVED"] = self.reserved
        return out

    def _is_flag(self, name: str) -> bool:
        return any(f.name == name and f.width == 1 for f in _layout(self.layout))


@dataclass(frozen=True)
class SpecInfo:
    """Decoded SpecificationInfo (0x1A): SBS version, PEC support and scale factors (sbs.md §4)."""

    raw: int
    revision: int
    #: 1 = SBS 1.0, 2 = SBS 1.1, 3 = SBS 1.1 with optional PEC.
    version: int
    #: voltages × 10^vscale (0..3).
    vscale: int
    #: currents and capacities × 10^ipscale (0..3).
    ipscale: int

    @property
    def pec_supported(self) -> bool:
        """True for version 3 ("1.1 with optional PEC"): Linux enables PEC exactly then."""
        return self.version == PEC_VERSION

    @property
    def version_text(self) -> str:
        return sbs_table().enums["spec_version"].get(self.version, f"unknown version {self.version}")

    def text(self) -> str:
        return f"{self.version_text}, revision {self.revision}, VScale {self.vscale}, IPScale {self.ipscale}"

    def to_json(self) -> dict[str, Any]:
        return {
            "revision": self.revision,
            "version": self.version,
            "vscale": self.vscale,
            "ipscale": self.ipscale,
            "pec": self.pec_supported,
        }


#: SpecificationInfo of a gauge that says nothing (no scaling, SBS 1.1 without PEC).
NO_SCALING = SpecInfo(raw=0x0021, revision=1, version=2, vscale=0, ipscale=0)


# ------------------------------------------------------------------------------------------------
# bit-field layouts compiled into construct structures
# ------------------------------------------------------------------------------------------------


def _identifier(text: str) -> str:
    ident = "".join(ch if ch.isalnum() else "_" for ch in text.upper()).strip("_")
    return ident if ident and not ident[0].isdigit() else f"V_{ident}"


def _layout(name: str, table: CommandTable | None = None) -> tuple[BitField, ...]:
    layouts = (table or sbs_table()).bitfields
    if name not in layouts:
        raise DecodeError(f"no bit-field layout {name!r}")
    return layouts[name]


def _short_names(name: str) -> tuple[str, ...]:
    return tuple(f.short for f in _layout(name))


@functools.cache
def bit_struct(name: str) -> Any:
    """The ``construct`` BitStruct of layout ``name``, parsing 2 bytes in big-endian bit order.

    Fields come MSB first; gaps become ``_reserved_<bit>`` integers so the struct always covers
    exactly 16 bits. Enumerated fields are ``construct.Enum`` s with identifiers made from the
    table's texts (``Reserved command`` → ``RESERVED_COMMAND``).
    """
    table = sbs_table()
    parts: list[Any] = []
    pos = 16
    for f in sorted(_layout(name, table), key=lambda f: -f.bit):
        top = f.bit + f.width
        if top < pos:
            parts.append(f"_reserved_{top}" / cs.BitsInteger(pos - top))
        sub: Any = cs.Flag if f.width == 1 else cs.BitsInteger(f.width)
        if f.enum:
            sub = cs.Enum(sub, **{_identifier(text): value for value, text in table.enums[f.enum].items()})
        parts.append(f.name / sub)
        pos = f.bit
    if pos:
        parts.append("_reserved_0" / cs.BitsInteger(pos))
    return cs.BitStruct(*parts)


def decode_bits(layout: str, raw: int) -> BitFields:
    """Decode a 16-bit word with bit-field layout ``layout``. Raises DecodeError on a bad raw."""
    raw = _word(raw)
    parsed = bit_struct(layout).parse(raw.to_bytes(2, "big"))
    table = sbs_table()
    fields: dict[str, int] = {}
    flags: list[Flag] = []
    enum_text: dict[str, str] = {}
    defined = 0
    for f in _layout(layout, table):
        value = int(parsed[f.name])
        fields[f.name] = value
        defined |= f.mask
        if f.width == 1 and value:
            flags.append(Flag(f.name, f.short, f.description))
        if f.enum:
            enum_text[f.name] = table.enums[f.enum].get(value, f"undefined code {value} (vendor-specific)")
    return BitFields(
        layout=layout,
        raw=raw,
        fields=MappingProxyType(fields),
        flags=tuple(flags),
        reserved=raw & ~defined & 0xFFFF,
        enum_text=MappingProxyType(enum_text),
    )


def writable_mask(layout: str) -> int:
    """Bits of a bit-field word a host may change (fields with access rw)."""
    mask = 0
    for f in _layout(layout):
        if f.access.writable:
            mask |= f.mask
    return mask


def defined_mask(layout: str) -> int:
    mask = 0
    for f in _layout(layout):
        mask |= f.mask
    return mask


def decode_spec_info(raw: int) -> SpecInfo:
    """Decode SpecificationInfo. Raises DecodeError when VScale or IPScale is outside 0..3."""
    bits = decode_bits("specification_info", raw)
    info = SpecInfo(
        raw=bits.raw,
        revision=bits["REVISION"],
        version=bits["VERSION"],
        vscale=bits["VSCALE"],
        ipscale=bits["IPSCALE"],
    )
    if info.vscale > MAX_SCALE_EXPONENT or info.ipscale > MAX_SCALE_EXPONENT:
        raise DecodeError(
            f"SpecificationInfo 0x{info.raw:04X}: VScale {info.vscale} / IPScale {info.ipscale} "
            f"outside 0..{MAX_SCALE_EXPONENT} (SBS 1.1 §5.1.26)"
        )
    return info


def decode_date(raw: int) -> datetime.date:
    """Decode ManufactureDate ((year − 1980) × 512 + month × 32 + day). Raises DecodeError if invalid."""
    bits = decode_bits("manufacture_date", raw)
    year, month, day = 1980 + bits["YEAR"], bits["MONTH"], bits["DAY"]
    try:
        return datetime.date(year, month, day)
    except ValueError:
        raise DecodeError(f"ManufactureDate 0x{bits.raw:04X} is not a date: {year}-{month:02d}-{day:02d}") from None


def encode_date(date: datetime.date) -> int:
    """Pack a date as ManufactureDate (1980..2107). Raises RangeError outside that span."""
    if not 1980 <= date.year <= 1980 + 127:
        raise RangeError(f"ManufactureDate can hold years 1980..2107, not {date.year}")
    return (date.year - 1980) * 512 + date.month * 32 + date.day


# ------------------------------------------------------------------------------------------------
# numbers: signedness, capacity mode, SpecificationInfo scaling
# ------------------------------------------------------------------------------------------------


def _word(raw: int) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw <= 0xFFFF:
        raise DecodeError(f"{raw!r} is not a 16-bit word (0..0xFFFF)")
    return raw


def to_signed(raw: int) -> int:
    """Two's-complement 16-bit word → -32768..32767."""
    return raw - 0x10000 if raw & 0x8000 else raw


def spec_info_of(spec_info: SpecInfo | int | None) -> SpecInfo:
    """Accept a decoded SpecInfo, a raw SpecificationInfo word, or None (no scaling)."""
    if spec_info is None:
        return NO_SCALING
    if isinstance(spec_info, SpecInfo):
        return spec_info
    return decode_spec_info(spec_info)


def unit_of(command: Command, capacity_mode: bool = False) -> str:
    """Unit of the decoded value: mW / mWh instead of mA / mAh for capacity_mode commands in 10 mW mode."""
    if command.capacity_mode and capacity_mode:
        return _POWER_UNITS.get(command.unit, command.unit)
    return command.unit


def exponent_of(command: Command, capacity_mode: bool, spec: SpecInfo) -> int:
    """Power of ten that SpecificationInfo (and CAPACITY_MODE's 10 mW unit) add to the raw value."""
    power = 1 if command.capacity_mode and capacity_mode else 0
    if command.spec_scale is SpecScale.VOLTAGE:
        power += spec.vscale
    elif command.spec_scale is SpecScale.POWER or (
        command.spec_scale is SpecScale.CURRENT and command.capacity_mode and capacity_mode
    ):
        power += spec.vscale + spec.ipscale
    elif command.spec_scale is SpecScale.CURRENT:
        power += spec.ipscale
    return power


def number_function(command: Command, capacity_mode: bool, spec: SpecInfo) -> Callable[[int], int | float]:
    """A fast raw → number function for a plain numeric word command (no sentinel handling)."""
    factor = 10 ** exponent_of(command, capacity_mode, spec)
    signed = command.signed
    if command.scale != 1.0:
        scale = command.scale * factor
        if signed:
            return lambda raw: to_signed(raw) * scale
        return lambda raw: raw * scale
    if signed:
        if factor == 1:
            return lambda raw: raw - 0x10000 if raw & 0x8000 else raw
        return lambda raw: (raw - 0x10000 if raw & 0x8000 else raw) * factor
    if factor == 1:
        return _identity
    return lambda raw: raw * factor


def _identity(raw: int) -> int:
    return raw


def temperature_celsius(raw: int) -> float:
    """0.1 K → °C, rounded to 0.01 °C (the raw resolution is 0.1 K; rounding only hides float noise)."""
    return round(raw / 10 - ZERO_CELSIUS_K, 2)


def value_function(command: Command, capacity_mode: bool = False, spec: SpecInfo = NO_SCALING) -> Callable[[int], Any]:
    """raw word → decoded value for ``command`` (sentinels → None). The Battery's hot path.

    Raises DecodeError (from the returned function) for raws the decoder cannot accept.
    """
    decoder = command.decoder
    base: Callable[[int], Any]
    if decoder == "temperature":
        base = temperature_celsius
    elif decoder == "boolean":
        base = bool
    elif decoder == "specification_info":
        base = decode_spec_info
    elif decoder == "manufacture_date":
        base = decode_date
    elif decoder:
        layout = decoder
        base = functools.partial(decode_bits, layout)
    else:
        base = number_function(command, capacity_mode, spec)
    sentinels = command.sentinels
    if not sentinels:
        return base
    return lambda raw: None if raw in sentinels else base(raw)


# ------------------------------------------------------------------------------------------------
# blocks and strings
# ------------------------------------------------------------------------------------------------


def decode_string(data: bytes) -> str:
    """SBS text block → str: trailing NUL/0xFF padding dropped, non-printables escaped as ``\\xNN``."""
    data = bytes(data).rstrip(b"\x00\xff")
    return "".join(chr(b) if 0x20 <= b < 0x7F else f"\\x{b:02x}" for b in data)


def is_filler(command: Command, raw: int | bytes) -> bool:
    """True if ``raw`` is a value the device sends when it has no answer (never data)."""
    if isinstance(raw, int):
        return raw in command.filler
    return bool(raw) and bool(command.filler) and all(b in command.filler for b in raw)


# ------------------------------------------------------------------------------------------------
# encoding (writes)
# ------------------------------------------------------------------------------------------------


def encode(
    command: Command,
    value: int | float | BitFields,
    *,
    capacity_mode: bool = False,
    spec_info: SpecInfo | int | None = None,
) -> int:
    """Value in the command's unit → raw word, with the command's range check.

    ``value`` is in the decoded unit (mWh, not 10 mWh, in capacity mode) and must be a whole
    multiple of the unit's raw step. Bit-field words take the raw word (or a :class:`BitFields`)
    and refuse reserved bits. Raises :class:`RangeError`.
    """
    if command.kind not in (Kind.WORD, Kind.BYTE):
        raise RangeError(f"{command.name} is a {command.kind.value}; only word commands can be written here")
    if isinstance(value, BitFields):
        value = value.raw
    if isinstance(value, bool):
        value = int(value)
    if command.decoder in ("battery_mode", "battery_status", "specification_info", "manufacture_date"):
        raw = _exact_int(command, value, 1)
        reserved = raw & ~defined_mask(command.decoder) & 0xFFFF
        if not 0 <= raw <= 0xFFFF:
            raise RangeError(f"{command.name}: {value} is not a 16-bit word")
        if reserved:
            raise RangeError(f"{command.name}: 0x{raw:04X} sets reserved bits 0x{reserved:04X}")
    else:
        spec = spec_info_of(spec_info)
        step = command.scale * 10 ** exponent_of(command, capacity_mode, spec)
        raw = _exact_int(command, value, step)
    lo = command.minimum if command.minimum is not None else (-0x8000 if command.signed else 0)
    hi = command.maximum if command.maximum is not None else (0x7FFF if command.signed else 0xFFFF)
    if not lo <= raw <= hi:
        unit = unit_of(command, capacity_mode)
        raise RangeError(
            f"{command.name}: {value}{' ' + unit if unit else ''} is outside the range "
            f"{_fmt_range(lo, hi, command, capacity_mode, spec_info)}"
        )
    return raw & 0xFFFF


def _exact_int(command: Command, value: float, step: float) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RangeError(f"{command.name}: {value!r} is not a number")
    raw = value / step
    if raw != int(raw):
        raise RangeError(f"{command.name}: {value} is not a multiple of the raw step {step:g}")
    return int(raw)


def _fmt_range(lo: int, hi: int, command: Command, capacity_mode: bool, spec_info: SpecInfo | int | None) -> str:
    if command.decoder:
        return f"0x{lo:04X}..0x{hi:04X}"
    step = command.scale * 10 ** exponent_of(command, capacity_mode, spec_info_of(spec_info))
    return f"{lo * step:g}..{hi * step:g}"
