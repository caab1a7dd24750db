"""The emulated smart battery as an SMBus device: a TI bq40z50-like gauge at 0x0B over a simulated pack.

Two layers:

* :class:`VirtualPack` owns the physics (:class:`~smartbatt.emulator.pack.Pack`), the load, the clock,
  the gauge model, the protections and the pack faults. It advances lazily: every transaction first
  brings the simulation up to ``clock.now()`` in fixed steps (1 s by default — TI gauges refresh most
  SBS values once a second), so an idle host costs nothing and a speed-0 clock only moves through
  :meth:`VirtualPack.advance`. Everything is seeded: one seed gives one register trace.
* :class:`EmulatedGauge` is the :class:`~smartbatt.emulator.target.SMBusDevice`: SBS 1.1 commands
  0x00–0x23 (sbs.md §1) and what its chip profile (``firmware_profiles/<name>.toml``, one of
  :data:`SERVED_PROFILES`) adds: the cell voltages 0x3C–0x3F, ManufacturerAccess (0x00) with the
  security key sequences, ManufacturerData (0x23), ManufacturerBlockAccess (0x44), the status blocks
  encoded with the profile's bit maps and sized by its status sources, DAStatus1/2 (0x71/0x72),
  lifetime data built with the profile's layouts, data flash at the profile's addresses
  (:mod:`smartbatt.emulator.dataflash`: protection entries drive the protection parameter set) and
  SHA-1 challenge/response on Authenticate() (0x2F).

Security (ti_gauges.md §6; TI SLUUAQ3A security pages): a gauge starts SEALED. Unseal = two word
writes of the unseal key to ManufacturerAccess within 4 s (defaults 0x0414, 0x3672); FULL ACCESS =
the same with the full-access key from UNSEALED (0xFFFF, 0xFFFF); MAC 0x0030 seals; a reset seals.
The two key words must be *consecutive*: TI requires them "sent consecutively, with no other data
being written" in between (BQ34Z100-R2 TRM SLUUCO5A security section); the emulator is stricter and
treats any other transaction to the gauge between the two words as breaking the sequence (this is
why :meth:`Transport.exclusive` exists). What a sealed bq40z50 does on the wire when asked for an
unsealed-only command is not documented in the sources at hand (UNCONFIRMED): the emulator NACKs the
command byte of an unsealed-only SBS command (0x50–0x57, 0x71, 0x72: TI tables list them "—" in the
SEALED column) and accepts-but-ignores an unsealed-only MAC subcommand (its result buffer is empty);
data-flash reads and writes through the MAC are ignored the same way while SEALED (ti_gauges.md §7).
"""

from __future__ import annotations

import enum
import hashlib
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from smartbatt.emulator.clock import SimClock
from smartbatt.emulator.dataflash import DataFlashMemory
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
from smartbatt.gauge.flags import encode
from smartbatt.profiles.loader import load_profile
from smartbatt.profiles.schema import DataFlashAccessMethod, DFValue, Profile, SecurityLevel, SecurityMethod
from smartbatt.profiles.schema import MacAccess as ProfileMacAccess

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


def _i2(value: float) -> int:
    """Round to a signed 16-bit register value, saturating at its limits."""
    return max(-32768, min(32767, round(value)))


