"""The polling scheduler: reads a pack on its own thread and publishes :class:`Sample` records.

Read-only by construction: the poller issues only reads (SBS words and blocks, and the chip
profile's extra read commands such as CellVoltage1..4 and the 0x50-0x57 status blocks). It never
writes ManufacturerAccess, so profile detection here is by DeviceName only.

Rates. Three groups: *fast* (Voltage, Current, Temperature, cell voltages, status words; default
2 Hz), *medium* (SOC, capacities, times, charging request; 1 Hz) and *slow* (identity: once per
connection, and SerialNumber/ManufactureDate re-checked every few seconds to catch a pack swap).
TI gauges update most registers about once a second and a few about 4 Hz (ti_gauges.md), so the
fast rate is capped at 4 Hz unless ``allow_fast`` is set. The scheduler estimates the bus time
each group needs (SMBus bit-count model, smbus.md §5) and, when the requested rates do not fit
``bus_budget`` (share of the bus the monitor may use), slows the fast group down to fit and says
so in :attr:`PollerStatus.over_budget` and with one WARNING event.

Errors. A failed read marks its channel missing for that poll (the transport already retried
it). A poll in which every read failed counts as a link failure; after ``lost_after`` such polls,
or at once on ``AdapterGone``, the link is LOST: the transport is closed and reopened every
``reconnect_s`` until the pack answers again (hot-plug and reconnect are the same path). A pack
whose SerialNumber or ManufactureDate differs from the previous one is a new pack: a
``pack_changed`` event starts a new session for the recorder.
"""

from __future__ import annotations

import contextlib
import datetime
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, TypeVar

from smartbatt.emulator.factory import emulated_profile
from smartbatt.errors import AdapterGone, NoAcknowledge, NotReady, SmartBattError, TransportError
from smartbatt.monitor.sample import Event, Sample, SampleBus, Severity
from smartbatt.profiles.detect import detect_profile
from smartbatt.profiles.loader import load_profile
from smartbatt.profiles.schema import Profile
from smartbatt.sbs.battery import Battery
from smartbatt.sbs.commands import sbs_table
from smartbatt.sbs.decode import decode
from smartbatt.transports import Transport, open_transport
from smartbatt.transports.txlog import Listener, TransactionRecord

T = TypeVar("T")

#: registers that change fast; cell voltages and status words are added per profile.
FAST_SBS = ("Voltage", "Current", "Temperature", "BatteryStatus")
MEDIUM_SBS = (
    "AverageCurrent",
    "RelativeStateOfCharge",
    "AbsoluteStateOfCharge",
    "RemainingCapacity",
    "FullChargeCapacity",
    "RunTimeToEmpty",
    "AverageTimeToEmpty",
    "AverageTimeToFull",
    "ChargingCurrent",
    "ChargingVoltage",
    "MaxError",
    "CycleCount",
)
#: status registers the poller reads when the profile offers them as SBS reads (no MAC write).
STATUS_WORDS = ("SafetyAlert", "SafetyStatus", "PFAlert", "PFStatus", "OperationStatus", "ChargingStatus")

#: gauges refresh their registers about once a second, some about 4 Hz (ti_gauges.md §2).
GAUGE_MAX_HZ = 4.0

#: SMBus periods of a read word with PEC and of a block read of n bytes (smbus.md §5 formulas).
_WORD_PERIODS = 57
_BLOCK_PERIODS = 3 + 9 * 5  # + 9 per data byte


