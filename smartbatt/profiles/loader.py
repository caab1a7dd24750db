"""Load, merge and validate chip profiles (``firmware_profiles/*.toml``).

Rules (STYLE.md §4):

* Each file starts with ``schema_version``; the loader reads exactly :data:`SCHEMA_VERSION`.
* TOML is read by :mod:`tomllib` into plain strings and numbers and every value is converted by
  the small typed readers below — never by trusting whatever type the format produced. Unknown
  keys are errors, so a typo cannot silently drop a fact.
* A profile may ``extends`` another (``bq40z50`` extends ``generic-sbs``); child entries replace
  parent entries with the same key (command code, MAC code, bit-map name, layout name, data-flash
  ``Class:Subclass:Name``). Cycles are errors.
* A file may define ``[variants.<name>]`` overlays (bq40z50-R1/R3, ...) with the same sections.
* Everything is validated first and only then published to the cache: a failing load raises one
  :class:`~smartbatt.errors.ProfileError` naming the file, the key path and the reason, and
  leaves nothing behind.
"""

from __future__ import annotations

import os
import re
import threading
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

import construct

from smartbatt.datafile import TableReader, _show
from smartbatt.errors import ProfileError, SmartBattError
from smartbatt.profiles.schema import (
    SCHEMA_VERSION,
    BitField,
    BitGroup,
    BlockLayout,
    Bus,
    BusKind,
    DataFlashAccess,
    DataFlashAccessMethod,
    DataFlashEntry,
    DFType,
    FieldType,
    Flag,
    Identity,
    LayoutField,
    MacAccess,
    MacCommand,
    Profile,
    Security,
    SecurityLevel,
    SecurityMethod,
    StandardCommands,
    StatusSource,
    Timing,
    Variant,
)
from smartbatt.sbs.command import COMMAND_KEYS, Access, Command, Kind, SpecScale

__all__ = ["available_profiles", "clear_cache", "is_cached", "load_profile"]

#: the package that holds the shipped profiles (a directory at the repository root).
PROFILE_PACKAGE = "firmware_profiles"
#: SBS 1.1 standard command codes; profile commands must not redefine them on SBS gauges.
SBS_STANDARD_RANGE = range(0x00, 0x24)

_CACHE: dict[tuple[str, str, str | None], Profile] = {}
_LOCK = threading.Lock()



# --- public API ---------------------------------------------------------------------------------


def available_profiles() -> list[str]:
    """Names of the shipped profiles, sorted (``["bq20z65", "bq28z610", ...]``)."""
    root = resources.files(PROFILE_PACKAGE)
    return sorted(p.name[: -len(".toml")] for p in root.iterdir() if p.name.endswith(".toml"))


def load_profile(name_or_path: str | os.PathLike[str], *, variant: str | None = None) -> Profile:
    """Load a profile by shipped name (``"bq40z50"``) or from a ``.toml`` file path.

    :param variant: a variant defined in the file (``"R3"``); None for the base profile.
    :raises ProfileError: the file is missing, is not valid TOML, fails validation, its
        ``extends`` chain cannot be resolved or is cyclic, or the variant is unknown.
    """
    if isinstance(name_or_path, str):
        # Fast path for the common case: a shipped name already loaded (the GUI asks often).
        with _LOCK:
            hit = _CACHE.get(("shipped", name_or_path, variant))
        if hit is not None:
            return hit
    source = _locate(name_or_path, referrer=None)
    key = (source.kind, source.ident, variant)
    with _LOCK:
        cached = _CACHE.get(key)
    if cached is not None:
        return cached
    profile = _build(source, variant)
    with _LOCK:
        # Another thread may have won the race; both results are equal, keep the first.
        return _CACHE.setdefault(key, profile)


def is_cached(name_or_path: str | os.PathLike[str], *, variant: str | None = None) -> bool:
    """Whether a profile is in the cache (a failed load never is)."""
    try:
        source = _locate(name_or_path, referrer=None)
    except ProfileError:
        return False
    with _LOCK:
        return (source.kind, source.ident, variant) in _CACHE


def clear_cache() -> None:
    """Forget every loaded profile (tests; a user editing a profile file)."""
    with _LOCK:
        _CACHE.clear()


# --- locating files -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Source:
    """One profile file: where it is and how messages name it."""

    kind: str  # "shipped" or "path"
    ident: str  # profile name or resolved path
    label: str  # how error messages name the file
    stem: str
    directory: Path | None

    def read_text(self) -> str:
        if self.kind == "shipped":
            return resources.files(PROFILE_PACKAGE).joinpath(f"{self.stem}.toml").read_text(encoding="utf-8")
        return Path(self.ident).read_text(encoding="utf-8")