#: backlog (in steps) replayed step by step before catch-up steps grow.
CATCH_UP_STEPS = 600
#: largest catch-up step, s.
CATCH_UP_MAX_S = 30.0


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
        """Run whole steps up to :meth:`now` (called before every transaction).

        A host that leaves a real-time pack alone for long (or at a high ``speed``) leaves a
        backlog; replaying it in ``step_s`` steps would stall the next transaction for seconds.
        Past :data:`CATCH_UP_STEPS` steps of backlog the steps grow (up to :data:`CATCH_UP_MAX_S`)
        so that catching up costs a bounded number of steps. The cell model's RC and thermal
        updates are exact exponentials, stable at any step; protection delays are then resolved
        to the coarser step, as if the gauge had been asleep.
        """
        target = self.now()
        step = self.step_s
        backlog = target - self.time_s
        if backlog > CATCH_UP_STEPS * self.step_s:
            step = max(self.step_s, round(min(CATCH_UP_MAX_S, backlog / CATCH_UP_STEPS) / self.step_s) * self.step_s)
        while self.time_s + self.step_s <= target + 1e-9:
            if self.time_s + step > target + 1e-9:
                step = self.step_s  # the last stretch in ordinary steps, to land on whole steps
            self._step(step)

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
        extra = 0.0
        if self.sources:  # summed from 0 as sum() did: same float result
            extra = sum(source(t, self.pack) for source in self.sources)
        request = self.load.current(t, self.pack) + extra
        self.requested_a = request
        if request < 0:
            self.protections.check_instant(request * 1000.0)
        if (request > 0 and self.protections.charge_disabled) or (request < 0 and self.protections.discharge_disabled):
            request = 0.0  # the FET in that path is open: no current flows
        self.pack.step(dt_s, request)
        voltage_mv, _ = self.charging_request()
        gauge = self.gauge
        m = gauge.update(dt_s, self.pack, charging_voltage_cell_mv=voltage_mv / gauge.params.cells)
        gauge.update_ranges()
        ts_c = m.ts_c  # what Gauge.protection_inputs() reports, without building the record
        self.protections.update_readings(
            dt_s,
            m.max_cell_mv,
            m.min_cell_mv,
            m.current_ma,
            max(ts_c),
            min(ts_c),
            charging=gauge.charging,
            relaxed=gauge.relaxed,
            temp_range=gauge.temp_range,
        )
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

#: Chip profiles (``firmware_profiles/``) the emulator can serve: SBS gauges whose MAC, status words
#: and data flash it implements. bq40z80 (cells 5–7 through DAStatus3), bq78350 (external AFE),
#: bq20z65 (subclass data flash) and bq28z610 (I2C command pairs) are not served.
SERVED_PROFILES = ("bq40z50", "bq4050", "generic-sbs")


@dataclass(frozen=True)
class ChipProfile:
    """What an emulated chip answers beyond SBS 0x00–0x23, derived from its chip profile."""

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

    @classmethod
    def from_profile(cls, profile: Profile) -> ChipProfile:
        """The emulator's view of a loaded chip profile."""
        cell_codes = {c.code for c in profile.commands if c.name.startswith("CellVoltage")}
        cells = {0x3C, 0x3D, 0x3E, 0x3F} <= cell_codes
        return cls(
            name=profile.name,
            device_type=profile.identity.device_types[0] if profile.identity.device_types else None,
            cell_voltage_registers=cells,
            ti_mac=bool(profile.mac),
            max_cells=4 if cells else 16,
            sealed_at_start=profile.security.method is not SecurityMethod.NONE,
        )


#: Known chips, by profile name (bq40z50: DeviceType 0x4500, 1–4 cells, ti_gauges.md §1).
PROFILES: Mapping[str, ChipProfile] = {name: ChipProfile.from_profile(load_profile(name)) for name in SERVED_PROFILES}


class MacAccess(enum.Enum):
    """What a MAC subcommand does."""

    READ = "read"  # returns data through 0x23 / 0x44
    ACTION = "action"  # does something, returns nothing
    WRITE = "write"  # takes data through 0x44


@dataclass(frozen=True)
class MacCommand:
    """One ManufacturerAccess subcommand the emulated chip serves."""

    code: int
    name: str
    access: MacAccess
    #: least privileged mode that may use it: SEALED = available in every mode.
    level: Security
    #: name of the :class:`EmulatedGauge` method that serves it (reads return bytes; a status
    #: subcommand's handler is ``status_bytes``, called with :attr:`register`).
    handler: str
    #: status register the subcommand returns, when it is one (the bit map comes from the profile).
    register: str | None = None


