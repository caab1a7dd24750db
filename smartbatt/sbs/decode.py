"""Decode a raw SBS value with no device: ``decode(command, raw, capacity_mode=…, spec_info=…)``.

The same function turns a live read, a logic-analyser capture, a forum post or a log line into
the same :class:`Reading`. ``raw`` may be

* an ``int`` — the word as a number (``0x3E80``, ``16000``);
* ``bytes`` — bytes as on the wire: a word low byte first (``b"\\x80\\x3e"``); a block's data
  bytes without the count byte;
* ``str`` — one number (``"0x3E80"``, ``"16000"``, ``"-1500"`` for signed commands), or bytes in
  wire order separated by spaces, colons or commas (``"80 3E"``, ``"80:3e"``). For a block or
  string command a leading byte equal to the number of bytes after it is taken as the SMBus byte
  count and dropped (``"04 4C 49 4F 4E"`` = ``"4C 49 4F 4E"`` = ``LION``).

Anything else raises :class:`~smartbatt.errors.DecodeError`.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from typing import Any

from smartbatt.errors import DecodeError
from smartbatt.sbs import codecs
from smartbatt.sbs.codecs import BitFields, Flag, SpecInfo
from smartbatt.sbs.command import Command, Kind
from smartbatt.sbs.commands import lookup

_SEPARATORS = re.compile(r"[\s,:]+")

#: what a Reading's ``value`` can be.
Value = int | float | bool | str | bytes | BitFields | SpecInfo | datetime.date | None


@dataclass(frozen=True)
class Reading:
    """One decoded command value, with the raw value it came from."""

    command: Command
    #: the raw word (int) or the block's data bytes.
    raw: int | bytes
    #: decoded value; None for a sentinel or a filler (see ``meaning``).
    value: Value
    #: unit of ``value`` (mWh instead of mAh in capacity mode), empty if none.
    unit: str
    #: human text with the unit (``16120 mV``, ``not discharging``).
    text: str
    #: set flags of a bit-field word, with their descriptions.
    flags: tuple[Flag, ...] = ()
    #: what a sentinel or filler raw value means; empty for ordinary values.
    meaning: str = ""
    #: True when the raw value is a filler: the device had no answer, this is not data.
    filler: bool = False

    @property
    def name(self) -> str:
        return self.command.name

    @property
    def raw_text(self) -> str:
        """``0x3EF8`` for a word, ``4C 49 4F 4E`` for a block."""
        if isinstance(self.raw, int):
            return f"0x{self.raw:04X}"
        return self.raw.hex(" ").upper()

    def to_json(self) -> dict[str, Any]:
        """``{"raw": …, "value": …, "unit": …}`` (+ ``"meaning"`` for sentinels and fillers)."""
        out: dict[str, Any] = {
            "raw": self.raw if isinstance(self.raw, int) else self.raw_text,
            "value": json_value(self.value),
            "unit": self.unit,
        }
        if self.meaning:
            out["meaning"] = self.meaning
        return out


def json_value(value: Value) -> Any:
    """A JSON-serialisable form of a decoded value."""
    if isinstance(value, (BitFields, SpecInfo)):
        return value.to_json()
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex(" ").upper()
    return value


def value_text(value: Value, unit: str) -> str:
    """Human text of a decoded value with its unit."""
    if isinstance(value, (BitFields, SpecInfo)):
        return value.text()
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, bytes):
        return value.hex(" ").upper() or "(empty)"
    if isinstance(value, datetime.date):
        return value.isoformat()
    text = f"{value:.2f}" if isinstance(value, float) else str(value)
    return f"{text} {unit}" if unit else text


# ------------------------------------------------------------------------------------------------
# raw input
# ------------------------------------------------------------------------------------------------


def parse_raw(command: Command, raw: int | bytes | bytearray | str) -> int | bytes:
    """Normalise a raw value given as int, wire bytes or text (see the module doc). Raises DecodeError."""
    block = command.kind in (Kind.BLOCK, Kind.STRING)
    if isinstance(raw, bool):
        raise DecodeError(f"{raw!r} is not a raw value")
    if isinstance(raw, int):
        if block:
            raise DecodeError(f"{command.name} is a block: give its bytes, not a number")
        return _check_word(command, raw)
    if isinstance(raw, (bytes, bytearray)):
        return bytes(raw) if block else _word_from_bytes(command, bytes(raw))
    if not isinstance(raw, str):
        raise DecodeError(f"{raw!r} is not a raw value")
    return _parse_text(command, raw)


def _parse_text(command: Command, text: str) -> int | bytes:
    block = command.kind in (Kind.BLOCK, Kind.STRING)
    tokens = [t for t in _SEPARATORS.split(text.strip()) if t]
    if not tokens:
        raise DecodeError("empty raw value")
    if len(tokens) == 1 and not block:
        return _check_word(command, _number(command, tokens[0]))
    data = bytes(_byte(t) for t in tokens)
    if block:
        if len(data) > 1 and data[0] == len(data) - 1:
            return data[1:]  # the SMBus byte count as captured on the wire
        return data
    return _word_from_bytes(command, data)


def _number(command: Command, token: str) -> int:
    try:
        if token.lower().startswith(("0x", "-0x")):
            value = int(token, 16)
        elif re.fullmatch(r"-?\d+", token):
            value = int(token, 10)
        else:
            raise ValueError(token)
    except ValueError:
        raise DecodeError(
            f"{token!r} is not a raw value: write a number (0x3E80, 16000) or wire bytes low byte first (80 3E)"
        ) from None
    if value < 0:
        if not command.signed or value < -0x8000:
            raise DecodeError(f"{value} is negative but {command.name} is an unsigned word")
        value &= 0xFFFF
    return value


def _byte(token: str) -> int:
    digits = token[2:] if token.lower().startswith("0x") else token
    if not re.fullmatch(r"[0-9A-Fa-f]{1,2}", digits):
        raise DecodeError(f"{token!r} is not a hex byte (write bytes as 80 3E)")
    return int(digits, 16)


def _check_word(command: Command, value: int) -> int:
    top = 0xFF if command.kind is Kind.BYTE else 0xFFFF
    if not 0 <= value <= top:
        raise DecodeError(f"{value} does not fit a {command.kind.value} (0..0x{top:X})")
    return value


def _word_from_bytes(command: Command, data: bytes) -> int:
    size = 1 if command.kind is Kind.BYTE else 2
    if len(data) != size:
        raise DecodeError(f"{command.name} is a {command.kind.value}: expected {size} bytes, got {len(data)}")
    return int.from_bytes(data, "little")


# ------------------------------------------------------------------------------------------------
# decode
# ------------------------------------------------------------------------------------------------


def decode(
    command: Command | str | int,
    raw: int | bytes | bytearray | str,
    capacity_mode: bool = False,
    spec_info: SpecInfo | int | None = None,
) -> Reading:
    """Decode ``raw`` as ``command`` (a Command, a name or a code) into a :class:`Reading`.

    :param capacity_mode: BatteryMode.CAPACITY_MODE of the pack (True = 10 mW / 10 mWh units).
    :param spec_info: the pack's SpecificationInfo (decoded or raw) for VScale/IPScale; None = no scaling.
    :raises UnknownCommand: ``command`` is not in the SBS table.
    :raises DecodeError: ``raw`` is malformed or not decodable as this command.
    """
    cmd = command if isinstance(command, Command) else lookup(command)
    value_raw = parse_raw(cmd, raw)
    unit = codecs.unit_of(cmd, capacity_mode)
    if codecs.is_filler(cmd, value_raw):
        shown = f"0x{value_raw:04X}" if isinstance(value_raw, int) else value_raw.hex(" ").upper()
        meaning = f"no answer yet: {shown} is a filler value, not data"
        return Reading(cmd, value_raw, None, unit, meaning, meaning=meaning, filler=True)
    if isinstance(value_raw, bytes):
        value: Value = codecs.decode_string(value_raw) if cmd.kind is Kind.STRING else value_raw
        return Reading(cmd, value_raw, value, unit, value_text(value, unit))
    sentinel = cmd.sentinels.get(value_raw)
    if sentinel is not None:
        return Reading(cmd, value_raw, None, unit, sentinel, meaning=sentinel)
    spec = codecs.spec_info_of(spec_info)
    value = codecs.value_function(cmd, capacity_mode, spec)(value_raw)
    flags = value.flags if isinstance(value, BitFields) else ()
    return Reading(cmd, value_raw, value, unit, value_text(value, unit), flags=flags)
