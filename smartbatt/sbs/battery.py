"""The smart battery at one SMBus address: typed SBS 1.1 properties, snapshot, checked writes.

>>> with open_battery("emulated:?model=static") as battery:
...     battery.voltage, battery.temperature, battery.device_name
(16120, 25.05, 'EMU-4S3000')

Each property resolves to one entry of the SBS command table through a small descriptor; the
table and the properties are checked against each other by the tests. Reading never changes the
pack: no command is written unless the caller asks for a write (BatteryMode is *read* to learn
CAPACITY_MODE, never toggled), and PEC is switched on by default when SpecificationInfo reports
version 3 (SBS 1.1 with PEC, sbs.md §4) — the one read that decides it goes without PEC.

Values the gauge sends when it has no answer yet (0xFFFF, 0x1717 — per command, see the table)
are re-read a few times and then raise :class:`~smartbatt.errors.NotReady` with the raw value;
they are never decoded as data. A NACK at the battery address carries a diagnosis (asleep or
shut down, deeply discharged, not connected) with what to try.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Generic, NoReturn, Self, TypeVar, cast, overload

from smartbatt.errors import AccessDenied, NoAcknowledge, NotReady, SmartBattError, VerifyError
from smartbatt.sbs import codecs
from smartbatt.sbs.codecs import BitFields, SpecInfo
from smartbatt.sbs.command import Command, Kind
from smartbatt.sbs.commands import CommandTable, sbs_table
from smartbatt.sbs.decode import Reading, decode
from smartbatt.transports import Transport, open_transport
from smartbatt.uri import DEFAULT_URI

T = TypeVar("T")

#: SBS address of a smart battery (SBS 1.1; sbs.md §6).
BATTERY_ADDRESS = 0x0B

#: what a NACK of the battery's address usually means (shown with the error).
ADDRESS_NACK_DIAGNOSIS = (
    "Nothing acknowledged the battery address. The pack may be (1) asleep or shut down (shipping "
    "mode): TI gauges wake only when a voltage above the charger-present threshold reaches PACK+, "
    "so connect the charger or a current-limited supply briefly (TI SLUUAQ3A, SHUTDOWN mode); "
    "(2) deeply discharged: below about 2.5 V per cell the gauge has no supply (dji-firmware-tools "
    "issues #262, #196) — recharge the cells slowly with a current-limited supply first; (3) not "
    "connected: check SDA/SCL (swapped?), the shared GND, the bus pull-ups, and the address "
    "(--address; SBS batteries use 0x0B)."
)
COMMAND_NACK_DIAGNOSIS = (
    "The battery acknowledged its address but refused the command byte: the gauge does not "
    "implement this command, or refuses it in its present security mode (sealed)."
)
DATA_NACK_DIAGNOSIS = (
    "The battery refused the data of the write: the command is read-only on this gauge, the gauge "
    "is sealed, or the value is not accepted."
)


# ------------------------------------------------------------------------------------------------
# descriptors: one typed property per SBS command
# ------------------------------------------------------------------------------------------------


class _Command(Generic[T]):
    """A read-only SBS command as a typed property of :class:`Battery` (reads the pack)."""

    def __init__(self, name: str, doc: str) -> None:
        #: SBS command name (a key of the command table).
        self.command = name
        self.__doc__ = doc
        self.attr = ""

    def __set_name__(self, owner: type, attr: str) -> None:
        self.attr = attr

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> Self: ...

    @overload
    def __get__(self, obj: Battery, owner: type | None = None) -> T: ...

    def __get__(self, obj: Battery | None, owner: type | None = None) -> T | Self:
        if obj is None:
            return self
        return cast(T, obj._value(self.command))

    def __set__(self, obj: Battery, value: NoReturn) -> None:
        raise AccessDenied(f"{self.command} is read-only")


class _WritableCommand(_Command[T]):
    """A read/write SBS command: assignment writes with a range check and read-back."""

    def __set__(self, obj: Battery, value: Any) -> None:
        obj.write(self.command, value)


class _Field(Generic[T]):
    """A typed field of :class:`Snapshot`: the decoded value, or None (sentinel, error)."""

    def __init__(self, name: str) -> None:
        self.command = name
        self.attr = ""

    def __set_name__(self, owner: type, attr: str) -> None:
        self.attr = attr

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> Self: ...

    @overload
    def __get__(self, obj: Snapshot, owner: type | None = None) -> T | None: ...

    def __get__(self, obj: Snapshot | None, owner: type | None = None) -> T | Self | None:
        if obj is None:
            return self
        reading = obj.readings.get(self.command)
        return None if reading is None else cast(T, reading.value)


# ------------------------------------------------------------------------------------------------
# snapshot
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """Everything readable, read once, as one typed record.

    ``readings`` holds each command that answered (raw and decoded); ``errors`` each command that
    failed, with its typed error (one NACK never aborts the snapshot). Typed fields give the
    decoded value, or None for a sentinel or a failed command.
    """

    #: wall-clock time the snapshot started (``time.time()``).
    time: float
    address: int
    #: BatteryMode.CAPACITY_MODE used to decode capacities (None if BatteryMode failed).
    capacity_mode: bool | None
    spec_info: SpecInfo | None
    readings: Mapping[str, Reading] = field(default_factory=lambda: MappingProxyType({}))
    errors: Mapping[str, SmartBattError] = field(default_factory=lambda: MappingProxyType({}))

    manufacturer_access = _Field[int]("ManufacturerAccess")
    remaining_capacity_alarm = _Field[int]("RemainingCapacityAlarm")
    remaining_time_alarm = _Field[int]("RemainingTimeAlarm")
    battery_mode = _Field[BitFields]("BatteryMode")
    at_rate = _Field[int]("AtRate")
    at_rate_time_to_full = _Field[int]("AtRateTimeToFull")
    at_rate_time_to_empty = _Field[int]("AtRateTimeToEmpty")
    at_rate_ok = _Field[bool]("AtRateOK")
    temperature = _Field[float]("Temperature")
    voltage = _Field[int]("Voltage")
    current = _Field[int]("Current")
    average_current = _Field[int]("AverageCurrent")
    max_error = _Field[int]("MaxError")
    relative_state_of_charge = _Field[int]("RelativeStateOfCharge")
    absolute_state_of_charge = _Field[int]("AbsoluteStateOfCharge")
    remaining_capacity = _Field[int]("RemainingCapacity")
    full_charge_capacity = _Field[int]("FullChargeCapacity")
    run_time_to_empty = _Field[int]("RunTimeToEmpty")
    average_time_to_empty = _Field[int]("AverageTimeToEmpty")
    average_time_to_full = _Field[int]("AverageTimeToFull")
    charging_current = _Field[int]("ChargingCurrent")
    charging_voltage = _Field[int]("ChargingVoltage")
    battery_status = _Field[BitFields]("BatteryStatus")
    cycle_count = _Field[int]("CycleCount")
    design_capacity = _Field[int]("DesignCapacity")
    design_voltage = _Field[int]("DesignVoltage")
    specification_info = _Field[SpecInfo]("SpecificationInfo")
    manufacture_date = _Field[datetime.date]("ManufactureDate")
    serial_number = _Field[int]("SerialNumber")
    manufacturer_name = _Field[str]("ManufacturerName")
    device_name = _Field[str]("DeviceName")
    device_chemistry = _Field[str]("DeviceChemistry")
    manufacturer_data = _Field[bytes]("ManufacturerData")

    def __getitem__(self, name: str) -> Reading:
        """The reading of command ``name``; raises the command's stored error if it failed."""
        if name in self.readings:
            return self.readings[name]
        if name in self.errors:
            raise self.errors[name]
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        """Command names in code order, answered or failed."""
        return iter(sorted({*self.readings, *self.errors}, key=_code_of))

    @property
    def ok(self) -> bool:
        """True if every readable command answered."""
        return not self.errors

    def to_json(self) -> dict[str, dict[str, Any]]:
        """One object keyed by SBS command name: ``{"raw", "value", "unit"}`` (+ ``"error"``)."""
        out: dict[str, dict[str, Any]] = {}
        table = sbs_table()
        for name in self:
            if name in self.readings:
                out[name] = self.readings[name].to_json()
            else:
                cmd = table.by_name(name) if name in table else None
                unit = codecs.unit_of(cmd, bool(self.capacity_mode)) if cmd else ""
                out[name] = {"raw": None, "value": None, "unit": unit, "error": str(self.errors[name])}
        return out