_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _locate(name_or_path: str | os.PathLike[str], referrer: _Source | None) -> _Source:
    text = os.fspath(name_or_path)
    looks_like_path = isinstance(name_or_path, os.PathLike) or text.endswith(".toml") or os.sep in text
    if looks_like_path:
        path = Path(text)
        if not path.is_file():
            raise ProfileError(text, "", "no such profile file")
        return _Source("path", str(path.resolve()), text, path.stem, path.parent)
    if not _NAME_RE.match(text):
        raise ProfileError(text, "", "not a profile name")
    if referrer is not None and referrer.directory is not None:
        sibling = referrer.directory / f"{text}.toml"
        if sibling.is_file():
            return _Source("path", str(sibling.resolve()), str(sibling), text, sibling.parent)
    if not resources.files(PROFILE_PACKAGE).joinpath(f"{text}.toml").is_file():
        raise ProfileError(f"{text}.toml", "", f"no shipped profile named {text!r}; available: {available_profiles()}")
    return _Source("shipped", text, f"{text}.toml", text, None)


# --- typed reading of plain TOML values ----------------------------------------------------------


class _Reader(TableReader):
    """A profile table; typed getters raise :class:`ProfileError`."""


# --- per-file parsing into typed parts ------------------------------------------------------------


@dataclass(frozen=True)
class _Origin:
    file: str
    path: str


@dataclass
class _Parts:
    """What one file (or one variant overlay) defines, already typed; merged later."""

    file: str
    title: str | None = None
    sources: list[str] = field(default_factory=list)
    identity: Identity | None = None
    bus: Bus | None = None
    timing: Timing | None = None
    security: tuple[Security, _Origin] | None = None
    df_access: DataFlashAccess | None = None
    commands: dict[int, tuple[Command, SecurityLevel | None, _Origin]] = field(default_factory=dict)
    mac: dict[int, tuple[MacCommand, _Origin]] = field(default_factory=dict)
    bitfields: dict[str, tuple[BitField, _Origin]] = field(default_factory=dict)
    layouts: dict[str, tuple[BlockLayout, _Origin]] = field(default_factory=dict)
    status_sources: dict[str, tuple[StatusSource, _Origin]] = field(default_factory=dict)
    data_flash: dict[str, tuple[DataFlashEntry, _Origin]] = field(default_factory=dict)


_SECTION_KEYS = {
    "title",
    "sources",
    "identity",
    "bus",
    "timing",
    "security",
    "data_flash_access",
    "commands",
    "mac",
    "bitfields",
    "layouts",
    "status_sources",
    "data_flash",
}
_TOP_KEYS = _SECTION_KEYS | {"schema_version", "name", "extends", "variants"}
_VARIANT_KEYS = _SECTION_KEYS | {"device_name_patterns"}


@dataclass
class _FileSpec:
    name: str
    extends: str | None
    parts: _Parts
    variants: dict[str, tuple[Variant, _Parts]]


