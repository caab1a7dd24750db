"""The SBS 1.1 command table: loaded from ``sbs_commands.toml`` and validated on load.

The data file is the single source of the command facts (code, name, access, kind, unit,
scaling, signedness, sentinels, fillers) and of the bit-field layouts and enumerations the
decoders use. Loading is all-or-nothing: the file is parsed, every entry is converted through
the typed schema below and only then is a frozen :class:`CommandTable` published; any problem is
one :class:`~smartbatt.errors.ProfileError` naming the file and the key path.

Lookup accepts the spec name in any case (``voltage``, ``Voltage``), its snake_case form
(``relative_state_of_charge``) and a code as text (``0x09``, ``9``) or as an int.
"""

from __future__ import annotations

import functools
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from smartbatt.errors import ProfileError, UnknownCommand
from smartbatt.sbs.command import COMMAND_KEYS, Access, Command, Kind, SpecScale

#: schema version of the command-table files this loader understands.
SCHEMA_VERSION = 1

#: the SBS 1.1 table shipped with smartbatt.
SBS_TABLE_FILE = Path(__file__).with_name("sbs_commands.toml")

#: structured decoders a command may name (implemented in :mod:`smartbatt.sbs.codecs`).
DECODERS = frozenset(
    {"", "battery_mode", "battery_status", "specification_info", "manufacture_date", "temperature", "boolean"}
)
#: decoders that need a bit-field layout of the same name in the file.
BITFIELD_DECODERS = frozenset({"battery_mode", "battery_status", "specification_info", "manufacture_date"})

_BIT_KEYS = frozenset({"bit", "width", "name", "short", "access", "description", "enum"})
_TOP_KEYS = frozenset({"schema_version", "filler", "command", "bitfield", "enum"})


@dataclass(frozen=True)
class BitField:
    """One field of a bit-field word (one flag, or a multi-bit number such as the error code)."""

    #: name as the spec spells it (``CAPACITY_MODE``).
    name: str
    #: short name (TI abbreviation, ``CAPM``).
    short: str
    #: least significant bit, 0..15.
    bit: int
    #: width in bits (1 = a flag).
    width: int
    access: Access
    description: str
    #: enumeration naming this field's values (``error_code``), or empty.
    enum: str = ""

    @property
    def mask(self) -> int:
        return ((1 << self.width) - 1) << self.bit

    def extract(self, raw: int) -> int:
        """This field's value in the word ``raw``."""
        return (raw >> self.bit) & ((1 << self.width) - 1)


@dataclass(frozen=True)
class CommandTable:
    """A validated, immutable set of commands with their bit fields and enumerations."""

    #: file the table was loaded from (for messages).
    file: str
    commands: tuple[Command, ...]
    #: bit-field layouts by name (``battery_mode``), fields in ascending bit order.
    bitfields: Mapping[str, tuple[BitField, ...]] = field(default_factory=lambda: MappingProxyType({}))
    #: enumerations by name: value → text.
    enums: Mapping[str, Mapping[int, str]] = field(default_factory=lambda: MappingProxyType({}))
    #: default filler words and block bytes of the file.
    filler_words: frozenset[int] = frozenset()
    filler_block_bytes: frozenset[int] = frozenset()

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_code", {c.code: c for c in self.commands})
        object.__setattr__(self, "_by_key", {_normalise(c.name): c for c in self.commands})

    def __iter__(self) -> Iterator[Command]:
        return iter(self.commands)

    def __len__(self) -> int:
        return len(self.commands)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, (str, int)):
            return False
        try:
            self.lookup(key)
        except UnknownCommand:
            return False
        return True

    def by_code(self, code: int) -> Command:
        """The command with this code. Raises :class:`UnknownCommand`."""
        found: Command | None = self._by_code.get(code)  # type: ignore[attr-defined]
        if found is None:
            raise (
                UnknownCommand(f"no command 0x{code:02X} in {self.file}")
                if 0 <= code <= 0xFF
                else UnknownCommand(f"{code} is not a command code (0x00..0xFF)")
            )
        return found

    def by_name(self, name: str) -> Command:
        """The command called ``name`` (case-insensitive; snake_case accepted). Raises UnknownCommand."""
        found: Command | None = self._by_key.get(_normalise(name))  # type: ignore[attr-defined]
        if found is None:
            raise UnknownCommand(f"unknown command {name!r} (see `smartbatt dump` for the names)")
        return found

    def lookup(self, key: str | int) -> Command:
        """Find a command by name, by code as text (``0x09``, ``9``) or by int code."""
        if isinstance(key, int):
            return self.by_code(key)
        text = key.strip()
        if text[:2].lower() == "0x" or text.isdigit():
            try:
                return self.by_code(int(text, 0) if text[:2].lower() == "0x" else int(text, 10))
            except ValueError:
                raise UnknownCommand(f"{key!r} is not a command code or name") from None
        return self.by_name(text)

    def readable(self) -> tuple[Command, ...]:
        """Every command a host may read, in code order."""
        return tuple(c for c in self.commands if c.readable)

    def writable(self) -> tuple[Command, ...]:
        return tuple(c for c in self.commands if c.writable)


