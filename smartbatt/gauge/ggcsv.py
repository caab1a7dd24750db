"""TI bqStudio data-memory exports (``.gg.csv``): read, match to a profile, write.

Format, as two public exports show it (a 2015 bq40z60 export attached to TI E2E as
``discharge_charge_fail_6600.gg.txt`` and a 2025 bq40z50-R1 export,
Hao-Chunlin/Gas-Gauge-Based-on-BQ40Z50 ``3.Reference/bq4050_user_config.gg.csv``)::

    * Texas Instruments Data Flash File
    * File created Wed Jun 11 14:53:00 2025
    *
    * Device Number 4500
    * Firmware Version 2.11
    * Build Number 52
    * Order Number 0
    *
    * bqz Device Number 4500
    * bqz Firmware Version 2.11
    * bqz Build Number 52
    *
    * Field Order: Class name, Subclass name, Parameter name, Parameter Value, Display Units
    "Calibration","Voltage","Cell Gain","12173","-"
    "Settings","Protection","Enabled Protections A","ff","hex"
    "Protections","OTC","Threshold","55.0","°C"

Header lines start with ``*``; each data row has five CSV fields (quoted in newer exports,
unquoted in older ones; the older header says "Units" instead of "Display Units"). Values are
display values: scaled decimals, hex digits for ``hex`` units, text for strings; ``-`` means no
unit. The device number is hexadecimal (``4500`` is DeviceType 0x4500).
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import MappingProxyType

from smartbatt.errors import DecodeError, FileFormatError, RangeError
from smartbatt.profiles.schema import DataFlashEntry, DFValue, Profile

__all__ = ["GgFile", "GgImport", "GgRow", "format_gg", "import_gg", "parse_gg", "read_gg", "write_gg"]

_FIELD_ORDER = "Field Order: Class name, Subclass name, Parameter name, Parameter Value, Display Units"
_FIELD_ORDER_RE = re.compile(
    r"^Field Order:\s*Class name,\s*Subclass name,\s*Parameter name,\s*Parameter Value,\s*(Display )?Units$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class GgRow:
    """One data row."""

    line: int
    class_name: str
    subclass: str
    name: str
    value: str
    unit: str

    @property
    def key(self) -> str:
        return f"{self.class_name}:{self.subclass}:{self.name}"


@dataclass(frozen=True)
class GgFile:
    """A parsed export."""

    file: str
    #: header lines without the leading ``*`` (in file order).
    header: tuple[str, ...]
    rows: tuple[GgRow, ...]
    #: ``Device Number`` (hexadecimal in the file), if present.
    device_number: int | None
    firmware_version: str | None
    build_number: str | None


@dataclass(frozen=True)
class GgImport:
    """An export matched against a profile's data-flash map."""

    #: ``Class:Subclass:Name`` → display value, in file order.
    values: Mapping[str, DFValue]
    #: rows whose parameter is not in the profile (only with ``strict=False``).
    unknown: tuple[GgRow, ...]


# --- reading ----------------------------------------------------------------------------------------