def _parse_file(source: _Source) -> _FileSpec:
    try:
        text = source.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(source.label, "", f"cannot read: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(source.label, "", f"not valid TOML: {exc}") from None
    top = _Reader(source.label, "", data)
    version = top.get("schema_version", True)
    if isinstance(version, bool) or not isinstance(version, int):
        raise top.fail("schema_version", f"expected an integer, got {_show(version)}")
    if version != SCHEMA_VERSION:
        reason = f"unsupported schema_version {version} (this smartbatt reads {SCHEMA_VERSION})"
        raise top.fail("schema_version", reason)
    top.check_keys(_TOP_KEYS)
    name = top.req_str("name")
    if name != source.stem:
        raise top.fail("name", f"{name!r} does not match the file name {source.stem!r}")
    extends = top.opt_str("extends", nonempty=True)
    parts = _parse_sections(top)
    if parts.title is None:
        raise top.fail("title", "missing")
    if not parts.sources:
        raise top.fail("sources", "missing: every profile cites its documents")
    variants: dict[str, tuple[Variant, _Parts]] = {}
    vtable = top.table("variants")
    if vtable is not None:
        for vname in vtable.data:
            vr = vtable.table(vname)
            assert vr is not None
            if not isinstance(vname, str) or not _NAME_RE.match(vname):
                raise vtable.fail(str(vname), "not a valid variant name")
            vr.check_keys(_VARIANT_KEYS)
            vparts = _parse_sections(vr)
            patterns = _patterns(vr, "device_name_patterns")
            variants[vname] = (
                Variant(vname, vparts.title or "", tuple(vparts.sources), patterns),
                vparts,
            )
    return _FileSpec(name, extends, parts, variants)


def _parse_sections(r: _Reader) -> _Parts:
    parts = _Parts(file=r.file)
    parts.title = r.opt_str("title", nonempty=True)
    parts.sources = list(r.str_list("sources"))
    if (t := r.table("identity")) is not None:
        parts.identity = _parse_identity(t)
    if (t := r.table("bus")) is not None:
        parts.bus = _parse_bus(t)
    if (t := r.table("timing")) is not None:
        parts.timing = _parse_timing(t)
    if (t := r.table("security")) is not None:
        parts.security = (_parse_security(t), _Origin(t.file, t.path))
    if (t := r.table("data_flash_access")) is not None:
        parts.df_access = _parse_df_access(t)
    _collect(r.tables("commands"), _parse_command, parts.commands, lambda c: c[0].code, "code", hex_digits=2)
    _collect(r.tables("mac"), _parse_mac, parts.mac, lambda m: m[0].code, "code", hex_digits=4)
    _collect(r.tables("bitfields"), _parse_bitfield, parts.bitfields, lambda b: b[0].name, "name")
    _collect(r.tables("layouts"), _parse_layout, parts.layouts, lambda lay: lay[0].name, "name")
    _collect(
        r.tables("status_sources"), _parse_status_source, parts.status_sources, lambda s: s[0].register, "register"
    )
    _collect(r.tables("data_flash"), _parse_df_entry, parts.data_flash, lambda e: e[0].key, "name")
    return parts


def _collect(
    readers: Iterator[_Reader],
    parse: Callable[[_Reader], Any],
    into: dict[Any, Any],
    key: Callable[[Any], Any],
    key_name: str,
    *,
    hex_digits: int = 0,
) -> None:
    for r in readers:
        item = parse(r)
        k = key(item)
        if k in into:
            shown = f"0x{k:0{hex_digits}X}" if hex_digits else repr(k)
            raise r.fail(key_name, f"duplicate {shown} (also at {into[k][-1].path})")
        into[k] = item


def _patterns(r: _Reader, name: str) -> tuple[str, ...]:
    patterns = r.str_list(name)
    for i, p in enumerate(patterns):
        try:
            re.compile(p)
        except re.error as exc:
            raise r.fail(f"{name}[{i}]", f"invalid regular expression: {exc}") from None
    return patterns


def _parse_identity(r: _Reader) -> Identity:
    r.check_keys({"device_types", "device_name_patterns", "manufacturer_patterns", "mac_probe", "fallback"})
    return Identity(
        device_types=r.int_list("device_types", 0, 0xFFFF),
        device_name_patterns=_patterns(r, "device_name_patterns"),
        manufacturer_patterns=_patterns(r, "manufacturer_patterns"),
        mac_probe=r.opt_bool("mac_probe", False),
        fallback=r.opt_bool("fallback", False),
    )


def _parse_bus(r: _Reader) -> Bus:
    r.check_keys({"kind", "address", "standard_commands"})
    return Bus(
        kind=r.enum("kind", BusKind),
        address=r.opt_int("address", 0x08, 0x77),
        standard_commands=r.enum("standard_commands", StandardCommands, StandardCommands.SBS),
    )


def _parse_timing(r: _Reader) -> Timing:
    r.check_keys({"mac_delay_ms", "df_write_delay_ms", "bus_hz"})
    return Timing(
        mac_delay_ms=r.opt_float("mac_delay_ms", 0, 60_000),
        df_write_delay_ms=r.opt_float("df_write_delay_ms", 0, 60_000),
        bus_hz=r.opt_int("bus_hz", 1_000, 1_000_000),
    )


def _key_pair(r: _Reader, name: str) -> tuple[int, int] | None:
    keys = r.int_list(name, 0, 0xFFFF)
    if not keys and not r.has(name):
        return None
    if len(keys) != 2:
        raise r.fail(name, f"expected two 16-bit words, got {len(keys)}")
    return keys[0], keys[1]


def _parse_security(r: _Reader) -> Security:
    r.check_keys(
        {
            "method",
            "seal_mac",
            "default_unseal_key",
            "default_full_access_key",
            "key_window_s",
            "keys_mac",
            "sha1_authentication",
            "state_register",
            "state_group",
            "states",
        }
    )
    states: dict[int, SecurityLevel] = {}
    for s in r.tables("states"):
        s.check_keys({"value", "state"})
        value = s.req_int("value", 0, 0xFF)
        if value in states:
            raise s.fail("value", f"duplicate {value}")
        states[value] = s.enum("state", SecurityLevel)
    return Security(
        method=r.enum("method", SecurityMethod),
        seal_mac=r.opt_int("seal_mac", 0, 0xFFFF),
        default_unseal_key=_key_pair(r, "default_unseal_key"),
        default_full_access_key=_key_pair(r, "default_full_access_key"),
        key_window_s=r.opt_float("key_window_s", 0.001, 3600),
        keys_mac=r.opt_int("keys_mac", 0, 0xFFFF),
        sha1_authentication=r.opt_bool("sha1_authentication", False),
        state_register=r.opt_str("state_register", nonempty=True),
        state_group=r.opt_str("state_group", nonempty=True),
        states=MappingProxyType(states),
    )


def _parse_df_access(r: _Reader) -> DataFlashAccess:
    r.check_keys({"method", "first", "last", "block_size"})
    first = r.opt_int("first", 0, 0xFFFF)
    last = r.opt_int("last", 0, 0xFFFF)
    if (first is None) != (last is None):
        raise r.fail("last" if last is None else "first", "first and last must be given together")
    if first is not None and last is not None and first > last:
        raise r.fail("last", f"0x{last:04X} is below first 0x{first:04X}")
    return DataFlashAccess(
        method=r.enum("method", DataFlashAccessMethod),
        first=first,
        last=last,
        block_size=r.opt_int("block_size", 1, 32) or 32,
    )


_IDENT_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
#: flag names are TI abbreviations, some start with a digit (PFStatus 2LVL).
_FLAG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_]*$")


