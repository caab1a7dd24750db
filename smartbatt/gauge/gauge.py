"""A TI gauge (or a generic SBS pack) seen through its chip profile.

:class:`Gauge` sits on a :class:`~smartbatt.sbs.battery.Battery` and adds what the profile knows:
the status words decoded to named flags, cell voltages, the security state, DAStatus blocks and
lifetime data. Without a profile it detects one (:func:`detect`): by DeviceName alone, or — only
when the caller allows a ManufacturerAccess write — by the MAC DeviceType. Anything unclear gives
the generic SBS profile and a one-sentence reason; generic SBS mode never writes ManufacturerAccess.

>>> from smartbatt import open_battery
>>> with open_battery("emulated:bq4050?speed=0&security=unsealed") as battery:
...     gauge = Gauge(battery, allow_mac=True)
...     gauge.profile.name, str(gauge.security_state())
('bq4050', 'UNSEALED')
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from smartbatt.errors import (
    AccessDenied,
    BadBlockLength,
    NoAcknowledge,
    SealedError,
    SmartBattError,
    UnknownCommand,
)
from smartbatt.gauge import flags
from smartbatt.gauge.flags import DecodedRegister
from smartbatt.gauge.mac import MANUFACTURER_ACCESS, MANUFACTURER_DATA, Mac
from smartbatt.profiles.detect import Detection, detect_profile
from smartbatt.profiles.loader import load_profile
from smartbatt.profiles.schema import Profile, SecurityLevel, StatusSource
from smartbatt.sbs.battery import Battery
from smartbatt.sbs.command import Kind

__all__ = ["CellReadPlan", "Gauge", "SecurityState", "StatusWord", "detect"]

#: MAC DeviceType (ti_gauges.md §3.1).
DEVICE_TYPE = 0x0001
_CELL_NAME = re.compile(r"^CellVoltage(\d+)$")


def detect(battery: Battery, *, allow_mac: bool = False) -> Detection:
    """Choose a chip profile for ``battery`` (see :func:`smartbatt.profiles.detect.detect_profile`).

    :param allow_mac: permit one ManufacturerAccess write (MAC 0x0001 DeviceType, flow A: the word
        write to 0x00 every SBS TI gauge understands). Off by default: a clone or a non-TI pack may
        treat that write as something else entirely.
    :returns: the decision with its reason; read failures become part of the reason.
    """
    return detect_profile(
        lambda: battery.device_name,
        lambda: battery.manufacturer_name,
        (lambda: _probe_device_type(battery)) if allow_mac else None,
        allow_mac=allow_mac,
    )


def _probe_device_type(battery: Battery) -> int:
    """DeviceType through flow A: write 0x0001 to ManufacturerAccess, read ManufacturerData (bq40z)
    or, if the gauge has no ManufacturerData result, the ManufacturerAccess word (bq20z family,
    ti_gauges.md §3)."""
    t, addr, pec = battery.transport, battery.address, battery.pec
    t.write_word(addr, MANUFACTURER_ACCESS, DEVICE_TYPE, pec=pec)
    try:
        data = t.read_block(addr, MANUFACTURER_DATA, pec=pec)
    except (NoAcknowledge, BadBlockLength):
        return t.read_word(addr, MANUFACTURER_ACCESS, pec=pec)
    return int.from_bytes(data[:2], "little")


@dataclass(frozen=True)
class SecurityState:
    """The gauge's security mode and how it is known."""

    #: SEALED, UNSEALED or FULL_ACCESS; None when it cannot be known.
    level: SecurityLevel | None
    #: where it was read (``OperationStatus[SEC] via SBS 0x54``) or why it is unknown.
    source: str
    #: True when deduced from a refusal rather than read.
    inferred: bool = False
    #: the SEC field's raw value, when read.
    raw: int | None = None

    def __str__(self) -> str:
        if self.level is None:
            return "unknown"
        return self.level.value.replace("_", " ").upper()

    @property
    def sealed(self) -> bool:
        return self.level is SecurityLevel.SEALED


@dataclass(frozen=True)
class StatusWord:
    """One status register as read now: decoded, or the error that prevented it."""

    name: str
    #: how it was read (``SBS 0x51``, ``MAC 0x0051``), or the paths tried.
    source: str
    decoded: DecodedRegister | None
    error: SmartBattError | None = None


