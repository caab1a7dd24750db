"""ManufacturerAccess (MAC): TI's 16-bit subcommands, sent the way the chip understands.

Two flows reach the same subcommands (ti_gauges.md §3; A/B interchangeable on bq40z parts, TI
SLUUAQ3A/SLUUCN4A):

* **B — ManufacturerBlockAccess (0x44)**: block write ``[sub_lo, sub_hi, data…]``, then block read
  ``[sub_lo, sub_hi, result…]``. The echo is checked and stripped. The only flow that carries data
  (data-flash writes, SecurityKeys).
* **A — ManufacturerAccess (0x00) + ManufacturerData (0x23)**: word write of the subcommand, then
  block read of the result (no echo). Used when the gauge refuses 0x44 or the profile has no 0x44.

:class:`Mac` tries B first when the profile lists 0x44 and falls back to A when the gauge NACKs the
0x44 command or data (not when nobody answers the address: a missing pack is no reason to change
flow); it remembers the flow that worked. After each subcommand write it waits the delay the
profile gives for that subcommand (or the chip's general MAC delay) before reading.

A profile without MAC (``generic-sbs``: clones, non-TI packs) makes every call refuse with
:class:`~smartbatt.errors.AccessDenied` before anything is sent: generic SBS mode never writes
ManufacturerAccess.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from smartbatt.errors import AccessDenied, BadBlockLength, DecodeError, NoAcknowledge, UnknownCommand
from smartbatt.gauge import flags
from smartbatt.gauge.flags import DecodedRegister
from smartbatt.profiles.schema import BusKind, MacAccess, MacCommand, Profile
from smartbatt.sbs.battery import BATTERY_ADDRESS, Battery
from smartbatt.transports import Transport

__all__ = [
    "MANUFACTURER_ACCESS",
    "MANUFACTURER_BLOCK_ACCESS",
    "MANUFACTURER_DATA",
    "TI_BLOCK_MAX",
    "Mac",
    "MacFlow",
    "MacResult",
]

MANUFACTURER_ACCESS = 0x00
MANUFACTURER_DATA = 0x23
MANUFACTURER_BLOCK_ACCESS = 0x44
#: TI gauges move up to 32 result bytes plus the 2-byte echo through 0x44 in one block (count 34,
#: ti_gauges.md §3 flow B) — more than SMBus 2.0's 32. The transport's block limit is raised to this.
TI_BLOCK_MAX = 34

Decoded = dict[str, int | float | bytes] | DecodedRegister


class MacFlow(StrEnum):
    """How subcommands reach the gauge."""

    #: ManufacturerBlockAccess (0x44) write and read, with echo.
    BLOCK = "0x44"
    #: ManufacturerAccess (0x00) word write, ManufacturerData (0x23) block read.
    WORD = "0x00/0x23"


@dataclass(frozen=True)
class MacResult:
    """A subcommand's result: raw bytes and, where the profile describes them, decoded fields."""

    command: MacCommand
    data: bytes
    flow: MacFlow
    #: layout fields (``{"DeviceType": 17664}``) or a decoded status register; None if undescribed.
    decoded: Decoded | None