def _ident(r: _Reader, name: str, pattern: re.Pattern[str] = _IDENT_RE) -> str:
    v = r.req_str(name)
    if not pattern.match(v):
        raise r.fail(name, f"{v!r} is not an identifier (letters, digits, underscore)")
    return v


def _parse_command(r: _Reader) -> tuple[Command, SecurityLevel | None, _Origin]:
    # a profile command has every Command field but the filler set (SBS-table only), plus the
    # security level it needs
    r.check_keys((COMMAND_KEYS - {"filler"}) | {"security"})
    sentinels: dict[int, str] = {}
    for s in r.tables("sentinels"):
        s.check_keys({"raw", "meaning"})
        raw = s.req_int("raw", 0, 0xFFFF)
        if raw in sentinels:
            raise s.fail("raw", f"duplicate 0x{raw:X}")
        sentinels[raw] = s.req_str("meaning")
    minimum = r.opt_int("minimum", -(2**31), 2**32)
    maximum = r.opt_int("maximum", -(2**31), 2**32)
    if minimum is not None and maximum is not None and minimum > maximum:
        raise r.fail("maximum", f"{maximum} is below minimum {minimum}")
    scale = r.opt_float("scale", -1e9, 1e9)
    if scale == 0.0:
        raise r.fail("scale", "must not be zero")
    kind = r.enum("kind", Kind)
    size = r.opt_int("size", 1, 255)
    if size is not None and kind is Kind.WORD and size != 2:
        raise r.fail("size", f"a word is 2 bytes, not {size}")
    command = Command(
        code=r.req_int("code", 0, 0xFF),
        name=_ident(r, "name"),
        access=r.enum("access", Access),
        kind=kind,
        unit=r.opt_str("unit") or "",
        scale=1.0 if scale is None else scale,
        signed=r.opt_bool("signed", False),
        capacity_mode=r.opt_bool("capacity_mode", False),
        spec_scale=r.enum("spec_scale", SpecScale, SpecScale.NONE),
        decoder=r.opt_str("decoder") or "",
        sentinels=MappingProxyType(sentinels),
        minimum=minimum,
        maximum=maximum,
        size=size,
        label=r.opt_str("label") or "",
        description=r.opt_str("description") or "",
        # Block-access and MAC-channel commands return a result, not what was written.
        verify=r.opt_bool("verify", True),
    )
    security = r.enum("security", SecurityLevel) if r.has("security") else None
    return command, security, _Origin(r.file, r.path)


def _parse_mac(r: _Reader) -> tuple[MacCommand, _Origin]:
    r.check_keys({"code", "name", "access", "security", "layout", "bitfield", "delay_ms", "description"})
    mac = MacCommand(
        code=r.req_int("code", 0, 0xFFFF),
        name=_ident(r, "name"),
        access=r.enum("access", MacAccess),
        security=r.enum("security", SecurityLevel, SecurityLevel.UNKNOWN),
        layout=r.opt_str("layout", nonempty=True),
        bitfield=r.opt_str("bitfield", nonempty=True),
        delay_ms=r.opt_float("delay_ms", 0, 60_000),
        description=r.opt_str("description") or "",
    )
    if mac.layout is not None and mac.bitfield is not None:
        raise r.fail("bitfield", "give either layout or bitfield, not both")
    if mac.access is MacAccess.WRITE and (mac.layout or mac.bitfield):
        raise r.fail("access", "a write-only subcommand has no result layout")
    return mac, _Origin(r.file, r.path)