class LinkState(StrEnum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    LOST = "lost"
    STOPPED = "stopped"


@dataclass(frozen=True)
class PackIdentity:
    """What identifies a pack; a change of serial number or date means another pack."""

    serial_number: int
    manufacture_date: datetime.date | None
    device_name: str
    manufacturer_name: str
    chemistry: str
    #: Ah (or Wh when the pack reports in CAPACITY_MODE).
    design_capacity: float
    #: V.
    design_voltage: float
    #: cell voltages the profile lets us read (0 if unknown).
    cells: int
    #: chip profile in use and how it was chosen.
    profile: str
    profile_reason: str = ""

    def same_pack(self, other: PackIdentity) -> bool:
        return (self.serial_number, self.manufacture_date) == (other.serial_number, other.manufacture_date)


@dataclass(frozen=True)
class PollerStatus:
    """Thread-safe snapshot of the poller's state."""

    link: LinkState = LinkState.CONNECTING
    device: str = ""
    identity: PackIdentity | None = None
    last_error: str = ""
    samples: int = 0
    missing: int = 0
    #: share of the bus-time budget the schedule uses (0..1; above 1 before slowing down).
    bus_load: float = 0.0
    over_budget: bool = False
    #: fast-group rate actually used, Hz.
    fast_hz: float = 0.0


@dataclass(frozen=True)
class _Channel:
    """One register to poll: how to read it and how to turn the raw value into a sample value."""

    name: str
    code: int
    #: "word" or "block".
    kind: str
    #: raw → display unit (Sample conventions), or None for a status word kept raw.
    convert: Callable[[Any], float | None] | None
    status: bool = False
    block_len: int = 4

    def bus_periods(self) -> int:
        return _WORD_PERIODS if self.kind == "word" else _BLOCK_PERIODS + 9 * self.block_len


def _sbs_convert(name: str, capacity_mode: bool) -> Callable[[Any], float | None]:
    """Raw SBS word → Sample unit (V, A, °C, %, Ah, min): mV/mA/mAh divided by 1000."""
    cmd = sbs_table().by_name(name)
    divide = 1000.0 if cmd.unit in ("mV", "mA", "mAh", "mWh", "mW") or cmd.capacity_mode else 1.0

    def convert(raw: Any) -> float | None:
        value = decode(cmd, raw, capacity_mode=capacity_mode).value
        if value is None or isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return float(value) / divide

    return convert


def _mv_to_v(raw: Any) -> float | None:
    return raw / 1000.0 if isinstance(raw, int) else None


class Poller:
    """Polls one pack on a background thread and publishes samples and link events to ``bus``.

    :param uri: device URI (``emulated:``, ``i2c:1``, …).
    :param bus: where samples and events go.
    :param address: battery address.
    :param pec: force PEC on/off; None = from SpecificationInfo.
    :param profile: chip profile name; None = detect from DeviceName (never by a MAC write).
    :param fast_hz: rate of the fast group (capped at 4 Hz unless ``allow_fast``).
    :param medium_hz: rate of the medium group.
    :param bus_hz: SCL frequency for the bus-time budget.
    :param bus_budget: share of the bus the monitor may use (0..1).
    :param reconnect_s: delay between reconnection attempts.
    :param lost_after: consecutive all-failed polls before the link counts as lost.
    :param opener: opens the transport (tests inject one); defaults to :func:`open_transport`.
    """

    def __init__(
        self,
        uri: str,
        bus: SampleBus,
        *,
        address: int = 0x0B,
        pec: bool | None = None,
        profile: str | None = None,
        fast_hz: float = 2.0,
        medium_hz: float = 1.0,
        allow_fast: bool = False,
        bus_hz: int = 100_000,
        bus_budget: float = 0.5,
        reconnect_s: float = 1.0,
        lost_after: int = 3,
        identity_check_s: float = 5.0,
        opener: Callable[[str], Transport] = open_transport,
    ) -> None:
        if fast_hz <= 0 or medium_hz <= 0:
            raise ValueError("polling rates must be positive")
        if not 0 < bus_budget <= 1:
            raise ValueError("bus_budget must be within (0, 1]")
        self.uri = uri
        self.bus = bus
        self.address = address
        self.pec = pec
        self.profile_name = profile
        self.requested_fast_hz = fast_hz if allow_fast else min(fast_hz, GAUGE_MAX_HZ)
        self.medium_hz = medium_hz if allow_fast else min(medium_hz, GAUGE_MAX_HZ)
        self.bus_hz = bus_hz
        self.bus_budget = bus_budget
        self.reconnect_s = reconnect_s
        self.lost_after = lost_after
        self.identity_check_s = identity_check_s
        self._opener = opener
        self._status = PollerStatus(device=uri)
        self._status_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._calls: queue.Queue[tuple[Callable[[Battery], Any], Future[Any]]] = queue.Queue()
        self._tx_listeners: list[Listener] = []
        self._transport: Transport | None = None
        self._battery: Battery | None = None
        self._last_identity: PackIdentity | None = None
        #: optional status registers the gauge refused (sealed); probed again now and then.
        self._refused: list[_Channel] = []
        self._event_id = 0

    # --- public API --------------------------------------------------------------------------

    @property
    def status(self) -> PollerStatus:
        with self._status_lock:
            return self._status

    @property
    def battery_transport(self) -> Transport | None:
        """The live transport (None while disconnected)."""
        return self._transport

    def start(self) -> None:
        """Start polling on a background thread (idempotent)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="smartbatt-poller", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop polling, close the transport, fail pending calls. Returns within ``timeout``."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._disconnect()
        self._fail_pending(AdapterGone("monitoring stopped"))
        self._set(link=LinkState.STOPPED)

    def __enter__(self) -> Poller:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def call(self, fn: Callable[[Battery], T], timeout: float = 5.0) -> T:
        """Run ``fn(battery)`` on the I/O thread between polls and return its result.

        :raises AdapterGone: the pack is not connected or the poller stopped.
        :raises BusTimeout-like TimeoutError: ``fn`` did not get its turn within ``timeout``.
        :raises SmartBattError: whatever ``fn`` raised.
        """
        if self._thread is None or not self._thread.is_alive():
            raise AdapterGone("monitoring is not running")
        future: Future[T] = Future()
        self._calls.put((fn, future))
        return future.result(timeout)

    def add_transaction_listener(self, listener: Listener) -> Callable[[], None]:
        """Receive every bus transaction record (called on the I/O thread)."""
        self._tx_listeners = [*self._tx_listeners, listener]

        def remove() -> None:
            self._tx_listeners = [x for x in self._tx_listeners if x is not listener]

        return remove

    # --- thread ------------------------------------------------------------------------------

    def _set(self, **changes: Any) -> None:
        with self._status_lock:
            self._status = replace(self._status, **changes)

    def _forward(self, record: TransactionRecord) -> None:
        for listener in self._tx_listeners:
            listener(record)

    def _event(self, severity: Severity, code: str, message: str) -> None:
        self._event_id += 1
        self.bus.publish(
            Event(id=self._event_id, time=time.time(), severity=severity, source="link", code=code, message=message)
        )

    def _run(self) -> None:
        was_connected = False
        while not self._stop.is_set():
            try:
                channels = self._connect()
            except SmartBattError as exc:
                self._disconnect()
                state = LinkState.LOST if was_connected else LinkState.CONNECTING
                self._set(link=state, last_error=str(exc))
                self._fail_pending(AdapterGone(f"not connected: {exc}"))
                self._stop.wait(self.reconnect_s)
                continue
            if was_connected:
                self._event(Severity.INFO, "link_restored", f"communication with the pack restored ({self.uri})")
            was_connected = True
            reason, swapped = self._poll_until_lost(channels)
            self._disconnect()
            if self._stop.is_set():
                break
            if swapped:  # reconnect at once: _connect publishes pack_changed
                continue
            self._set(link=LinkState.LOST, last_error=reason)
            self._event(Severity.WARNING, "link_lost", f"lost communication with the pack: {reason}")
            self._stop.wait(self.reconnect_s)

    def _disconnect(self) -> None:
        transport, self._transport, self._battery = self._transport, None, None
        if transport is not None:
            with contextlib.suppress(SmartBattError):
                transport.close()

    def _fail_pending(self, exc: SmartBattError) -> None:
        while True:
            try:
                _, future = self._calls.get_nowait()
            except queue.Empty:
                return
            if not future.done():
                future.set_exception(exc)

    def _connect(self) -> list[_Channel]:
        self._set(link=LinkState.CONNECTING)
        transport = self._opener(self.uri)
        self._transport = transport
        transport.add_listener(self._forward)
        battery = Battery(transport, self.address, self.pec)
        self._battery = battery
        self._refused = []
        identity, profile = self._read_identity(battery)
        if self._last_identity is not None and not identity.same_pack(self._last_identity):
            self._event(
                Severity.INFO,
                "pack_changed",
                f"another pack: serial {identity.serial_number} (was {self._last_identity.serial_number})",
            )
        self._last_identity = identity
        channels = self._channels(battery, profile)
        fast_hz, load = self._fit_budget(channels)
        over = fast_hz < self.requested_fast_hz
        if over:
            self._event(
                Severity.WARNING,
                "over_budget",
                f"requested polling needs {load:.0%} of the allowed bus time; fast rate lowered to {fast_hz:.2f} Hz",
            )
        self._set(
            link=LinkState.CONNECTED, identity=identity, last_error="", bus_load=load, over_budget=over, fast_hz=fast_hz
        )
        return channels

    def _read_identity(self, battery: Battery) -> tuple[PackIdentity, Profile | None]:
        # the first read is the presence check; a NACK here carries the Battery's diagnosis
        serial = battery.serial_number
        date = _maybe(lambda: battery.manufacture_date)
        name = _maybe(lambda: battery.device_name) or ""
        maker = _maybe(lambda: battery.manufacturer_name) or ""
        chem = _maybe(lambda: battery.device_chemistry) or ""
        cap = _maybe(lambda: battery.design_capacity)
        volt = _maybe(lambda: battery.design_voltage)
        profile: Profile | None
        emulated = emulated_profile(self.uri)
        if self.profile_name:
            profile = load_profile(self.profile_name)
            reason = "named by the user"
        elif emulated:
            profile = load_profile(emulated)
            reason = "the emulated chip named by the device URI"
        else:
            detection = detect_profile(lambda: name, lambda: maker, None, allow_mac=False)
            profile = load_profile(detection.profile) if detection.profile else None
            reason = detection.reason
        cells = 0
        if profile is not None:
            cells = sum(1 for c in profile.commands if c.name.startswith("CellVoltage") and c.readable)
        identity = PackIdentity(
            serial_number=int(serial),
            manufacture_date=date,
            device_name=name,
            manufacturer_name=maker,
            chemistry=chem,
            design_capacity=float(cap) / 1000.0 if cap is not None else float("nan"),
            design_voltage=float(volt) / 1000.0 if volt is not None else float("nan"),
            cells=cells,
            profile=profile.name if profile is not None else "generic-sbs",
            profile_reason=reason,
        )
        return identity, profile

    def _channels(self, battery: Battery, profile: Profile | None) -> list[_Channel]:
        capm = battery.capacity_mode
        table = sbs_table()
        channels = [
            _Channel(
                n,
                table.by_name(n).code,
                "word",
                None if n == "BatteryStatus" else _sbs_convert(n, capm),
                status=n == "BatteryStatus",
            )
            for n in FAST_SBS
        ]
        if profile is not None:
            for cmd in profile.commands:
                if cmd.name.startswith("CellVoltage") and cmd.readable and cmd.kind.value == "word":
                    channels.append(_Channel(cmd.name, cmd.code, "word", _mv_to_v))
            for name in STATUS_WORDS:
                source = profile.status_sources.get(name)
                if source is None or source.sbs is None:
                    continue
                channel = _Channel(name, source.sbs, source.sbs_kind, None, status=True, block_len=source.size)
                if self._readable(battery, channel):
                    channels.append(channel)
                else:
                    self._refused.append(channel)
        channels.extend(_Channel(n, table.by_name(n).code, "word", _sbs_convert(n, capm)) for n in MEDIUM_SBS)
        return channels

    def _reprobe(self, battery: Battery, channels: list[_Channel]) -> None:
        """Status registers follow the security state: a register refused while the gauge was
        sealed is read again once it answers (after an unseal), without a reconnect."""
        for channel in list(self._refused):
            if self._readable(battery, channel):
                self._refused.remove(channel)
                channels.append(channel)

    def _readable(self, battery: Battery, channel: _Channel) -> bool:
        """Probe an optional status register once: a sealed gauge NACKs some of them, and polling a
        register that is refused would only cost retries every poll."""
        try:
            if channel.kind == "word":
                battery.transport.read_word(self.address, channel.code, pec=battery.pec)
            else:
                battery.transport.read_block(self.address, channel.code, pec=battery.pec)
        except AdapterGone:
            raise
        except (TransportError, NotReady):
            return False
        return True

    def _fit_budget(self, channels: list[_Channel]) -> tuple[float, float]:
        """Fast rate that fits the budget, and the load of the requested schedule."""
        fast = sum(c.bus_periods() for c in channels if c.name not in MEDIUM_SBS) / self.bus_hz
        medium = sum(c.bus_periods() for c in channels if c.name in MEDIUM_SBS) / self.bus_hz
        load = (fast * self.requested_fast_hz + medium * self.medium_hz) / self.bus_budget
        if load <= 1.0:
            return self.requested_fast_hz, load
        room = self.bus_budget - medium * self.medium_hz
        return max(room / fast, 0.1) if fast > 0 else self.requested_fast_hz, load

    def _poll_until_lost(self, channels: list[_Channel]) -> tuple[str, bool]:
        """Poll until the link is lost, the pack is swapped or stop; returns (reason, swapped)."""
        battery = self._battery
        assert battery is not None
        fast_period = 1.0 / self.status.fast_hz
        medium_period = 1.0 / self.medium_hz
        next_medium = next_identity = time.monotonic()
        next_identity += self.identity_check_s
        latest: dict[str, float] = {}
        status: dict[str, int] = {}
        failures = 0
        tick = time.monotonic()
        while not self._stop.is_set():
            self._run_calls(battery)
            now = time.monotonic()
            medium_due = now >= next_medium
            if medium_due:
                next_medium = now + medium_period
            try:
                missing, read = self._poll_once(battery, channels, medium_due, latest, status)
                if now >= next_identity:
                    next_identity = now + self.identity_check_s
                    self._check_same_pack(battery)
                    self._reprobe(battery, channels)
            except AdapterGone as exc:
                return str(exc), False
            except _PackChanged as exc:
                return str(exc), True
            failures = failures + 1 if read == 0 else 0
            if failures >= self.lost_after:
                return self.status.last_error or "the pack stopped answering", False
            if read:
                sample = Sample(time=time.time(), values=dict(latest), status=dict(status), missing=frozenset(missing))
                self.bus.publish(sample)
                st = self.status
                self._set(samples=st.samples + 1, missing=st.missing + len(missing))
            tick += fast_period
            delay = tick - time.monotonic()
            if delay < 0:
                tick = time.monotonic()
                delay = 0
            self._wait_with_calls(battery, delay)
        return "stopped", False

    def _wait_with_calls(self, battery: Battery, delay: float) -> None:
        """Sleep until the next tick, serving ``call()`` requests as they arrive."""
        deadline = time.monotonic() + delay
        while not self._stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            try:
                fn, future = self._calls.get(timeout=min(remaining, 0.05))
            except queue.Empty:
                continue
            self._serve(battery, fn, future)

    def _run_calls(self, battery: Battery) -> None:
        while True:
            try:
                fn, future = self._calls.get_nowait()
            except queue.Empty:
                return
            self._serve(battery, fn, future)

    @staticmethod
    def _serve(battery: Battery, fn: Callable[[Battery], Any], future: Future[Any]) -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(fn(battery))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread, not swallowed
            future.set_exception(exc)

    def _poll_once(
        self,
        battery: Battery,
        channels: list[_Channel],
        medium_due: bool,
        latest: dict[str, float],
        status: dict[str, int],
    ) -> tuple[set[str], int]:
        missing: set[str] = set()
        read = 0
        pec = battery.pec
        transport = battery.transport
        for channel in list(channels):
            if channel.name in MEDIUM_SBS and not medium_due:
                continue
            try:
                if channel.kind == "word":
                    raw: Any = transport.read_word(self.address, channel.code, pec=pec)
                else:
                    raw = transport.read_block(self.address, channel.code, pec=pec)
            except AdapterGone:
                raise
            except (TransportError, NotReady) as exc:
                if channel.status and isinstance(exc, NoAcknowledge) and exc.byte_index not in (None, 0):
                    # refused, not lost: the gauge was sealed; probed again with the identity check
                    channels.remove(channel)
                    self._refused.append(channel)
                    status.pop(channel.name, None)
                    continue
                missing.add(channel.name)
                latest.pop(channel.name, None)
                self._set(last_error=str(exc))
                continue
            read += 1
            if channel.status:
                status[channel.name] = raw if isinstance(raw, int) else int.from_bytes(raw, "little")
                continue
            assert channel.convert is not None
            try:
                value = channel.convert(raw)
            except SmartBattError:
                value = None
            if value is None:
                latest.pop(channel.name, None)
            else:
                latest[channel.name] = value
        return missing, read

    def _check_same_pack(self, battery: Battery) -> None:
        try:
            serial = battery.serial_number
            date = battery.manufacture_date
        except (TransportError, NotReady):
            return
        known = self._last_identity
        if known is not None and (serial, date) != (known.serial_number, known.manufacture_date):
            raise _PackChanged(f"pack swapped: serial {serial} replaced {known.serial_number}")


class _PackChanged(SmartBattError):
    """Internal: a different pack answers; reconnect to start a new session."""


def _maybe(read: Callable[[], T]) -> T | None:
    try:
        return read()
    except (TransportError, NotReady) as exc:
        if isinstance(exc, AdapterGone):
            raise
        return None
