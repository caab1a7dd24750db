"""The connection sub-model: one poller, its sample bus, the link state and device calls.

The worker side is the library's :class:`~smartbatt.monitor.poller.Poller`: it owns the I/O
thread, reconnects by itself after a lost link and runs ``call(fn)`` requests between polls.
This model starts and stops it (never on the GUI thread: stopping joins a thread), watches its
thread-safe :attr:`~smartbatt.monitor.poller.Poller.status` on a timer and turns it into one
coarse :data:`ConnectionModel.state_changed` signal, and runs device operations through
:meth:`ConnectionModel.call` so a slow bus never freezes the window.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol, TypeVar

from PySide6.QtCore import QObject, QTimer, Signal

from gui.settings import DeviceChoice
from gui.tasks import TaskError, TaskRunner, describe_error
from smartbatt.errors import AdapterGone, BusTimeout, SmartBattError
from smartbatt.monitor.sample import SampleBus
from smartbatt.profiles.loader import load_profile
from smartbatt.profiles.schema import Profile
from smartbatt.sbs.battery import Battery
from smartbatt.transports import Transport, transport_class
from smartbatt.transports.txlog import TransactionRecord
from smartbatt.uri import parse_uri

log = logging.getLogger(__name__)

T = TypeVar("T")

#: how often the poller's status snapshot is read, ms.
STATUS_INTERVAL_MS = 200


class Link(StrEnum):
    """Link state as the app shows it (the poller's states plus "no poller at all")."""

    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    LOST = "lost"
    STOPPED = "stopped"


class PollerLike(Protocol):
    """What the app needs from a poller (``smartbatt.monitor.poller.Poller`` or a test double)."""

    @property
    def status(self) -> Any: ...

    @property
    def battery_transport(self) -> Transport | None: ...

    def start(self) -> None: ...

    def stop(self, timeout: float = 2.0) -> None: ...

    def call(self, fn: Callable[[Battery], T], timeout: float = 5.0) -> T: ...

    def add_transaction_listener(self, listener: Callable[[TransactionRecord], None]) -> Callable[[], None]: ...


#: builds a poller for a device choice, publishing to the given bus.
PollerFactory = Callable[[DeviceChoice, SampleBus], PollerLike]


@dataclass(frozen=True)
class ConnectionState:
    """One coarse snapshot of the connection, for the header, banner and status bar."""

    link: Link = Link.DISCONNECTED
    #: device URI.
    device: str = ""
    #: ``smartbatt.monitor.poller.PackIdentity`` once the pack answered, else None.
    identity: Any = None
    #: last error as one sentence ("" if none).
    last_error: str = ""
    samples: int = 0
    missing: int = 0
    #: share of the bus-time budget used, 0..1.
    bus_load: float = 0.0
    over_budget: bool = False

    @property
    def active(self) -> bool:
        """A poller exists (connecting, connected or reconnecting)."""
        return self.link in (Link.CONNECTING, Link.CONNECTED, Link.LOST)


def poller_factory(opener: Callable[[str], Transport] | None = None, **options: Any) -> PollerFactory:
    """The default factory: the library's Poller (imported when first used).

    :param opener: opens the transport (the emulator model wraps it to simulate an unplugged
        adapter and to keep the same emulated pack across reconnections).
    :param options: further Poller keyword arguments (``fast_hz``, ``reconnect_s`` …).
    """

    def make(choice: DeviceChoice, bus: SampleBus) -> PollerLike:
        from smartbatt.monitor.poller import Poller

        kwargs: dict[str, Any] = {"address": choice.address, "pec": choice.pec}
        params = inspect.signature(Poller).parameters
        # an emulated chip is known from its URI: the poller itself picks that profile
        if choice.profile and "profile" in params:
            kwargs["profile"] = choice.profile
        if opener is not None and "opener" in params:
            kwargs["opener"] = opener
        kwargs.update({k: v for k, v in options.items() if k in params})
        poller: PollerLike = Poller(choice.uri, bus, **kwargs)
        return poller

    return make


def _link_of(status: Any) -> Link:
    raw = getattr(status, "link", None)
    value = getattr(raw, "value", raw)
    try:
        return Link(str(value).lower())
    except ValueError:
        return Link.CONNECTING


def snapshot(status: Any) -> ConnectionState:
    """A :class:`ConnectionState` from a poller status (read defensively, field by field)."""
    return ConnectionState(
        link=_link_of(status),
        device=str(getattr(status, "device", "")),
        identity=getattr(status, "identity", None),
        last_error=str(getattr(status, "last_error", "") or ""),
        samples=int(getattr(status, "samples", 0) or 0),
        missing=int(getattr(status, "missing", 0) or 0),
        bus_load=float(getattr(status, "bus_load", 0.0) or 0.0),
        over_budget=bool(getattr(status, "over_budget", False)),
    )


class ConnectionModel(QObject):
    """Owns the poller and the sample bus of the current session.

    Signals (all on the GUI thread):

    * ``session_started(SampleBus)`` — a new bus exists; attach subscribers now (before the first
      sample is published).
    * ``session_ended()`` — the poller stopped and the bus closed.
    * ``state_changed(ConnectionState)`` — link, identity or counters changed.
    * ``profile_changed(object)`` — the chip profile in use (a ``Profile``) or None.
    """

    session_started = Signal(object)
    session_ended = Signal()
    state_changed = Signal(object)
    profile_changed = Signal(object)
    #: one-sentence failures of connect/disconnect and device calls.
    error = Signal(object)

    def __init__(self, tasks: TaskRunner, factory: PollerFactory, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.tasks = tasks
        self.factory = factory
        self.choice: DeviceChoice | None = None
        self.bus: SampleBus | None = None
        self.poller: PollerLike | None = None
        self.state = ConnectionState()
        self.profile: Profile | None = None
        self._profile_key: tuple[str, int] | None = None
        self._listeners: list[Callable[[TransactionRecord], None]] = []
        self._generation = 0
        self._timer = QTimer(self)
        self._timer.setInterval(STATUS_INTERVAL_MS)
        self._timer.timeout.connect(self._poll_status)

    # --- transaction listeners (bus monitor) ----------------------------------------------------

    def add_transaction_listener(self, listener: Callable[[TransactionRecord], None]) -> None:
        """Attach ``listener`` to every poller of this model (called on the I/O thread)."""
        self._listeners.append(listener)
        if self.poller is not None:
            self.poller.add_transaction_listener(listener)

    # --- connect / disconnect -------------------------------------------------------------------

    def connect_device(self, choice: DeviceChoice) -> None:
        """Start monitoring ``choice`` (stopping the current device first). Returns at once."""
        if self.poller is not None or self.bus is not None:
            self.disconnect_device(then=lambda: self.connect_device(choice))
            return
        self._generation += 1
        generation = self._generation
        self.choice = choice
        bus = SampleBus()
        self.bus = bus
        self._set_state(ConnectionState(link=Link.CONNECTING, device=choice.uri))
        self.session_started.emit(bus)

        def start() -> PollerLike:
            spec = parse_uri(choice.uri)  # a malformed URI or unknown adapter fails here, once,
            transport_class(spec.scheme)  # instead of as an endless reconnect loop
            poller = self.factory(choice, bus)
            for listener in self._listeners:
                poller.add_transaction_listener(listener)
            poller.start()
            return poller

        def started(poller: PollerLike) -> None:
            if generation != self._generation:  # disconnected meanwhile
                self.tasks.submit("stop monitoring", lambda: poller.stop(2.0))
                return
            self.poller = poller
            self._timer.start()
            self._poll_status()

        def failed(error: TaskError) -> None:
            if generation == self._generation:
                self._set_state(ConnectionState(link=Link.DISCONNECTED, device=choice.uri, last_error=error.message))
                self._close_bus()
            self.error.emit(error)

        self.tasks.submit(f"connect to {choice.uri}", start, started, failed)

    def disconnect_device(self, then: Callable[[], None] | None = None) -> None:
        """Stop the poller and close the bus on a worker thread; ``then`` runs afterwards."""
        self._generation += 1
        self._timer.stop()
        poller, self.poller = self.poller, None
        bus, self.bus = self.bus, None

        def stop() -> None:
            if poller is not None:
                poller.stop(2.0)
            if bus is not None:
                bus.close(timeout_s=2.0)

        def stopped(_: object = None) -> None:
            self._set_state(ConnectionState(link=Link.DISCONNECTED, device=self.state.device))
            self._set_profile(None, None)
            self.session_ended.emit()
            if then is not None:
                then()

        if poller is None and bus is None:
            stopped()
            return
        self.tasks.submit("disconnect", stop, stopped, lambda _e: stopped())

    def _close_bus(self) -> None:
        bus, self.bus = self.bus, None
        if bus is not None:
            self.tasks.submit("close sample bus", lambda: bus.close(timeout_s=2.0))
            self.session_ended.emit()

    def shutdown(self, timeout: float = 3.0) -> None:
        """Stop everything synchronously (application exit). Bounded by ``timeout``."""
        self._timer.stop()
        self._generation += 1
        poller, self.poller = self.poller, None
        bus, self.bus = self.bus, None
        if poller is not None:
            poller.stop(timeout)
        if bus is not None:
            bus.close(timeout_s=timeout)

    # --- status -----------------------------------------------------------------------------------

    def _poll_status(self) -> None:
        poller = self.poller
        if poller is None:
            return
        state = snapshot(poller.status)
        if state != self.state:
            self._set_state(state)
        identity = state.identity
        if identity is not None:
            wanted = (self.choice.profile if self.choice and self.choice.profile else str(identity.profile))
            key = (wanted, int(getattr(identity, "serial_number", 0)))
            if key != self._profile_key:
                self._profile_key = key
                self.tasks.submit(
                    f"load profile {wanted}",
                    lambda: load_profile(wanted),
                    lambda profile: self._set_profile(profile, key),
                    self.error.emit,
                )

    def _set_state(self, state: ConnectionState) -> None:
        self.state = state
        self.state_changed.emit(state)

    def _set_profile(self, profile: Profile | None, key: tuple[str, int] | None) -> None:
        if key != self._profile_key and profile is not None:
            return  # a newer pack or choice arrived meanwhile
        if profile is None:
            self._profile_key = None
        if profile is self.profile:
            return
        self.profile = profile
        self.profile_changed.emit(profile)

    # --- device calls -----------------------------------------------------------------------------

    def call(
        self,
        what: str,
        fn: Callable[[Battery], T],
        on_done: Callable[[T], None] | None = None,
        on_error: Callable[[TaskError], None] | None = None,
        *,
        timeout: float = 5.0,
    ) -> None:
        """Run ``fn(battery)`` on the poller's I/O thread; callbacks run on the GUI thread.

        Errors arrive as a :class:`TaskError` (one sentence); without ``on_error`` they go to
        :data:`error`. Never blocks the caller.
        """
        poller = self.poller
        report = on_error or self.error.emit
        if poller is None:
            report(describe_error(what, AdapterGone("not connected to a pack")))
            return

        def run() -> T:
            try:
                return poller.call(fn, timeout=timeout)
            except TimeoutError as exc:
                if isinstance(exc, SmartBattError):
                    raise
                raise BusTimeout(f"the pack did not answer within {timeout:g} s (is the link down?)") from None

        self.tasks.submit(what, run, on_done, report)

    @property
    def transport(self) -> Transport | None:
        """The live transport (None while disconnected or reconnecting)."""
        poller = self.poller
        return poller.battery_transport if poller is not None else None