def _code_of(name: str) -> int:
    table = sbs_table()
    return table.by_name(name).code if name in table else 0x100


# ------------------------------------------------------------------------------------------------
# the battery
# ------------------------------------------------------------------------------------------------


class Battery:
    """A smart battery (SBS 1.1 gauge) at ``address`` on ``transport``.

    :param transport: an open transport; the Battery does not close it unless ``owns_transport``.
    :param address: 7-bit address (0x0B for a smart battery).
    :param pec: True/False forces PEC; None enables it when SpecificationInfo reports version 3.
    :param commands: command table (the SBS 1.1 table unless a chip profile extends it).
    :param filler_retries: re-reads of a filler value (0xFFFF, 0x1717) before NotReady.
    :param filler_delay_s: wait before the first re-read, doubled each time (the gauge is busy).
    """

    def __init__(
        self,
        transport: Transport,
        address: int = BATTERY_ADDRESS,
        pec: bool | None = None,
        *,
        commands: CommandTable | None = None,
        filler_retries: int = 3,
        filler_delay_s: float = 0.002,
        owns_transport: bool = False,
    ) -> None:
        if not 0 <= address <= 0x7F:
            raise ValueError(f"address 0x{address:X} is not a 7-bit address")
        if filler_retries < 0 or filler_delay_s < 0:
            raise ValueError("filler_retries and filler_delay_s must not be negative")
        self.transport = transport
        self.address = address
        self.commands = commands or sbs_table()
        self.filler_retries = filler_retries
        self.filler_delay_s = filler_delay_s
        self._owns_transport = owns_transport
        #: None until decided (from SpecificationInfo when the caller did not force it).
        self._pec: bool | None = pec
        self._spec: SpecInfo | None = None
        self._capacity_mode: bool | None = None
        #: name → (code, filler set, raw → value) for word commands, built once per mode.
        self._fast: dict[str, tuple[int, frozenset[int], Callable[[int], Any]]] = {}

    # --- lifetime ------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the transport if this Battery opened it (open_battery). Idempotent."""
        if self._owns_transport:
            self.transport.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Battery({self.transport.describe()}, address=0x{self.address:02X})"

    # --- PEC, scaling and capacity mode ----------------------------------------------------------

    @property
    def pec(self) -> bool:
        """Whether transactions use PEC (decided from SpecificationInfo on first use if not forced)."""
        if self._pec is None:
            self._decide_pec()
        return bool(self._pec)

    def _decide_pec(self) -> None:
        # SpecificationInfo version 3 = "SBS 1.1 with optional PEC" (sbs.md §4); this one read goes
        # without PEC because we do not know yet whether the gauge appends one.
        cmd = self.commands.by_name("SpecificationInfo")
        raw = self._read_word(cmd, pec=False)
        self._spec = codecs.decode_spec_info(raw)
        self._pec = self._spec.pec_supported
        self._fast.clear()

    @property
    def spec_info(self) -> SpecInfo:
        """The pack's SpecificationInfo (read once and cached; :meth:`refresh_mode` re-reads)."""
        if self._spec is None:
            if self._pec is None:
                self._decide_pec()
            else:
                self._spec = codecs.decode_spec_info(self._read_word(self.commands.by_name("SpecificationInfo")))
                self._fast.clear()
        assert self._spec is not None
        return self._spec

    @property
    def capacity_mode(self) -> bool:
        """BatteryMode.CAPACITY_MODE (True: capacities in 10 mWh), read once and cached.

        Read, never written: smartbatt does not toggle the mode to read the other unit.
        """
        if self._capacity_mode is None:
            mode = codecs.decode_bits("battery_mode", self._read_word(self.commands.by_name("BatteryMode")))
            self._capacity_mode = mode.is_set("CAPACITY_MODE")
            self._fast.clear()
        return self._capacity_mode

    def refresh_mode(self) -> None:
        """Forget the cached CAPACITY_MODE and SpecificationInfo; they are re-read on next use."""
        self._capacity_mode = None
        self._spec = None
        self._fast.clear()

    # --- reads ---------------------------------------------------------------------------------

    def _read_word(self, cmd: Command, *, pec: bool | None = None) -> int:
        """One word read with the NACK diagnosis and filler re-reads. Raises NotReady after retries."""
        use_pec = self.pec if pec is None else pec
        raw = self._transfer_word(cmd.code, use_pec)
        if raw in cmd.filler:
            raw = self._reread_filler(cmd, raw, lambda: self._transfer_word(cmd.code, use_pec))
        return raw

    def _transfer_word(self, code: int, pec: bool) -> int:
        try:
            return self.transport.read_word(self.address, code, pec=pec)
        except NoAcknowledge as exc:
            self._diagnose(exc)
            raise

    def _read_block(self, cmd: Command) -> bytes:
        use_pec = self.pec

        def once() -> bytes:
            try:
                return self.transport.read_block(self.address, cmd.code, pec=use_pec)
            except NoAcknowledge as exc:
                self._diagnose(exc)
                raise

        data = once()
        if codecs.is_filler(cmd, data):
            data = self._reread_filler(cmd, data, once)
        return data

    def _reread_filler(self, cmd: Command, raw: Any, again: Callable[[], Any]) -> Any:
        delay = self.filler_delay_s
        for _ in range(self.filler_retries):
            if delay:
                time.sleep(delay)
                delay *= 2
            raw = again()
            if not codecs.is_filler(cmd, raw):
                return raw
        shown = f"0x{raw:04X}" if isinstance(raw, int) else raw.hex(" ").upper()
        raise NotReady(
            f"{cmd.name}: the battery kept answering {shown}, a filler value, not data "
            f"({self.filler_retries + 1} reads); it may be busy or still waking up — try again",
            raw=raw,
            address=self.address,
            command=cmd.code,
        )

    def _diagnose(self, exc: NoAcknowledge) -> None:
        if exc.diagnosis or (exc.address is not None and exc.address != self.address):
            return
        if exc.byte_index in (0, None):
            exc.diagnosis = ADDRESS_NACK_DIAGNOSIS
        elif exc.byte_index == 1:
            exc.diagnosis = COMMAND_NACK_DIAGNOSIS
        else:
            exc.diagnosis = DATA_NACK_DIAGNOSIS

    def _prepare(self, name: str) -> tuple[int, frozenset[int], Callable[[int], Any]]:
        cmd = self.commands.by_name(name)
        if not cmd.readable:
            raise AccessDenied(f"{cmd.name} is write-only", address=self.address, command=cmd.code)
        capm = self.capacity_mode if cmd.capacity_mode else False
        spec = self.spec_info if cmd.spec_scale.value else codecs.NO_SCALING
        entry = (cmd.code, cmd.filler, codecs.value_function(cmd, capm, spec))
        self._fast[name] = entry
        return entry

    def _value(self, name: str) -> Any:
        """Decoded value of command ``name`` (the properties' path; word commands take a fast path)."""
        entry = self._fast.get(name)
        if entry is None:
            cmd = self.commands.by_name(name)
            if cmd.kind in (Kind.BLOCK, Kind.STRING):
                return self.read(cmd.name).value
            entry = self._prepare(name)
        code, filler, to_value = entry
        pec = self._pec
        if pec is None:
            pec = self.pec
        try:
            raw = self.transport.read_word(self.address, code, pec=pec)
        except NoAcknowledge as exc:
            self._diagnose(exc)
            raise
        if raw in filler:
            raw = self._reread_filler(self.commands.by_code(code), raw, lambda: self._transfer_word(code, pec))
        return to_value(raw)

    def read(self, command: str | int) -> Reading:
        """Read one command (name or code) and decode it, raw value included.

        :raises UnknownCommand: not in the command table.
        :raises AccessDenied: the command is write-only.
        :raises NotReady: the battery kept sending a filler value.
        :raises TransportError: the bus transaction failed (NoAcknowledge carries a diagnosis).
        """
        cmd = self.commands.lookup(command)
        if not cmd.readable:
            raise AccessDenied(f"{cmd.name} is write-only", address=self.address, command=cmd.code)
        capm = self.capacity_mode if cmd.capacity_mode else False
        spec = self.spec_info if cmd.spec_scale.value else None
        raw: int | bytes = self._read_block(cmd) if cmd.kind in (Kind.BLOCK, Kind.STRING) else self._read_word(cmd)
        return self._decode(cmd, raw, capm, spec)

    def _decode(self, cmd: Command, raw: int | bytes, capm: bool, spec: SpecInfo | None) -> Reading:
        try:
            return decode(cmd, raw, capacity_mode=capm, spec_info=spec)
        except SmartBattError as exc:
            if exc.address is None:
                exc.address, exc.command = self.address, cmd.code
            raise

    def snapshot(self) -> Snapshot:
        """Read every readable command once. Per-command errors are kept, never abort the snapshot.

        SpecificationInfo and BatteryMode are read first so every value of the snapshot is
        decoded with the scaling and CAPACITY_MODE the pack reported in this same snapshot.
        """
        started = time.time()
        readings: dict[str, Reading] = {}
        errors: dict[str, SmartBattError] = {}
        try:
            pec = self.pec
        except SmartBattError:
            pec = False  # SpecificationInfo failed: its error is recorded below
        spec = self._snapshot_word(self.commands.by_name("SpecificationInfo"), pec, False, None, readings, errors)
        spec_info = spec.value if spec is not None and isinstance(spec.value, SpecInfo) else None
        if spec_info is not None:
            self._spec = spec_info
        mode = self._snapshot_word(self.commands.by_name("BatteryMode"), pec, False, None, readings, errors)
        capm: bool | None = None
        if mode is not None and isinstance(mode.value, BitFields):
            capm = mode.value.is_set("CAPACITY_MODE")
            if capm != self._capacity_mode:
                self._capacity_mode = capm
                self._fast.clear()
        for cmd in self.commands.readable():
            if cmd.name in readings or cmd.name in errors:
                continue
            if cmd.kind in (Kind.BLOCK, Kind.STRING):
                try:
                    readings[cmd.name] = self._decode(cmd, self._read_block(cmd), False, None)
                except SmartBattError as exc:
                    errors[cmd.name] = exc
                continue
            if cmd.capacity_mode and capm is None:
                errors[cmd.name] = NotReady(
                    f"{cmd.name}: unit unknown because BatteryMode could not be read",
                    address=self.address,
                    command=cmd.code,
                )
                continue
            self._snapshot_word(cmd, pec, bool(capm), spec_info, readings, errors)
        return Snapshot(
            time=started,
            address=self.address,
            capacity_mode=capm,
            spec_info=spec_info,
            readings=MappingProxyType(readings),
            errors=MappingProxyType(errors),
        )

    def _snapshot_word(
        self,
        cmd: Command,
        pec: bool,
        capm: bool,
        spec: SpecInfo | None,
        readings: dict[str, Reading],
        errors: dict[str, SmartBattError],
    ) -> Reading | None:
        try:
            reading = self._decode(cmd, self._read_word(cmd, pec=pec), capm, spec)
        except SmartBattError as exc:
            errors[cmd.name] = exc
            return None
        readings[cmd.name] = reading
        return reading

    # --- writes ----------------------------------------------------------------------------------

    def write(self, command: str | int, value: int | float | BitFields) -> Reading | None:
        """Write a value (in the command's unit) with a range check, then read it back.

        Only the commands the table marks writable (0x00–0x04) can be written. BatteryMode takes
        the raw word; after a write of CAPACITY_MODE the cached mode follows the read-back (SBS:
        re-write AtRate and RemainingCapacityAlarm afterwards, they are in the new unit).

        :returns: the read-back Reading, or None for commands that cannot be verified
            (ManufacturerAccess returns the vendor command's result instead).
        :raises AccessDenied: the command is read-only.
        :raises RangeError: the value is outside the command's range or not a whole raw step.
        :raises VerifyError: the value read back differs from the value written.
        """
        cmd = self.commands.lookup(command)
        if not cmd.writable:
            raise AccessDenied(f"{cmd.name} is read-only", address=self.address, command=cmd.code)
        capm = self.capacity_mode if cmd.capacity_mode else False
        spec = self.spec_info if cmd.spec_scale.value else None
        raw = codecs.encode(cmd, value, capacity_mode=capm, spec_info=spec)
        try:
            self.transport.write_word(self.address, cmd.code, raw, pec=self.pec)
        except NoAcknowledge as exc:
            self._diagnose(exc)
            raise
        if not cmd.verify:
            return None
        back = self._read_word(cmd)
        mask = codecs.writable_mask(cmd.decoder) if cmd.decoder in self.commands.bitfields else 0xFFFF
        if (back ^ raw) & mask:
            raise VerifyError(
                f"{cmd.name}: wrote 0x{raw:04X} but read back 0x{back:04X}",
                address=self.address,
                command=cmd.code,
            )
        if cmd.decoder == "battery_mode":
            self._capacity_mode = codecs.decode_bits("battery_mode", back).is_set("CAPACITY_MODE")
            self._fast.clear()
        return self._decode(cmd, back, self.capacity_mode if cmd.capacity_mode else False, spec)

    # --- typed properties, one per SBS 1.1 command (SBS 1.1 §5.1; sbs.md §1) ----------------

    manufacturer_access = _WritableCommand[int](
        "ManufacturerAccess",
        "ManufacturerAccess (0x00), raw word 0..0xFFFF. Writing sends a vendor command (not verified).",
    )
    remaining_capacity_alarm = _WritableCommand[int](
        "RemainingCapacityAlarm", "RemainingCapacityAlarm (0x01): mAh, or mWh in capacity mode; 0 disables the alarm."
    )
    remaining_time_alarm = _WritableCommand[int](
        "RemainingTimeAlarm", "RemainingTimeAlarm (0x02): minutes 0..65535; 0 disables the alarm."
    )
    battery_mode = _WritableCommand[BitFields](
        "BatteryMode", "BatteryMode (0x03) flags. Assign a raw word to write it (reserved bits refused)."
    )
    at_rate = _WritableCommand[int](
        "AtRate", "AtRate (0x04): mA (mW in capacity mode), -32768..32767 raw; positive = charge."
    )
    at_rate_time_to_full = _Command[int | None](
        "AtRateTimeToFull", "AtRateTimeToFull (0x05): minutes, None when not charging at AtRate."
    )
    at_rate_time_to_empty = _Command[int | None](
        "AtRateTimeToEmpty", "AtRateTimeToEmpty (0x06): minutes, None when not discharging at AtRate."
    )
    at_rate_ok = _Command[bool]("AtRateOK", "AtRateOK (0x07): True if the pack can supply AtRate for 10 s.")
    temperature = _Command[float]("Temperature", "Temperature (0x08) in °C (sent as 0.1 K).")
    voltage = _Command[int]("Voltage", "Voltage (0x09): pack voltage in mV (× 10^VScale).")
    current = _Command[int]("Current", "Current (0x0A): mA, positive charging, negative discharging.")
    average_current = _Command[int]("AverageCurrent", "AverageCurrent (0x0B): one-minute average, mA, signed.")
    max_error = _Command[int]("MaxError", "MaxError (0x0C): % error of the state-of-charge estimate.")
    relative_state_of_charge = _Command[int](
        "RelativeStateOfCharge", "RelativeStateOfCharge (0x0D): % of FullChargeCapacity, 0..100."
    )
    absolute_state_of_charge = _Command[int](
        "AbsoluteStateOfCharge", "AbsoluteStateOfCharge (0x0E): % of DesignCapacity (may exceed 100)."
    )
    remaining_capacity = _Command[int]("RemainingCapacity", "RemainingCapacity (0x0F): mAh, or mWh in capacity mode.")
    full_charge_capacity = _Command[int](
        "FullChargeCapacity", "FullChargeCapacity (0x10): mAh, or mWh in capacity mode."
    )
    run_time_to_empty = _Command[int | None](
        "RunTimeToEmpty", "RunTimeToEmpty (0x11): minutes, None when not discharging."
    )
    average_time_to_empty = _Command[int | None](
        "AverageTimeToEmpty", "AverageTimeToEmpty (0x12): minutes, None when not discharging."
    )
    average_time_to_full = _Command[int | None](
        "AverageTimeToFull", "AverageTimeToFull (0x13): minutes, None when not charging."
    )
    charging_current = _Command[int | None](
        "ChargingCurrent", "ChargingCurrent (0x14): mA requested from the charger; None = maximum requested."
    )
    charging_voltage = _Command[int | None](
        "ChargingVoltage", "ChargingVoltage (0x15): mV requested from the charger; None = maximum requested."
    )
    battery_status = _Command[BitFields]("BatteryStatus", "BatteryStatus (0x16): alarm/status flags and error code.")
    cycle_count = _Command[int]("CycleCount", "CycleCount (0x17): charge/discharge cycles.")
    design_capacity = _Command[int]("DesignCapacity", "DesignCapacity (0x18): mAh, or mWh in capacity mode.")
    design_voltage = _Command[int]("DesignVoltage", "DesignVoltage (0x19): mV (× 10^VScale).")
    specification_info = _Command[SpecInfo](
        "SpecificationInfo", "SpecificationInfo (0x1A): SBS version, PEC support, VScale/IPScale."
    )
    manufacture_date = _Command[datetime.date | None](
        "ManufactureDate", "ManufactureDate (0x1B) as a date; None when not set (0)."
    )
    serial_number = _Command[int]("SerialNumber", "SerialNumber (0x1C): a number 0..65535.")
    manufacturer_name = _Command[str]("ManufacturerName", "ManufacturerName (0x20), ASCII text.")
    device_name = _Command[str]("DeviceName", "DeviceName (0x21), ASCII text.")
    device_chemistry = _Command[str]("DeviceChemistry", "DeviceChemistry (0x22): LION, LiP, NiMH, …")
    manufacturer_data = _Command[bytes]("ManufacturerData", "ManufacturerData (0x23): vendor bytes.")


def open_battery(uri: str = DEFAULT_URI, address: int = BATTERY_ADDRESS, pec: bool | None = None) -> Battery:
    """Open the adapter ``uri`` names and return the Battery at ``address`` (closes the adapter on close).

    :raises UriError: malformed URI or unknown option.
    :raises AdapterUnavailable: the adapter cannot be opened.
    """
    transport = open_transport(uri)
    try:
        return Battery(transport, address=address, pec=pec, owns_transport=True)
    except BaseException:
        transport.close()
        raise


def battery_properties() -> dict[str, str]:
    """Attribute name → SBS command name of every typed property of :class:`Battery`."""
    return {attr: value.command for attr, value in vars(Battery).items() if isinstance(value, _Command)}


def snapshot_fields() -> dict[str, str]:
    """Attribute name → SBS command name of every typed field of :class:`Snapshot`."""
    return {attr: value.command for attr, value in vars(Snapshot).items() if isinstance(value, _Field)}
