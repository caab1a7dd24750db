"""TI FlashStream files (``.bq.fs``, ``.df.fs``): parse into typed operations, and write them.

Format, as TI documents it:

* SMBus gauges — TI E2E FAQ 1107256 "How do I interpret the lines in a bq.fs file for use with my
  SMBus gauge?" (Flash Stream File Format for SMB): an ASCII file, one command per line, fields
  separated by white space, comment lines start with ``;``, no line carries more than 96 data
  bytes. ``SWC: smbAddr smbCommand`` writes a command byte (TI's example ``SWC: 16 08``);
  ``SWW:`` writes a word, ``SWB:`` a block, ``SCW:`` reads and compares a word, ``SCL:`` reads and
  compares a block and validates its length, ``X: ms`` waits at least ``ms`` milliseconds
  (decimal). Addresses are the 8-bit write address (0x16 for the battery at 0x0B).
  Field layouts beyond ``SWC`` as implemented by a public flasher (rrc FlashStreamFlasher, which
  runs bqStudio files): ``SWW/SCW: addr cmd lsb msb``; ``SWB: addr cmd data...`` (the SMBus count
  byte is added on the wire, it is not in the line); ``SCL: addr cmd length data...`` with
  ``length`` = number of data bytes. These three layouts are not spelled out in the TI text we
  could read — treat them as UNCONFIRMED until checked against a bqStudio export.
* I2C gauges — TI SLUUCD5 (BQ27427 TRM) / SLUUBD4A (BQ27220 TRM) "FlashStream" sections:
  ``W: I2CAddr RegAddr Byte0 Byte1...`` writes, ``C: I2CAddr RegAddr Byte0...`` reads that many
  bytes and compares, ``X: ms`` waits.

Nothing here touches a device: a later step runs the operations through a transport.
Every malformed line raises :class:`FileFormatError` naming the file and the line number.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from smartbatt.errors import DecodeError, FileFormatError
from smartbatt.profiles.schema import DataFlashAccessMethod, DFValue, Profile

__all__ = [
    "MAX_LINE_BYTES",
    "FileFormatError",
    "FsOp",
    "OpKind",
    "dataflash_ops",
    "export_dataflash",
    "format_flashstream",
    "parse_flashstream",
    "read_flashstream",
    "write_flashstream",
]

#: TI FAQ: "No line will contain more than 96 data bytes."
MAX_LINE_BYTES = 96


class OpKind(StrEnum):
    """Line tags of a FlashStream file."""

    WRITE_COMMAND = "SWC"
    WRITE_WORD = "SWW"
    WRITE_BLOCK = "SWB"
    COMPARE_WORD = "SCW"
    COMPARE_BLOCK = "SCL"
    I2C_WRITE = "W"
    I2C_COMPARE = "C"
    WAIT = "X"

    @property
    def dialect(self) -> str | None:
        """``smbus``, ``i2c``, or None for ``X:`` (both dialects wait)."""
        if self is OpKind.WAIT:
            return None
        return "i2c" if self in (OpKind.I2C_WRITE, OpKind.I2C_COMPARE) else "smbus"


@dataclass(frozen=True)
class FsOp:
    """One FlashStream operation.

    ``data`` holds the bytes in wire order: the two bytes of a word (low first), a block's data
    (without the SMBus count byte), or an I2C write/compare payload.
    """

    kind: OpKind
    #: 7-bit device address (the file stores the 8-bit write address).
    address: int = 0
    #: SMBus command code or I2C register address.
    command: int = 0
    data: bytes = b""
    #: wait time for ``X:`` (ms).
    wait_ms: int = 0
    #: 1-based line in the source file (0 when built in code); not part of equality.
    line: int = field(default=0, compare=False)

    @property
    def word(self) -> int:
        """The word of an SWW/SCW operation.

        :raises DecodeError: not a word operation.
        """
        if self.kind not in (OpKind.WRITE_WORD, OpKind.COMPARE_WORD):
            raise DecodeError(f"{self.kind.value}: is not a word operation")
        return int.from_bytes(self.data, "little")

    # --- constructors ----------------------------------------------------------------------------

    @classmethod
    def wait(cls, ms: int) -> FsOp:
        return cls(OpKind.WAIT, wait_ms=ms)

    @classmethod
    def write_word(cls, address: int, command: int, value: int) -> FsOp:
        return cls(OpKind.WRITE_WORD, address, command, _word_bytes(value))

    @classmethod
    def compare_word(cls, address: int, command: int, value: int) -> FsOp:
        return cls(OpKind.COMPARE_WORD, address, command, _word_bytes(value))

    @classmethod
    def write_block(cls, address: int, command: int, data: bytes) -> FsOp:
        return cls(OpKind.WRITE_BLOCK, address, command, bytes(data))

    @classmethod
    def compare_block(cls, address: int, command: int, data: bytes) -> FsOp:
        return cls(OpKind.COMPARE_BLOCK, address, command, bytes(data))


def _word_bytes(value: int) -> bytes:
    if not 0 <= value <= 0xFFFF:
        raise DecodeError(f"word value {value} is outside 0..0xFFFF")
    return value.to_bytes(2, "little")


# --- parsing ----------------------------------------------------------------------------------------

_HEX_RE = re.compile(r"^[0-9A-Fa-f]{1,2}$")
_TAG_RE = re.compile(r"^([A-Za-z]+):(.*)$")


def read_flashstream(path: str | os.PathLike[str]) -> tuple[FsOp, ...]:
    """Parse a FlashStream file.

    :raises FileFormatError: unreadable file or a malformed line.
    """
    label = os.fspath(path)
    try:
        text = Path(path).read_bytes().decode("ascii")
    except OSError as exc:
        raise FileFormatError(label, None, f"cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        line = Path(path).read_bytes()[: exc.start].count(b"\n") + 1
        raise FileFormatError(label, line, "not an ASCII text line") from None
    return parse_flashstream(text, label)


def parse_flashstream(text: str, file: str = "<string>") -> tuple[FsOp, ...]:
    """Parse FlashStream text into operations (comments and blank lines are dropped).

    :raises FileFormatError: a malformed line, or SMBus and I2C lines mixed in one file.
    """
    ops: list[FsOp] = []
    dialect: tuple[str, int] | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith(";"):
            continue
        op = _parse_line(line, file, number)
        if op.kind.dialect is not None:
            if dialect is None:
                dialect = (op.kind.dialect, number)
            elif dialect[0] != op.kind.dialect:
                raise FileFormatError(
                    file, number, f"{op.kind.value}: is an {op.kind.dialect} line but line {dialect[1]} is {dialect[0]}"
                )
        ops.append(op)
    return tuple(ops)


def _parse_line(line: str, file: str, number: int) -> FsOp:
    m = _TAG_RE.match(line)
    if m is None:
        raise FileFormatError(file, number, f"expected 'TAG: fields' or a ';' comment, got {line[:40]!r}")
    tag, rest = m.group(1).upper(), m.group(2).split()
    try:
        kind = OpKind(tag)
    except ValueError:
        raise FileFormatError(file, number, f"unknown command {tag + ':'!r}") from None
    if kind is OpKind.WAIT:
        if len(rest) != 1 or not rest[0].isdigit():
            raise FileFormatError(file, number, "X: takes one decimal number of milliseconds")
        return FsOp(kind, wait_ms=int(rest[0]), line=number)
    values = [_hex_byte(tok, file, number) for tok in rest]
    return _build_op(kind, values, file, number)


def _hex_byte(token: str, file: str, number: int) -> int:
    if not _HEX_RE.match(token):
        raise FileFormatError(file, number, f"{token!r} is not a hexadecimal byte")
    return int(token, 16)


_EXACT_FIELDS = {OpKind.WRITE_COMMAND: 2, OpKind.WRITE_WORD: 4, OpKind.COMPARE_WORD: 4}
_MIN_FIELDS = {OpKind.WRITE_BLOCK: 3, OpKind.COMPARE_BLOCK: 4, OpKind.I2C_WRITE: 3, OpKind.I2C_COMPARE: 3}


def _build_op(kind: OpKind, values: list[int], file: str, number: int) -> FsOp:
    tag = f"{kind.value}:"
    exact = _EXACT_FIELDS.get(kind)
    if exact is not None and len(values) != exact:
        raise FileFormatError(file, number, f"{tag} takes {exact} fields, got {len(values)}")
    minimum = _MIN_FIELDS.get(kind)
    if minimum is not None and len(values) < minimum:
        raise FileFormatError(file, number, f"{tag} takes at least {minimum} fields, got {len(values)}")
    address8, command, payload = values[0], values[1], values[2:]
    if address8 & 1:
        raise FileFormatError(
            file, number, f"address 0x{address8:02X} is a read address; the file uses write addresses"
        )
    if kind is OpKind.COMPARE_BLOCK:
        length, payload = payload[0], payload[1:]
        if length != len(payload):
            raise FileFormatError(file, number, f"{tag} length byte says {length} but {len(payload)} data bytes follow")
    if len(payload) > MAX_LINE_BYTES:
        raise FileFormatError(file, number, f"{len(payload)} data bytes; a line carries at most {MAX_LINE_BYTES}")
    return FsOp(kind, address8 >> 1, command, bytes(payload), line=number)


# --- writing ----------------------------------------------------------------------------------------


def format_flashstream(ops: Iterable[FsOp], comments: Iterable[str] = (), newline: str = "\n") -> str:
    """Render operations as FlashStream text (upper-case two-digit hex, like bqStudio).

    :param comments: lines written first, each prefixed with ``;``.
    :raises DecodeError: an operation that cannot be written (bad address, empty or oversized data).
    """
    lines = []
    for c in comments:
        if not c.isascii() or "\n" in c or "\r" in c:
            raise DecodeError(f"comment {c[:40]!r} is not a single ASCII line")
        lines.append(f";{c}" if c.startswith(" ") else f"; {c}")
    lines.extend(_format_op(op) for op in ops)
    return newline.join(lines) + newline


def write_flashstream(path: str | os.PathLike[str], ops: Iterable[FsOp], comments: Iterable[str] = ()) -> None:
    """Write operations to a FlashStream file (CRLF line ends, as TI's tools write them)."""
    Path(path).write_text(format_flashstream(ops, comments, "\r\n"), encoding="ascii", newline="")


def _format_op(op: FsOp) -> str:
    if op.kind is OpKind.WAIT:
        if op.wait_ms < 0:
            raise DecodeError(f"X: wait {op.wait_ms} ms is negative")
        return f"X: {op.wait_ms}"
    if not 0 <= op.address <= 0x7F or not 0 <= op.command <= 0xFF:
        raise DecodeError(f"{op.kind.value}: address 0x{op.address:X} / command 0x{op.command:X} out of range")
    head = [op.address << 1, op.command]
    body = list(op.data)
    if op.kind is OpKind.WRITE_COMMAND and body:
        raise DecodeError("SWC: carries no data")
    if op.kind in (OpKind.WRITE_WORD, OpKind.COMPARE_WORD) and len(body) != 2:
        raise DecodeError(f"{op.kind.value}: needs exactly 2 data bytes, got {len(body)}")
    if op.kind in (OpKind.WRITE_BLOCK, OpKind.COMPARE_BLOCK, OpKind.I2C_WRITE, OpKind.I2C_COMPARE) and not body:
        raise DecodeError(f"{op.kind.value}: needs at least one data byte")
    if len(body) > MAX_LINE_BYTES:
        raise DecodeError(f"{op.kind.value}: {len(body)} data bytes; a line carries at most {MAX_LINE_BYTES}")
    if op.kind is OpKind.COMPARE_BLOCK:
        body = [len(body), *body]
    return f"{op.kind.value}: " + " ".join(f"{b:02X}" for b in head + body)


# --- data flash export ------------------------------------------------------------------------------


def dataflash_ops(
    image: Mapping[int, bytes],
    *,
    address: int = 0x0B,
    command: int = 0x44,
    block_size: int = 32,
    write_delay_ms: int = 0,
    verify: bool = True,
) -> list[FsOp]:
    """Operations that write a data-flash image through ManufacturerBlockAccess (bq40z flow B).

    Each write is ``SWB: addr 44 lo hi data...`` (ti_gauges.md §7); contiguous entries are merged
    and split into blocks of at most ``block_size`` data bytes. With ``verify`` each block is read
    back: ``SWB: addr 44 lo hi`` selects the address, ``SCL:`` compares the echo and the data.

    :param image: data-flash address → bytes.
    :raises DecodeError: overlapping entries, empty data, or addresses beyond 0xFFFF.
    """
    ops: list[FsOp] = []
    for start, data in _runs(image):
        for offset in range(0, len(data), block_size):
            chunk = data[offset : offset + block_size]
            where = (start + offset).to_bytes(2, "little")
            ops.append(FsOp.write_block(address, command, where + chunk))
            if write_delay_ms:
                ops.append(FsOp.wait(write_delay_ms))
            if verify:
                ops.append(FsOp.write_block(address, command, where))
                ops.append(FsOp.compare_block(address, command, where + chunk))
    return ops


def _runs(image: Mapping[int, bytes]) -> list[tuple[int, bytes]]:
    runs: list[tuple[int, bytearray]] = []
    last_end = -1
    for start in sorted(image):
        data = image[start]
        if not data:
            raise DecodeError(f"data flash 0x{start:04X}: no bytes")
        if start < last_end:
            raise DecodeError(f"data flash 0x{start:04X} overlaps the previous entry (ends 0x{last_end - 1:04X})")
        if start + len(data) > 0x10000:
            raise DecodeError(f"data flash 0x{start:04X}+{len(data)} is beyond 0xFFFF")
        if runs and start == last_end:
            runs[-1][1].extend(data)
        else:
            runs.append((start, bytearray(data)))
        last_end = start + len(data)
    return [(s, bytes(d)) for s, d in runs]


def export_dataflash(
    profile: Profile, values: Mapping[str, DFValue], *, address: int | None = None, verify: bool = True
) -> list[FsOp]:
    """FlashStream operations that program ``values`` into a gauge described by ``profile``.

    :param values: ``Class:Subclass:Name`` → display value (as :mod:`smartbatt.gauge.ggcsv` returns).
    :param address: 7-bit bus address; defaults to the profile's.
    :raises DecodeError: an unknown name, an entry without a published address, a value out of
        range, or a gauge whose data flash is not reached through ManufacturerBlockAccess.
    """
    access = profile.data_flash_access
    if access.method is not DataFlashAccessMethod.MAC_BLOCK:
        raise DecodeError(
            f"{profile.name}: data-flash export supports ManufacturerBlockAccess gauges, not {access.method}"
        )
    image: dict[int, bytes] = {}
    for key, value in values.items():
        try:
            entry = profile.df_entry(key)
        except KeyError:
            raise DecodeError(f"{profile.name}: no data-flash entry {key!r}") from None
        if entry.address is None:
            raise DecodeError(f"{profile.name}: {key} has no published address; it cannot be written")
        image[entry.address] = entry.encode(value)
    delay = profile.timing.df_write_delay_ms
    bus_address = address if address is not None else (profile.bus.address if profile.bus.address is not None else 0x0B)
    return dataflash_ops(
        image,
        address=bus_address,
        block_size=access.block_size,
        write_delay_ms=round(delay) if delay else 0,
        verify=verify,
    )