def _parse_bitfield(r: _Reader) -> tuple[BitField, _Origin]:
    r.check_keys({"name", "width", "flags", "groups", "description"})
    name = _ident(r, "name")
    width = r.req_int("width", 8, 64)
    if width % 8:
        raise r.fail("width", f"{width} is not a whole number of bytes")
    flags: list[Flag] = []
    used: dict[int, str] = {}
    names: set[str] = set()
    for fr in r.tables("flags"):
        fr.check_keys({"bit", "name", "label", "description"})
        flag = Flag(
            bit=fr.req_int("bit", 0, width - 1),
            name=_ident(fr, "name", _FLAG_RE),
            label=fr.opt_str("label") or "",
            description=fr.opt_str("description") or "",
        )
        if flag.bit in used:
            raise fr.fail("bit", f"bit {flag.bit} is already {used[flag.bit]}")
        if flag.name in names:
            raise fr.fail("name", f"duplicate flag name {flag.name!r}")
        used[flag.bit] = flag.name
        names.add(flag.name)
        flags.append(flag)
    groups: list[BitGroup] = []
    for gr in r.tables("groups"):
        group = _parse_group(gr, width)
        for bit in range(group.low, group.low + group.width):
            if bit in used:
                raise gr.fail("low", f"bit {bit} is already {used[bit]}")
            used[bit] = group.name
        if group.name in names:
            raise gr.fail("name", f"duplicate name {group.name!r}")
        names.add(group.name)
        groups.append(group)
    bitfield = BitField(name, width, tuple(flags), tuple(groups), r.opt_str("description") or "")
    return bitfield, _Origin(r.file, r.path)


def _parse_group(r: _Reader, width: int) -> BitGroup:
    r.check_keys({"name", "low", "width", "label", "description", "values"})
    low = r.req_int("low", 0, width - 1)
    gwidth = r.req_int("width", 2, width)
    if low + gwidth > width:
        raise r.fail("width", f"bits {low}..{low + gwidth - 1} exceed the register width {width}")
    values: dict[int, str] = {}
    for vr in r.tables("values"):
        vr.check_keys({"value", "meaning"})
        value = vr.req_int("value", 0, (1 << gwidth) - 1)
        if value in values:
            raise vr.fail("value", f"duplicate {value}")
        values[value] = vr.req_str("meaning")
    return BitGroup(
        name=_ident(r, "name"),
        low=low,
        width=gwidth,
        label=r.opt_str("label") or "",
        description=r.opt_str("description") or "",
        values=MappingProxyType(values),
    )


def _parse_layout(r: _Reader) -> tuple[BlockLayout, _Origin]:
    r.check_keys({"name", "size", "fields", "description"})
    name = _ident(r, "name")
    size = r.req_int("size", 1, 255)
    fields: list[LayoutField] = []
    for fr in r.tables("fields"):
        fr.check_keys({"name", "offset", "type", "length", "unit", "scale", "description"})
        ftype = fr.enum("type", FieldType)
        length = fr.opt_int("length", 1, 255)
        if ftype is FieldType.BYTES and length is None:
            raise fr.fail("length", "missing (required for bytes fields)")
        if ftype is not FieldType.BYTES and length is not None:
            raise fr.fail("length", f"only bytes fields have a length ({ftype} is {ftype.fixed_size} bytes)")
        scale = fr.opt_float("scale", -1e9, 1e9)
        if scale == 0.0:
            raise fr.fail("scale", "must not be zero")
        f = LayoutField(
            name=_ident(fr, "name"),
            offset=fr.req_int("offset", 0, 254),
            type=ftype,
            length=length,
            unit=fr.opt_str("unit") or "",
            scale=1.0 if scale is None else scale,
            description=fr.opt_str("description") or "",
        )
        if f.offset + f.size > size:
            raise fr.fail("offset", f"field ends at byte {f.offset + f.size}, beyond the layout size {size}")
        for other in fields:
            if other.name == f.name:
                raise fr.fail("name", f"duplicate field name {f.name!r}")
            if f.offset < other.offset + other.size and other.offset < f.offset + f.size:
                raise fr.fail("offset", f"bytes {f.offset}..{f.offset + f.size - 1} overlap field {other.name!r}")
        fields.append(f)
    if not fields:
        raise r.fail("fields", "missing: a layout needs at least one field")
    layout = BlockLayout(name, size, tuple(sorted(fields, key=lambda f: f.offset)), r.opt_str("description") or "")
    return layout, _Origin(r.file, r.path)


