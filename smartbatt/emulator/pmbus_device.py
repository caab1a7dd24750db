"""An emulated PMBus device: a two-rail point-of-load converter (12 V in; 1.0 V and 3.3 V out).

It answers the core PMBus read commands the way a real converter does (facts from
../shared/reference/pmbus.md; PMBus Part II as cited there):

* telemetry in LINEAR11 and the output voltage in LINEAR16 with a per-page VOUT_MODE (page 0:
  0x17, exponent -9; page 1: 0x13, exponent -13 — two different modes so per-page caching is
  exercised);
* PAGE selects the rail; 0xFF selects all pages for writes, and reading anything but PAGE with
  PAGE = 0xFF is invalid (pmbus.md §1 notes, TI UCD90320);
* STATUS_WORD/STATUS_BYTE are summaries computed from the latched detail registers
  (STATUS_VOUT/IOUT/INPUT/TEMPERATURE/CML/OTHER/MFR_SPECIFIC), as pmbus.md §5 describes;
  detail bits are write-1-to-clear and CLEAR_FAULTS clears every page (pmbus.md §2; QEMU
  ``hw/i2c/pmbus_device.c`` ``pmbus_clear_faults``); a condition that is still present latches
  again at once, as QEMU's model and real devices do;
* an unsupported command is NACKed at the command byte and sets STATUS_CML "invalid or unsupported
  command" (TI TPS40425 datasheet STATUS_CML: "results in a NACK'd command and the reporting of
  an IVC fault"; QEMU ``pmbus_cml_error``); a write with a bad PEC sets "PEC failed", a write with
  a bad length or a refused value sets "invalid data"; STATUS_CML is one register for the device;
* CAPABILITY 0xB0: PEC supported, 400 kHz, SMBALERT# (pmbus.md §3); PMBUS_REVISION 0x33 (1.3).

Faults come two ways: :meth:`EmulatedPMBusDevice.inject` latches any named status bit (names from
the bit maps in ``smartbatt/pmbus/pmbus_commands.toml``), and :meth:`set_reading` changes a
measured quantity, which latches the warnings and faults whose limits it crosses (like QEMU's
``pmbus_check_limits``). Fault *responses* (shutdown, retry) are not modelled: the output stays
as OPERATION commands it.

Devices differ in what they implement, so a device can be built without some commands
(``unsupported``), with telemetry in DIRECT format (``direct``, as hot-swap controllers such as the
ADM1272 report it; coefficients from the datasheet) or with a DIRECT VOUT_MODE
(``vout_coefficients``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from smartbatt.emulator.target import EmulatedBus, SMBusDevice, TargetNack
from smartbatt.pmbus import formats
from smartbatt.pmbus.commands import CommandTable, load_table

#: a common PMBus address for the emulated converter (any free 7-bit address works).
DEFAULT_PMBUS_ADDRESS = 0x40
#: PAGE value that addresses every page (writes only).
ALL_PAGES = 0xFF

# command codes used here (pmbus.md §1)
PAGE, OPERATION, CLEAR_FAULTS, CAPABILITY, VOUT_MODE, VOUT_COMMAND = 0x00, 0x01, 0x03, 0x19, 0x20, 0x21
STATUS_BYTE, STATUS_WORD, STATUS_VOUT, STATUS_IOUT = 0x78, 0x79, 0x7A, 0x7B
STATUS_INPUT, STATUS_TEMPERATURE, STATUS_CML, STATUS_OTHER, STATUS_MFR_SPECIFIC = 0x7C, 0x7D, 0x7E, 0x7F, 0x80

# STATUS_CML bits (pmbus.md §5)
CML_INVALID_COMMAND, CML_INVALID_DATA, CML_PEC_FAILED = 0x80, 0x40, 0x20

#: detail registers of a rail, by command code (STATUS_CML is device-wide, kept apart).
DETAIL_REGISTERS = {
    STATUS_VOUT: "status_vout",
    STATUS_IOUT: "status_iout",
    STATUS_INPUT: "status_input",
    STATUS_TEMPERATURE: "status_temperature",
    STATUS_OTHER: "status_other",
    STATUS_MFR_SPECIFIC: "status_mfr_specific",
}

#: conversion efficiency used to derive the input power from the output power.
EFFICIENCY = 0.9


@dataclass
class Rail:
    """One output (one PAGE): set points, measurements, limits and latched status."""

    name: str
    #: VOUT_MODE byte: linear, exponent in bits 4:0.
    vout_mode: int
    vout_command: float
    iout: float
    temperature_1: float
    temperature_2: float
    vout_ov_fault_limit: float
    vout_ov_warn_limit: float
    vout_uv_warn_limit: float
    vout_uv_fault_limit: float
    iout_oc_fault_limit: float
    iout_oc_warn_limit: float
    ot_fault_limit: float = 125.0
    ot_warn_limit: float = 110.0
    #: switching frequency, kHz.
    frequency: float = 500.0
    #: ratings (MFR_VOUT_MAX, MFR_IOUT_MAX).
    rated_vout_max: float = 5.5
    rated_iout_max: float = 25.0
    #: OPERATION byte; 0x80 = on (pmbus.md §3).
    operation: int = 0x80
    #: measured output voltage; None = equal to VOUT_COMMAND while on.
    vout_measured: float | None = None
    status_vout: int = 0
    status_iout: int = 0
    status_input: int = 0
    status_temperature: int = 0
    status_other: int = 0
    status_mfr_specific: int = 0

    @property
    def on(self) -> bool:
        return bool(self.operation & 0x80)

    @property
    def vout(self) -> float:
        if not self.on:
            return 0.0
        return self.vout_command if self.vout_measured is None else self.vout_measured

    @property
    def output_current(self) -> float:
        return self.iout if self.on else 0.0

    @property
    def pout(self) -> float:
        return self.vout * self.output_current

    @property
    def exponent(self) -> int:
        return formats.parse_vout_mode(self.vout_mode).exponent


def default_rails() -> list[Rail]:
    """Page 0: 1.0 V core rail at 12.5 A; page 1: 3.3 V I/O rail at 4 A; 45.25 / 41 °C."""
    return [
        Rail(
            name="VDD_CORE",
            vout_mode=0x17,
            vout_command=1.0,
            iout=12.5,
            temperature_1=45.25,
            temperature_2=38.5,
            vout_ov_fault_limit=1.15,
            vout_ov_warn_limit=1.10,
            vout_uv_warn_limit=0.90,
            vout_uv_fault_limit=0.85,
            iout_oc_fault_limit=30.0,
            iout_oc_warn_limit=25.0,
            rated_vout_max=1.5,
            rated_iout_max=25.0,
        ),
        Rail(
            name="VDD_3V3",
            vout_mode=0x13,
            vout_command=3.3,
            iout=4.0,
            temperature_1=41.0,
            temperature_2=38.5,
            vout_ov_fault_limit=3.8,
            vout_ov_warn_limit=3.6,
            vout_uv_warn_limit=3.0,
            vout_uv_fault_limit=2.9,
            iout_oc_fault_limit=12.0,
            iout_oc_warn_limit=10.0,
            rated_vout_max=5.5,
            rated_iout_max=10.0,
        ),
    ]


@dataclass
class InputSide:
    """The shared input: every page reports the same VIN, IIN and PIN."""

    vin: float = 12.0
    vin_uv_warn_limit: float = 10.0
    vin_uv_fault_limit: float = 9.0
    vin_ov_warn_limit: float = 14.0
    vin_ov_fault_limit: float = 15.0


@dataclass
class Identity:
    """CAPABILITY, PMBUS_REVISION and the MFR_* strings."""

    #: PEC supported, 400 kHz, SMBALERT# (pmbus.md §3).
    capability: int = 0xB0
    #: Part I 1.3, Part II 1.3 (pmbus.md §1).
    pmbus_revision: int = 0x33
    mfr_id: bytes = b"smartbatt"
    mfr_model: bytes = b"EMU-POL2"
    mfr_revision: bytes = b"A1"
    mfr_serial: bytes = b"PM0001"
    extra_blocks: dict[int, bytes] = field(default_factory=dict)


class EmulatedPMBusDevice(SMBusDevice):
    """A two-page PMBus point-of-load converter at ``address`` (see the module docstring)."""

    def __init__(
        self,
        address: int = DEFAULT_PMBUS_ADDRESS,
        rails: list[Rail] | None = None,
        *,
        identity: Identity | None = None,
        unsupported: Iterable[int] = (),
        direct: Mapping[int, formats.DirectCoefficients] | None = None,
        vout_coefficients: formats.DirectCoefficients | None = None,
        table: CommandTable | None = None,
    ) -> None:
        super().__init__(address)
        self.rails = rails if rails is not None else default_rails()
        if not 1 <= len(self.rails) <= 32:
            raise ValueError("a PMBus device has 1..32 pages")
        #: command codes this device does not implement (NACK + CML), besides those it never had.
        self.unsupported = frozenset(unsupported)
        #: telemetry reported in DIRECT format, with its coefficients, instead of LINEAR11.
        self.direct = dict(direct or {})
        #: coefficients of the VOUT-format commands for a page whose VOUT_MODE selects DIRECT.
        self.vout_coefficients = vout_coefficients
        for rail in self.rails:
            self._check_vout_mode(rail)
        self.input = InputSide()
        self.identity = identity or Identity()
        self.table = table or load_table()
        #: PAGE register.
        self.page = 0
        #: STATUS_CML, shared by every page.
        self.status_cml = 0
        #: number of CLEAR_FAULTS received (tests check that nothing clears faults behind the user's back).
        self.clear_faults_count = 0
        self._readers: dict[int, Callable[[int], bytes]] = self._build_readers()

    def _check_vout_mode(self, rail: Rail) -> None:
        mode = formats.parse_vout_mode(rail.vout_mode)
        if mode.relative or mode.kind not in (formats.VoutModeKind.LINEAR, formats.VoutModeKind.DIRECT):
            # VID tables and relative formats are device specific: nothing plausible to emulate
            raise ValueError(f"{rail.name}: VOUT_MODE 0x{rail.vout_mode:02X} ({mode.describe()}) is not emulated")
        if mode.kind is formats.VoutModeKind.DIRECT and self.vout_coefficients is None:
            raise ValueError(f"{rail.name}: VOUT_MODE selects DIRECT; give vout_coefficients")

    # --- fault injection and physics -----------------------------------------------------------

    def inject(self, register: str, bit: str, page: int = 0) -> None:
        """Latch the status bit ``bit`` of ``register`` (names as in the table's bit maps), e.g.
        ``inject("STATUS_TEMPERATURE", "OT_FAULT", page=1)``.

        :raises UnknownCommand: no such register or bit.
        :raises ValueError: the register is not a detail status register, or no such page.
        """
        mask = self.table.bitmap(register).field(bit).mask
        code = self.table.get(register).code
        if code == STATUS_CML:
            self.status_cml |= mask
            return
        attribute = DETAIL_REGISTERS.get(code)
        if attribute is None:
            if code in (STATUS_BYTE, STATUS_WORD):
                raise ValueError(f"{register} is computed from the detail registers; inject into one of those")
            raise ValueError(f"{register} is not implemented by this device")
        rail = self._rail(page)
        setattr(rail, attribute, getattr(rail, attribute) | mask)

    def set_reading(
        self,
        page: int = 0,
        *,
        vout: float | None = None,
        iout: float | None = None,
        temperature_1: float | None = None,
        temperature_2: float | None = None,
        vin: float | None = None,
    ) -> None:
        """Change measured quantities; warnings and faults whose limits are crossed latch."""
        rail = self._rail(page)
        if vout is not None:
            rail.vout_measured = vout
        if iout is not None:
            rail.iout = iout
        if temperature_1 is not None:
            rail.temperature_1 = temperature_1
        if temperature_2 is not None:
            rail.temperature_2 = temperature_2
        if vin is not None:
            self.input.vin = vin
        self.check_limits()

    def check_limits(self) -> None:
        """Latch every warning and fault whose limit is crossed now (bits only ever get set)."""
        for rail in self.rails:
            self._check_rail(rail)

    def _check_rail(self, rail: Rail) -> None:
        if rail.on:
            v = rail.vout
            rail.status_vout |= (
                (0x80 if v > rail.vout_ov_fault_limit else 0)
                | (0x40 if v > rail.vout_ov_warn_limit else 0)
                | (0x20 if v < rail.vout_uv_warn_limit else 0)
                | (0x10 if v < rail.vout_uv_fault_limit else 0)
            )
            i = rail.output_current
            rail.status_iout |= (0x80 if i > rail.iout_oc_fault_limit else 0) | (
                0x20 if i > rail.iout_oc_warn_limit else 0
            )
        t = rail.temperature_1
        rail.status_temperature |= (0x80 if t > rail.ot_fault_limit else 0) | (0x40 if t > rail.ot_warn_limit else 0)
        vin = self.input
        rail.status_input |= (
            (0x80 if vin.vin > vin.vin_ov_fault_limit else 0)
            | (0x40 if vin.vin > vin.vin_ov_warn_limit else 0)
            | (0x20 if vin.vin < vin.vin_uv_warn_limit else 0)
            | (0x10 if vin.vin < vin.vin_uv_fault_limit else 0)
        )

    def clear_faults(self) -> None:
        """What CLEAR_FAULTS does: clear every latched bit on every page, then re-latch the
        conditions still present."""
        for rail in self.rails:
            for attribute in DETAIL_REGISTERS.values():
                setattr(rail, attribute, 0)
        self.status_cml = 0
        self.check_limits()

    def status_word(self, page: int) -> int:
        """STATUS_WORD of ``page``, computed from its detail registers (pmbus.md §5)."""
        rail = self._rail(page)
        word = 0
        if rail.status_vout:
            word |= 1 << 15
        if rail.status_iout:
            word |= 1 << 14
        if rail.status_input:
            word |= 1 << 13
        if rail.status_mfr_specific:
            word |= 1 << 12
        if not rail.on or rail.status_vout & 0x90:  # off, or an OV/UV fault: power not good
            word |= 1 << 11
        if rail.status_other:
            word |= 1 << 9
        if not rail.on:
            word |= 1 << 6
        if rail.status_vout & 0x80:
            word |= 1 << 5
        if rail.status_iout & 0x80:
            word |= 1 << 4
        if rail.status_input & 0x10:
            word |= 1 << 3
        if rail.status_temperature:
            word |= 1 << 2
        if self.status_cml:
            word |= 1 << 1
        # NONE_OF_THE_ABOVE: a fault or warning that bits 7:1 do not show
        if (
            rail.status_vout & ~0x80
            or rail.status_iout & ~0x80
            or rail.status_input & ~0x10
            or rail.status_mfr_specific
            or rail.status_other
        ):
            word |= 1
        return word

    # --- SMBusDevice -----------------------------------------------------------------------------

    def _rail(self, page: int) -> Rail:
        if not 0 <= page < len(self.rails):
            raise ValueError(f"page {page} does not exist (pages 0..{len(self.rails) - 1})")
        return self.rails[page]

    def _refuse(self, cml_bit: int, byte_index: int, reason: str) -> TargetNack:
        self.status_cml |= cml_bit
        return TargetNack(byte_index, reason)

    def read_command(self, command: int, written: bytes) -> bytes:
        if command == PAGE:
            return bytes((self.page,))
        reader = self._readers.get(command)
        if reader is None:
            raise self._refuse(CML_INVALID_COMMAND, 1, f"command 0x{command:02X} not supported")
        if self.page == ALL_PAGES:
            raise self._refuse(CML_INVALID_COMMAND, 1, "reads are invalid while PAGE = 0xFF")
        return reader(self.page)

    def write_shape(self, command: int) -> int | None:
        if command == CLEAR_FAULTS:
            return 0
        if command in (PAGE, OPERATION) or command in DETAIL_REGISTERS or command == STATUS_CML:
            return 1
        if command == VOUT_COMMAND:
            return 2
        return None

    def _apply_write(self, address: int, write: bytes) -> None:
        # the base class checks the shape and the PEC and NACKs; a PMBus device also records why
        # in STATUS_CML (pmbus.md §5), which is what this wrapper adds
        try:
            super()._apply_write(address, write)
        except TargetNack as exc:
            if exc.reason == "PEC mismatch":
                self.status_cml |= CML_PEC_FAILED
            elif "not writable" in exc.reason:
                self.status_cml |= CML_INVALID_COMMAND
            else:
                self.status_cml |= CML_INVALID_DATA
            raise

    def write_command(self, command: int, data: bytes) -> None:
        if command == CLEAR_FAULTS:
            self.clear_faults_count += 1
            self.clear_faults()
            return
        if command == PAGE:
            self._write_page(data[0])
            return
        if command == STATUS_CML:
            self.status_cml &= ~data[0]
            return
        for rail in self._selected_rails():
            if command == OPERATION:
                rail.operation = data[0]
            elif command == VOUT_COMMAND:
                rail.vout_command = formats.decode_linear16(data[0] | (data[1] << 8), rail.exponent)
                rail.vout_measured = None
            else:  # a detail status register: write 1 to clear
                attribute = DETAIL_REGISTERS[command]
                setattr(rail, attribute, getattr(rail, attribute) & ~data[0])
        self.check_limits()

    def _write_page(self, value: int) -> None:
        if value != ALL_PAGES and value >= len(self.rails):
            raise self._refuse(CML_INVALID_DATA, 2, f"page {value} does not exist")
        self.page = value

    def _selected_rails(self) -> list[Rail]:
        return list(self.rails) if self.page == ALL_PAGES else [self.rails[self.page]]

    # --- replies ---------------------------------------------------------------------------------

    def _build_readers(self) -> dict[int, Callable[[int], bytes]]:
        """Reply builders by command code; each takes the page number."""
        rails = self.rails

        def byte(get: Callable[[int], int]) -> Callable[[int], bytes]:
            return lambda page: bytes((get(page),))

        def block(data: bytes) -> Callable[[int], bytes]:
            return lambda page: bytes((len(data),)) + data

        def detail(attribute: str) -> Callable[[int], bytes]:
            return lambda page: bytes((getattr(rails[page], attribute),))

        readers: dict[int, Callable[[int], bytes]] = {
            OPERATION: byte(lambda page: rails[page].operation),
            CAPABILITY: byte(lambda page: self.identity.capability),
            VOUT_MODE: byte(lambda page: rails[page].vout_mode),
            STATUS_BYTE: byte(lambda page: self.status_word(page) & 0xFF),
            STATUS_WORD: lambda page: _word(self.status_word(page)),
            STATUS_CML: byte(lambda page: self.status_cml),
            0x98: byte(lambda page: self.identity.pmbus_revision),
            0x99: block(self.identity.mfr_id),
            0x9A: block(self.identity.mfr_model),
            0x9B: block(self.identity.mfr_revision),
            0x9E: block(self.identity.mfr_serial),
        }
        for code, attribute in DETAIL_REGISTERS.items():
            readers[code] = detail(attribute)
        for code, get in self._telemetry().items():
            readers[code] = self._numeric_reader(code, get)
        for code, get in self._vout_values().items():
            readers[code] = self._vout_reader(get)
        for code, data in self.identity.extra_blocks.items():
            readers[code] = block(data)
        return {code: reader for code, reader in readers.items() if code not in self.unsupported}

    def _telemetry(self) -> dict[int, Callable[[Rail], float]]:
        """LINEAR11 (or DIRECT) quantities by command code."""
        source = self.input
        return {
            0x46: lambda rail: rail.iout_oc_fault_limit,
            0x4A: lambda rail: rail.iout_oc_warn_limit,
            0x4F: lambda rail: rail.ot_fault_limit,
            0x51: lambda rail: rail.ot_warn_limit,
            0x55: lambda rail: source.vin_ov_fault_limit,
            0x57: lambda rail: source.vin_ov_warn_limit,
            0x58: lambda rail: source.vin_uv_warn_limit,
            0x59: lambda rail: source.vin_uv_fault_limit,
            0x88: lambda rail: source.vin,
            0x89: lambda rail: self._iin(),
            0x8C: lambda rail: rail.output_current,
            0x8D: lambda rail: rail.temperature_1,
            0x8E: lambda rail: rail.temperature_2,
            0x94: self._duty_cycle,
            0x95: lambda rail: rail.frequency,
            0x96: lambda rail: rail.pout,
            0x97: lambda rail: self._pin(),
            0xA0: lambda rail: source.vin_uv_fault_limit,
            0xA1: lambda rail: source.vin_ov_fault_limit,
            0xA6: lambda rail: rail.rated_iout_max,
        }

    @staticmethod
    def _vout_values() -> dict[int, Callable[[Rail], float]]:
        """Output-voltage quantities (VOUT_MODE format) by command code."""
        return {
            VOUT_COMMAND: lambda rail: rail.vout_command,
            0x40: lambda rail: rail.vout_ov_fault_limit,
            0x42: lambda rail: rail.vout_ov_warn_limit,
            0x43: lambda rail: rail.vout_uv_warn_limit,
            0x44: lambda rail: rail.vout_uv_fault_limit,
            0x8B: lambda rail: rail.vout,
            0xA5: lambda rail: rail.rated_vout_max,
        }

    def _numeric_reader(self, code: int, get: Callable[[Rail], float]) -> Callable[[int], bytes]:
        coefficients = self.direct.get(code)
        if coefficients is None:
            return lambda page: _word(formats.encode_linear11(get(self.rails[page])))
        return lambda page: _word(formats.encode_direct(get(self.rails[page]), coefficients))

    def _vout_reader(self, get: Callable[[Rail], float]) -> Callable[[int], bytes]:
        def reply(page: int) -> bytes:
            rail = self.rails[page]
            mode = formats.parse_vout_mode(rail.vout_mode)
            return _word(formats.encode_vout(get(rail), mode, self.vout_coefficients))

        return reply

    def _duty_cycle(self, rail: Rail) -> float:
        # an ideal buck converter: duty cycle = VOUT / VIN, in percent
        return 100.0 * rail.vout / self.input.vin if rail.on and self.input.vin > 0 else 0.0

    def _iin(self) -> float:
        return self._pin() / self.input.vin if self.input.vin > 0 else 0.0

    def _pin(self) -> float:
        return sum(rail.pout for rail in self.rails) / EFFICIENCY


def _word(value: int) -> bytes:
    return bytes((value & 0xFF, value >> 8))


def pmbus_device(address: int = DEFAULT_PMBUS_ADDRESS) -> EmulatedPMBusDevice:
    """A fresh emulated converter at ``address``."""
    return EmulatedPMBusDevice(address)


def pmbus_bus(address: int = DEFAULT_PMBUS_ADDRESS) -> EmulatedBus:
    """A bus segment holding one emulated PMBus converter at ``address`` (nothing else).

    The device is reachable as ``bus.devices[address]`` for fault injection.
    """
    return EmulatedBus([pmbus_device(address)])
