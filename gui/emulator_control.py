"""Controls for the emulated pack: scenario, speed and fault injection (no Qt).

Everything that touches the simulation runs on the poller's I/O thread (through
``Poller.call``), between two polls, so the simulation is never changed halfway through a
transaction. The fault list is data (:data:`FAULTS`): the Emulator panel makes one button per
entry, so a demonstration or a training session can show a short circuit, a thermal-runaway
precursor or an unplugged adapter, and how the pack and this app react.

:class:`EmulatorLink` is the poller's transport opener: for ``emulated:`` URIs it keeps the same
simulated pack across reconnections (a real pack does not reset because the adapter was
unplugged) and can simulate an unplugged adapter for a while.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from smartbatt.emulator.device import EmulatedGauge, Security
from smartbatt.emulator.faults import BusFaults
from smartbatt.emulator.load import SCENARIOS, ConstantCurrent, Load, scenario
from smartbatt.emulator.pack_faults import ThermistorFault
from smartbatt.errors import AdapterGone, SmartBattError
from smartbatt.sbs.battery import Battery
from smartbatt.transports import Transport, open_transport
from smartbatt.transports.emulated import EmulatedTransport
from smartbatt.uri import parse_uri

__all__ = ["FAULTS", "SCENARIOS", "EmulatorLink", "EmulatorState", "Fault", "NotEmulated"]


class NotEmulated(SmartBattError):
    """The connected device is not the emulated pack (the Emulator panel's controls do not apply)."""


@dataclass(frozen=True)
class EmulatorState:
    """What the Emulator panel shows about the simulation (ground truth, not what the gauge says)."""

    sim_time_s: float
    speed: float | None
    scenario: str
    #: requested pack current, A (SBS sign), before the FETs.
    requested_a: float
    #: true state of charge per series group, 0..1.
    true_soc: tuple[float, ...]
    #: true cell temperatures, °C.
    cell_temps_c: tuple[float, ...]
    security: str
    safety_status: int
    pf_status: int
    #: names of the active faults (the FAULTS keys).
    faults: tuple[str, ...]


def gauge_of(battery: Battery) -> tuple[EmulatedTransport, EmulatedGauge]:
    """The emulated transport and gauge behind ``battery``.

    :raises NotEmulated: another kind of adapter, or no emulated gauge at the address.
    """
    transport = battery.transport
    if not isinstance(transport, EmulatedTransport):
        raise NotEmulated("the connected adapter is not the emulated pack")
    target: Any = transport.target
    devices = getattr(target, "devices", {})
    gauge = devices.get(battery.address)
    if not isinstance(gauge, EmulatedGauge):
        raise NotEmulated(f"no emulated gauge at address 0x{battery.address:02X}")
    return transport, gauge


# --- per-session bookkeeping (lives on the gauge object, so it follows the pack) ---------------------


def _book(gauge: EmulatedGauge) -> dict[str, Any]:
    book: dict[str, Any] | None = getattr(gauge, "_gui_book", None)
    if book is None:
        book = {"scenario": "", "load": None, "ambient": None, "faults": set()}
        gauge._gui_book = book  # type: ignore[attr-defined]
    return book


def state(battery: Battery, scenario_name: str = "") -> EmulatorState:
    """Ground truth of the simulation now; ``scenario_name`` = the URI's scenario if none was set since."""
    transport, gauge = gauge_of(battery)
    vpack = gauge.vpack
    vpack.sync()
    book = _book(gauge)
    active = set(book["faults"])
    faults = transport.faults
    for key, on in (("nack", faults.nack_every), ("pec", faults.corrupt_pec_every), ("stretch", faults.stretch_s)):
        if on:
            active.add(key)
        else:
            active.discard(key)
    return EmulatorState(
        sim_time_s=vpack.time_s,
        speed=vpack.clock.speed,
        scenario=book["scenario"] or scenario_name or "idle",
        requested_a=vpack.requested_a,
        true_soc=tuple(float(x) for x in vpack.pack.cell_soc),
        cell_temps_c=tuple(float(x) for x in vpack.pack.cell_temperatures),
        security=Security(gauge.security).name.replace("_", " ").lower(),
        safety_status=vpack.protections.safety_status,
        pf_status=vpack.protections.pf_status,
        faults=tuple(sorted(active)),
    )


def set_scenario(battery: Battery, name: str, seed: int = 0) -> None:
    """Drive the pack with a named load scenario (:data:`SCENARIOS`).

    :raises ValueError: unknown scenario.
    """
    _, gauge = gauge_of(battery)
    load: Load = scenario(name, seed=seed)
    book = _book(gauge)
    book["scenario"] = name
    if "short_circuit" in book["faults"]:
        book["load"] = load  # the short stays until cleared; the scenario follows it
        return
    gauge.vpack.load = load


def set_speed(battery: Battery, speed: float) -> None:
    """Run the simulation at ``speed`` × real time (> 0).

    :raises ValueError: not positive.
    """
    _, gauge = gauge_of(battery)
    gauge.vpack.clock.set_speed(speed)


# --- faults -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    """One injectable fault: a button in the Emulator panel."""

    key: str
    label: str
    #: what it does and what the operator should see.
    description: str
    #: ``pack`` (the cells and sensors), ``gauge`` or ``bus`` (the wire).
    group: str
    apply: Callable[[EmulatedTransport, EmulatedGauge, dict[str, Any]], None]


#: short-circuit current as a multiple of the design capacity (A per Ah): far beyond any load, so
#: the gauge's short-circuit-in-discharge protection (AFE, instant) trips.
SHORT_C_RATE = 40.0
#: ambient temperature of the "hot environment" fault, °C (above the 55 °C OTD default).
HOT_AMBIENT_C = 70.0


def _short(t: EmulatedTransport, g: EmulatedGauge, book: dict[str, Any]) -> None:
    if "short_circuit" not in book["faults"]:
        book["load"] = g.vpack.load
    capacity_ah = g.vpack.gauge.params.design_capacity_mah / 1000.0
    g.vpack.load = ConstantCurrent(-SHORT_C_RATE * capacity_ah)


def _runaway(t: EmulatedTransport, g: EmulatedGauge, book: dict[str, Any]) -> None:
    g.vpack.faults.start_runaway(min(1, g.vpack.pack.config.series - 1))


def _internal_short(t: EmulatedTransport, g: EmulatedGauge, book: dict[str, Any]) -> None:
    g.vpack.faults.internal_short(g.vpack.pack.config.series - 1, 5.0)


def _thermistor(fault: ThermistorFault) -> Callable[[EmulatedTransport, EmulatedGauge, dict[str, Any]], None]:
    def apply(t: EmulatedTransport, g: EmulatedGauge, book: dict[str, Any]) -> None:
        g.vpack.faults.thermistor(0, fault)

    return apply


def _hot(t: EmulatedTransport, g: EmulatedGauge, book: dict[str, Any]) -> None:
    if book["ambient"] is None:
        book["ambient"] = g.vpack.pack.ambient_c
    g.vpack.pack.ambient_c = HOT_AMBIENT_C


def _drift(t: EmulatedTransport, g: EmulatedGauge, book: dict[str, Any]) -> None:
    g.vpack.faults.offset_drift_ma_per_s = 0.5


def _reset(t: EmulatedTransport, g: EmulatedGauge, book: dict[str, Any]) -> None:
    g.reset()


def _nack(t: EmulatedTransport, g: EmulatedGauge, book: dict[str, Any]) -> None:
    t.faults.nack_every = 5


def _pec(t: EmulatedTransport, g: EmulatedGauge, book: dict[str, Any]) -> None:
    t.faults.corrupt_pec_every = 7


def _stretch(t: EmulatedTransport, g: EmulatedGauge, book: dict[str, Any]) -> None:
    t.faults.stretch_s = 0.040


FAULTS: Mapping[str, Fault] = MappingProxyType(
    {
        f.key: f
        for f in (
            Fault("short_circuit", "Short circuit", "The load draws 40 A per Ah of capacity: the gauge's "
                  "short-circuit protection opens the discharge FET at once.", "pack", _short),
            Fault("runaway", "Runaway precursor", "Cell 2 starts heating from an internal fault: temperature "
                  "rises faster than the load explains (thermal-runaway precursor alarm).", "pack", _runaway),
            Fault("internal_short", "Internal short", "A 5 Ω leak across the top cell: its voltage falls against "
                  "the others at rest (cell-drop alarm).", "pack", _internal_short),
            Fault("hot_ambient", "Hot environment", f"Ambient {HOT_AMBIENT_C:g} °C: over-temperature warnings, "
                  "then the gauge's over-temperature protection.", "pack", _hot),
            Fault("thermistor_open", "Thermistor open", "TS1 reads as an open sensor (far below −40 °C): "
                  "sensor-stuck alarm.", "pack", _thermistor(ThermistorFault.OPEN)),
            Fault("thermistor_short", "Thermistor shorted", "TS1 reads as a shorted sensor (far above "
                  "120 °C).", "pack", _thermistor(ThermistorFault.SHORT)),
            Fault("offset_drift", "Current-sensor drift", "The current offset drifts by 0.5 mA per simulated "
                  "second: the gauge's SOC slowly diverges.", "gauge", _drift),
            Fault("gauge_reset", "Gauge reset", "The gauge resets: INIT clears for about a second and it "
                  "seals itself again.", "gauge", _reset),
            Fault("nack", "NACK every 5th", "Every 5th transaction is not acknowledged: reads are retried, "
                  "see the bus monitor.", "bus", _nack),
            Fault("pec", "Corrupt PEC", "Every 7th reply carries a wrong PEC byte: detected and retried.",
                  "bus", _pec),
            Fault("stretch", "Clock stretch 40 ms", "The device holds the clock past the 25 ms SMBus timeout: "
                  "every transaction fails until cleared.", "bus", _stretch),
        )
    }
)


def inject(battery: Battery, key: str) -> None:
    """Inject fault ``key`` (a :data:`FAULTS` key).

    :raises KeyError: unknown fault. :raises NotEmulated: not the emulated pack.
    """
    fault = FAULTS[key]
    transport, gauge = gauge_of(battery)
    book = _book(gauge)
    fault.apply(transport, gauge, book)
    if key != "gauge_reset":  # a reset is a moment, not a state
        book["faults"].add(key)


def clear_faults(battery: Battery) -> None:
    """Remove every injected fault (protections that tripped recover by their own rules)."""
    transport, gauge = gauge_of(battery)
    book = _book(gauge)
    vpack = gauge.vpack
    if book["load"] is not None:
        vpack.load = book["load"]
        book["load"] = None
    if book["ambient"] is not None:
        vpack.pack.ambient_c = book["ambient"]
        book["ambient"] = None
    faults = vpack.faults
    faults.stop_runaway()
    for group in list(faults.shorts):
        faults.internal_short(group, None)
    for index in list(faults.thermistors):
        faults.thermistor(index, None)
    faults.offset_drift_ma_per_s = 0.0
    transport.faults.nack_every = 0
    transport.faults.corrupt_pec_every = 0
    transport.faults.stretch_s = 0.0
    transport.faults.stuck = False
    book["faults"].clear()


# --- the opener ------------------------------------------------------------------------------------------


class EmulatorLink:
    """Transport opener for the poller (``Poller(opener=link.open)``).

    Non-emulated URIs are opened normally. For ``emulated:`` URIs the first open builds the pack;
    later opens (after a lost link) reconnect to the *same* simulated pack, with the URI's wire
    fault settings, as a real adapter reconnects to the same battery. :meth:`unplug` makes opens
    fail with :class:`AdapterGone` for a while, like a USB adapter that was pulled out.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._uri = ""
        self._first: EmulatedTransport | None = None
        self._faults: BusFaults | None = None
        self._unplugged_until = 0.0

    def open(self, uri: str) -> Transport:
        if parse_uri(uri).scheme != "emulated":
            return open_transport(uri)
        with self._lock:
            if self._clock() < self._unplugged_until:
                raise AdapterGone("the adapter is unplugged (emulated); waiting for it to come back")
            first = self._first
            if first is None or uri != self._uri:
                transport = open_transport(uri)
                assert isinstance(transport, EmulatedTransport)
                self._uri, self._first = uri, transport
                self._faults = dataclasses.replace(transport.faults)
                return transport
            assert self._faults is not None
            return EmulatedTransport(
                first.target, faults=dataclasses.replace(self._faults), bus_hz=first.bus_hz, timeout_s=first.timeout_s
            )

    def unplug(self, seconds: float) -> None:
        """Refuse to open for ``seconds`` from now (the live transport is closed by the caller)."""
        with self._lock:
            self._unplugged_until = self._clock() + max(0.0, seconds)

    @property
    def unplugged(self) -> bool:
        with self._lock:
            return self._clock() < self._unplugged_until

    def forget(self) -> None:
        """Build a fresh pack at the next open (a new connection by the user)."""
        with self._lock:
            self._uri, self._first, self._faults = "", None, None
            self._unplugged_until = 0.0


def unplug(link: EmulatorLink, seconds: float) -> Callable[[Battery], None]:
    """A ``Poller.call`` function that pulls the emulated adapter out for ``seconds``."""

    def pull(battery: Battery) -> None:
        gauge_of(battery)  # only the emulated adapter can be pulled out from here
        link.unplug(seconds)
        battery.transport.close()

    return pull
