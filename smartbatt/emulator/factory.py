"""Build the emulated bus a device URI describes: ``emulated:<profile>?key=value``.

``emulated:`` (or ``emulated:bq40z50``) gives a bq40z50-like gauge over a simulated 4S pack;
``emulated:generic-sbs`` a plain SBS 1.1 battery; ``?model=static`` the fixed register file used by
benchmarks and transport tests. Examples::

    emulated:bq40z50?cells=4&scenario=drone&seed=7&speed=10
    emulated:?speed=0&soc=0.2&charger=1
    emulated:bq40z50?speed=0&thermistor=open&offset_drift=0.5

Every option is typed (:class:`EmulatorOptions`); an unknown key or value is a ``UriError`` naming
the valid ones.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, fields, replace

from smartbatt.emulator.chemistry import load_chemistry
from smartbatt.emulator.clock import SimClock
from smartbatt.emulator.device import PROFILES, EmulatedGauge, GaugeIdentity, Security, VirtualPack
from smartbatt.emulator.gauge import ChargingRange, GaugeParameters
from smartbatt.emulator.load import SCENARIOS, Load, scenario
from smartbatt.emulator.pack import PackConfig
from smartbatt.emulator.pack_faults import PackFaults, ThermistorFault
from smartbatt.emulator.protections import ProtectionParameters
from smartbatt.emulator.register_file import RegisterFileDevice
from smartbatt.emulator.target import EmulatedBus, SMBusDevice
from smartbatt.errors import UriError
from smartbatt.uri import parse_options, parse_uri

#: default profile of ``emulated:``.
DEFAULT_PROFILE = "bq40z50"
MODELS = ("physics", "static")
SECURITY_MODES = {"sealed": Security.SEALED, "unsealed": Security.UNSEALED, "full": Security.FULL_ACCESS}


@dataclass(frozen=True)
class EmulatorOptions:
    """Options of the emulated pack taken from the URI query."""

    #: ``physics`` (simulated pack and gauge) or ``static`` (fixed register file: benchmarks).
    model: str = "physics"
    #: series cells (bq40z50: 1–4).
    cells: int = 4
    #: cells in parallel per series group (1–4).
    parallel: int = 1
    #: ``nmc``, ``lco`` or ``lfp``.
    chemistry: str = "nmc"
    #: design capacity of the pack, mAh.
    capacity: int = 3000
    #: load scenario: idle, laptop, drone, powertool, charge.
    scenario: str = "idle"
    seed: int = 0
    #: 1 = real time, N = N× real time, 0 = time moves only through the API (tests, fast mode).
    speed: float = 1.0
    #: initial state of charge, 0..1.
    soc: float = 0.8
    #: ambient temperature, °C.
    ambient: float = 25.0
    #: also attach a Smart Battery Charger at 0x09.
    charger: bool = False
    #: security mode at start: sealed, unsealed or full.
    security: str = "sealed"
    #: thermistor TS1 fault: open or short.
    thermistor: str = ""
    #: cell with an internal short (1 = bottom cell), 0 = none.
    short_cell: int = 0
    #: cell with a thermal-runaway precursor (1 = bottom cell), 0 = none.
    runaway_cell: int = 0
    #: current-sensor offset drift, mA per simulated second.
    offset_drift: float = 0.0
    #: reset the gauge once at this simulated time, s (0 = never).
    reset_at: float = 0.0
    #: 7-bit address of an emulated PMBus converter also on the bus (0 = none).
    pmbus: int = 0
    #: SerialNumber the pack reports (-1 = 0x1000 + seed, so packs of different seeds differ).
    serial: int = -1
    #: ManufactureDate the pack reports, ISO ``YYYY-MM-DD`` or ``today`` (empty = 2025-03-14, a fixed
    #: date so register traces do not depend on the day they are recorded).
    made: str = ""

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {', '.join(MODELS)}, not {self.model!r}")
        if self.scenario not in SCENARIOS:
            raise ValueError(f"scenario must be one of {', '.join(SCENARIOS)}, not {self.scenario!r}")
        if self.security not in SECURITY_MODES:
            raise ValueError(f"security must be one of {', '.join(SECURITY_MODES)}, not {self.security!r}")
        if self.thermistor not in ("", "open", "short"):
            raise ValueError(f"thermistor must be open or short, not {self.thermistor!r}")
        if self.speed < 0:
            raise ValueError("speed must not be negative (0 = manual time)")
        if self.pmbus and not (0x03 <= self.pmbus <= 0x77 and self.pmbus not in (0x09, 0x0B)):
            raise ValueError(f"pmbus must be a free 7-bit address 0x03..0x77 (not 0x09/0x0B), not 0x{self.pmbus:02X}")
        if self.reset_at < 0:
            raise ValueError("reset_at must not be negative")
        if self.capacity <= 0:
            raise ValueError("capacity must be a positive number of mAh")
        if not -1 <= self.serial <= 0xFFFF:
            raise ValueError(f"serial must be a 16-bit number 0..65535, not {self.serial}")
        if self.made:
            manufacture_date_word(self.made)
        for name in ("short_cell", "runaway_cell"):
            value = getattr(self, name)
            if not 0 <= value <= self.cells:
                raise ValueError(f"{name} must be a cell number 1..{self.cells} (0 = none), not {value}")


def manufacture_date_word(text: str) -> int:
    """ISO date → SBS ManufactureDate word, (year − 1980) × 512 + month × 32 + day (sbs.md §5).

    :raises ValueError: not an ISO date, or outside the 1980–2107 range the word can hold.
    """
    try:
        day = datetime.date.today() if text == "today" else datetime.date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"made must be an ISO date YYYY-MM-DD or 'today', not {text!r}") from None
    if not 1980 <= day.year <= 1980 + 127:
        raise ValueError(f"made: SBS ManufactureDate holds the years 1980..2107, not {day.year}")
    return (day.year - 1980) * 512 + day.month * 32 + day.day


def _physics_only(options: dict[str, str]) -> None:
    extra = sorted(set(options) - {"model", "pmbus"})
    if extra:
        raise UriError(f"option {extra[0]!r} has no effect with model=static (the register file is fixed)")


def pack_configuration(
    params: GaugeParameters,
    prot: ProtectionParameters,
    scenario_name: str,
    window_v: tuple[float, float, float],
) -> GaugeParameters:
    """The data flash a pack integrator programs for this chemistry and use (chosen, documented).

    Voltage settings follow the chemistry's window so that a 4.2 V chemistry gets exactly the TI
    defaults (COV 4300/3900, SOV 4500, CUV 2500/3000, SUV 2200, Term Voltage 3000, charging 4200/4000,
    voltage ranges 2900/3600/4000 mV); a high-rate use (drone, powertool) raises the overcurrent
    thresholds as such packs are configured. ``window_v`` = (v_min, v_nominal, v_max) of the chemistry.
    Changes ``prot`` in place and returns the adjusted gauge parameters.
    """
    bottom, nominal, top = (round(v * 1000) for v in window_v)
    for suffix in ("Low Temp", "Standard Temp Low", "Standard Temp High", "High Temp", "Rec Temp"):
        prot[f"COV:Threshold {suffix}"] = top + 100
        prot[f"COV:Recovery {suffix}"] = top - 300
    prot["SOV:Threshold"] = top + 300
    prot["CUV:Threshold"] = bottom
    prot["CUV:Recovery"] = bottom + 500
    prot["SUV:Threshold"] = bottom - 300
    capacity = params.design_capacity_mah
    if scenario_name in ("drone", "powertool"):
        # 12C / 16C, within the I2 mA range of the TI parameters
        prot["OCD1:Threshold"] = -min(12 * capacity, 30000)
        prot["OCD2:Threshold"] = -min(16 * capacity, 32000)
    ranges: dict[str, ChargingRange] = {
        name: replace(r, voltage_mv=top if name in ("STL", "RT", "STH") else top - 200)
        for name, r in params.charging.ranges.items()
    }
    charging = replace(
        params.charging, ranges=ranges, voltage_low_mv=bottom + 400, voltage_med_mv=nominal, voltage_high_mv=top - 200
    )
    return replace(params, term_voltage_mv=bottom + 500, design_voltage_mv=nominal * params.cells, charging=charging)


def _reset_once_at(gauge: EmulatedGauge, at_s: float) -> None:
    """Inject one gauge reset when the simulation reaches ``at_s``."""

    def observer(vpack: VirtualPack) -> None:
        if vpack.time_s >= at_s and observer in vpack.observers:
            vpack.observers.remove(observer)
            gauge.reset()

    gauge.vpack.observers.append(observer)


def build_physics(target: str, opts: EmulatorOptions) -> tuple[EmulatedBus, EmulatedGauge]:
    """The bus, and the gauge on it, for a physics-model URI."""
    profile = PROFILES[target]
    if not 1 <= opts.cells <= profile.max_cells:
        raise UriError(f"{target} measures 1..{profile.max_cells} series cells, not cells={opts.cells}")
    try:
        config = PackConfig(
            chemistry=opts.chemistry,
            series=opts.cells,
            parallel=opts.parallel,
            cell_capacity_ah=opts.capacity / opts.parallel / 1000.0,
            seed=opts.seed,
            initial_soc=opts.soc,
            ambient_c=opts.ambient,
        )
    except ValueError as exc:
        raise UriError(f"invalid pack option: {exc}") from None
    load: Load = scenario(opts.scenario, seed=opts.seed)
    faults = PackFaults(offset_drift_ma_per_s=opts.offset_drift)
    if opts.thermistor:
        faults.thermistor(0, ThermistorFault(opts.thermistor))
    if opts.short_cell:
        faults.shorts[opts.short_cell - 1] = 5.0
    chem = load_chemistry(opts.chemistry)
    prot = ProtectionParameters()
    window = (chem.v_min, chem.v_nominal, chem.v_max)
    params = pack_configuration(GaugeParameters.for_pack(opts.capacity, opts.cells), prot, opts.scenario, window)
    clock = SimClock(opts.speed if opts.speed > 0 else None)
    vpack = VirtualPack(config, load=load, clock=clock, gauge_params=params, protection_params=prot, faults=faults)
    if opts.runaway_cell:
        faults.start_runaway(opts.runaway_cell - 1)
    identity = GaugeIdentity(
        device_name=f"EMU-{opts.cells}S{opts.capacity}".encode(),
        device_chemistry=b"LiP" if opts.chemistry == "lco" else b"LION",
        serial_number=(0x1000 + opts.seed) & 0xFFFF if opts.serial < 0 else opts.serial,
    )
    if opts.made:
        identity.manufacture_date = manufacture_date_word(opts.made)
    gauge = EmulatedGauge(vpack, profile, identity=identity)
    if opts.reset_at:
        _reset_once_at(gauge, opts.reset_at)
    if profile.ti_mac:
        gauge.security = SECURITY_MODES[opts.security]
    devices: list[SMBusDevice] = [gauge]
    if opts.charger:
        from smartbatt.emulator.charger import SmartCharger

        devices.append(SmartCharger(gauge))
    return EmulatedBus(devices), gauge


def build_bus(target: str, options: dict[str, str]) -> EmulatedBus:
    """The devices behind an ``emulated:`` URI.

    :param target: profile name (``bq40z50`` by default, ``generic-sbs``).
    :raises UriError: for an unknown profile, an unknown option or an invalid value.
    """
    opts = parse_options(EmulatorOptions, options)
    if opts.model == "static":
        _physics_only(options)
        bus = EmulatedBus([RegisterFileDevice()])
    else:
        name = target or DEFAULT_PROFILE
        if name not in PROFILES:
            raise UriError(f"unknown emulated chip {name!r} (known: {', '.join(sorted(PROFILES))})")
        bus = build_physics(name, opts)[0]
    if opts.pmbus:
        from smartbatt.emulator.pmbus_device import EmulatedPMBusDevice

        bus.attach(EmulatedPMBusDevice(opts.pmbus))
    return bus


def option_names() -> tuple[str, ...]:
    """Names of the emulator URI options (for the CLI and documentation)."""
    return tuple(f.name for f in fields(EmulatorOptions))


def emulated_profile(uri: str) -> str:
    """The chip an ``emulated:`` URI emulates (``bq40z50`` for a bare ``emulated:``), or "" for
    any other URI and for the static register file.

    Monitoring detects profiles by DeviceName only (it never writes ManufacturerAccess), and the
    emulated pack is named ``EMU-<cells>S<capacity>``, which matches no profile; the emulator's own
    URI says which chip it serves, so monitors use that instead of falling back to generic SBS.
    """
    try:
        spec = parse_uri(uri)
    except UriError:
        return ""
    if spec.scheme != "emulated" or spec.options.get("model", "physics") == "static":
        return ""
    name = spec.target or DEFAULT_PROFILE
    return name if name in PROFILES else ""