def _parse_status_source(r: _Reader) -> tuple[StatusSource, _Origin]:
    r.check_keys({"register", "sbs", "sbs_kind", "mac", "size", "security"})
    sbs = r.opt_int("sbs", 0, 0xFF)
    mac = r.opt_int("mac", 0, 0xFFFF)
    if sbs is None and mac is None:
        raise r.fail("sbs", "give sbs, mac or both")
    kind = r.opt_str("sbs_kind") or "block"
    if kind not in ("block", "word"):
        raise r.fail("sbs_kind", f"expected 'block' or 'word', got {kind!r}")
    size = r.req_int("size", 1, 8)
    if kind == "word" and size != 2:
        raise r.fail("size", f"a word is 2 bytes, not {size}")
    source = StatusSource(
        register=_ident(r, "register"),
        sbs=sbs,
        sbs_kind=kind,
        mac=mac,
        size=size,
        security=r.enum("security", SecurityLevel, SecurityLevel.UNKNOWN),
    )
    return source, _Origin(r.file, r.path)


def _parse_df_entry(r: _Reader) -> tuple[DataFlashEntry, _Origin]:
    r.check_keys(
        {
            "class",
            "subclass",
            "name",
            "type",
            "address",
            "length",
            "unit",
            "scale",
            "min",
            "max",
            "default",
            "description",
        }
    )
    dftype = r.enum("type", DFType)
    length = r.opt_int("length", 1, 255)
    if dftype in (DFType.S, DFType.H):
        if length is None:
            raise r.fail("length", f"missing (required for type {dftype})")
        if dftype is DFType.S and length < 2:
            raise r.fail("length", "a string needs a length byte and at least one character")
    elif length is not None:
        raise r.fail("length", f"only S and H entries have a length ({dftype} is {dftype.fixed_size} bytes)")
    scale = r.opt_float("scale", 1e-9, 1e9)
    minimum = r.opt_float("min", -1e12, 1e12)
    maximum = r.opt_float("max", -1e12, 1e12)
    if minimum is not None and maximum is not None and minimum > maximum:
        raise r.fail("max", f"{maximum:g} is below min {minimum:g}")
    entry = DataFlashEntry(
        class_name=r.req_str("class"),
        subclass=r.req_str("subclass"),
        name=r.req_str("name"),
        type=dftype,
        address=r.opt_int("address", 0, 0xFFFF),
        length=length,
        unit=r.opt_str("unit") or "",
        scale=1.0 if scale is None else scale,
        minimum=minimum,
        maximum=maximum,
        description=r.opt_str("description") or "",
    )
    if r.has("default"):
        entry = replace(entry, default=_df_default(r, entry))
    return entry, _Origin(r.file, r.path)


def _df_default(r: _Reader, entry: DataFlashEntry) -> int | float | str:
    raw = r.data["default"]
    try:
        if entry.type is DFType.S:
            if not isinstance(raw, str):
                raise r.fail("default", f"expected a string, got {_show(raw)}")
            value: int | float | str = raw
        elif isinstance(raw, bool) or not isinstance(raw, int | float):
            raise r.fail("default", f"expected a number, got {_show(raw)}")
        else:
            value = raw
        entry.check(value)
    except SmartBattError as exc:
        if isinstance(exc, ProfileError):
            raise
        # min <= default <= max and the raw type range, as one message.
        raise r.fail("default", exc.message.split(": ", 1)[-1]) from None
    return value


# --- merging and final validation -------------------------------------------------------------------


def _merge(base: _Parts, over: _Parts) -> _Parts:
    """``over`` on top of ``base``: keyed entries replace, sections replace, sources accumulate."""
    out = _Parts(file=over.file)
    out.title = over.title if over.title is not None else base.title
    out.sources = base.sources + [s for s in over.sources if s not in base.sources]
    out.identity = over.identity or base.identity
    out.bus = over.bus or base.bus
    out.timing = over.timing or base.timing
    out.security = over.security or base.security
    out.df_access = over.df_access or base.df_access
    for name in ("commands", "mac", "bitfields", "layouts", "status_sources", "data_flash"):
        merged = dict(getattr(base, name))
        merged.update(getattr(over, name))
        setattr(out, name, merged)
    return out