class Mac:
    """ManufacturerAccess of one gauge.

    :param target: a :class:`~smartbatt.sbs.battery.Battery` (its address and PEC setting are used)
        or a bare transport.
    :param profile: the chip profile (subcommand table, layouts, timing).
    :param address: 7-bit address when ``target`` is a transport (default: the profile's, else 0x0B).
    :param pec: PEC when ``target`` is a transport (default: the transport's setting).
    :param sleep: how to wait (seconds); tests pass a recorder.
    """

    def __init__(
        self,
        target: Battery | Transport,
        profile: Profile,
        *,
        address: int | None = None,
        pec: bool | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.profile = profile
        self.sleep = sleep
        if isinstance(target, Battery):
            self.transport = target.transport
            self.address = target.address
            self._battery: Battery | None = target
        else:
            self.transport = target
            self.address = address if address is not None else (profile.bus.address or BATTERY_ADDRESS)
            self._battery = None
        self._pec = pec
        self.has_block = any(c.code == MANUFACTURER_BLOCK_ACCESS for c in profile.commands)
        #: the flow that worked, once known.
        self.flow: MacFlow | None = None if self.has_block else MacFlow.WORD
        if profile.sends_mac and profile.bus.kind is BusKind.SMBUS and self.transport.max_block < TI_BLOCK_MAX:
            self.transport.max_block = TI_BLOCK_MAX

    @property
    def usable(self) -> bool:
        """Whether this driver can send the profile's subcommands at all (an SBS gauge with a MAC)."""
        return self.profile.sends_mac and self.profile.bus.kind is BusKind.SMBUS

    @property
    def pec(self) -> bool:
        if self._pec is not None:
            return self._pec
        if self._battery is not None:
            return self._battery.pec
        return self.transport.pec

    # --- lookup --------------------------------------------------------------------------------

    def command(self, key: int | str) -> MacCommand:
        """A subcommand by name (case-insensitive), by code, or by code as text (``0x0054``).

        A code the profile does not list (a data-flash address) gets a record named after it.

        :raises UnknownCommand: a name the profile does not list, or a code outside 0..0xFFFF.
        """
        self._refuse_generic()
        if isinstance(key, str):
            text = key.strip()
            if text[:2].lower() == "0x":
                try:
                    return self.command(int(text, 16))
                except ValueError:
                    raise UnknownCommand(f"{key!r} is not a subcommand code") from None
            try:
                return self.profile.mac_command(text)
            except KeyError:
                pass
            names = ", ".join(m.name for m in self.profile.mac)
            raise UnknownCommand(f"{self.profile.name} has no MAC subcommand {key!r} (known: {names})")
        if not 0 <= key <= 0xFFFF:
            raise UnknownCommand(f"MAC subcommand {key} is outside 0..0xFFFF")
        for m in self.profile.mac:
            if m.code == key:
                return m
        return MacCommand(key, f"0x{key:04X}", MacAccess.READ_WRITE)

    def _refuse_generic(self) -> None:
        if not self.profile.sends_mac:
            raise AccessDenied(
                f"{self.profile.name} is generic SBS mode: smartbatt never sends ManufacturerAccess "
                "writes to such a pack (name the chip with --profile if you know it)",
                address=self.address,
                command=MANUFACTURER_ACCESS,
            )
        if self.profile.bus.kind is BusKind.I2C:
            # flow D (ti_gauges.md §3): subcommand to 0x3E/0x3F, data at 0x40, checksum and length at
            # 0x60/0x61 — a different protocol, not implemented here.
            raise AccessDenied(
                f"{self.profile.name} is an I2C gauge with AltManufacturerAccess (0x3E) command pairs, "
                "which smartbatt does not implement",
                address=self.address,
            )

    # --- reads ----------------------------------------------------------------------------------

    def read(self, key: int | str) -> bytes:
        """Send a subcommand and return its result bytes (echo stripped).

        :raises AccessDenied: generic SBS mode; a write-only subcommand; or the gauge returned no
            data (not available in the present security mode, or not implemented).
        :raises DecodeError: the 0x44 echo names another subcommand.
        :raises TransportError: the bus failed.
        """
        cmd = self.command(key)
        if cmd.access is MacAccess.WRITE:
            raise AccessDenied(f"MAC {cmd.name} is a command, it returns nothing (use write)", address=self.address)
        if self.flow is MacFlow.WORD:
            data = self._read_word_flow(cmd)
        elif self.flow is MacFlow.BLOCK:
            data = self._read_block_flow(cmd)
        else:
            data = self._first_read(cmd)
        if not data:
            raise AccessDenied(
                f"MAC {cmd.name}: the gauge returned no data (not available in the present security mode, "
                "or not implemented by this firmware)",
                address=self.address,
                command=MANUFACTURER_BLOCK_ACCESS if self.flow is MacFlow.BLOCK else MANUFACTURER_DATA,
            )
        return data

    def _first_read(self, cmd: MacCommand) -> bytes:
        """Flow B, and flow A if the gauge refuses 0x44; remember what worked."""
        try:
            data = self._read_block_flow(cmd)
        except NoAcknowledge as exc:
            if exc.byte_index == 0:
                raise  # nobody answered the address: another flow will not help
            data = self._read_word_flow(cmd)
            self.flow = MacFlow.WORD
            return data
        self.flow = MacFlow.BLOCK
        return data

    def _read_block_flow(self, cmd: MacCommand) -> bytes:
        t, pec = self.transport, self.pec
        t.write_block(self.address, MANUFACTURER_BLOCK_ACCESS, cmd.code.to_bytes(2, "little"), pec=pec)
        self._wait(cmd)
        raw = t.read_block(self.address, MANUFACTURER_BLOCK_ACCESS, pec=pec)
        echo = int.from_bytes(raw[:2], "little") if len(raw) >= 2 else None
        if echo != cmd.code:
            shown = "nothing" if echo is None else f"0x{echo:04X}"
            raise DecodeError(
                f"MAC {cmd.name}: ManufacturerBlockAccess echoed {shown}, not 0x{cmd.code:04X} "
                "(the gauge answered another request)",
                address=self.address,
                command=MANUFACTURER_BLOCK_ACCESS,
            )
        return bytes(raw[2:])

    def _read_word_flow(self, cmd: MacCommand) -> bytes:
        t, pec = self.transport, self.pec
        t.write_word(self.address, MANUFACTURER_ACCESS, cmd.code, pec=pec)
        self._wait(cmd)
        try:
            return bytes(t.read_block(self.address, MANUFACTURER_DATA, pec=pec))
        except BadBlockLength as exc:
            if exc.length == 0:
                return b""  # count 0: the gauge has no result for this subcommand
            raise

    def _wait(self, cmd: MacCommand) -> None:
        delay = cmd.delay_ms if cmd.delay_ms is not None else self.profile.timing.mac_delay_ms
        if delay:
            self.sleep(delay / 1000.0)

    # --- writes ----------------------------------------------------------------------------------

    def write(self, key: int | str, data: bytes = b"") -> None:
        """Send a subcommand, with data if given (data only through 0x44).

        Writes are never retried (the transport's policy): a subcommand the gauge received but
        whose acknowledge was lost would run twice.

        :raises AccessDenied: generic SBS mode; data for a gauge without 0x44.
        :raises ValueError: more data than one block carries.
        :raises TransportError: the bus failed.
        """
        cmd = self.command(key)
        payload = cmd.code.to_bytes(2, "little") + bytes(data)
        if len(payload) > TI_BLOCK_MAX:
            raise ValueError(f"MAC {cmd.name}: {len(data)} data bytes; one block carries at most {TI_BLOCK_MAX - 2}")
        if data and not self.has_block:
            raise AccessDenied(
                f"MAC {cmd.name} with data needs ManufacturerBlockAccess (0x44), which {self.profile.name} lacks",
                address=self.address,
            )
        if data or self.flow is MacFlow.BLOCK:
            self.transport.write_block(self.address, MANUFACTURER_BLOCK_ACCESS, payload, pec=self.pec)
        else:
            # TI E2E threads report 0x44 write failures for plain commands on some parts; the word
            # write to ManufacturerAccess works on every SBS TI gauge (ti_gauges.md §3 flow C).
            self.transport.write_word(self.address, MANUFACTURER_ACCESS, cmd.code, pec=self.pec)
        self._wait(cmd)

    # --- decoding --------------------------------------------------------------------------------

    def decode(self, key: int | str, data: bytes) -> Decoded | None:
        """Decode a result with the profile's layout or bit map; None if the profile has neither.

        Layouts decode the fields that lie inside ``data`` (firmware of one family returns
        different lengths, ti_gauges.md §4.2).
        """
        cmd = self.command(key)
        if cmd.bitfield is not None:
            return flags.decode(self.profile.bitfields[cmd.bitfield], data)
        if cmd.layout is not None:
            return self.profile.layouts[cmd.layout].decode(data)
        return None

    def query(self, key: int | str) -> MacResult:
        """:meth:`read` and :meth:`decode` in one."""
        cmd = self.command(key)
        data = self.read(cmd.code)
        assert self.flow is not None
        return MacResult(cmd, data, self.flow, self.decode(cmd.code, data))