def _normalise(name: str) -> str:
    return name.replace("_", "").replace("-", "").replace(" ", "").lower()


# ------------------------------------------------------------------------------------------------
# loading and validation
# ------------------------------------------------------------------------------------------------


class _Checker:
    """Typed accessors that raise ProfileError with the key path."""

    def __init__(self, file: str) -> None:
        self.file = file

    def fail(self, path: str, reason: str) -> ProfileError:
        return ProfileError(self.file, path, reason)

    def int_(self, value: Any, path: str, lo: int, hi: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(path, f"must be an integer, not {type(value).__name__}")
        if not lo <= value <= hi:
            raise self.fail(path, f"{value} is outside {lo}..{hi}")
        return value

    def int_key(self, key: str, path: str, lo: int, hi: int) -> int:
        try:
            value = int(key, 0)
        except ValueError:
            raise self.fail(path, f"key {key!r} is not an integer") from None
        return self.int_(value, path, lo, hi)

    def str_(self, value: Any, path: str, *, empty: bool = True) -> str:
        if not isinstance(value, str):
            raise self.fail(path, f"must be a string, not {type(value).__name__}")
        if not empty and not value.strip():
            raise self.fail(path, "must not be empty")
        return value

    def bool_(self, value: Any, path: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(path, f"must be true or false, not {value!r}")
        return value

    def number(self, value: Any, path: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise self.fail(path, f"must be a positive number, not {value!r}")
        return float(value)

    def choice(self, value: Any, path: str, choices: Any) -> Any:
        text = self.str_(value, path)
        try:
            return choices(text)
        except ValueError:
            valid = ", ".join(repr(c.value) for c in choices)
            raise self.fail(path, f"{text!r} is not one of {valid}") from None

    def table(self, value: Any, path: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(path, "must be a table")
        return value

    def list_(self, value: Any, path: str) -> list[Any]:
        if not isinstance(value, list):
            raise self.fail(path, "must be a list")
        return value

    def only(self, entry: dict[str, Any], allowed: frozenset[str], path: str) -> None:
        unknown = sorted(set(entry) - allowed)
        if unknown:
            raise self.fail(f"{path}.{unknown[0]}", f"unknown key (valid keys: {', '.join(sorted(allowed))})")


def _load_enums(ck: _Checker, data: Any) -> dict[str, Mapping[int, str]]:
    enums: dict[str, Mapping[int, str]] = {}
    for name, body in ck.table(data, "enum").items():
        values = {
            ck.int_key(k, f"enum.{name}.{k}", 0, 0xFFFF): ck.str_(v, f"enum.{name}.{k}", empty=False)
            for k, v in ck.table(body, f"enum.{name}").items()
        }
        enums[name] = MappingProxyType(values)
    return enums


def _load_bitfield(ck: _Checker, name: str, entries: Any, enums: Mapping[str, Any]) -> tuple[BitField, ...]:
    fields: list[BitField] = []
    used = 0
    names: set[str] = set()
    for i, raw in enumerate(ck.list_(entries, f"bitfield.{name}")):
        path = f"bitfield.{name}[{i}]"
        entry = ck.table(raw, path)
        ck.only(entry, _BIT_KEYS, path)
        for key in ("bit", "name", "short", "access", "description"):
            if key not in entry:
                raise ck.fail(f"{path}.{key}", "missing")
        bit = ck.int_(entry["bit"], f"{path}.bit", 0, 15)
        width = ck.int_(entry.get("width", 1), f"{path}.width", 1, 16 - bit)
        fname = ck.str_(entry["name"], f"{path}.name", empty=False)
        if not fname.isidentifier() or fname in names:
            raise ck.fail(f"{path}.name", f"{fname!r} is not a unique identifier")
        names.add(fname)
        enum = ck.str_(entry.get("enum", ""), f"{path}.enum")
        if enum and enum not in enums:
            raise ck.fail(f"{path}.enum", f"no enumeration {enum!r} in this file")
        bf = BitField(
            name=fname,
            short=ck.str_(entry["short"], f"{path}.short", empty=False),
            bit=bit,
            width=width,
            access=ck.choice(entry["access"], f"{path}.access", Access),
            description=ck.str_(entry["description"], f"{path}.description"),
            enum=enum,
        )
        if used & bf.mask:
            raise ck.fail(f"{path}.bit", f"bits {bit}..{bit + width - 1} overlap another field")
        used |= bf.mask
        fields.append(bf)
    return tuple(sorted(fields, key=lambda f: f.bit))


def _load_command(
    ck: _Checker,
    i: int,
    raw: Any,
    defaults: tuple[frozenset[int], frozenset[int]],
    bitfields: Mapping[str, Any],
) -> Command:
    default_filler, default_block = defaults
    path = f"command[{i}]"
    entry = ck.table(raw, path)
    for key in ("code", "name", "access", "kind"):
        if key not in entry:
            raise ck.fail(f"{path}.{key}", "missing")
    name = ck.str_(entry["name"], f"{path}.name", empty=False)
    if not name.isidentifier():
        raise ck.fail(f"{path}.name", f"{name!r} is not an identifier")
    path = f"command.{name}"
    ck.only(entry, COMMAND_KEYS, path)
    kind = ck.choice(entry["kind"], f"{path}.kind", Kind)
    signed = ck.bool_(entry.get("signed", False), f"{path}.signed")
    decoder = ck.str_(entry.get("decoder", ""), f"{path}.decoder")
    if decoder not in DECODERS:
        raise ck.fail(f"{path}.decoder", f"unknown decoder {decoder!r} (known: {', '.join(sorted(DECODERS - {''}))})")
    if decoder in BITFIELD_DECODERS and decoder not in bitfields:
        raise ck.fail(f"{path}.decoder", f"no [[bitfield.{decoder}]] layout in this file")
    if decoder and kind not in (Kind.WORD, Kind.BYTE):
        raise ck.fail(f"{path}.decoder", f"decoder {decoder!r} needs a word, not a {kind.value}")
    word_max = 0xFF if kind is Kind.BYTE else 0xFFFF
    sentinels = {
        ck.int_key(k, f"{path}.sentinels.{k}", 0, word_max): ck.str_(v, f"{path}.sentinels.{k}", empty=False)
        for k, v in ck.table(entry.get("sentinels", {}), f"{path}.sentinels").items()
    }
    # words: filler word values; blocks and strings: the byte values a filler block is made of
    is_block = kind in (Kind.BLOCK, Kind.STRING)
    if "filler" in entry:
        filler = frozenset(
            ck.int_(v, f"{path}.filler[{j}]", 0, 0xFF if is_block else word_max)
            for j, v in enumerate(ck.list_(entry["filler"], f"{path}.filler"))
        )
        clash = set() if is_block else filler & set(sentinels)
        if clash:
            raise ck.fail(f"{path}.filler", f"0x{min(clash):04X} is a sentinel of this command, it cannot be a filler")
    else:
        filler = default_block if is_block else default_filler - set(sentinels)
    lo_default, hi_default = (-(1 << 15), (1 << 15) - 1) if signed else (0, word_max)
    minimum = ck.int_(entry.get("minimum", lo_default), f"{path}.minimum", lo_default, hi_default)
    maximum = ck.int_(entry.get("maximum", hi_default), f"{path}.maximum", lo_default, hi_default)
    if minimum > maximum:
        raise ck.fail(f"{path}.minimum", f"minimum {minimum} is above maximum {maximum}")
    access = ck.choice(entry["access"], f"{path}.access", Access)
    size = entry.get("size")
    return Command(
        code=ck.int_(entry["code"], f"{path}.code", 0, 0xFF),
        name=name,
        access=access,
        kind=kind,
        unit=ck.str_(entry.get("unit", ""), f"{path}.unit"),
        scale=ck.number(entry.get("scale", 1), f"{path}.scale"),
        signed=signed,
        capacity_mode=ck.bool_(entry.get("capacity_mode", False), f"{path}.capacity_mode"),
        spec_scale=ck.choice(entry.get("spec_scale", ""), f"{path}.spec_scale", SpecScale),
        decoder=decoder,
        sentinels=MappingProxyType(sentinels),
        minimum=minimum if access.writable else None,
        maximum=maximum if access.writable else None,
        size=None if size is None else ck.int_(size, f"{path}.size", 1, 255),
        label=ck.str_(entry.get("label", name), f"{path}.label", empty=False),
        description=ck.str_(entry.get("description", ""), f"{path}.description"),
        filler=filler,
        verify=ck.bool_(entry.get("verify", True), f"{path}.verify"),
    )


def parse_table(data: dict[str, Any], file: str) -> CommandTable:
    """Validate an already-parsed TOML document and build the table. Raises ProfileError."""
    ck = _Checker(file)
    ck.only(data, _TOP_KEYS, "")
    if data.get("schema_version") != SCHEMA_VERSION:
        raise ck.fail("schema_version", f"must be {SCHEMA_VERSION}, got {data.get('schema_version')!r}")
    filler_section = ck.table(data.get("filler", {}), "filler")
    ck.only(filler_section, frozenset({"words", "block_bytes"}), "filler")
    words = frozenset(
        ck.int_(v, f"filler.words[{i}]", 0, 0xFFFF)
        for i, v in enumerate(ck.list_(filler_section.get("words", []), "filler.words"))
    )
    block_bytes = frozenset(
        ck.int_(v, f"filler.block_bytes[{i}]", 0, 0xFF)
        for i, v in enumerate(ck.list_(filler_section.get("block_bytes", []), "filler.block_bytes"))
    )
    enums = _load_enums(ck, data.get("enum", {}))
    bitfields = {
        name: _load_bitfield(ck, name, entries, enums)
        for name, entries in ck.table(data.get("bitfield", {}), "bitfield").items()
    }
    commands = [
        _load_command(ck, i, raw, (words, block_bytes), bitfields)
        for i, raw in enumerate(ck.list_(data.get("command", []), "command"))
    ]
    seen_codes: dict[int, str] = {}
    seen_names: dict[str, str] = {}
    for cmd in commands:
        if cmd.code in seen_codes:
            raise ck.fail(f"command.{cmd.name}.code", f"0x{cmd.code:02X} is also used by {seen_codes[cmd.code]}")
        if _normalise(cmd.name) in seen_names:
            raise ck.fail(f"command.{cmd.name}.name", f"clashes with {seen_names[_normalise(cmd.name)]}")
        seen_codes[cmd.code] = cmd.name
        seen_names[_normalise(cmd.name)] = cmd.name
    return CommandTable(
        file=file,
        commands=tuple(sorted(commands, key=lambda c: c.code)),
        bitfields=MappingProxyType(bitfields),
        enums=MappingProxyType(enums),
        filler_words=words,
        filler_block_bytes=block_bytes,
    )


def load_table(path: Path | str) -> CommandTable:
    """Load and validate a command-table file. Raises ProfileError (never a bare exception)."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise ProfileError(path.name, "", f"cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(path.name, "", f"not valid TOML: {exc}") from None
    return parse_table(data, path.name)


@functools.cache
def sbs_table() -> CommandTable:
    """The SBS 1.1 table shipped with smartbatt (loaded once)."""
    return load_table(SBS_TABLE_FILE)


def lookup(key: str | int) -> Command:
    """Find an SBS 1.1 command by name or code (see :meth:`CommandTable.lookup`)."""
    return sbs_table().lookup(key)