def _build(source: _Source, variant: str | None) -> Profile:
    spec = _parse_file(source)
    chain_ids, chain_labels = [source.ident], [source.label]
    parents: list[_FileSpec] = []
    parent_name = spec.extends
    current = source
    while parent_name is not None:
        try:
            parent_source = _locate(parent_name, referrer=current)
        except ProfileError as exc:
            raise ProfileError(current.label, "extends", exc.reason) from None
        chain_labels.append(parent_source.label)
        if parent_source.ident in chain_ids:
            raise ProfileError(source.label, "extends", f"cycle: {' -> '.join(chain_labels)}")
        chain_ids.append(parent_source.ident)
        parent_spec = _parse_file(parent_source)
        parents.append(parent_spec)
        parent_name = parent_spec.extends
        current = parent_source
    base = _Parts(file=source.label)
    for p in reversed(parents):
        base = _merge(base, p.parts)
    base = _merge(base, spec.parts)
    if variant is not None and variant not in spec.variants:
        raise ProfileError(source.label, "variants", f"no variant {variant!r}; defined: {sorted(spec.variants)}")
    # Every variant is validated on every load of the file, so a broken variant cannot hide
    # until someone selects it.
    result = _assemble(spec.name, source, base, spec, None, None)
    for vname, (info, overlay) in spec.variants.items():
        assembled = _assemble(spec.name, source, _merge(base, overlay), spec, vname, info)
        if vname == variant:
            result = assembled
    return result


def _assemble(
    name: str, source: _Source, parts: _Parts, spec: _FileSpec, variant: str | None, info: Variant | None
) -> Profile:
    bus = parts.bus or Bus()
    identity = parts.identity or Identity()
    if info is not None and info.device_name_patterns:
        identity = replace(identity, device_name_patterns=info.device_name_patterns)
    _check_commands(parts, bus)
    bitfields = {k: v for k, (v, _) in parts.bitfields.items()}
    layouts = {k: _compile_layout(v, o) for k, (v, o) in parts.layouts.items()}
    mac = _check_mac(parts, bitfields, layouts)
    _check_status_sources(parts, bitfields, mac)
    security = _check_security(parts, bitfields, mac)
    df_access = parts.df_access or DataFlashAccess()
    _check_data_flash(parts, df_access)
    title = parts.title or name
    if info is not None and info.title:
        title = info.title
    return Profile(
        name=name,
        title=title,
        extends=spec.extends,
        sources=tuple(parts.sources),
        variant=variant,
        variants=tuple(v for _, (v, _) in sorted(spec.variants.items())),
        identity=identity,
        bus=bus,
        timing=parts.timing or Timing(),
        security=security,
        data_flash_access=df_access,
        commands=tuple(c for _, (c, _, _) in sorted(parts.commands.items())),
        command_security=MappingProxyType({k: s for k, (_, s, _) in parts.commands.items() if s is not None}),
        mac=tuple(m for _, m in sorted(mac.items())),
        bitfields=MappingProxyType(bitfields),
        layouts=MappingProxyType(layouts),
        status_sources=MappingProxyType({k: s for k, (s, _) in parts.status_sources.items()}),
        data_flash=tuple(e for e, _ in parts.data_flash.values()),
        file=source.label,
    )


def _check_commands(parts: _Parts, bus: Bus) -> None:
    seen: dict[str, int] = {}
    for code, (cmd, _, origin) in sorted(parts.commands.items()):
        if bus.standard_commands is StandardCommands.SBS and code in SBS_STANDARD_RANGE:
            raise ProfileError(origin.file, f"{origin.path}.code", f"0x{code:02X} is an SBS 1.1 standard command")
        if cmd.name in seen:
            reason = f"{cmd.name!r} is also command 0x{seen[cmd.name]:02X}"
            raise ProfileError(origin.file, f"{origin.path}.name", reason)
        seen[cmd.name] = code


def _check_mac(
    parts: _Parts, bitfields: Mapping[str, BitField], layouts: Mapping[str, BlockLayout]
) -> dict[int, MacCommand]:
    out: dict[int, MacCommand] = {}
    seen: dict[str, int] = {}
    for code, (entry, origin) in sorted(parts.mac.items()):
        if entry.name in seen:
            reason = f"{entry.name!r} is also MAC 0x{seen[entry.name]:04X}"
            raise ProfileError(origin.file, f"{origin.path}.name", reason)
        seen[entry.name] = code
        if entry.layout is not None:
            if entry.layout not in layouts:
                raise ProfileError(origin.file, f"{origin.path}.layout", f"no layout named {entry.layout!r}")
            entry = replace(entry, response=layouts[entry.layout].struct)  # noqa: PLW2901 - compiled copy
        if entry.bitfield is not None and entry.bitfield not in bitfields:
            raise ProfileError(origin.file, f"{origin.path}.bitfield", f"no bit map named {entry.bitfield!r}")
        out[code] = entry
    return out