def read_gg(path: str | os.PathLike[str]) -> GgFile:
    """Read a ``.gg.csv`` export (UTF-8, or Windows-1252 as older bqStudio versions wrote).

    :raises FileFormatError: unreadable or malformed.
    """
    label = os.fspath(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise FileFormatError(label, None, f"cannot read: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("cp1252", errors="replace")
    return parse_gg(text, label)


def parse_gg(text: str, file: str = "<string>") -> GgFile:
    """Parse export text.

    :raises FileFormatError: a row without five fields, an empty name, a duplicate parameter, a
        field-order line that names other columns, or no data rows at all.
    """
    header: list[str] = []
    rows: list[GgRow] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("*"):
            content = line[1:].strip()
            if content.lower().startswith("field order") and not _FIELD_ORDER_RE.match(content):
                raise FileFormatError(file, number, f"unexpected field order {content!r}")
            header.append(content)
            continue
        row = _parse_row(line, file, number)
        if row.key in seen:
            raise FileFormatError(file, number, f"{row.key} already given on line {seen[row.key]}")
        seen[row.key] = number
        rows.append(row)
    if not rows:
        raise FileFormatError(file, None, "no data rows")
    return GgFile(
        file,
        tuple(header),
        tuple(rows),
        _device_number(header, file),
        _header_value(header, "Firmware Version"),
        _header_value(header, "Build Number"),
    )


def _parse_row(line: str, file: str, number: int) -> GgRow:
    try:
        fields = next(csv.reader([line], skipinitialspace=True, strict=True))
    except csv.Error as exc:
        raise FileFormatError(file, number, f"not a CSV row: {exc}") from None
    if len(fields) != 5:
        raise FileFormatError(
            file, number, f"expected 5 fields (class, subclass, name, value, unit), got {len(fields)}"
        )
    class_name, subclass, name, value, unit = (f.strip() for f in fields)
    for label, content in (("class", class_name), ("subclass", subclass), ("parameter name", name)):
        if not content:
            raise FileFormatError(file, number, f"empty {label}")
    return GgRow(number, class_name, subclass, name, value, unit)


def _header_value(header: list[str], key: str) -> str | None:
    for h in header:
        if h.startswith(key + " "):
            return h[len(key) :].strip()
    return None


def _device_number(header: list[str], file: str) -> int | None:
    text = _header_value(header, "Device Number")
    if text is None:
        return None
    try:
        return int(text, 16)
    except ValueError:
        raise FileFormatError(file, None, f"Device Number {text!r} is not hexadecimal") from None


# --- matching to a profile --------------------------------------------------------------------------

_UNIT_ALIASES = {"-": "", "degc": "°c", "°c": "°c", "hex": "hex"}


def _unit(text: str) -> str:
    t = text.strip().lower()
    return _UNIT_ALIASES.get(t, t)


def import_gg(gg: GgFile, profile: Profile, *, strict: bool = True) -> GgImport:
    """Match an export's rows to ``profile``'s data-flash map and convert the values.

    :param strict: unknown parameters and a device number the profile does not list are errors;
        with False they are skipped (unknown rows are returned in :attr:`GgImport.unknown`).
    :raises FileFormatError: naming the file, the line and the parameter — unknown parameter
        (strict), unit mismatch, a value of the wrong type or out of range.
    """
    types = profile.identity.device_types
    if strict and gg.device_number is not None and types and gg.device_number not in types:
        expected = ", ".join(f"{d:04X}" for d in types)
        reason = f"file is for Device Number {gg.device_number:04X}; {profile.name} is {expected}"
        raise FileFormatError(gg.file, None, reason)
    entries = {e.key: e for e in profile.data_flash}
    values: dict[str, DFValue] = {}
    unknown: list[GgRow] = []
    for row in gg.rows:
        entry = entries.get(row.key)
        if entry is None:
            if strict:
                raise FileFormatError(gg.file, row.line, f"{row.key}: not in the {profile.name} data-flash map")
            unknown.append(row)
            continue
        values[row.key] = _convert(row, entry, gg.file, profile.name)
    return GgImport(MappingProxyType(values), tuple(unknown))


def _convert(row: GgRow, entry: DataFlashEntry, file: str, profile: str) -> DFValue:
    if row.unit and entry.unit and _unit(row.unit) != _unit(entry.unit):
        raise FileFormatError(file, row.line, f"{row.key}: unit {row.unit!r}, but {profile} says {entry.unit!r}")
    try:
        return entry.parse_display(row.value)
    except (DecodeError, RangeError) as exc:
        reason = exc.message.split(": ", 1)[-1]
        raise FileFormatError(file, row.line, f"{row.key}: {reason}") from None


# --- writing ----------------------------------------------------------------------------------------


def format_gg(
    profile: Profile,
    values: Mapping[str, DFValue],
    *,
    created: datetime | None = None,
    device_number: int | None = None,
    firmware_version: str = "",
    build_number: str = "",
    newline: str = "\r\n",
) -> str:
    """Render values as a bqStudio-style export (quoted fields, profile order).

    :param device_number: defaults to the profile's first DeviceType.
    :raises DecodeError: a key not in the profile's map; RangeError/DecodeError for bad values.
    """
    entries = {e.key: e for e in profile.data_flash}
    for key in values:
        if key not in entries:
            raise DecodeError(f"{profile.name}: no data-flash entry {key!r}")
    if device_number is None and profile.identity.device_types:
        device_number = profile.identity.device_types[0]
    stamp = (created or datetime.now()).strftime("%a %b %d %H:%M:%S %Y")
    number = f"{device_number:04X}" if device_number is not None else ""
    header = [
        "Texas Instruments Data Flash File",
        f"File created {stamp}",
        "",
        f"Device Number {number}",
        f"Firmware Version {firmware_version}",
        f"Build Number {build_number}",
        "Order Number 0",
        "",
        f"bqz Device Number {number}",
        f"bqz Firmware Version {firmware_version}",
        f"bqz Build Number {build_number}",
        "",
        _FIELD_ORDER,
    ]
    out = io.StringIO()
    for h in header:
        out.write(f"* {h}".rstrip() + newline)
    writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator=newline)
    for entry in profile.data_flash:
        if entry.key in values:
            value = entry.format_display(values[entry.key])
            writer.writerow([entry.class_name, entry.subclass, entry.name, value, entry.unit or "-"])
    return out.getvalue()


def write_gg(
    path: str | os.PathLike[str],
    profile: Profile,
    values: Mapping[str, DFValue],
    *,
    created: datetime | None = None,
    device_number: int | None = None,
    firmware_version: str = "",
    build_number: str = "",
) -> None:
    """Write :func:`format_gg` output to ``path`` (UTF-8, CRLF line ends)."""
    text = format_gg(
        profile,
        values,
        created=created,
        device_number=device_number,
        firmware_version=firmware_version,
        build_number=build_number,
    )
    Path(path).write_text(text, encoding="utf-8", newline="")
