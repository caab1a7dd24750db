"""``PMBusDevice``: read telemetry, status and identity from one PMBus device over a Transport.

Every transaction goes through the transport's SMBus primitives (read byte/word/block, write
byte, send byte), so PEC, retries, timeouts and the transaction log work as for any device. The
only writes this class ever makes are PAGE selection and the ones the user asks for
(:meth:`PMBusDevice.clear_faults`); it never clears faults on its own.

Facts (../shared/reference/pmbus.md): PAGE selects the rail for later commands and persists (§2);
pages are 0..31 (Linux ``PMBUS_PAGES`` "per PMBus specification") and 0xFF = all pages, for writes
only (§1 notes); VOUT_MODE is read once per page and cached, as Linux does (§2); CAPABILITY bit 7
says whether the device supports PEC (§3); an unsupported command is NACKed and flagged in
STATUS_CML bit 7 (§5; TI TPS40425 datasheet STATUS_CML).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from smartbatt.errors import (
    AccessDenied,
    DecodeError,
    NoAcknowledge,
    RangeError,
    SmartBattError,
    VerifyError,
)
from smartbatt.pmbus.commands import (
    BitField,
    CommandTable,
    DataFormat,
    FieldValue,
    PMBusCommand,
    Value,
    WireKind,
    decode,
    load_table,
    raw_int,
)
from smartbatt.pmbus.formats import DirectCoefficients, VoutMode, parse_vout_mode
from smartbatt.transports.base import Transport

#: highest page number (Linux pmbus.h ``PMBUS_PAGES`` = 32 "per PMBus specification").
MAX_PAGE = 31
#: PAGE value that addresses every page; valid for writes only (pmbus.md §1).
ALL_PAGES = 0xFF
#: PAGE command code (pmbus.md §1).
PAGE_CODE = 0x00
#: CAPABILITY bit 7: PEC supported (pmbus.md §3).
CAPABILITY_PEC = 0x80

#: typed helper → the table entry it reads; a test checks that they agree.
TELEMETRY_HELPERS: Mapping[str, str] = {
    "read_vin": "READ_VIN",
    "read_iin": "READ_IIN",
    "read_vout": "READ_VOUT",
    "read_iout": "READ_IOUT",
    "read_temperature_1": "READ_TEMPERATURE_1",
    "read_temperature_2": "READ_TEMPERATURE_2",
    "read_temperature_3": "READ_TEMPERATURE_3",
    "read_pout": "READ_POUT",
    "read_pin": "READ_PIN",
    "read_fan_speed_1": "READ_FAN_SPEED_1",
}


@dataclass(frozen=True)
class PMBusReading:
    """One command read: the raw register value, the decoded value, its unit and a display text."""

    #: the register value: an int for a byte or word, the data bytes of a block.
    raw: int | bytes
    #: float in ``unit`` for telemetry; int; str for MFR strings; decoded fields for bit registers.
    value: Value
    unit: str
    #: ``3.3 V``, ``0x8004 (VOUT, TEMPERATURE)``, ``smartbatt``.
    text: str
    #: the command's name and code.
    name: str = ""
    code: int = 0
    #: the page it was read on, when the caller chose one.
    page: int | None = None


@dataclass(frozen=True)
class StatusRegister:
    """One status register as read: its raw value and the bits set, or why it could not be read."""

    name: str
    raw: int | None
    flags: tuple[BitField, ...] = ()
    #: why the register could not be read (``not supported by the device``); empty if it was.
    error: str = ""

    @property
    def flag_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.flags)


@dataclass(frozen=True)
class PMBusStatus:
    """STATUS_WORD (or STATUS_BYTE on devices without it) and the detail registers it points to."""

    page: int | None
    summary: StatusRegister
    #: the detail registers whose summary bits are set, in the order of those bits.
    details: tuple[StatusRegister, ...]

    @property
    def ok(self) -> bool:
        """True when the summary register reads 0: no fault, no warning, output on."""
        return self.summary.raw == 0

    def flags(self) -> list[str]:
        """Every set bit as ``REGISTER.BIT`` (``STATUS_TEMPERATURE.OT_FAULT``)."""
        names = [f"{self.summary.name}.{n}" for n in self.summary.flag_names]
        for detail in self.details:
            names.extend(f"{detail.name}.{n}" for n in detail.flag_names)
        return names


@dataclass(frozen=True)
class PMBusIdentity:
    """What ``identify()`` found; None where the device does not support the command."""

    mfr_id: str | None
    mfr_model: str | None
    mfr_revision: str | None
    #: PMBUS_REVISION fields (``PART_I``: ``1.3``, ``PART_II``: ``1.3``).
    pmbus_revision: tuple[FieldValue, ...] | None
    #: CAPABILITY fields (PEC, MAX_BUS_SPEED, SMBALERT, NUMERIC_FORMAT, AVSBUS).
    capability: tuple[FieldValue, ...] | None
    capability_raw: int | None

    @property
    def pec_supported(self) -> bool | None:
        return None if self.capability_raw is None else bool(self.capability_raw & CAPABILITY_PEC)


@dataclass(frozen=True)
class DumpEntry:
    """One line of :meth:`PMBusDevice.dump`: the reading, or why there is none."""

    command: PMBusCommand
    reading: PMBusReading | None
    #: ``not supported`` or a decode error; empty when ``reading`` is set.
    error: str = ""


def is_unsupported(exc: SmartBattError) -> bool:
    """True for a NACK of the command byte: how a PMBus device refuses a command it lacks."""
    return isinstance(exc, NoAcknowledge) and exc.byte_index == 1


class PMBusDevice:
    """One PMBus device at one address.

    :param transport: an open transport; this object does not close it.
    :param address: 7-bit address (PMBus devices are not at the battery address 0x0B).
    :param pec: True/False to force PEC; None = use it when CAPABILITY says the device supports
        it (read once, without PEC, on first use).
    :param direct_coefficients: DIRECT coefficients by command name or code, for devices that
        report those commands in DIRECT format instead of LINEAR11 (from the datasheet).
    :param table: command table (the built-in PMBus table by default).
    :raises UnknownCommand: a key of ``direct_coefficients`` is not in the table.
    :raises ValueError: ``address`` is not a 7-bit address.
    """

    def __init__(
        self,
        transport: Transport,
        address: int,
        pec: bool | None = None,
        direct_coefficients: Mapping[str | int, DirectCoefficients] | None = None,
        *,
        table: CommandTable | None = None,
    ) -> None:
        if not 0 <= address <= 0x7F:
            raise ValueError(f"address 0x{address:X} is not a 7-bit address")
        self.transport = transport
        self.address = address
        self.table = table or load_table()
        self._pec = pec
        self._capability: int | None = None
        self._coefficients = {self.table.get(k).code: v for k, v in (direct_coefficients or {}).items()}
        #: the page the device is known to be on (None: never selected by us).
        self._page: int | None = None
        self._vout_modes: dict[int | None, VoutMode] = {}

    def __repr__(self) -> str:
        return f"PMBusDevice(address=0x{self.address:02X}, transport={self.transport.describe()!r})"

    # --- PEC -------------------------------------------------------------------------------------

    @property
    def pec(self) -> bool:
        """Whether transactions use PEC; decided from CAPABILITY on first use when not forced."""
        if self._pec is None:
            self._pec = self._detect_pec()
        return self._pec

    def _detect_pec(self) -> bool:
        command = self.table.get("CAPABILITY")
        try:
            raw = self.transport.read_byte(self.address, command.code, pec=False)
        except NoAcknowledge as exc:
            if is_unsupported(exc):
                return False  # no CAPABILITY: a PMBus 1.0 device; assume no PEC
            raise self._explain(exc, command) from None
        self._capability = raw
        return bool(raw & CAPABILITY_PEC)

    # --- pages -----------------------------------------------------------------------------------

    @property
    def page(self) -> int:
        """The PAGE register, read from the device. Setting it writes PAGE and reads it back.

        :raises RangeError: (set) not 0..31 or 0xFF.
        :raises VerifyError: (set) the device reads back another page.
        :raises NoAcknowledge: (set) the device refused the page (it has fewer pages).
        """
        value = self._read_data(self.table.get("PAGE"))[0]
        self._page = value
        return value

    @page.setter
    def page(self, value: int) -> None:
        self.select_page(value)

    def select_page(self, page: int) -> None:
        """Write PAGE and read it back to verify (see :attr:`page`)."""
        if isinstance(page, bool) or not isinstance(page, int) or not (0 <= page <= MAX_PAGE or page == ALL_PAGES):
            raise RangeError(f"page {page!r} is not 0..{MAX_PAGE} or 0xFF (all pages)", address=self.address)
        command = self.table.get("PAGE")
        self._page = None  # unknown until verified
        try:
            self.transport.write_byte(self.address, command.code, page, pec=self.pec)
        except NoAcknowledge as exc:
            if exc.byte_index == 2:
                exc.diagnosis = f"The device refused page {page}: it probably has fewer pages."
                raise
            raise self._explain(exc, command) from None
        back = self._read_data(command)[0]
        if back != page:
            raise VerifyError(
                f"PAGE reads back {back} after selecting page {page}", address=self.address, command=command.code
            )
        self._page = page

    def _ensure_page(self, page: int | None, *, reading: bool = True) -> None:
        if page is None:
            return
        if reading and page == ALL_PAGES:
            raise RangeError("PAGE 0xFF (all pages) is for writes only; read one page at a time", address=self.address)
        if page != self._page:
            self.select_page(page)

    # --- reads -----------------------------------------------------------------------------------

    def read(self, command: str | int, page: int | None = None) -> PMBusReading:
        """Read one command and decode it.

        :param command: name (any case), code, or code string (``0x8B``).
        :param page: select this page first (written only when it differs from the known page).
        :raises UnknownCommand: not in the table.
        :raises AccessDenied: the command cannot be read (write-only or send byte).
        :raises NoAcknowledge: the device refused it (``byte_index`` 1: not supported; the
            diagnosis says so), or nothing answers at the address.
        :raises DecodeError: the reply cannot be decoded (VOUT_MODE VID/relative, DIRECT without
            coefficients).
        :raises TransportError: any other bus failure (PEC, timeout, bus busy).
        """
        cmd = self.table.get(command)
        if not cmd.readable:
            raise AccessDenied(f"{cmd.name} cannot be read", address=self.address, command=cmd.code)
        self._ensure_page(page)
        mode = self.vout_mode() if cmd.format is DataFormat.LINEAR16 else None
        data = self._read_data(cmd)
        try:
            decoded = decode(cmd, data, table=self.table, vout_mode=mode, coefficients=self._coefficients.get(cmd.code))
        except SmartBattError as exc:
            exc.address = self.address if exc.address is None else exc.address
            exc.command = cmd.code if exc.command is None else exc.command
            raise
        return PMBusReading(
            raw=raw_int(cmd, data),
            value=decoded.value,
            unit=cmd.unit,
            text=decoded.text,
            name=cmd.name,
            code=cmd.code,
            page=page,
        )

    def read_value(self, command: str | int, page: int | None = None) -> float:
        """Read a numeric command; the value in the table's unit.

        :raises DecodeError: the command is not numeric. Plus everything :meth:`read` raises.
        """
        reading = self.read(command, page)
        if not isinstance(reading.value, float):
            raise DecodeError(f"{reading.name} is not a numeric command", address=self.address, command=reading.code)
        return reading.value

    def vout_mode(self, page: int | None = None) -> VoutMode:
        """VOUT_MODE of ``page`` (or the current page), read once per page and cached."""
        self._ensure_page(page)
        key = self._page
        cached = self._vout_modes.get(key)
        if cached is None:
            cached = parse_vout_mode(self._read_data(self.table.get("VOUT_MODE"))[0])
            self._vout_modes[key] = cached
        return cached

    def forget_vout_mode(self) -> None:
        """Drop the cached VOUT_MODE of every page (after writing VOUT_MODE)."""
        self._vout_modes.clear()

    def read_vin(self, page: int | None = None) -> float:
        """Input voltage, V (READ_VIN)."""
        return self.read_value("READ_VIN", page)

    def read_iin(self, page: int | None = None) -> float:
        """Input current, A (READ_IIN)."""
        return self.read_value("READ_IIN", page)

    def read_vout(self, page: int | None = None) -> float:
        """Output voltage, V (READ_VOUT in the page's VOUT_MODE format)."""
        return self.read_value("READ_VOUT", page)

    def read_iout(self, page: int | None = None) -> float:
        """Output current, A (READ_IOUT)."""
        return self.read_value("READ_IOUT", page)

    def read_temperature_1(self, page: int | None = None) -> float:
        """Temperature sensor 1, °C (READ_TEMPERATURE_1)."""
        return self.read_value("READ_TEMPERATURE_1", page)

    def read_temperature_2(self, page: int | None = None) -> float:
        """Temperature sensor 2, °C (READ_TEMPERATURE_2)."""
        return self.read_value("READ_TEMPERATURE_2", page)

    def read_temperature_3(self, page: int | None = None) -> float:
        """Temperature sensor 3, °C (READ_TEMPERATURE_3)."""
        return self.read_value("READ_TEMPERATURE_3", page)

    def read_pout(self, page: int | None = None) -> float:
        """Output power, W (READ_POUT)."""
        return self.read_value("READ_POUT", page)

    def read_pin(self, page: int | None = None) -> float:
        """Input power, W (READ_PIN)."""
        return self.read_value("READ_PIN", page)

    def read_fan_speed_1(self, page: int | None = None) -> float:
        """Fan 1 speed, rpm (READ_FAN_SPEED_1)."""
        return self.read_value("READ_FAN_SPEED_1", page)

    # --- status ----------------------------------------------------------------------------------

    def status(self, page: int | None = None) -> PMBusStatus:
        """STATUS_WORD decoded, plus every detail register whose summary bit is set.

        Falls back to STATUS_BYTE when the device does not support STATUS_WORD (as Linux does).
        A detail register the device does not support is reported with ``error`` set, not raised.
        """
        self._ensure_page(page)
        try:
            summary = self._status_register("STATUS_WORD")
        except NoAcknowledge as exc:
            if not is_unsupported(exc):
                raise
            summary = self._status_register("STATUS_BYTE")
        assert summary.raw is not None  # a summary read either succeeds or raises
        details: list[StatusRegister] = []
        for register in _detail_registers(summary.flags):
            try:
                details.append(self._status_register(register))
            except NoAcknowledge as exc:
                if not is_unsupported(exc):
                    raise
                details.append(StatusRegister(register, None, error="not supported by the device"))
        return PMBusStatus(page=page, summary=summary, details=tuple(details))

    def _status_register(self, name: str) -> StatusRegister:
        cmd = self.table.get(name)
        raw = int.from_bytes(self._read_data(cmd), "little")
        flags = self.table.bitmap(name).set_flags(raw) if name in self.table.bitmaps else ()
        return StatusRegister(name, raw, flags)

    def clear_faults(self, page: int | None = None) -> None:
        """Send CLEAR_FAULTS: clears the latched STATUS bits (conditions still present latch again).

        Only ever called on the user's request. ``page`` may be 0xFF (all pages); the page that
        was selected before is selected again afterwards, since reads are invalid at 0xFF.
        """
        previous = self.page if page == ALL_PAGES else None
        self._ensure_page(page, reading=False)
        command = self.table.get("CLEAR_FAULTS")
        try:
            self.transport.send_byte(self.address, command.code, pec=self.pec)
        except NoAcknowledge as exc:
            raise self._explain(exc, command) from None
        if previous is not None:
            # PAGE = 0xFF makes every later read invalid: go back to the page selected before
            self.select_page(0 if previous == ALL_PAGES else previous)

    # --- identity and dump -----------------------------------------------------------------------

    def identify(self) -> PMBusIdentity:
        """MFR_ID, MFR_MODEL, MFR_REVISION, PMBUS_REVISION and CAPABILITY, decoded.

        Commands the device does not support come back as None (the device flags them in
        STATUS_CML, as it does for any unsupported command).
        """
        mfr_id = self._optional("MFR_ID")
        model = self._optional("MFR_MODEL")
        revision = self._optional("MFR_REVISION")
        pmbus_revision = self._optional("PMBUS_REVISION")
        capability = self._optional("CAPABILITY")
        if capability is not None and isinstance(capability.raw, int):
            self._capability = capability.raw
        return PMBusIdentity(
            mfr_id=_text(mfr_id),
            mfr_model=_text(model),
            mfr_revision=_text(revision),
            pmbus_revision=_fields(pmbus_revision),
            capability=_fields(capability),
            capability_raw=capability.raw if capability is not None and isinstance(capability.raw, int) else None,
        )

    def _optional(self, name: str) -> PMBusReading | None:
        try:
            return self.read(name)
        except NoAcknowledge as exc:
            if is_unsupported(exc):
                return None
            raise

    def dump(self, page: int | None = None) -> list[DumpEntry]:
        """Read every readable command of the table on ``page``.

        Unsupported commands and undecodable replies become entries with ``error`` set; any
        other bus error (nothing at the address, timeout, bus stuck, PEC) aborts the dump.
        Note that the device flags each unsupported command in STATUS_CML.
        """
        self._ensure_page(page)
        return list(self._dump_entries(page))

    def _dump_entries(self, page: int | None) -> Iterator[DumpEntry]:
        for command in self.table:
            if not command.readable:
                continue
            try:
                yield DumpEntry(command, self.read(command.code, page))
            except NoAcknowledge as exc:
                if not is_unsupported(exc):
                    raise
                yield DumpEntry(command, None, "not supported")
            except DecodeError as exc:
                yield DumpEntry(command, None, exc.message)

    # --- wire ------------------------------------------------------------------------------------

    def _read_data(self, command: PMBusCommand) -> bytes:
        """The data bytes of a read of ``command`` (byte, word little-endian, or block)."""
        pec = self.pec
        try:
            if command.kind is WireKind.BYTE:
                return bytes((self.transport.read_byte(self.address, command.code, pec=pec),))
            if command.kind is WireKind.WORD:
                return self.transport.read_word(self.address, command.code, pec=pec).to_bytes(2, "little")
            return self.transport.read_block(self.address, command.code, pec=pec)
        except NoAcknowledge as exc:
            if exc.byte_index == 1 and self._page is None and command.code != PAGE_CODE and self._page_is_all():
                raise RangeError(
                    f"cannot read {command.name}: the device's PAGE is 0xFF (all pages), which is valid for "
                    "writes only; select a page first",
                    address=self.address,
                    command=command.code,
                ) from exc
            raise self._explain(exc, command) from None

    def _page_is_all(self) -> bool:
        """After a refused read on an unknown page: is the device sitting on PAGE 0xFF (left there
        by a group write)? Learns the page, so this costs one read per session at most."""
        try:
            value = self.transport.read_byte(self.address, PAGE_CODE, pec=self.pec)
        except SmartBattError:
            return False
        if value == ALL_PAGES:
            return True
        self._page = value
        return False

    def _explain(self, exc: NoAcknowledge, command: PMBusCommand) -> NoAcknowledge:
        """Add what a NACK at this position means for a PMBus device."""
        if exc.byte_index == 0:
            exc.diagnosis = (
                f"Nothing answered at address 0x{self.address:02X}: check the address (PMBus devices are "
                "usually strapped by resistors), power and wiring."
            )
        elif exc.byte_index == 1:
            exc.diagnosis = (
                f"The device does not support {command.name} (0x{command.code:02X}): it refused the command "
                "code. PMBus devices flag this in STATUS_CML (invalid command); clear_faults() clears it."
            )
        elif not exc.diagnosis:
            exc.diagnosis = f"The device refused the data of {command.name} (invalid data or PEC)."
        exc.address = self.address
        exc.command = command.code
        return exc


def _detail_registers(flags: tuple[BitField, ...]) -> list[str]:
    seen: list[str] = []
    for f in flags:
        for register in f.detail:
            if register not in seen:
                seen.append(register)
    return seen


def _text(reading: PMBusReading | None) -> str | None:
    return None if reading is None else str(reading.value)


def _fields(reading: PMBusReading | None) -> tuple[FieldValue, ...] | None:
    if reading is None or not isinstance(reading.value, tuple):
        return None
    return reading.value
