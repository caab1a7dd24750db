"""The PMBus command table and bit maps, loaded from ``pmbus_commands.toml`` and validated on load.

The table is data (codes, names, access, wire kind, data format, unit, labels) and the STATUS_*,
CAPABILITY, PMBUS_REVISION, OPERATION, ON_OFF_CONFIG and WRITE_PROTECT registers are described as
bit maps in the same file; the sources are cited in the file's header. Loading is all or nothing:
the file is parsed into plain values, every entry is checked against the schema below and frozen
records are built; any mistake raises one :class:`~smartbatt.errors.ProfileError` naming the file
and the key (``commands.READ_VIN.format``), and nothing half-loaded is ever published.

:func:`decode` turns the bytes a read returned into a value and a display text for any command;
it returns a value or raises :class:`~smartbatt.errors.SmartBattError` for any input bytes.
"""

from __future__ import annotations

import functools
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

from smartbatt.errors import DecodeError, ProfileError, UnknownCommand
from smartbatt.pmbus import formats
from smartbatt.pmbus.formats import DirectCoefficients, VoutMode
from smartbatt.sbs.command import Access

#: the schema version this loader understands.
SCHEMA_VERSION = 1
#: file name of the built-in table (package data next to this module).
TABLE_FILE = "pmbus_commands.toml"

_NAME_RE = re.compile(r"^[A-Z][A-Z0-9_]*$")


class WireKind(StrEnum):
    """SMBus transaction shape of a command (pmbus.md §1)."""

    #: read/write byte.
    BYTE = "byte"
    #: read/write word, low byte first.
    WORD = "word"
    #: block read/write (count byte, 1..32 data bytes).
    BLOCK = "block"
    #: send byte: the command code alone (CLEAR_FAULTS).
    SEND = "send"

    @property
    def size(self) -> int | None:
        """Data bytes of a read, or None for a variable-length block."""
        return {WireKind.BYTE: 1, WireKind.WORD: 2, WireKind.SEND: 0}.get(self)


class DataFormat(StrEnum):
    """How a command's raw value becomes a value."""

    #: LINEAR11 word (or DIRECT when the device was given coefficients for the command).
    LINEAR11 = "linear11"
    #: output-voltage format chosen by VOUT_MODE: LINEAR16, DIRECT or IEEE half.
    LINEAR16 = "linear16"
    #: DIRECT word; needs the command's coefficients.
    DIRECT = "direct"
    #: unsigned integer (PAGE, PHASE).
    UINT = "uint"
    #: shown as hex; no meaning assumed (fault responses, vendor registers, IC IDs).
    RAW = "raw"
    #: a status register: decoded to the names of the bits that are set.
    STATUS = "status"
    #: a bit-field register: decoded to every field with its meaning.
    BITS = "bits"
    #: the VOUT_MODE byte.
    VOUT_MODE = "vout_mode"
    #: text in an SMBus block (ISO 8859-1, as MFR_* strings are).
    ASCII = "ascii"
    #: no data (send byte).
    NONE = "none"


#: which formats each wire kind may carry; anything else is a table error.
FORMATS_BY_KIND: Mapping[WireKind, frozenset[DataFormat]] = MappingProxyType(
    {
        WireKind.BYTE: frozenset(
            {DataFormat.UINT, DataFormat.RAW, DataFormat.STATUS, DataFormat.BITS, DataFormat.VOUT_MODE}
        ),
        WireKind.WORD: frozenset(
            {
                DataFormat.LINEAR11,
                DataFormat.LINEAR16,
                DataFormat.DIRECT,
                DataFormat.UINT,
                DataFormat.RAW,
                DataFormat.STATUS,
                DataFormat.BITS,
            }
        ),
        WireKind.BLOCK: frozenset({DataFormat.ASCII, DataFormat.RAW}),
        WireKind.SEND: frozenset({DataFormat.NONE}),
    }
)

#: formats whose value is a number in the command's unit.
NUMERIC_FORMATS = frozenset({DataFormat.LINEAR11, DataFormat.LINEAR16, DataFormat.DIRECT})