#: Behaviour the emulator implements, by MAC code: handler and — where the emulator departs from
#: the profile's "lowest security state" (or the profile does not say) — the level it enforces.
#: OperationStatus (0x0054) in SEALED is UNCONFIRMED in TI's tables; it is allowed because the RRC
#: BQ40Z50R1 production driver reads it through 0x00/0x23 to detect a (sealed) pack, and so a sealed
#: host can see the SEC bits. PermanentFailDataReset needs FULL ACCESS (SLUUCH2 §3.1 PF reset).
BEHAVIOUR: Mapping[int, tuple[str, Security | None]] = {
    0x0001: ("_mac_device_type", None),
    0x0002: ("_mac_firmware_version", None),
    0x0029: ("_mac_pf_reset", Security.FULL_ACCESS),
    0x0030: ("_mac_seal", Security.UNSEALED),
    0x0035: ("_mac_security_keys", None),
    0x0041: ("_mac_reset", Security.UNSEALED),
    0x0054: ("status_bytes", Security.SEALED),
    0x0060: ("_mac_lifetime", None),
    0x0061: ("_mac_lifetime", None),
    0x0062: ("_mac_lifetime", None),
    0x0063: ("_mac_lifetime", None),
    0x0064: ("_mac_lifetime", None),
    0x0071: ("_mac_da_status1", None),
    0x0072: ("_mac_da_status2", None),
}

#: profile security level → emulator mode; UNKNOWN is served as UNSEALED (the cautious choice).
_LEVELS: Mapping[SecurityLevel, Security] = {
    SecurityLevel.SEALED: Security.SEALED,
    SecurityLevel.UNSEALED: Security.UNSEALED,
    SecurityLevel.FULL_ACCESS: Security.FULL_ACCESS,
    SecurityLevel.UNKNOWN: Security.UNSEALED,
}


def mac_table(profile: Profile) -> dict[int, MacCommand]:
    """The MAC subcommands of ``profile`` the emulator serves, with their behaviour and level.

    Every subcommand with a status bit map is served from the profile alone; the others need a
    handler in :data:`BEHAVIOUR`. Subcommands the profile lists but the emulator does not implement
    are accepted and ignored by the device (no result), as unknown ones are.
    """
    table: dict[int, MacCommand] = {}
    for entry in profile.mac:
        handler, level = BEHAVIOUR.get(entry.code, ("", None))
        if entry.bitfield is not None:
            handler = "status_bytes"  # served from the profile's bit map
        if not handler:
            continue
        access = MacAccess.ACTION if entry.access is ProfileMacAccess.WRITE else MacAccess.READ
        table[entry.code] = MacCommand(
            entry.code, entry.name, access, level or _LEVELS[entry.security], handler, entry.bitfield
        )
    return table


#: SBS words a host may write (sbs.md §1 access R/W): ManufacturerAccess, RemainingCapacityAlarm,
#: RemainingTimeAlarm, BatteryMode, AtRate.
WRITABLE_WORDS = frozenset({0x00, 0x01, 0x02, 0x03, 0x04})
#: SBS commands whose value is in 10 mWh / 10 mW when CAPACITY_MODE is set (sbs.md §1).
CAPACITY_MODE_WORDS = frozenset({0x01, 0x04, 0x0F, 0x10, 0x18})
#: BatteryMode bits a host may write: CC, PB, AM, CHGM, CAPM (sbs.md §2).
BATTERY_MODE_WRITABLE = 0xE300
CAPACITY_MODE = 0x8000
CONDITION_FLAG = 0x0080
#: Authenticate / ManufacturerInput (ti_gauges.md §2).
AUTHENTICATE = 0x2F
#: The key of TI's SHA-1/HMAC worked example (E2E FAQ 886762, bq28z610); the emulator's default
#: authentication key — not a claim about what a real chip ships with.
EXAMPLE_AUTH_KEY = bytes.fromhex("0123456789abcdeffedcba9876543210")