@dataclass(frozen=True)
class CellReadPlan:
    """One way to read the cell voltages and what it costs on the wire."""

    #: ``words`` (one SBS word per cell) or ``dastatus1`` (one block).
    method: str
    transactions: int
    #: bytes clocked on the bus without PEC (address bytes included).
    bus_bytes: int
    #: readable while SEALED.
    sealed_ok: bool


class Gauge:
    """A gauge through its chip profile.

    :param battery: the pack (its transport, address and PEC setting are used).
    :param profile: a loaded profile, a profile name, or None to detect one.
    :param variant: firmware variant when ``profile`` is a name.
    :param allow_mac: detection may write ManufacturerAccess (see :func:`detect`).
    :param sleep: how to wait (seconds) — MAC delays, key confirmation, data-flash write delays.
    :raises ProfileError: an unknown profile name or variant.
    """

    def __init__(
        self,
        battery: Battery,
        profile: Profile | str | None = None,
        *,
        variant: str | None = None,
        allow_mac: bool = False,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.battery = battery
        self.sleep = sleep
        #: how the profile was chosen, when it was detected.
        self.detection: Detection | None = None
        if profile is None:
            self.detection = detect(battery, allow_mac=allow_mac)
            profile = load_profile(self.detection.profile, variant=self.detection.variant)
        elif isinstance(profile, str):
            profile = load_profile(profile, variant=variant)
        self.profile: Profile = profile
        self.mac = Mac(battery, profile, sleep=sleep)
        #: the last state read: a SEALED gauge's state is then read through the MAC straight away
        #: instead of after the SBS command it refuses.
        self._last_state: SecurityState | None = None

    def __repr__(self) -> str:
        return f"Gauge({self.battery!r}, profile={self.profile.name!r})"

    @property
    def address(self) -> int:
        return self.battery.address

    def bus_speed_note(self) -> str | None:
        """A warning when the adapter clocks the bus faster than the chip is known to work, else None.

        Only adapters that report their clock (``bus_hz``) can be checked; the i2c-dev clock is set
        by the kernel's device tree and cannot be read here.
        """
        limit = self.profile.timing.bus_hz
        clock = getattr(self.battery.transport, "bus_hz", None)
        if limit is None or not isinstance(clock, int) or clock <= limit:
            return None
        return (
            f"the adapter runs the bus at {clock / 1000:g} kHz; {self.profile.name} is known to work at "
            f"{limit / 1000:g} kHz — slow the adapter down if transactions fail"
        )

    # --- plain register access ----------------------------------------------------------------

    def _has_command(self, code: int) -> bool:
        return any(c.code == code for c in self.profile.commands)

    def read_word(self, code: int) -> int:
        """One SBS-range word (profile commands such as CellVoltage1)."""
        return self.battery.transport.read_word(self.address, code, pec=self.battery.pec)

    def read_block(self, code: int) -> bytes:
        """One SBS-range block (profile commands such as DAStatus1)."""
        return bytes(self.battery.transport.read_block(self.address, code, pec=self.battery.pec))

    # --- status words ---------------------------------------------------------------------------

    def status_words(self) -> dict[str, StatusWord]:
        """Every status register the profile maps, decoded, in profile order.

        Each is read the way the profile says: the SBS command if it has one, else (or when the
        gauge refuses it) the MAC subcommand. While SEALED the SBS blocks the profile marks
        unsealed-only are not tried. A register that cannot be read carries its error (a
        :class:`~smartbatt.errors.SealedError` when sealing is the reason) — one failure never
        hides the others.
        """
        state = self.security_state()
        return {name: self._status(name, src, state) for name, src in self.profile.status_sources.items()}

    def status(self, name: str) -> DecodedRegister:
        """One status register, decoded.

        :raises UnknownCommand: the profile maps no register of that name.
        :raises SealedError: not readable while SEALED.
        :raises TransportError: the bus failed.
        """
        src = self.profile.status_sources.get(name)
        if src is None:
            raise UnknownCommand(f"{self.profile.name} maps no status register {name!r}")
        word = self._status(name, src, self.security_state())
        if word.error is not None:
            raise word.error
        assert word.decoded is not None
        return word.decoded

    def _status(self, name: str, src: StatusSource, state: SecurityState | None) -> StatusWord:
        bitfield = self.profile.bitfields[name]
        tried: list[str] = []
        errors: list[SmartBattError] = []
        skip_sbs = state is not None and state.sealed and src.security is SecurityLevel.UNSEALED
        if src.sbs is not None and not (skip_sbs and src.mac is not None):
            where = f"SBS 0x{src.sbs:02X}"
            tried.append(where)
            try:
                raw: int | bytes = self.read_word(src.sbs) if src.sbs_kind == "word" else self.read_block(src.sbs)
                return StatusWord(name, where, flags.decode(bitfield, raw))
            except SmartBattError as exc:
                if _bus_failure(exc):
                    return StatusWord(name, where, None, exc)
                errors.append(exc)
        if src.mac is not None and self.mac.usable:
            where = f"MAC 0x{src.mac:04X}"
            tried.append(where)
            try:
                return StatusWord(name, where, flags.decode(bitfield, self.mac.read(src.mac)))
            except SmartBattError as exc:
                errors.append(exc)
        if not tried:
            reason = f"{name}: smartbatt has no way to read it on {self.profile.name}"
            return StatusWord(name, "", None, AccessDenied(reason, address=self.address))
        error = errors[-1]
        if state is not None and state.sealed and not _bus_failure(error):
            error = SealedError(
                f"{name} is not readable while the gauge is SEALED (tried {', '.join(tried)}); "
                "run `smartbatt unseal` first",
                address=self.address,
            )
        return StatusWord(name, " then ".join(tried), None, error)

    # --- security -------------------------------------------------------------------------------

    def security_state(self) -> SecurityState:
        """The security mode from the profile's state register (OperationStatus SEC[1:0]).

        If the gauge refuses every path to that register while acknowledging its address, only
        SEALED explains it (TI tables: 0x54 not readable sealed): the state is then SEALED with
        ``inferred=True``.

        :raises TransportError: the bus failed (nobody answered, timeout…).
        """
        sec = self.profile.security
        if sec.state_register is None or sec.state_group is None:
            return SecurityState(None, f"{self.profile.name} has no security state register")
        src = self.profile.status_sources.get(sec.state_register)
        if src is None:
            return SecurityState(None, f"{self.profile.name} gives no way to read {sec.state_register}")
        word = self._status(sec.state_register, src, self._last_state)
        if not word.source:
            return SecurityState(None, str(word.error))
        if word.decoded is None:
            assert word.error is not None
            if _bus_failure(word.error):
                raise word.error
            state = SecurityState(
                SecurityLevel.SEALED,
                f"{sec.state_register} refused on {word.source}: only a SEALED gauge refuses it",
                inferred=True,
            )
        else:
            value = word.decoded.group(sec.state_group).value
            where = f"{sec.state_register}[{sec.state_group}] via {word.source}"
            state = SecurityState(sec.states.get(value), where, raw=value)
        self._last_state = state
        return state

    # --- cells ----------------------------------------------------------------------------------

    def _cell_registers(self) -> list[int]:
        """Codes of CellVoltage1..n in cell order."""
        found: dict[int, int] = {}
        for c in self.profile.commands:
            m = _CELL_NAME.match(c.name)
            if m and c.kind is Kind.WORD:
                found[int(m.group(1))] = c.code
        return [found[i] for i in sorted(found)]

    def _dastatus1_source(self) -> tuple[str, int] | None:
        if "DAStatus1" not in self.profile.layouts:
            return None
        for c in self.profile.commands:
            if c.name == "DAStatus1" and c.kind is Kind.BLOCK:
                return ("sbs", c.code)
        for m in self.profile.mac:
            if m.layout == "DAStatus1":
                return ("mac", m.code)
        return None

    def cell_read_plans(self) -> list[CellReadPlan]:
        """The ways this profile offers to read cell voltages, cheapest first.

        Bytes on the wire (SMBus 2.0 §5.5, no PEC): a word read is 5 (address+W, command,
        address+R, two data bytes); an SBS block read of DAStatus1 is 4 + 32; through the MAC it
        is a 5-byte block write plus 4 + 2 + 32. Four word reads (20 bytes) beat one DAStatus1
        block (36 or 43 bytes) and work while SEALED; the block only wins for more cells than word
        registers. ``tests/test_gauge_driver.py`` measures both on the emulated bus.
        """
        plans: list[CellReadPlan] = []
        words = self._cell_registers()
        if words:
            plans.append(CellReadPlan("words", len(words), 5 * len(words), sealed_ok=True))
        da = self._dastatus1_source()
        if da is not None:
            size = self.profile.layouts["DAStatus1"].size
            cost = 4 + size if da[0] == "sbs" else 5 + 4 + 2 + size
            plans.append(CellReadPlan("dastatus1", 1 if da[0] == "sbs" else 2, cost, sealed_ok=False))
        return sorted(plans, key=lambda p: p.bus_bytes)

    def cells(self, method: str | None = None) -> list[int]:
        """Cell voltages in mV, cell 1 first, read the cheapest way the profile offers.

        TI gauges report unused cell inputs as 0 mV (the emulator does the same); the list has one
        entry per cell register, so a 3S pack on a 4-cell gauge shows a trailing 0.

        :param method: ``words`` or ``dastatus1`` to force one way.
        :raises AccessDenied: the profile has no cell voltages (generic SBS), or no such method.
        :raises SealedError: DAStatus1 while SEALED.
        """
        plans = {p.method: p for p in self.cell_read_plans()}
        if not plans:
            raise AccessDenied(
                f"{self.profile.name}: SBS 1.1 defines no per-cell voltages; name the chip with --profile"
            )
        chosen = method or next(iter(plans))
        if chosen not in plans:
            raise AccessDenied(f"{self.profile.name} cannot read cells by {chosen!r} (offers {', '.join(plans)})")
        if chosen == "words":
            return [self.read_word(code) for code in self._cell_registers()]
        fields = self.da_status1()
        return [int(v) for k, v in sorted(fields.items()) if _CELL_NAME.match(k) and isinstance(v, int | float)]

    # --- blocks ---------------------------------------------------------------------------------

    def _layout_block(self, layout: str) -> dict[str, int | float | bytes]:
        """Read the block the profile lays out as ``layout`` (SBS command if any, else MAC)."""
        if layout not in self.profile.layouts:
            raise UnknownCommand(f"{self.profile.name} has no {layout} layout")
        decoder = self.profile.layouts[layout]
        for c in self.profile.commands:
            if c.name == layout and c.kind is Kind.BLOCK:
                try:
                    return decoder.decode(self.read_block(c.code))
                except NoAcknowledge as exc:
                    if exc.byte_index == 0:
                        raise
                    break  # refused (sealed?): the MAC path may still work
        for m in self.profile.mac:
            if m.layout == layout:
                return decoder.decode(self._mac_read_sealed_aware(m.code))
        raise SealedError(f"{layout} is not readable while the gauge is SEALED; run `smartbatt unseal` first")

    def _mac_read_sealed_aware(self, code: int) -> bytes:
        try:
            return self.mac.read(code)
        except AccessDenied as exc:
            if self.security_state().sealed:
                raise SealedError(
                    f"{self.mac.command(code).name} is not readable while the gauge is SEALED; "
                    "run `smartbatt unseal` first",
                    address=self.address,
                ) from exc
            raise

    def da_status1(self) -> dict[str, int | float | bytes]:
        """DAStatus1 decoded with the profile's layout (cell voltages, currents, powers)."""
        return self._layout_block("DAStatus1")

    def da_status2(self) -> dict[str, int | float | bytes]:
        """DAStatus2 decoded with the profile's layout (temperatures in K)."""
        return self._layout_block("DAStatus2")

    def lifetime(self) -> dict[str, dict[str, int | float | bytes]]:
        """Every lifetime-data block the profile lays out, decoded (block name → fields)."""
        out: dict[str, dict[str, int | float | bytes]] = {}
        for m in self.profile.mac:
            if m.layout is not None and m.layout.startswith("LifetimeDataBlock"):
                out[m.layout] = self.profile.layouts[m.layout].decode(self._mac_read_sealed_aware(m.code))
        if not out:
            raise AccessDenied(f"{self.profile.name} lays out no lifetime data")
        return out

    def device_type(self) -> int:
        """MAC DeviceType (0x0001)."""
        return int.from_bytes(self.mac.read(DEVICE_TYPE)[:2], "little")


def _bus_failure(exc: SmartBattError) -> bool:
    """An error that says nothing about the command (nobody at the address, bus stuck, timeout)."""
    if isinstance(exc, NoAcknowledge):
        return exc.byte_index in (0, None)
    return not isinstance(exc, AccessDenied | SealedError | UnknownCommand | BadBlockLength)