@dataclass(frozen=True)
class PMBusCommand:
    """One PMBus command as the table describes it."""

    #: command code on the wire.
    code: int
    #: name as the PMBus specification spells it (``READ_VIN``).
    name: str
    access: Access
    kind: WireKind
    format: DataFormat
    #: unit of the decoded value (``V``, ``A``, ``°C``, ``W``, ``rpm``, ``%``, ``kHz``); empty if none.
    unit: str = ""
    #: short label for tables and plots.
    label: str = ""
    #: one-sentence description.
    description: str = ""

    @property
    def readable(self) -> bool:
        return self.access.readable and self.kind is not WireKind.SEND

    @property
    def writable(self) -> bool:
        return self.access.writable

    @property
    def numeric(self) -> bool:
        return self.format in NUMERIC_FORMATS


@dataclass(frozen=True)
class BitField:
    """One field (one bit or a bit range) of a register."""

    name: str
    msb: int
    lsb: int
    label: str = ""
    description: str = ""
    #: meaning of each field value; empty for plain flags.
    values: Mapping[int, str] = field(default_factory=lambda: MappingProxyType({}))
    #: detail registers a summary bit points to (STATUS_WORD.VOUT → STATUS_VOUT).
    detail: tuple[str, ...] = ()

    @property
    def mask(self) -> int:
        return ((1 << (self.msb - self.lsb + 1)) - 1) << self.lsb

    def extract(self, raw: int) -> int:
        """This field's value in ``raw``."""
        return (raw & self.mask) >> self.lsb

    @property
    def is_flag(self) -> bool:
        return self.msb == self.lsb


@dataclass(frozen=True)
class FieldValue:
    """A field and its value in one register reading."""

    field: BitField
    value: int

    @property
    def name(self) -> str:
        return self.field.name

    @property
    def text(self) -> str:
        """The meaning of the value (``400 kHz``), or the value itself."""
        meaning = self.field.values.get(self.value)
        return meaning if meaning is not None else str(self.value)


@dataclass(frozen=True)
class BitMap:
    """The fields of one register."""

    register: str
    width: int
    fields: tuple[BitField, ...]

    def field(self, name: str) -> BitField:
        """The field called ``name``. Raises UnknownCommand if there is none."""
        for f in self.fields:
            if f.name == name:
                return f
        raise UnknownCommand(f"{self.register} has no field {name!r}")

    def decode(self, raw: int) -> tuple[FieldValue, ...]:
        """Every field with its value, most significant first."""
        return tuple(FieldValue(f, f.extract(raw)) for f in self.fields)

    def set_flags(self, raw: int) -> tuple[BitField, ...]:
        """The fields with a non-zero value (for status registers: the bits that are set)."""
        return tuple(f for f in self.fields if f.extract(raw))

    def undefined_bits(self, raw: int) -> int:
        """Bits set in ``raw`` that no field describes (reserved or vendor bits)."""
        covered = 0
        for f in self.fields:
            covered |= f.mask
        return raw & ~covered & ((1 << self.width) - 1)