def _check_status_sources(parts: _Parts, bitfields: Mapping[str, BitField], mac: Mapping[int, MacCommand]) -> None:
    for reg, (src, origin) in parts.status_sources.items():
        if reg not in bitfields:
            raise ProfileError(origin.file, f"{origin.path}.register", f"no bit map named {reg!r}")
        if src.size * 8 < bitfields[reg].width:
            raise ProfileError(
                origin.file, f"{origin.path}.size", f"{src.size} bytes cannot hold the {bitfields[reg].width}-bit {reg}"
            )
        if src.mac is not None:
            if src.mac not in mac:
                raise ProfileError(origin.file, f"{origin.path}.mac", f"MAC 0x{src.mac:04X} is not in the mac table")
            if mac[src.mac].bitfield != reg:
                reason = f"MAC 0x{src.mac:04X} returns {mac[src.mac].bitfield!r}, not {reg!r}"
                raise ProfileError(origin.file, f"{origin.path}.mac", reason)
        if src.sbs is not None and src.sbs in parts.commands:
            cmd = parts.commands[src.sbs][0]
            wanted = Kind.WORD if src.sbs_kind == "word" else Kind.BLOCK
            if cmd.kind is not wanted:
                raise ProfileError(
                    origin.file, f"{origin.path}.sbs_kind", f"command 0x{src.sbs:02X} is a {cmd.kind}, not a {wanted}"
                )


def _check_security(parts: _Parts, bitfields: Mapping[str, BitField], mac: Mapping[int, MacCommand]) -> Security:
    if parts.security is None:
        return Security()
    sec, origin = parts.security
    for key in ("seal_mac", "keys_mac"):
        code = getattr(sec, key)
        if code is not None and code not in mac:
            raise ProfileError(origin.file, f"{origin.path}.{key}", f"MAC 0x{code:04X} is not in the mac table")
    if sec.method is SecurityMethod.NONE and (sec.default_unseal_key or sec.seal_mac is not None):
        raise ProfileError(origin.file, f"{origin.path}.method", "keys or a seal command given but method is 'none'")
    if (sec.state_register is None) != (sec.state_group is None):
        raise ProfileError(origin.file, f"{origin.path}.state_group", "state_register and state_group go together")
    if sec.state_register is not None:
        bf = bitfields.get(sec.state_register)
        if bf is None:
            raise ProfileError(origin.file, f"{origin.path}.state_register", f"no bit map named {sec.state_register!r}")
        if not any(g.name == sec.state_group for g in bf.groups):
            raise ProfileError(
                origin.file, f"{origin.path}.state_group", f"{sec.state_register} has no bit group {sec.state_group!r}"
            )
    return sec


def _check_data_flash(parts: _Parts, access: DataFlashAccess) -> None:
    spans: list[tuple[int, int, str]] = []
    for entry, origin in parts.data_flash.values():
        if entry.address is None:
            continue
        end = entry.address + entry.size - 1
        if (
            access.first is not None
            and access.last is not None
            and not (access.first <= entry.address and end <= access.last)
        ):
            raise ProfileError(
                origin.file,
                f"{origin.path}.address",
                f"0x{entry.address:04X}..0x{end:04X} is outside the data flash "
                f"0x{access.first:04X}..0x{access.last:04X}",
            )
        for start, stop, other in spans:
            if entry.address <= stop and start <= end:
                raise ProfileError(
                    origin.file, f"{origin.path}.address", f"0x{entry.address:04X} overlaps {other} (0x{start:04X})"
                )
        spans.append((entry.address, end, entry.key))


# --- construct compilation --------------------------------------------------------------------------

_CONSTRUCTS: dict[FieldType, Any] = {
    FieldType.U8: construct.Int8ul,
    FieldType.I8: construct.Int8sl,
    FieldType.U16: construct.Int16ul,
    FieldType.I16: construct.Int16sl,
    FieldType.U32: construct.Int32ul,
    FieldType.I32: construct.Int32sl,
    FieldType.U16BE: construct.Int16ub,
    FieldType.U32BE: construct.Int32ub,
}


def _compile_layout(layout: BlockLayout, origin: _Origin) -> BlockLayout:
    """Compile a layout to a construct ``Struct`` (gaps and tail become ``Padding``)."""
    members: list[Any] = []
    pos = 0
    for f in layout.fields:
        if f.offset > pos:
            members.append(construct.Padding(f.offset - pos))
        sub = construct.Bytes(f.size) if f.type is FieldType.BYTES else _CONSTRUCTS[f.type]
        members.append(f.name / sub)
        pos = f.offset + f.size
    if pos < layout.size:
        members.append(construct.Padding(layout.size - pos))
    compiled = construct.Struct(*members)
    if compiled.sizeof() != layout.size:  # pragma: no cover - guarded by the checks above
        raise ProfileError(origin.file, f"{origin.path}.size", f"compiled size {compiled.sizeof()} != {layout.size}")
    return replace(layout, struct=compiled)
