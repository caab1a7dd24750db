"""Register reads and checked writes for the Registers panel (no Qt; runs on the poller's I/O thread).

The table is every SBS 1.1 command plus the chip profile's extra commands. SBS commands go
through :class:`~smartbatt.sbs.battery.Battery` (filler re-reads, CAPACITY_MODE and scaling,
range-checked writes with read-back). Profile commands are read with the same transport and the
same PEC setting and decoded by the same :func:`~smartbatt.sbs.decode.decode`; a writable
profile word is encoded with the command's range check, written, then read back and compared.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from smartbatt.errors import AccessDenied, RangeError, SmartBattError, VerifyError
from smartbatt.profiles.schema import Profile
from smartbatt.sbs import codecs
from smartbatt.sbs.battery import Battery
from smartbatt.sbs.command import Command, Kind
from smartbatt.sbs.commands import sbs_table
from smartbatt.sbs.decode import Reading, decode


@dataclass(frozen=True)
class RegisterRow:
    """One command's last read (or why it failed)."""

    command: Command
    #: "sbs" or the profile name the command comes from.
    origin: str
    reading: Reading | None = None
    #: one-sentence error ("" if the read worked).
    error: str = ""
    #: unix time of the read.
    time: float = 0.0
    #: decoded fields of a block with a profile layout (name → value text).
    fields: tuple[tuple[str, str], ...] = ()

    @property
    def editable(self) -> bool:
        """A word the host may write (blocks and ManufacturerAccess are not edited here)."""
        c = self.command
        return c.writable and c.kind in (Kind.WORD, Kind.BYTE) and c.verify and not c.decoder


def command_list(profile: Profile | None) -> list[tuple[Command, str]]:
    """Every SBS command, then the profile's extra commands: ``(command, origin)`` in code order."""
    out = [(c, "sbs") for c in sorted(sbs_table(), key=lambda c: c.code)]
    if profile is not None:
        out.extend((c, profile.name) for c in sorted(profile.commands, key=lambda c: c.code))
    return out


def _first_line(exc: SmartBattError) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def read_one(battery: Battery, command: Command, origin: str, profile: Profile | None = None) -> RegisterRow:
    """Read and decode one command; errors become the row's ``error``."""
    now = time.time()
    if not command.readable:
        return RegisterRow(command, origin, error="write-only", time=now)
    try:
        if origin == "sbs":
            reading = battery.read(command.name)
        else:
            t = battery.transport
            raw: int | bytes
            if command.kind in (Kind.BLOCK, Kind.STRING):
                raw = t.read_block(battery.address, command.code, pec=battery.pec)
            else:
                raw = t.read_word(battery.address, command.code, pec=battery.pec)
            reading = decode(command, raw)
    except SmartBattError as exc:
        return RegisterRow(command, origin, error=_first_line(exc), time=now)
    return RegisterRow(command, origin, reading, time=now, fields=_layout_fields(profile, command, reading))


def _layout_fields(profile: Profile | None, command: Command, reading: Reading) -> tuple[tuple[str, str], ...]:
    if profile is None or not isinstance(reading.raw, bytes):
        return ()
    layout = profile.layouts.get(command.name)
    if layout is None:
        return ()
    out = []
    for f in layout.fields:
        value = layout.decode(reading.raw).get(f.name)
        if value is None:
            continue
        text = value.hex(" ").upper() if isinstance(value, bytes) else f"{value:g}"
        out.append((f.name, f"{text} {f.unit}".strip()))
    return tuple(out)


def read_all(battery: Battery, commands: Sequence[tuple[Command, str]], profile: Profile | None) -> list[RegisterRow]:
    """Read every command in ``commands`` (one failing read never stops the others)."""
    return [read_one(battery, c, origin, profile) for c, origin in commands]


def check_value(command: Command, value: float, capacity_mode: bool = False) -> int:
    """The raw word ``value`` encodes to, with the command's range check (no I/O).

    :raises RangeError: out of range or not a whole raw step.
    :raises AccessDenied: the command is not writable.
    """
    if not command.writable:
        raise AccessDenied(f"{command.name} is read-only")
    return codecs.encode(command, value, capacity_mode=capacity_mode)


def write_one(battery: Battery, command: Command, origin: str, value: float) -> RegisterRow:
    """Write ``value`` (in the command's unit), read it back and compare.

    :raises RangeError: out of range (nothing was written).
    :raises VerifyError: the read-back differs.
    :raises SmartBattError: the bus transaction failed.
    """
    if origin == "sbs":
        reading = battery.write(command.name, value)
        if reading is None:
            reading = battery.read(command.name)
        return RegisterRow(command, origin, reading, time=time.time())
    raw = check_value(command, value)
    t = battery.transport
    if command.kind is Kind.BYTE:
        t.write_byte(battery.address, command.code, raw & 0xFF, pec=battery.pec)
        back = t.read_byte(battery.address, command.code, pec=battery.pec)
    else:
        t.write_word(battery.address, command.code, raw, pec=battery.pec)
        back = t.read_word(battery.address, command.code, pec=battery.pec)
    if back != raw:
        raise VerifyError(f"{command.name}: wrote 0x{raw:04X} but read back 0x{back:04X}", command=command.code)
    return RegisterRow(command, origin, decode(command, back), time=time.time())


def parse_number(text: str) -> float:
    """A typed number (``300``, ``-1.5``, ``0x12C``).

    :raises RangeError: not a number.
    """
    text = text.strip().replace("−", "-")
    try:
        if text.lower().startswith(("0x", "-0x")):
            return float(int(text, 16))
        return float(text)
    except ValueError:
        raise RangeError(f"{text!r} is not a number") from None