#: BatteryStatus error codes (sbs.md §3).
EC_OK, EC_UNSUPPORTED, EC_ACCESS_DENIED = 0x0, 0x3, 0x4


def _word(value: int) -> bytes:
    return struct.pack("<H", value & 0xFFFF)


def _block(data: bytes) -> bytes:
    return bytes((len(data),)) + data


def ti_sha1_hmac(key: bytes, message: bytes) -> bytes:
    """TI's two-pass SHA-1 "HMAC": SHA1(key ‖ SHA1(key ‖ message)) (TI E2E FAQ 886762; BQ78350-R1
    TRM authentication steps quoted in TI E2E ``Authentication.txt``) — not RFC 2104 HMAC."""
    return hashlib.sha1(key + hashlib.sha1(key + message).digest()).digest()


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


#: (CellMaxVoltage{i}, CellMinVoltage{i}) lifetime keys of cells 1–4 (LifetimeDataBlock1 fields).
_CELL_EXTREME_KEYS = tuple((f"CellMaxVoltage{i}", f"CellMinVoltage{i}") for i in range(1, 5))


@dataclass
class _Lifetime:
    """What the gauge's lifetime data collection has seen (LifetimeDataBlock1–5 fields it can fill)."""

    values: dict[str, int] = field(default_factory=dict)
    #: protection names tripped at the previous step (to count events on the rising edge).
    tripped: set[str] = field(default_factory=set)
    #: SafetyStatus word matching ``tripped`` (names are looked up only when it changes).
    status: int = 0

    def keep(self, name: str, value: int, *, high: bool) -> None:
        old = self.values.get(name)
        if old is None or (value > old if high else value < old):
            self.values[name] = value