@dataclass(frozen=True)
class CommandTable:
    """A validated command table: commands by code and name, bit maps by register name."""

    source: str
    commands: tuple[PMBusCommand, ...]
    bitmaps: Mapping[str, BitMap]
    _by_code: Mapping[int, PMBusCommand] = field(repr=False, default_factory=lambda: MappingProxyType({}))
    _by_name: Mapping[str, PMBusCommand] = field(repr=False, default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_code", MappingProxyType({c.code: c for c in self.commands}))
        object.__setattr__(self, "_by_name", MappingProxyType({c.name: c for c in self.commands}))

    def __iter__(self) -> Iterator[PMBusCommand]:
        return iter(self.commands)

    def __len__(self) -> int:
        return len(self.commands)

    def get(self, key: str | int) -> PMBusCommand:
        """Look a command up by name (any case), by code, or by a code string (``0x88``).

        :raises UnknownCommand: nothing matches.
        """
        if isinstance(key, int) and not isinstance(key, bool):
            found = self._by_code.get(key)
            if found is None:
                raise UnknownCommand(f"no PMBus command with code 0x{key:02X} in the table", command=key)
            return found
        text = str(key).strip()
        found = self._by_name.get(text.upper())
        if found is not None:
            return found
        try:
            code = int(text, 0)
        except ValueError:
            raise UnknownCommand(f"unknown PMBus command {text!r} ({_suggest(text, self._by_name)})") from None
        return self.get(code)

    def bitmap(self, register: str) -> BitMap:
        """The bit map of ``register``. Raises UnknownCommand if it has none."""
        found = self.bitmaps.get(register)
        if found is None:
            raise UnknownCommand(f"{register} has no bit map in the table")
        return found

    def status_registers(self) -> tuple[PMBusCommand, ...]:
        return tuple(c for c in self.commands if c.format is DataFormat.STATUS)


def _suggest(text: str, names: Mapping[str, PMBusCommand]) -> str:
    close = [n for n in names if text.upper() in n][:3]
    return f"did you mean {', '.join(close)}?" if close else "see `smartbatt pmbus dump` for the list"


# ------------------------------------------------------------------------------------------------
# loading and validation
# ------------------------------------------------------------------------------------------------


class _Checker:
    """Typed accessors that raise ProfileError(file, key_path, reason)."""

    def __init__(self, file: str) -> None:
        self.file = file

    def fail(self, key: str, reason: str) -> ProfileError:
        return ProfileError(self.file, key, reason)

    def table(self, data: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any]:
        value = data.get(key)
        if not isinstance(value, dict):
            raise self.fail(_join(path, key), "must be a table")
        return value

    def array(self, data: Mapping[str, Any], key: str, path: str, *, required: bool = True) -> list[Any]:
        value = data.get(key)
        if value is None and not required:
            return []
        if not isinstance(value, list):
            raise self.fail(_join(path, key), "must be an array")
        return value

    def int_(
        self, data: Mapping[str, Any], key: str, path: str, low: int, high: int, default: int | None = None
    ) -> int:
        value = data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(_join(path, key), f"must be an integer, not {value!r}")
        if not low <= value <= high:
            raise self.fail(_join(path, key), f"{value} is outside {low}..{high}")
        return value

    def str_(self, data: Mapping[str, Any], key: str, path: str, default: str | None = None) -> str:
        value = data.get(key, default)
        if not isinstance(value, str):
            raise self.fail(_join(path, key), f"must be a string, not {value!r}")
        return value

    def choice(self, data: Mapping[str, Any], key: str, path: str, enum: type[StrEnum]) -> Any:
        text = self.str_(data, key, path)
        try:
            return enum(text)
        except ValueError:
            valid = ", ".join(e.value for e in enum)
            raise self.fail(_join(path, key), f"{text!r} is not one of {valid}") from None

    def only(self, data: Mapping[str, Any], allowed: set[str], path: str) -> None:
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise self.fail(_join(path, unknown[0]), f"unknown key (allowed: {', '.join(sorted(allowed))})")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


_COMMAND_KEYS = {"code", "name", "access", "kind", "format", "unit", "label", "description"}
_BITMAP_KEYS = {"register", "width", "from", "fields"}
_FIELD_KEYS = {"msb", "lsb", "name", "label", "description", "values", "detail"}


def _parse_command(ck: _Checker, entry: Any, index: int) -> PMBusCommand:
    path = f"commands[{index}]"
    if not isinstance(entry, dict):
        raise ck.fail(path, "must be a table")
    name = ck.str_(entry, "name", path)
    if not _NAME_RE.match(name):
        raise ck.fail(f"{path}.name", f"{name!r} is not an UPPER_SNAKE command name")
    path = f"commands.{name}"
    ck.only(entry, _COMMAND_KEYS, path)
    kind = ck.choice(entry, "kind", path, WireKind)
    fmt = ck.choice(entry, "format", path, DataFormat)
    if fmt not in FORMATS_BY_KIND[kind]:
        allowed = ", ".join(sorted(f.value for f in FORMATS_BY_KIND[kind]))
        raise ck.fail(f"{path}.format", f"{fmt.value!r} cannot be carried by a {kind.value} (allowed: {allowed})")
    access = ck.choice(entry, "access", path, Access)
    if kind is WireKind.SEND and access is not Access.WRITE:
        raise ck.fail(f"{path}.access", "a send-byte command can only be written ('w')")
    unit = ck.str_(entry, "unit", path, "")
    if unit and fmt not in NUMERIC_FORMATS:
        raise ck.fail(f"{path}.unit", f"a {fmt.value} value has no unit")
    return PMBusCommand(
        code=ck.int_(entry, "code", path, 0, 0xFF),
        name=name,
        access=access,
        kind=kind,
        format=fmt,
        unit=unit,
        label=ck.str_(entry, "label", path, ""),
        description=ck.str_(entry, "description", path, ""),
    )


def _parse_values(ck: _Checker, raw: Any, path: str, width: int) -> Mapping[int, str]:
    if raw is None:
        return MappingProxyType({})
    if not isinstance(raw, dict):
        raise ck.fail(path, "must be a table of value = meaning")
    values: dict[int, str] = {}
    for key, text in raw.items():
        try:
            number = int(key, 0)
        except ValueError:
            raise ck.fail(f"{path}.{key}", "key must be a number") from None
        if not 0 <= number < (1 << width):
            raise ck.fail(f"{path}.{key}", f"{number} does not fit a {width}-bit field")
        if not isinstance(text, str):
            raise ck.fail(f"{path}.{key}", "meaning must be a string")
        values[number] = text
    return MappingProxyType(values)


def _parse_field(ck: _Checker, entry: Any, path: str, width: int) -> BitField:
    if not isinstance(entry, dict):
        raise ck.fail(path, "must be a table")
    ck.only(entry, _FIELD_KEYS, path)
    name = ck.str_(entry, "name", path)
    if not _NAME_RE.match(name):
        raise ck.fail(f"{path}.name", f"{name!r} is not an UPPER_SNAKE field name")
    msb = ck.int_(entry, "msb", path, 0, width - 1)
    lsb = ck.int_(entry, "lsb", path, 0, msb, default=msb)
    detail = ck.array(entry, "detail", path, required=False)
    if not all(isinstance(d, str) for d in detail):
        raise ck.fail(f"{path}.detail", "must list register names")
    return BitField(
        name=name,
        msb=msb,
        lsb=lsb,
        label=ck.str_(entry, "label", path, ""),
        description=ck.str_(entry, "description", path, ""),
        values=_parse_values(ck, entry.get("values"), f"{path}.values", msb - lsb + 1),
        detail=tuple(detail),
    )


def _parse_bitmap(
    ck: _Checker, entry: Any, index: int, by_name: Mapping[str, PMBusCommand], done: Mapping[str, BitMap]
) -> BitMap:
    path = f"bitmaps[{index}]"
    if not isinstance(entry, dict):
        raise ck.fail(path, "must be a table")
    register = ck.str_(entry, "register", path)
    path = f"bitmaps.{register}"
    ck.only(entry, _BITMAP_KEYS, path)
    command = by_name.get(register)
    if command is None:
        raise ck.fail(f"{path}.register", f"{register!r} is not a command in this table")
    if command.format not in (DataFormat.STATUS, DataFormat.BITS):
        raise ck.fail(f"{path}.register", f"{register} has format {command.format.value!r}, not status or bits")
    width = ck.int_(entry, "width", path, 8, 16)
    expected = 8 if command.kind is WireKind.BYTE else 16
    if width != expected:
        raise ck.fail(f"{path}.width", f"{register} is a {command.kind.value}: width must be {expected}")
    if "from" in entry:
        source = ck.str_(entry, "from", path)
        if source not in done:
            raise ck.fail(f"{path}.from", f"{source!r} is not a bit map defined earlier in the file")
        fields = tuple(f for f in done[source].fields if f.msb < width)
    else:
        items = ck.array(entry, "fields", path)
        fields = tuple(_parse_field(ck, item, f"{path}.fields[{i}]", width) for i, item in enumerate(items))
    _check_fields(ck, path, fields)
    return BitMap(register=register, width=width, fields=fields)


def _check_fields(ck: _Checker, path: str, fields: tuple[BitField, ...]) -> None:
    used = 0
    names: set[str] = set()
    for f in fields:
        if f.mask & used:
            raise ck.fail(f"{path}.{f.name}", f"bits {f.msb}:{f.lsb} overlap another field")
        if f.name in names:
            raise ck.fail(f"{path}.{f.name}", "field name used twice")
        used |= f.mask
        names.add(f.name)


def _check_details(ck: _Checker, bitmaps: Mapping[str, BitMap], by_name: Mapping[str, PMBusCommand]) -> None:
    for bitmap in bitmaps.values():
        for f in bitmap.fields:
            for register in f.detail:
                target = by_name.get(register)
                if target is None or target.kind is not WireKind.BYTE or not target.readable:
                    raise ck.fail(
                        f"bitmaps.{bitmap.register}.{f.name}.detail",
                        f"{register!r} is not a readable byte register in this table",
                    )


def parse_table(data: Mapping[str, Any], source: str) -> CommandTable:
    """Validate parsed TOML ``data`` and build the table. Raises ProfileError on any mistake."""
    ck = _Checker(source)
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ck.fail("schema_version", f"is {version!r}; this smartbatt reads version {SCHEMA_VERSION}")
    ck.only(data, {"schema_version", "commands", "bitmaps"}, "")
    commands = tuple(_parse_command(ck, e, i) for i, e in enumerate(ck.array(data, "commands", "")))
    by_name: dict[str, PMBusCommand] = {}
    by_code: dict[int, PMBusCommand] = {}
    for c in commands:
        if c.name in by_name:
            raise ck.fail(f"commands.{c.name}.name", "name used twice")
        if c.code in by_code:
            raise ck.fail(f"commands.{c.name}.code", f"0x{c.code:02X} is also {by_code[c.code].name}")
        by_name[c.name] = c
        by_code[c.code] = c
    bitmaps: dict[str, BitMap] = {}
    for i, entry in enumerate(ck.array(data, "bitmaps", "", required=False)):
        bitmap = _parse_bitmap(ck, entry, i, by_name, bitmaps)
        if bitmap.register in bitmaps:
            raise ck.fail(f"bitmaps.{bitmap.register}", "register has two bit maps")
        bitmaps[bitmap.register] = bitmap
    for c in commands:
        if c.format in (DataFormat.STATUS, DataFormat.BITS) and c.name not in bitmaps:
            raise ck.fail(f"commands.{c.name}.format", f"{c.format.value!r} needs a bit map for {c.name}")
    _check_details(ck, bitmaps, by_name)
    return CommandTable(source=source, commands=commands, bitmaps=MappingProxyType(bitmaps))


def load_table(path: str | Path | None = None) -> CommandTable:
    """Load and validate a command table file; the built-in table when ``path`` is None (cached).

    :raises ProfileError: unreadable file, TOML syntax error, or any schema violation.
    """
    if path is None:
        return _builtin_table()
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProfileError(file.name, "", f"cannot read: {exc.strerror or exc}") from None
    return loads_table(text, file.name)


def loads_table(text: str, source: str = "<string>") -> CommandTable:
    """Parse and validate a command table given as TOML text."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(source, "", f"not valid TOML: {exc}") from None
    return parse_table(data, source)


@functools.cache
def _builtin_table() -> CommandTable:
    text = resources.files("smartbatt.pmbus").joinpath(TABLE_FILE).read_text(encoding="utf-8")
    return loads_table(text, TABLE_FILE)


# ------------------------------------------------------------------------------------------------
# decoding a reply
# ------------------------------------------------------------------------------------------------

#: what :func:`decode` may return as a value.
Value = float | int | str | bytes | VoutMode | tuple[FieldValue, ...] | None


@dataclass(frozen=True)
class Decoded:
    """A decoded reply: the value and how to show it."""

    value: Value
    text: str


def raw_int(command: PMBusCommand, data: bytes) -> int | bytes:
    """The raw register value of a reply: an int for a byte or word (little-endian), the bytes of
    a block.

    :raises DecodeError: the reply has the wrong length for the command's kind.
    """
    size = command.kind.size
    if command.kind is WireKind.SEND:
        raise DecodeError(f"{command.name} is a send-byte command and has no reply")
    if size is None:
        return bytes(data)
    if len(data) != size:
        raise DecodeError(f"{command.name}: a {command.kind.value} reply has {size} bytes, not {len(data)}")
    return int.from_bytes(data, "little")


def decode(
    command: PMBusCommand,
    data: bytes,
    *,
    table: CommandTable | None = None,
    vout_mode: VoutMode | None = None,
    coefficients: DirectCoefficients | None = None,
) -> Decoded:
    """Decode the data bytes of a reply to ``command``.

    :param vout_mode: the page's VOUT_MODE, needed for ``linear16`` commands.
    :param coefficients: DIRECT coefficients of this command; when given, a ``linear11`` or
        ``direct`` command is decoded as DIRECT (the device uses DIRECT for it).
    :raises DecodeError: wrong length, VOUT_MODE missing or undecodable, DIRECT without
        coefficients.
    """
    raw = raw_int(command, data)
    if isinstance(raw, bytes):
        return _decode_block(command, raw)
    fmt = command.format
    if fmt is DataFormat.LINEAR11 or fmt is DataFormat.DIRECT:
        if coefficients is not None:
            return _number(command, formats.decode_direct(raw, coefficients))
        if fmt is DataFormat.DIRECT:
            raise DecodeError(f"{command.name} is in DIRECT format: give its coefficients (m, b, R)")
        return _number(command, formats.decode_linear11(raw))
    if fmt is DataFormat.LINEAR16:
        if vout_mode is None:
            raise DecodeError(f"{command.name} needs VOUT_MODE to be decoded")
        return _number(command, formats.decode_vout(raw, vout_mode, coefficients))
    if fmt is DataFormat.VOUT_MODE:
        mode = formats.parse_vout_mode(raw)
        return Decoded(mode, f"0x{raw:02X} ({mode.describe()})")
    if fmt in (DataFormat.STATUS, DataFormat.BITS):
        return _decode_bits(command, raw, table or load_table())
    if fmt is DataFormat.UINT:
        return Decoded(raw, str(raw))
    return Decoded(raw, _hex(command, raw))


def _hex(command: PMBusCommand, raw: int) -> str:
    return f"0x{raw:0{2 * (command.kind.size or 1)}X}"


def _number(command: PMBusCommand, value: float) -> Decoded:
    unit = f" {command.unit}" if command.unit else ""
    return Decoded(value, f"{value:.6g}{unit}")


def _decode_bits(command: PMBusCommand, raw: int, table: CommandTable) -> Decoded:
    bitmap = table.bitmap(command.name)
    extra = bitmap.undefined_bits(raw)
    suffix = f", undefined bits 0x{extra:0{bitmap.width // 4}X}" if extra else ""
    if command.format is DataFormat.STATUS:
        flags = tuple(FieldValue(f, 1) for f in bitmap.set_flags(raw))
        names = ", ".join(v.name for v in flags) or "no bits set"
        return Decoded(flags, f"{_hex(command, raw)} ({names}{suffix})")
    values = bitmap.decode(raw)
    fields = ", ".join(f"{v.field.label or v.name}: {v.text}" for v in values)
    return Decoded(values, f"{_hex(command, raw)} ({fields}{suffix})")


def _decode_block(command: PMBusCommand, data: bytes) -> Decoded:
    if command.format is DataFormat.ASCII:
        # MFR_* strings are ISO 8859-1 (Maxim MAX34441 datasheet); latin-1 maps every byte, so
        # any reply decodes; NUL padding is dropped and control characters are shown escaped
        text = data.decode("latin-1").rstrip("\x00")
        shown = "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in text)
        return Decoded(text, shown)
    return Decoded(bytes(data), data.hex(" ").upper() if data else "(empty)")
