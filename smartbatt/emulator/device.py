"""The emulated smart battery as an SMBus device: a TI bq40z50-like gauge at 0x0B over a simulated pack.

Two layers:

* :class:`VirtualPack` owns the physics (:class:`~smartbatt.emulator.pack.Pack`), the load, the clock,
  the gauge model, the protections and the pack faults. It advances lazily: every transaction first
  brings the simulation up to ``clock.now()`` in fixed steps (1 s by default — TI gauges refresh most
  SBS values once a second), so an idle host costs nothing and a speed-0 clock only moves through
  :meth:`VirtualPack.advance`. Everything is seeded: one seed gives one register trace.
* :class:`EmulatedGauge` is the :class:`~smartbatt.emulator.target.SMBusDevice`: SBS 1.1 commands
  0x00–0x23 (sbs.md §1), and for the bq40z50 profile the cell voltages 0x3C–0x3F, ManufacturerAccess
  (0x00) with the security key sequences, ManufacturerData (0x23), ManufacturerBlockAccess (0x44), the
  status blocks 0x50–0x57 and DAStatus1/2 (0x71/0x72) with the layouts of ti_gauges.md §3–§6.

Security (ti_gauges.md §6; TI SLUUAQ3A security pages): a gauge starts SEALED. Unseal = two word
writes of the unseal key to ManufacturerAccess within 4 s (defaults 0x0414, 0x3672); FULL ACCESS =
the same with the full-access key from UNSEALED (0xFFFF, 0xFFFF); MAC 0x0030 seals; a reset seals.
The two key words must be *consecutive*: TI requires them "sent consecutively, with no other data
being written" in between (BQ34Z100-R2 TRM SLUUCO5A security section); the emulator is stricter and
treats any other transaction to the gauge between the two words as breaking the sequence (this is
why :meth:`Transport.exclusive` exists). What a sealed bq40z50 does on the wire when asked for an
unsealed-only command is not documented in the sources at hand (UNCONFIRMED): the emulator NACKs the
command byte of an unsealed-only SBS command (0x50–0x57, 0x71, 0x72: TI tables list them "—" in the
SEALED column) and accepts-but-ignores an unsealed-only MAC subcommand (its result buffer is empty).
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from smartbatt.emulator.clock import SimClock
from smartbatt.emulator.gauge import (
    ZERO_C_DECI_K,
    Gauge,
    GaugeParameters,
    OcvTable,
    battery_status,
)
from smartbatt.emulator.load import Load, Rest
from smartbatt.emulator.pack import Pack, PackConfig
from smartbatt.emulator.pack_faults import PackFaults
from smartbatt.emulator.protections import ProtectionParameters, ProtectionState
from smartbatt.emulator.target import BLOCK, SMBusDevice, TargetNack

#: SBS address of a smart battery (sbs.md §6).
BATTERY_ADDRESS = 0x0B
#: unseal / full-access key words must follow each other within this time, s (TI SLUUAQ3A).
KEY_WINDOW_S = 4.0
#: balancing decisions are re-evaluated this often, s (chosen).
BALANCE_INTERVAL_S = 20.0
#: start bleeding a cell this far above the lowest, stop at the lower figure, mV (chosen).
BALANCE_START_MV = 3.0
BALANCE_STOP_MV = 1.0
#: no balancing below this lowest-cell voltage, mV (chosen).
BALANCE_MIN_CELL_MV = 3500.0


class Security(enum.IntEnum):
    """Security mode, valued as OperationStatus SEC[1:0] (ti_gauges.md §5.3: 01 FA, 10 US, 11 SE)."""

    FULL_ACCESS = 1
    UNSEALED = 2
    SEALED = 3


@dataclass(frozen=True)
class SecurityKeys:
    """Unseal and full-access keys, each two words (TI defaults: SLUUAQ3A SecurityKeys page)."""

    unseal: tuple[int, int] = (0x0414, 0x3672)
    full_access: tuple[int, int] = (0xFFFF, 0xFFFF)


# ------------------------------------------------------------------------------------------------
# the simulated pack
# ------------------------------------------------------------------------------------------------


class VirtualPack:
    """Physics + load + clock + gauge + protections + faults, advanced lazily and deterministically.

    :param config: the pack.
    :param load: requested pack current source; :class:`~smartbatt.emulator.load.Rest` by default.
    :param clock: simulated clock; ``SimClock(None)`` (time moves only by :meth:`advance`) by default.
    :param gauge_params: the gauge configuration; derived from ``config`` by default.
    :param protection_params: protection thresholds; TI defaults by default.
    :param faults: pack and sensor faults.
    :param step_s: simulation step, s (0 < step ≤ 1).
    """

    def __init__(
        self,
        config: PackConfig,
        *,
        load: Load | None = None,
        clock: SimClock | None = None,
        gauge_params: GaugeParameters | None = None,
        protection_params: ProtectionParameters | None = None,
        faults: PackFaults | None = None,
        step_s: float = 1.0,
    ) -> None:
        if not 0 < step_s <= 1.0:
            raise ValueError("step_s must be within (0, 1] s")
        self.pack = Pack(config)
        self.load: Load = load or Rest()
        self.clock = clock or SimClock(None)
        self.step_s = step_s
        self.faults = faults or PackFaults()
        self.faults.attach(self.pack)
        capacity_mah = round(config.cell_capacity_ah * config.parallel * 1000)
        params = gauge_params or GaugeParameters.for_pack(capacity_mah, config.series)
        chem = self.pack.chemistry
        soc_grid = np.linspace(0.0, 1.0, 101)
        table = OcvTable(soc_grid.tolist(), chem.ocv(soc_grid, 25.0).tolist())
        self.gauge = Gauge(params, table, seed=config.seed, faults=self.faults, series=config.series)
        self.protections = ProtectionState(protection_params or ProtectionParameters())
        #: extra current sources (a charger at 0x09), A, SBS sign; summed with the load.
        self.sources: list[Callable[[float, Pack], float]] = []
        #: callbacks run after every step (the device's reset timer, recorders).
        self.observers: list[Callable[[VirtualPack], None]] = []
        self.time_s = 0.0
        self._origin_s = self.clock.now()
        self._balance_timer_s = 0.0
        self.requested_a = 0.0
        self.gauge.initialize(self.pack, settled=True)
        self.gauge.update_ranges()

    # --- time ---------------------------------------------------------------------------------

    def now(self) -> float:
        """Simulated time since this pack was created, s (the clock's time)."""
        return self.clock.now() - self._origin_s

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds`` and run the simulation up to it (fast mode, tests).

        :raises ValueError: for a negative or non-finite ``seconds``.
        """
        self.clock.advance(seconds)
        self.sync()

    def sync(self) -> None:
        """Run whole steps up to :meth:`now` (called before every transaction)."""
        target = self.now()
        while self.time_s + self.step_s <= target + 1e-9:
            self._step(self.step_s)

    def run_until(self, condition: Callable[[VirtualPack], bool], *, limit_s: float) -> float:
        """Advance step by step until ``condition(self)`` holds; returns the simulated time it took.

        :raises TimeoutError: if it does not hold within ``limit_s`` simulated seconds.
        """
        start = self.time_s
        while not condition(self):
            if self.time_s - start >= limit_s:
                raise TimeoutError(f"condition not reached within {limit_s:g} simulated seconds")
            self.advance(self.step_s)
        return self.time_s - start

    # --- the step -----------------------------------------------------------------------------

    def charging_request(self) -> tuple[int, int]:
        """(ChargingVoltage mV, ChargingCurrent mA) the gauge requests now."""
        return self.gauge.charging_request(charge_disabled=self.protections.charge_disabled)

    def _step(self, dt_s: float) -> None:
        t = self.time_s
        self.faults.step(dt_s)
        set_request = getattr(self.load, "set_request", None)
        if callable(set_request):  # a scenario charger follows the gauge's request, as a smart charger does
            voltage_mv, current_ma = self.charging_request()
            set_request(current_ma / 1000.0, voltage_mv / 1000.0)
        request = self.load.current(t, self.pack) + sum(source(t, self.pack) for source in self.sources)
        self.requested_a = request
        if request < 0:
            self.protections.check_instant(request * 1000.0)
        if (request > 0 and self.protections.charge_disabled) or (request < 0 and self.protections.discharge_disabled):
            request = 0.0  # the FET in that path is open: no current flows
        self.pack.step(dt_s, request)
        voltage_mv, _ = self.charging_request()
        self.gauge.update(dt_s, self.pack, charging_voltage_cell_mv=voltage_mv / self.gauge.params.cells)
        self.gauge.update_ranges()
        self.protections.update(dt_s, self.gauge.protection_inputs())
        self._balance(dt_s)
        self.time_s = t + dt_s
        for observer in list(self.observers):
            observer(self)

    def _balance(self, dt_s: float) -> None:
        """Gauge-driven passive balancing: bleed the cells that sit above the lowest (voltage based,
        CHARGE or RELAX only; a simplification of TI's SOC-based cell balancing)."""
        self._balance_timer_s += dt_s
        if self._balance_timer_s < BALANCE_INTERVAL_S:
            return
        self._balance_timer_s = 0.0
        cells = np.asarray(self.gauge.measurement.cell_mv, dtype=float)
        current = self.pack.balancing
        allowed = self.gauge.mode.value != "discharge" and cells.min() >= BALANCE_MIN_CELL_MV
        if not allowed or self.protections.permanent_failure:
            mask = np.zeros_like(current)
        else:
            # a bleeding cell reads a little low (bleed × R0): stop it only when clearly balanced
            mask = np.where(current, cells > cells.min() + BALANCE_STOP_MV, cells >= cells.min() + BALANCE_START_MV)
        self.pack.set_balancing(np.asarray(mask, dtype=bool))

    # --- faults -----------------------------------------------------------------------------------

    def gauge_reset(self) -> None:
        """Reset the gauge (INIT cleared, then set again about 1 s later; protection RAM state cleared;
        FCC, CycleCount and PF latches persist as they live in data flash)."""
        self.gauge.reset(self.pack)
        self.protections.reset()
        self.gauge.update_ranges()


# ------------------------------------------------------------------------------------------------
# chip behaviour tables
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChipProfile:
    """What an emulated chip answers beyond SBS 0x00–0x23 (until ``firmware_profiles/`` drives it)."""

    name: str
    #: MAC 0x0001 DeviceType, or None for a gauge without TI MAC.
    device_type: int | None
    #: SBS 0x3C–0x3F cell voltage registers.
    cell_voltage_registers: bool
    #: ManufacturerAccess subcommands, ManufacturerBlockAccess and the TI status blocks.
    ti_mac: bool
    #: largest number of series cells the chip measures.
    max_cells: int
    #: starts SEALED (a production pack).
    sealed_at_start: bool = True


#: Known chips. bq40z50: DeviceType 0x4500, 1–4 cells (ti_gauges.md §1).
PROFILES: Mapping[str, ChipProfile] = {
    "bq40z50": ChipProfile("bq40z50", 0x4500, True, True, 4),
    "generic-sbs": ChipProfile("generic-sbs", None, False, False, 16, sealed_at_start=False),
}


class MacAccess(enum.Enum):
    """What a MAC subcommand does."""

    READ = "read"  # returns data through 0x23 / 0x44
    ACTION = "action"  # does something, returns nothing
    WRITE = "write"  # takes data through 0x44


@dataclass(frozen=True)
class MacCommand:
    """One ManufacturerAccess subcommand (the profiles engineer can generate these from TOML)."""

    code: int
    name: str
    access: MacAccess
    #: least privileged mode that may use it: SEALED = available in every mode.
    level: Security
    #: name of the :class:`EmulatedGauge` method that serves it.
    handler: str


#: bq40z50 ManufacturerAccess subcommands (codes: ti_gauges.md §3.1; "available in SEALED" per the TI
#: R4 table for 0x0001–0x0013; OperationStatus in SEALED is UNCONFIRMED — allowed so a sealed host can
#: see the SEC bits; the others unsealed-only as the TI tables show "—" for SEALED).
MAC_COMMANDS: Mapping[int, MacCommand] = {
    c.code: c
    for c in (
        MacCommand(0x0001, "DeviceType", MacAccess.READ, Security.SEALED, "_mac_device_type"),
        MacCommand(0x0002, "FirmwareVersion", MacAccess.READ, Security.SEALED, "_mac_firmware_version"),
        MacCommand(0x0029, "PermanentFailDataReset", MacAccess.ACTION, Security.FULL_ACCESS, "_mac_pf_reset"),
        MacCommand(0x0030, "SealDevice", MacAccess.ACTION, Security.UNSEALED, "_mac_seal"),
        MacCommand(0x0035, "SecurityKeys", MacAccess.READ, Security.FULL_ACCESS, "_mac_security_keys"),
        MacCommand(0x0041, "DeviceReset", MacAccess.ACTION, Security.UNSEALED, "_mac_reset"),
        MacCommand(0x0050, "SafetyAlert", MacAccess.READ, Security.UNSEALED, "_mac_safety_alert"),
        MacCommand(0x0051, "SafetyStatus", MacAccess.READ, Security.UNSEALED, "_mac_safety_status"),
        MacCommand(0x0052, "PFAlert", MacAccess.READ, Security.UNSEALED, "_mac_pf_alert"),
        MacCommand(0x0053, "PFStatus", MacAccess.READ, Security.UNSEALED, "_mac_pf_status"),
        MacCommand(0x0054, "OperationStatus", MacAccess.READ, Security.SEALED, "_mac_operation_status"),
        MacCommand(0x0055, "ChargingStatus", MacAccess.READ, Security.UNSEALED, "_mac_charging_status"),
        MacCommand(0x0056, "GaugingStatus", MacAccess.READ, Security.UNSEALED, "_mac_gauging_status"),
        MacCommand(0x0057, "ManufacturingStatus", MacAccess.READ, Security.UNSEALED, "_mac_manufacturing_status"),
        MacCommand(0x0071, "DAStatus1", MacAccess.READ, Security.UNSEALED, "_mac_da_status1"),
        MacCommand(0x0072, "DAStatus2", MacAccess.READ, Security.UNSEALED, "_mac_da_status2"),
    )
}

#: SBS block commands that mirror a MAC subcommand (ti_gauges.md §2: "the 0x50–0x78 block commands
#: mirror the MAC subcommand of the same low byte and are not readable while SEALED").
MIRRORED_BLOCKS = frozenset({0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57, 0x71, 0x72})

#: SBS words a host may write (sbs.md §1 access R/W): ManufacturerAccess, RemainingCapacityAlarm,
#: RemainingTimeAlarm, BatteryMode, AtRate.
WRITABLE_WORDS = frozenset({0x00, 0x01, 0x02, 0x03, 0x04})
#: SBS commands whose value is in 10 mWh / 10 mW when CAPACITY_MODE is set (sbs.md §1).
CAPACITY_MODE_WORDS = frozenset({0x01, 0x04, 0x0F, 0x10, 0x18})
#: BatteryMode bits a host may write: CC, PB, AM, CHGM, CAPM (sbs.md §2).
BATTERY_MODE_WRITABLE = 0xE300
CAPACITY_MODE = 0x8000
CONDITION_FLAG = 0x0080

#: BatteryStatus error codes (sbs.md §3).
EC_OK, EC_UNSUPPORTED, EC_ACCESS_DENIED = 0x0, 0x3, 0x4


def _word(value: int) -> bytes:
    return struct.pack("<H", value & 0xFFFF)


def _block(data: bytes) -> bytes:
    return bytes((len(data),)) + data


@dataclass
class _PendingKey:
    """First key word seen: which transition it starts, when, and at which transaction."""

    target: Security
    second: int
    time_s: float
    serial: int


@dataclass
class GaugeIdentity:
    """Fixed identification registers (emulator values, not a real product's)."""

    manufacturer_name: bytes = b"smartbatt"
    device_name: bytes = b"EMU-4S3000"
    device_chemistry: bytes = b"LION"
    serial_number: int = 0x1234
    #: 2025-03-14 packed as SBS ManufactureDate (sbs.md §5).
    manufacture_date: int = (2025 - 1980) * 512 + 3 * 32 + 14
    #: SBS 1.1 with PEC, no scaling (sbs.md §4: typical TI bq40z value 0x0031).
    specification_info: int = 0x0031
    #: FirmwareVersion fields (big-endian, ti_gauges.md §3.1 R4 layout): version, build, type, IT version.
    firmware: tuple[int, int, int, int] = (0x0001, 0x0001, 0x00, 0x0000)
    extra: dict[str, bytes] = field(default_factory=dict)


class EmulatedGauge(SMBusDevice):
    """The smart battery at 0x0B: SBS 1.1 plus, for the bq40z50 profile, the TI extended commands.

    :param vpack: the simulated pack behind the gauge.
    :param profile: what the chip answers (:data:`PROFILES`).
    """

    def __init__(
        self,
        vpack: VirtualPack,
        profile: ChipProfile = PROFILES["bq40z50"],
        *,
        keys: SecurityKeys | None = None,
        identity: GaugeIdentity | None = None,
        address: int = BATTERY_ADDRESS,
    ) -> None:
        super().__init__(address)
        self.vpack = vpack
        self.profile = profile
        self.keys = keys or SecurityKeys()
        self.identity = identity or GaugeIdentity()
        self.security = Security.SEALED if profile.sealed_at_start else Security.FULL_ACCESS
        params = vpack.gauge.params
        self.battery_mode = 0x6001  # ICC, AM, CHGM (sbs.md §2: value seen on a bq40z50)
        self.remaining_capacity_alarm = round(params.design_capacity_mah / 10)  # 10 % of design (chosen)
        self.remaining_time_alarm = 10  # min (chosen)
        self.at_rate = 0
        self.error_code = EC_OK
        self._mac_last = 0x0000
        self._mac_result = b""
        self._serial = 0
        self._pending: _PendingKey | None = None
        self._word_readers = self._build_word_readers()

    # --- wire entry points: sync the simulation, count transactions ---------------------------

    def transfer(self, address: int, write: bytes, read: bool = False) -> bytes:
        self.vpack.sync()
        self._serial += 1
        try:
            return super().transfer(address, write, read)
        finally:
            if self._pending is not None and self._pending.serial != self._serial:
                self._pending = None  # any other transaction breaks a key sequence

    def quick(self, address: int, read: bool) -> None:
        self._serial += 1
        self._pending = None

    # --- the three SMBusDevice hooks ------------------------------------------------------------

    def write_shape(self, command: int) -> int | None:
        if command in WRITABLE_WORDS:
            return 2
        if command == 0x44 and self.profile.ti_mac:
            return BLOCK
        self.error_code = EC_ACCESS_DENIED if self._readable(command) else EC_UNSUPPORTED
        return None

    def read_command(self, command: int, written: bytes) -> bytes:
        if written:
            self.error_code = EC_UNSUPPORTED
            raise TargetNack(2, "process calls are not supported")
        if not self._readable(command):
            self.error_code = EC_UNSUPPORTED
            raise TargetNack(1, f"command 0x{command:02X} not supported")
        if command in MIRRORED_BLOCKS and self.security is Security.SEALED:
            self.error_code = EC_ACCESS_DENIED
            raise TargetNack(1, f"command 0x{command:02X} is not available while SEALED")
        if command == 0x16:
            value = self.battery_status()
            self.error_code = EC_OK
            return _word(value)
        self.error_code = EC_OK
        reader = self._word_readers.get(command)
        if reader is not None:
            return _word(reader())
        return _block(self._read_block(command))

    def write_command(self, command: int, data: bytes) -> None:
        self.error_code = EC_OK
        if command == 0x44:
            self._block_mac(data)
            return
        value = data[0] | (data[1] << 8)
        if command == 0x00:
            self._mac_word(value)
        elif command == 0x01:
            self.remaining_capacity_alarm = value
        elif command == 0x02:
            self.remaining_time_alarm = value
        elif command == 0x03:
            self.battery_mode = (self.battery_mode & ~BATTERY_MODE_WRITABLE) | (value & BATTERY_MODE_WRITABLE)
        elif command == 0x04:
            self.at_rate = value - 0x10000 if value & 0x8000 else value

    # --- which commands exist ---------------------------------------------------------------------

    def _readable(self, command: int) -> bool:
        if command in self._word_readers or command in (0x16, 0x20, 0x21, 0x22, 0x23):
            return True
        if self.profile.cell_voltage_registers and 0x3C <= command <= 0x3F:
            return True
        return self.profile.ti_mac and (command == 0x44 or command in MIRRORED_BLOCKS)

    # --- SBS words --------------------------------------------------------------------------------

    @property
    def capacity_mode(self) -> bool:
        return bool(self.battery_mode & CAPACITY_MODE)

    def _capacity(self, mah: float) -> int:
        """A capacity in the unit CAPACITY_MODE selects: mAh, or 10 mWh."""
        value = self.vpack.gauge.energy(mah) if self.capacity_mode else mah
        return max(0, min(0xFFFF, round(value)))

    def _at_rate_ma(self) -> float:
        """AtRate as a current, mA (converted at DesignVoltage when written as 10 mW)."""
        if not self.capacity_mode:
            return float(self.at_rate)
        return self.at_rate * 10_000.0 / self.vpack.gauge.params.design_voltage_mv

    def _build_word_readers(self) -> dict[int, Callable[[], int]]:
        g = self.vpack.gauge
        ident = self.identity
        readers: dict[int, Callable[[], int]] = {
            0x00: lambda: self._mac_last,
            0x01: lambda: self.remaining_capacity_alarm,
            0x02: lambda: self.remaining_time_alarm,
            0x03: self._battery_mode,
            0x04: lambda: self.at_rate & 0xFFFF,
            0x05: lambda: g.time_to_full(self._at_rate_ma()),
            0x06: lambda: g.time_to_empty(self._at_rate_ma()),
            0x07: self._at_rate_ok,
            0x08: lambda: g.measurement.temperature_deci_k,
            0x09: lambda: g.measurement.voltage_mv,
            0x0A: lambda: g.measurement.current_ma & 0xFFFF,
            0x0B: lambda: g.average_current_ma & 0xFFFF,
            0x0C: lambda: round(g.max_error),
            0x0D: lambda: min(100, round(g.rsoc)),
            0x0E: lambda: round(g.asoc),
            0x0F: lambda: self._capacity(g.remaining_mah),
            0x10: lambda: self._capacity(g.fcc_mah),
            0x11: lambda: g.time_to_empty(g.measurement.current_ma, capacity_mode=self.capacity_mode),
            0x12: lambda: g.time_to_empty(g.average_current_ma, capacity_mode=self.capacity_mode),
            0x13: lambda: g.time_to_full(g.average_current_ma),
            0x14: lambda: self.vpack.charging_request()[1],
            0x15: lambda: self.vpack.charging_request()[0],
            0x17: lambda: g.cycle_count,
            0x18: lambda: self._capacity(g.params.design_capacity_mah),
            0x19: lambda: g.params.design_voltage_mv,
            0x1A: lambda: ident.specification_info,
            0x1B: lambda: ident.manufacture_date,
            0x1C: lambda: ident.serial_number,
        }
        if self.profile.cell_voltage_registers:
            # 0x3F = CellVoltage1 … 0x3C = CellVoltage4 (ti_gauges.md §2); absent cells read 0
            for index in range(4):
                readers[0x3F - index] = self._cell_reader(index)
        return readers

    def _cell_reader(self, index: int) -> Callable[[], int]:
        return lambda: self._cell_mv(index)

    def _cell_mv(self, index: int) -> int:
        cells = self.vpack.gauge.measurement.cell_mv
        return cells[index] if index < len(cells) else 0

    def _battery_mode(self) -> int:
        mode = self.battery_mode & ~CONDITION_FLAG
        if self.vpack.gauge.max_error > self.vpack.gauge.params.max_error_limit:
            mode |= CONDITION_FLAG
        return mode

    def _at_rate_ok(self) -> int:
        rate = self._at_rate_ma()
        if rate >= 0:
            return 1  # sbs.md §1: AtRateOK is always true for AtRate ≥ 0
        if self.vpack.protections.discharge_disabled:
            return 0
        # the pack can supply the extra load for 10 s
        return int(self.vpack.gauge.remaining_mah * 3600.0 / -rate >= 10.0)

    def battery_status(self) -> int:
        """BatteryStatus() now, with the error code of the last transaction."""
        g = self.vpack.gauge
        alarm_mah = float(self.remaining_capacity_alarm)
        if self.capacity_mode:
            alarm_mah = alarm_mah * 10_000.0 / g.params.design_voltage_mv
        return battery_status(
            g,
            self.vpack.protections,
            remaining_capacity_alarm_mah=alarm_mah,
            remaining_time_alarm_min=self.remaining_time_alarm,
            error_code=self.error_code,
        )

    # --- SBS blocks ---------------------------------------------------------------------------------

    def _read_block(self, command: int) -> bytes:
        if command == 0x20:
            return self.identity.manufacturer_name
        if command == 0x21:
            return self.identity.device_name
        if command == 0x22:
            return self.identity.device_chemistry
        if command == 0x23:
            return self._mac_result if self.profile.ti_mac else b"\x00\x00"
        if command == 0x44:
            return _word(self._mac_last) + self._mac_result
        mac = MAC_COMMANDS[command]  # a mirrored block: 0x50–0x57, 0x71, 0x72
        return self._run_read(mac)

    # --- ManufacturerAccess ----------------------------------------------------------------------

    def _mac_word(self, word: int) -> None:
        """A word written to ManufacturerAccess: a key word or a MAC subcommand (flow A)."""
        if not self.profile.ti_mac:
            self._mac_last = word
            return
        if self._key_word(word):
            return
        self._mac_last = word
        self._execute(word, b"")

    def _block_mac(self, data: bytes) -> None:
        """A block written to ManufacturerBlockAccess: subcommand LE + optional data (flow B)."""
        if len(data) < 2:
            self._mac_result = b""
            return
        code = data[0] | (data[1] << 8)
        self._mac_last = code
        self._execute(code, data[2:])

    def _key_word(self, word: int) -> bool:
        """Advance the unseal / full-access key sequence; True if ``word`` was a key word."""
        pending = self._pending
        now = self.vpack.now()
        if (
            pending is not None
            and pending.serial == self._serial - 1
            and word == pending.second
            and now - pending.time_s <= KEY_WINDOW_S
        ):
            self.security = pending.target
            self._pending = None
            return True
        self._pending = None
        if self.security is Security.SEALED and word == self.keys.unseal[0]:
            self._pending = _PendingKey(Security.UNSEALED, self.keys.unseal[1], now, self._serial)
            return True
        if self.security is Security.UNSEALED and word == self.keys.full_access[0]:
            self._pending = _PendingKey(Security.FULL_ACCESS, self.keys.full_access[1], now, self._serial)
            return True
        return False

    def _allowed(self, mac: MacCommand) -> bool:
        return self.security.value <= mac.level.value

    def _execute(self, code: int, data: bytes) -> None:
        mac = MAC_COMMANDS.get(code)
        self._mac_result = b""
        if mac is None or not self._allowed(mac):
            return  # unknown or not allowed in this mode: accepted, ignored, no result
        if data and code == 0x0035:
            self._write_security_keys(data)
            return
        if mac.access is MacAccess.READ:
            self._mac_result = self._run_read(mac)
        else:
            getattr(self, mac.handler)()

    def _run_read(self, mac: MacCommand) -> bytes:
        handler: Callable[[], bytes] = getattr(self, mac.handler)
        return handler()

    def _write_security_keys(self, data: bytes) -> None:
        """MAC 0x0035 via 0x44: four LE words (ti_gauges.md §4.1). Rejected (ignored) when malformed or
        when a key's first word collides with the other key's or with a MAC code (SLUUAQ3A)."""
        if len(data) != 8:
            return
        u1, u2, f1, f2 = struct.unpack("<4H", data)
        if u1 == f1 or u1 in MAC_COMMANDS or f1 in MAC_COMMANDS:
            return
        self.keys = SecurityKeys((u1, u2), (f1, f2))

    # --- MAC handlers (data; layouts ti_gauges.md §3–§5) -----------------------------------------

    def _mac_device_type(self) -> bytes:
        return _word(self.profile.device_type or 0)

    def _mac_firmware_version(self) -> bytes:
        version, build, fw_type, it_version = self.identity.firmware
        return struct.pack(">HHHBHBB", self.profile.device_type or 0, version, build, fw_type, it_version, 0, 0)

    def _mac_pf_reset(self) -> None:
        self.vpack.protections.reset_permanent_failure()

    def _mac_seal(self) -> None:
        self.security = Security.SEALED

    def _mac_security_keys(self) -> bytes:
        return struct.pack("<4H", *self.keys.unseal, *self.keys.full_access)

    def reset(self) -> None:
        """Gauge reset (MAC DeviceReset, or an injected fault): INIT cleared and set again about 1 s
        later, RAM state re-initialised, and — as after any reset — SEALED again (SLUUAQ3A)."""
        self.vpack.gauge_reset()
        self._pending = None
        self._mac_result = b""
        if self.profile.sealed_at_start:
            self.security = Security.SEALED

    def _mac_reset(self) -> None:
        self.reset()

    def _mac_safety_alert(self) -> bytes:
        return struct.pack("<I", self.vpack.protections.safety_alert)

    def _mac_safety_status(self) -> bytes:
        return struct.pack("<I", self.vpack.protections.safety_status)

    def _mac_pf_alert(self) -> bytes:
        return struct.pack("<I", self.vpack.protections.pf_alert)

    def _mac_pf_status(self) -> bytes:
        return struct.pack("<I", self.vpack.protections.pf_status)

    def operation_status(self) -> int:
        """OperationStatus (ti_gauges.md §5.3)."""
        p = self.vpack.protections
        g = self.vpack.gauge
        word = 1 << 0  # PRES: the pack is in a system (chosen)
        if not p.discharge_disabled:
            word |= 1 << 1  # DSG FET on
        if not p.charge_disabled:
            word |= 1 << 2  # CHG FET on
        word |= self.security.value << 8
        if p.safety_status:
            word |= 1 << 11  # SS
        if p.permanent_failure:
            word |= 1 << 12  # PF
        if p.discharge_disabled:
            word |= 1 << 13  # XDSG
        if p.charge_disabled:
            word |= 1 << 14  # XCHG
        if not g.initialized:
            word |= 1 << 24  # INIT
        if bool(self.vpack.pack.balancing.any()):
            word |= 1 << 28  # CB
        return word

    def _mac_operation_status(self) -> bytes:
        return struct.pack("<I", self.operation_status())

    def charging_status(self) -> int:
        """ChargingStatus, 24 bits (bq40z80 / bq40z50-R5 layout, ti_gauges.md §5.4)."""
        g = self.vpack.gauge
        temp_bits = {"UT": 0, "LT": 1, "STL": 2, "RT": 3, "STH": 4, "HT": 5, "OT": 6}
        volt_bits = {"PV": 8, "LV": 9, "MV": 10, "HV": 11}
        word = (1 << temp_bits[g.temp_range]) | (1 << volt_bits[g.voltage_range])
        if g.vct:
            word |= 1 << 15  # VCT
        return word

    def _mac_charging_status(self) -> bytes:
        return struct.pack("<I", self.charging_status())[:3]

    def gauging_status(self) -> int:
        """GaugingStatus, 24 bits (ti_gauges.md §5.5)."""
        g = self.vpack.gauge
        flags = (
            (g.fd, 0), (g.fc, 1), (g.td, 2), (g.tc, 3), (g.mode.value != "discharge", 4), (g.edv, 5),
            (not g.charging, 6), (g.max_error > g.params.max_error_limit, 7), (g.ocv_taken, 8),
            (True, 12), (g.learning, 16), (bool(g.fcc_updates & 1), 17),
        )
        return sum(1 << bit for on, bit in flags if on)

    def _mac_gauging_status(self) -> bytes:
        return struct.pack("<I", self.gauging_status())[:3]

    def _mac_manufacturing_status(self) -> bytes:
        # GAUGE_EN (3), FET_EN (4), PF_EN (6) — an emulated production pack (ti_gauges.md §5.6)
        word = (1 << 3) | (1 << 4) | ((1 << 6) if self.vpack.protections.pf_enabled else 0)
        return _word(word)

    def _mac_da_status1(self) -> bytes:
        """DAStatus1, 32 bytes (ti_gauges.md §4.2). Currents and powers signed (UNCONFIRMED)."""
        g = self.vpack.gauge
        m = g.measurement
        cells = [*m.cell_mv[:4], *([0] * (4 - min(4, len(m.cell_mv))))]
        pack_mv = m.voltage_mv if not self.vpack.protections.discharge_disabled else 0
        power_cw = round(m.voltage_mv * m.current_ma / 1e4)
        avg_power_cw = round(m.voltage_mv * g.average_current_ma / 1e4)
        cell_power = [round(v * m.current_ma / 1e4) if v else 0 for v in cells]
        currents = [m.current_ma if v else 0 for v in cells]
        return struct.pack("<6H4h4h2h", *cells, m.voltage_mv, pack_mv, *currents, *cell_power, power_cw, avg_power_cw)

    def _mac_da_status2(self) -> bytes:
        """DAStatus2, 14 bytes (ti_gauges.md §4.2): internal, TS1–TS4, cell and FET temperature, 0.1 K."""
        g = self.vpack.gauge
        ts = [*g.measurement.ts_deci_k[:4], *([0] * (4 - min(4, len(g.measurement.ts_deci_k))))]
        internal = round(float(np.mean(self.vpack.pack.cell_temperatures)) * 10 + ZERO_C_DECI_K)
        return struct.pack("<7H", internal, *ts, g.measurement.temperature_deci_k, internal)