class EmulatedGauge(SMBusDevice):
    """The smart battery at 0x0B: SBS 1.1 plus what its chip profile adds.

    The chip profile (``firmware_profiles/<name>.toml``) says which MAC subcommands exist and in
    which security mode, how each status word is laid out (the emulator encodes its state with the
    profile's bit maps, so variants and chips with other layouts come out right), how big each
    status block is, and where data-flash entries live. Behaviour stays code: what each subcommand
    does, how flags follow the simulated pack.

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
        #: the chip profile the device serves.
        self.chip: Profile = load_profile(profile.name)
        self.keys = keys or self._default_keys()
        self.identity = identity or GaugeIdentity()
        self.security = Security.SEALED if profile.sealed_at_start else Security.FULL_ACCESS
        params = vpack.gauge.params
        self.battery_mode = 0x6001  # ICC, AM, CHGM (sbs.md §2: value seen on a bq40z50)
        self.remaining_capacity_alarm = round(params.design_capacity_mah / 10)  # 10 % of design (chosen)
        self.remaining_time_alarm = 10  # min (chosen)
        self.at_rate = 0
        self.error_code = EC_OK
        #: SHA-1 authentication key (16 bytes, in TI's written order).
        self.auth_key = EXAMPLE_AUTH_KEY
        self._auth_response = bytes(20)
        self._mac_last = 0x0000
        self._mac_result = b""
        #: no MAC command since power-up/reset: 0x23/0x44 then answer OperationStatus (below).
        self._mac_default = True
        self._serial = 0
        self._pending: _PendingKey | None = None
        self.mac_table = mac_table(self.chip) if profile.ti_mac else {}
        #: status flags the simulation does not model, presented on the test bench's request
        #: (:meth:`force_flags`), by register name.
        self.forced_flags: dict[str, set[str]] = {}
        self._sizes = {name: src.size for name, src in self.chip.status_sources.items()}
        self._mirrored = self._mirrored_blocks()
        self.dataflash: DataFlashMemory | None = (
            DataFlashMemory(self.chip, vpack.protections.params, self._design_values())
            if profile.ti_mac and self.chip.data_flash_access.method is DataFlashAccessMethod.MAC_BLOCK
            else None
        )
        self._lifetime = _Lifetime()
        vpack.observers.append(self._collect_lifetime)
        self._word_readers = self._build_word_readers()

    def _default_keys(self) -> SecurityKeys:
        sec = self.chip.security
        default = SecurityKeys()
        return SecurityKeys(
            sec.default_unseal_key or default.unseal, sec.default_full_access_key or default.full_access
        )

    def _design_values(self) -> dict[str, DFValue]:
        """The pack's design values under their TI data-flash names (bq40z50-R1 .gg.csv names)."""
        p = self.vpack.gauge.params
        return {
            "Gas Gauging:Design:Design Capacity mAh": p.design_capacity_mah,
            # cWh = mAh × mV / 10^5
            "Gas Gauging:Design:Design Capacity cWh": round(p.design_capacity_mah * p.design_voltage_mv / 1e5),
            "Gas Gauging:Design:Design Voltage": p.design_voltage_mv,
        }

    def _mirrored_blocks(self) -> dict[int, Callable[[], bytes]]:
        """SBS block commands that mirror a MAC subcommand of the same low byte (ti_gauges.md §2: not
        readable while SEALED): the status blocks the profile maps, and DAStatus1/2."""
        blocks: dict[int, Callable[[], bytes]] = {}
        if not self.profile.ti_mac:
            return blocks
        codes = {c.code for c in self.chip.commands}
        for name, src in self.chip.status_sources.items():
            if src.sbs is not None and src.sbs_kind == "block" and src.sbs in codes:
                blocks[src.sbs] = self._status_reader(name)
        for code, handler in ((0x71, self._mac_da_status1), (0x72, self._mac_da_status2)):
            if code in codes:
                blocks[code] = handler
        return blocks

    def _status_reader(self, register: str) -> Callable[[], bytes]:
        return lambda: self.status_bytes(register)

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
        if command == AUTHENTICATE and self._authenticates:
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
        if command in self._mirrored and self.security is Security.SEALED:
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
        if command == AUTHENTICATE:
            self._authenticate(data)
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

    @property
    def _authenticates(self) -> bool:
        return self.chip.security.sha1_authentication and any(c.code == AUTHENTICATE for c in self.chip.commands)

    def _readable(self, command: int) -> bool:
        if command in self._word_readers or command in (0x16, 0x20, 0x21, 0x22, 0x23):
            return True
        if self.profile.cell_voltage_registers and 0x3C <= command <= 0x3F:
            return True
        if command == AUTHENTICATE and self._authenticates:
            return True
        return self.profile.ti_mac and (command == 0x44 or command in self._mirrored)

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
            # I2 registers: a current past ±32.767 A saturates, never wraps to the other sign
            0x0A: lambda: _i2(g.measurement.current_ma) & 0xFFFF,
            0x0B: lambda: _i2(g.average_current_ma) & 0xFFFF,
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
        if command in (0x23, 0x44) and self._mac_default:
            self._power_on_result()
        if command == 0x23:
            return self._mac_result if self.profile.ti_mac else b"\x00\x00"
        if command == 0x44:
            return self._read_block_access()
        if command == AUTHENTICATE:
            return self._auth_response
        return self._mirrored[command]()

    def _power_on_result(self) -> None:
        """Before any MAC command a bq40z50 answers ManufacturerBlockAccess with the OperationStatus
        result (0x0054): a user whose MAC writes did not take read "06 54 00 87 01 00 00" from 0x44
        (TI E2E 1334019, BQ40Z50-R2). Modelled for every TI profile that has OperationStatus."""
        self._mac_default = False
        operation_status = self.mac_table.get(0x0054)
        if operation_status is not None:
            self._mac_last = 0x0054
            self._mac_result = self._run_read(operation_status)

    def _read_block_access(self) -> bytes:
        """ManufacturerBlockAccess read: the subcommand echo, then its result (flow B). A data-flash
        read advances the address by the bytes returned, so a second read gives the next block
        (RRC BQ40Z50R1 driver: "this chipset increments the internal pointer after read")."""
        reply = _word(self._mac_last) + self._mac_result
        memory = self.dataflash
        if memory is not None and memory.contains(self._mac_last) and self._mac_result:
            self._mac_last += len(self._mac_result)
            following = memory.contains(self._mac_last)
            self._mac_result = memory.read(self._mac_last, memory.block_size) if following else b""
        return reply

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

    def _allowed(self, level: Security) -> bool:
        return self.security.value <= level.value

    def _execute(self, code: int, data: bytes) -> None:
        self._mac_default = False
        self._mac_result = b""
        if self.dataflash is not None and self.dataflash.contains(code):
            self._dataflash_access(code, data)
            return
        mac = self.mac_table.get(code)
        if mac is None or not self._allowed(mac.level):
            return  # unknown or not allowed in this mode: accepted, ignored, no result
        if data and code == 0x0035:
            self._write_security_keys(data)
            return
        if mac.access is MacAccess.READ:
            self._mac_result = self._run_read(mac)
        else:
            getattr(self, mac.handler)()

    def _run_read(self, mac: MacCommand) -> bytes:
        if mac.register is not None:
            return self.status_bytes(mac.register)
        if mac.handler == "_mac_lifetime":
            return self._mac_lifetime(mac.code)
        handler: Callable[[], bytes] = getattr(self, mac.handler)
        return handler()

    def _dataflash_access(self, address: int, data: bytes) -> None:
        """Data flash through the MAC (ti_gauges.md §7): the address alone selects a 32-byte read,
        address + data programs. Only UNSEALED or FULL ACCESS; a sealed gauge ignores both."""
        memory = self.dataflash
        assert memory is not None
        if not self._allowed(Security.UNSEALED):
            return
        if data:
            memory.write(address, data)
            return
        self._mac_result = memory.read(address, memory.block_size)

    def _write_security_keys(self, data: bytes) -> None:
        """MAC 0x0035 via 0x44: four LE words (ti_gauges.md §4.1). Rejected (ignored) when malformed or
        when a key's first word collides with the other key's or with a MAC code (SLUUAQ3A)."""
        if len(data) != 8:
            return
        u1, u2, f1, f2 = struct.unpack("<4H", data)
        codes = {m.code for m in self.chip.mac}
        if u1 == f1 or u1 in codes or f1 in codes:
            return
        self.keys = SecurityKeys((u1, u2), (f1, f2))

    def _authenticate(self, data: bytes) -> None:
        """A 20-byte challenge written to Authenticate(): the response is the TI SHA-1 "HMAC" of it
        with the authentication key. Challenge and response travel least significant byte first
        (TI E2E ``Authentication.txt``, BQ78350-R1 TRM steps: "AA is LSB"). The computation time
        (TI: read after 250 ms) is not modelled: the response is ready at once."""
        if len(data) != 20:
            return
        message = bytes(reversed(data))
        self._auth_response = bytes(reversed(ti_sha1_hmac(self.auth_key, message)))

    # --- status words (bit maps from the chip profile) ----------------------------------------------

    def force_flags(self, register: str, *names: str) -> None:
        """Test-bench hook: present status flags the simulation does not model (AFE faults, fuse,
        LED, calibration modes…), added to whatever the simulation sets, until cleared.

        :raises KeyError: the profile has no such register or flag.
        """
        bitfield = self.chip.bitfields[register]
        known = {f.name for f in bitfield.flags}
        for name in names:
            if name not in known:
                raise KeyError(f"{register} has no flag {name!r}")
        self.forced_flags.setdefault(register, set()).update(names)

    def clear_forced_flags(self, register: str | None = None) -> None:
        """Drop flags set by :meth:`force_flags` (of one register, or all)."""
        if register is None:
            self.forced_flags.clear()
        else:
            self.forced_flags.pop(register, None)

    def status_word(self, register: str) -> int:
        """A status register as an integer, encoded with the chip profile's bit map.

        :raises KeyError: the profile has no bit map of that name.
        """
        bitfield = self.chip.bitfields[register]
        known = {f.name for f in bitfield.flags}
        names = (self._modelled_flags(register) | self.forced_flags.get(register, set())) & known
        groups: dict[str, int] = {}
        sec = self.chip.security
        if register == sec.state_register and sec.state_group is not None:
            groups[sec.state_group] = self.security.value
        return encode(bitfield, sorted(names), groups)

    def status_bytes(self, register: str) -> bytes:
        """A status register as the block the gauge returns (size from the profile's status source)."""
        size = self._sizes.get(register, (self.chip.bitfields[register].width + 7) // 8)
        return self.status_word(register).to_bytes(8, "little")[:size]

    def _modelled_flags(self, register: str) -> set[str]:
        """Names of the flags the simulation sets now in ``register`` (TI meanings, ti_gauges.md §5)."""
        p = self.vpack.protections
        g = self.vpack.gauge
        if register in ("SafetyAlert", "SafetyStatus", "PFAlert", "PFStatus"):
            return p.names(register)
        conditions: dict[str, bool]
        if register == "OperationStatus":
            conditions = {
                "PRES": True,  # the pack is in a system (chosen)
                "DSG": not p.discharge_disabled,
                "CHG": not p.charge_disabled,
                "SS": p.safety_status != 0,
                "PF": p.permanent_failure,
                "XDSG": p.discharge_disabled,
                "XCHG": p.charge_disabled,
                "INIT": not g.initialized,
                "CB": bool(self.vpack.pack.balancing.any()),
            }
        elif register == "ChargingStatus":
            conditions = {g.temp_range: True, g.voltage_range: True, "VCT": g.vct}
        elif register == "GaugingStatus":
            conditions = {
                "FD": g.fd,
                "FC": g.fc,
                "TD": g.td,
                "TC": g.tc,
                "BAL_EN": g.mode.value != "discharge",
                "EDV": g.edv,
                "DSG": not g.charging,
                "CF": g.max_error > g.params.max_error_limit,
                "REST": g.ocv_taken,
                "QEN": True,
                "VDQ": g.learning,
                "QMax": bool(g.fcc_updates & 1),
            }
        elif register == "ManufacturingStatus":
            # an emulated production pack: gauging and FET control on (ti_gauges.md §5.6)
            conditions = {"GAUGE_EN": True, "FET_EN": True, "PF_EN": p.pf_enabled}
        else:
            conditions = {}
        return {name for name, on in conditions.items() if on}

    def operation_status(self) -> int:
        """OperationStatus (ti_gauges.md §5.3), with the profile's layout."""
        return self.status_word("OperationStatus")

    def charging_status(self) -> int:
        """ChargingStatus (ti_gauges.md §5.4), with the profile's layout (variants differ)."""
        return self.status_word("ChargingStatus")

    def gauging_status(self) -> int:
        """GaugingStatus (ti_gauges.md §5.5), with the profile's layout."""
        return self.status_word("GaugingStatus")

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
        later, RAM state re-initialised, and — as after any reset — SEALED again (SLUUAQ3A). Data flash
        keeps its contents."""
        self.vpack.gauge_reset()
        self._pending = None
        self._mac_result = b""
        self._mac_default = True
        if self.profile.sealed_at_start:
            self.security = Security.SEALED

    def _mac_reset(self) -> None:
        self.reset()

    def _mac_da_status1(self) -> bytes:
        """DAStatus1, 32 bytes (ti_gauges.md §4.2). Currents and powers signed (UNCONFIRMED).

        Powers are in cW in 16-bit fields, so a drone burst (16 V × 36 A = 576 W) does not fit:
        they saturate at the I2 limits. What TI firmware reports on overflow is not documented
        (UNCONFIRMED); saturation is the choice that never wraps to a wrong sign.
        """
        g = self.vpack.gauge
        m = g.measurement
        cells = [*m.cell_mv[:4], *([0] * (4 - min(4, len(m.cell_mv))))]
        pack_mv = m.voltage_mv if not self.vpack.protections.discharge_disabled else 0
        power_cw = _i2(m.voltage_mv * m.current_ma / 1e4)
        avg_power_cw = _i2(m.voltage_mv * g.average_current_ma / 1e4)
        cell_power = [_i2(v * m.current_ma / 1e4) if v else 0 for v in cells]
        currents = [_i2(m.current_ma) if v else 0 for v in cells]
        return struct.pack("<6H4h4h2h", *cells, m.voltage_mv, pack_mv, *currents, *cell_power, power_cw, avg_power_cw)

    def _mac_da_status2(self) -> bytes:
        """DAStatus2, 14 bytes (ti_gauges.md §4.2): internal, TS1–TS4, cell and FET temperature, 0.1 K."""
        g = self.vpack.gauge
        ts = [*g.measurement.ts_deci_k[:4], *([0] * (4 - min(4, len(g.measurement.ts_deci_k))))]
        internal = round(float(np.mean(self.vpack.pack.cell_temperatures)) * 10 + ZERO_C_DECI_K)
        return struct.pack("<7H", internal, *ts, g.measurement.temperature_deci_k, internal)

    # --- lifetime data ------------------------------------------------------------------------------

    def _collect_lifetime(self, vpack: VirtualPack) -> None:
        """Lifetime data collection after every simulation step: extremes and protection events.

        Runs every simulated second, so it compares in place (what :meth:`_Lifetime.keep` does)
        instead of calling per value, and looks up the tripped protections only when SafetyStatus
        changed."""
        life = self._lifetime
        values = life.values
        get = values.get
        m = vpack.gauge.measurement
        cells = m.cell_mv
        for (high_key, low_key), mv in zip(_CELL_EXTREME_KEYS, cells, strict=False):
            old = get(high_key)
            if old is None or mv > old:
                values[high_key] = mv
            old = get(low_key)
            if old is None or mv < old:
                values[low_key] = mv
        if cells:
            delta = m.max_cell_mv - m.min_cell_mv
            old = get("MaxDeltaCellVoltage")
            if old is None or delta > old:
                values["MaxDeltaCellVoltage"] = delta
        life.keep("MaxChargeCurrent", max(0, m.current_ma), high=True)
        life.keep("MaxDischargeCurrent", min(0, m.current_ma), high=False)
        ts_c = m.ts_c
        if ts_c:
            # round() is monotonic: the extreme of the rounded readings is the rounded extreme
            hottest, coldest = round(max(ts_c)), round(min(ts_c))
            old = get("MaxTempCell")
            if old is None or hottest > old:
                values["MaxTempCell"] = hottest
            old = get("MinTempCell")
            if old is None or coldest < old:
                values["MinTempCell"] = coldest
        status = vpack.protections.safety_status
        if status == life.status:
            return
        tripped = vpack.protections.names("SafetyStatus")
        for name in tripped - life.tripped:
            key = f"Num{name}Events"
            values[key] = get(key, 0) + 1
        life.tripped = tripped
        life.status = status

    def _mac_lifetime(self, code: int) -> bytes:
        """LifetimeDataBlock1–5 built with the profile's layout from what the gauge collected;
        fields the emulator does not collect read 0."""
        entry = next(m for m in self.chip.mac if m.code == code)
        if entry.layout is None:
            return b""
        layout = self.chip.layouts[entry.layout]
        values: dict[str, int] = {}
        for f in layout.fields:
            raw = self._lifetime.values.get(f.name, 0)
            bits = 8 * f.size
            signed = f.type.value.startswith("i")
            low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
            values[f.name] = max(low, min(high, raw))
        data: bytes = layout.struct.build(values)
        return data
