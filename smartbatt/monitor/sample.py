"""The monitoring core's records and the one interface that carries them.

A :class:`Sample` is one poll of a pack: channel values in display units, raw status words, the
channels that failed. An :class:`Event` is one alarm occurrence (host limit or gauge flag). Both
travel on a :class:`SampleBus` to every subscriber: recorder, alarm engine, estimator, terminal
view, GUI, exporters.

Units of ``Sample.values`` (one convention for every producer and consumer):

=========================  ======  =====================================================
channel                    unit    note
=========================  ======  =====================================================
``Voltage``                V       pack terminal voltage (SBS 0x09 mV / 1000)
``Current``                A       **positive = charging**, negative = discharging (SBS 0x0A)
``AverageCurrent``         A       same sign convention
``Temperature``            °C      SBS 0x08 is 0.1 K; °C = raw / 10 − 273.15
``RelativeStateOfCharge``  %       0–100
``AbsoluteStateOfCharge``  %
``RemainingCapacity``      Ah      (Wh when the gauge is in CAPACITY_MODE = 1)
``FullChargeCapacity``     Ah      (Wh when the gauge is in CAPACITY_MODE = 1)
``CellVoltage1``…``N``     V       cell 1 = the bottom cell of the stack
``*Time*`` (RunTimeToEmpty…) min   SBS unit; "not discharging" (0xFFFF) is a missing value
``est_*``                  as the estimator documents (``est_soc`` in %)
=========================  ======  =====================================================

Status words (``Sample.status``) are raw unsigned integers keyed by their SBS/TRM name:
``BatteryStatus`` (16 bit), ``SafetyAlert``, ``SafetyStatus``, ``PFAlert``, ``PFStatus``,
``OperationStatus`` (32 bit) …

Dispatch model of :class:`SampleBus`: **one dispatcher thread per subscriber**, each with its own
bounded queue. ``publish`` never blocks the producer (the poller) unless asked to; a subscriber
that is slow only fills its own queue (the oldest item is then dropped and counted, so a lagging
view catches up with the present), and a subscriber that raises is counted and keeps receiving.
Each subscriber sees items in publication order.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import IntEnum
from types import MappingProxyType
from typing import Any

from smartbatt.errors import SmartBattError

log = logging.getLogger(__name__)

_EMPTY: Mapping[str, Any] = MappingProxyType({})


def _frozen(mapping: Mapping[str, Any] | None) -> Mapping[str, Any]:
    if not mapping:
        return _EMPTY
    if isinstance(mapping, MappingProxyType):
        return mapping
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True, slots=True)
class Sample:
    """One poll of one pack.

    Immutable: the same object goes to every subscriber on other threads.
    """

    #: wall-clock time of the poll, unix seconds (UTC).
    time: float
    #: channel name → value in the display units of the module docstring table.
    values: Mapping[str, float] = field(default_factory=lambda: _EMPTY)
    #: status-word name → raw unsigned value.
    status: Mapping[str, int] = field(default_factory=lambda: _EMPTY)
    #: channels (values or status words) whose read failed in this poll.
    missing: frozenset[str] = frozenset()
    #: recording session this sample belongs to, if any.
    session_id: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", _frozen(self.values))
        object.__setattr__(self, "status", _frozen(self.status))
        missing: Any = self.missing
        if not isinstance(missing, frozenset):  # accept any iterable of names
            object.__setattr__(self, "missing", frozenset(missing))

    def get(self, channel: str) -> float | None:
        """Value of ``channel``, or None if absent, missing this poll or not finite."""
        value = self.values.get(channel)
        if value is None or not math.isfinite(value):
            return None
        return float(value)

    def cells(self) -> list[float]:
        """Cell voltages in V, ordered CellVoltage1, CellVoltage2, … (missing cells skipped)."""
        out: list[float] = []
        for name in cell_channels(self.values):
            value = self.get(name)
            if value is not None:
                out.append(value)
        return out


def cell_channels(names: Iterable[str]) -> list[str]:
    """The ``CellVoltageN`` names among ``names``, sorted by N."""
    found = [(int(n[11:]), n) for n in names if n.startswith("CellVoltage") and n[11:].isdigit()]
    return [name for _, name in sorted(found)]


class Severity(IntEnum):
    """How bad an event is; ordered, so ``severity >= Severity.ALARM`` works."""

    INFO = 10
    WARNING = 20
    ALARM = 30
    CRITICAL = 40

    @classmethod
    def parse(cls, text: str) -> Severity:
        """``"warning"`` / ``"WARNING"`` → ``Severity.WARNING``; ValueError otherwise."""
        try:
            return cls[text.strip().upper()]
        except KeyError:
            names = ", ".join(s.name.lower() for s in cls)
            raise ValueError(f"unknown severity {text!r} (one of {names})") from None


@dataclass(frozen=True, slots=True)
class Event:
    """One alarm occurrence, from a host-side limit or a gauge flag.

    An occurrence keeps its ``id`` for life; when it is acknowledged or its condition clears,
    the alarm engine publishes a new version with the same ``id`` (the store keeps the latest).
    """

    #: unique within the alarm engine that raised it (the store keys it by session + id).
    id: int
    #: when the condition was first detected (after debounce), unix seconds.
    time: float
    severity: Severity
    #: what it is about: a channel (``CellVoltage3``, ``Temperature``) or a status word
    #: (``SafetyStatus``), or ``link`` for communication.
    source: str
    #: machine-readable kind: ``cell_over_voltage``, ``runaway_heating``, ``SafetyStatus.OTC``…
    code: str
    #: one readable sentence.
    message: str
    #: measured value that tripped it (channel unit; for flags the raw word), NaN if none.
    value: float = math.nan
    #: the limit it crossed, in the same unit, NaN if none.
    limit: float = math.nan
    #: True: the alarm stays standing after its condition clears, until acknowledged.
    latched: bool = False
    acknowledged: bool = False
    #: when the condition returned to normal, unix seconds; None while still active.
    cleared: float | None = None
    #: when it was acknowledged, unix seconds.
    ack_time: float | None = None
    session_id: int | None = None

    @property
    def active(self) -> bool:
        """The condition is still present."""
        return self.cleared is None

    @property
    def standing(self) -> bool:
        """Still shown to the operator: active, or latched and not yet acknowledged."""
        return self.active or (self.latched and not self.acknowledged)

    def with_ack(self, when: float) -> Event:
        return replace(self, acknowledged=True, ack_time=when)

    def with_clear(self, when: float) -> Event:
        return replace(self, cleared=when)


#: what travels on the bus.
Item = Sample | Event
#: a subscriber; its return value is ignored.
Callback = Callable[[Any], object]


class BusClosed(SmartBattError):
    """The sample bus was closed; nothing more can be published or subscribed."""


class Subscription:
    """A subscriber's queue and dispatcher thread. Created by :meth:`SampleBus.subscribe`."""

    def __init__(
        self,
        bus: SampleBus,
        callback: Callback,
        *,
        name: str,
        maxlen: int,
        accept: tuple[type, ...],
    ) -> None:
        self.callback = callback
        self.name = name
        self.maxlen = maxlen
        self.accept = accept
        #: items thrown away because the queue was full (oldest first).
        self.dropped = 0
        #: items delivered to the callback (whether it raised or not).
        self.delivered = 0
        #: calls that raised; the subscriber keeps receiving.
        self.errors = 0
        self.last_error: BaseException | None = None
        self._bus = bus
        self._queue: deque[Any] = deque()
        self._cond = threading.Condition()
        self._busy = False
        self._stop = False
        self._thread = threading.Thread(target=self._run, name=f"samplebus-{name}", daemon=True)
        self._thread.start()

    @property
    def pending(self) -> int:
        """Items queued and not yet delivered."""
        with self._cond:
            return len(self._queue) + (1 if self._busy else 0)

    def _offer(self, item: Any, block_s: float) -> None:
        with self._cond:
            if self._stop:
                return
            if block_s > 0 and len(self._queue) >= self.maxlen:
                deadline = time.monotonic() + block_s
                while len(self._queue) >= self.maxlen and not self._stop:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
            if len(self._queue) >= self.maxlen:
                self._queue.popleft()
                self.dropped += 1
            self._queue.append(item)
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stop:
                    self._cond.wait()
                if not self._queue:
                    return  # stopped and drained
                item = self._queue.popleft()
                self._busy = True
                self._cond.notify_all()  # wakes a blocked publisher
            try:
                self.callback(item)
            except Exception as exc:  # noqa: BLE001 - a failing subscriber must not kill the bus
                self.errors += 1
                self.last_error = exc
                log.warning("sample-bus subscriber %s raised %r", self.name, exc)
            finally:
                with self._cond:
                    self.delivered += 1
                    self._busy = False
                    self._cond.notify_all()

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until every queued item was delivered. Returns False on timeout."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._queue or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def _shutdown(self, drain: bool, timeout_s: float) -> bool:
        with self._cond:
            self._stop = True
            if not drain:
                self.dropped += len(self._queue)
                self._queue.clear()
            self._cond.notify_all()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def unsubscribe(self, timeout_s: float = 2.0) -> None:
        """Stop delivering; queued items are still delivered (up to ``timeout_s``)."""
        self._bus._remove(self)
        self._shutdown(drain=True, timeout_s=timeout_s)

    def __repr__(self) -> str:
        return (
            f"<Subscription {self.name} delivered={self.delivered} dropped={self.dropped} "
            f"errors={self.errors} pending={self.pending}>"
        )


class SampleBus:
    """Thread-safe publish/subscribe of :class:`Sample` and :class:`Event` items.

    :param maxlen: default queue length per subscriber (items), ≥ 1.

    Every subscriber gets its own bounded queue and dispatcher thread, so a slow subscriber
    delays nobody else and a raising one is counted (``Subscription.errors``) and kept.
    Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, maxlen: int = 4096) -> None:
        if maxlen < 1:
            raise ValueError("maxlen must be ≥ 1")
        self.maxlen = maxlen
        self._subs: list[Subscription] = []
        self._lock = threading.Lock()
        self._closed = False
        #: items published.
        self.published = 0

    def subscribe(
        self,
        callback: Callback,
        *,
        name: str = "",
        maxlen: int | None = None,
        accept: tuple[type, ...] = (Sample,),
    ) -> Subscription:
        """Deliver every later published item of a type in ``accept`` to ``callback``.

        ``callback`` runs on the subscription's own thread, one item at a time, in order.
        :raises BusClosed: the bus is closed.
        """
        with self._lock:
            if self._closed:
                raise BusClosed("sample bus is closed")
            sub = Subscription(
                self,
                callback,
                name=name or getattr(callback, "__qualname__", "subscriber"),
                maxlen=maxlen or self.maxlen,
                accept=accept,
            )
            self._subs.append(sub)
            return sub

    @property
    def subscriptions(self) -> tuple[Subscription, ...]:
        with self._lock:
            return tuple(self._subs)

    def _remove(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)

    def publish(self, item: Item, *, block_s: float = 0.0) -> None:
        """Queue ``item`` for every subscriber that accepts its type.

        :param block_s: 0 (default, live sources): never wait; a full queue drops its oldest
            item. > 0 (replay, batch sources): wait up to this long per full queue for room
            before dropping, so a fast source is paced by its subscribers but never hangs.
        :raises BusClosed: the bus is closed.
        """
        with self._lock:
            if self._closed:
                raise BusClosed("sample bus is closed")
            subs = list(self._subs)
            self.published += 1
        for sub in subs:
            if isinstance(item, sub.accept):
                sub._offer(item, block_s)

    def wait_idle(self, timeout_s: float = 5.0) -> bool:
        """Wait until every subscriber has processed everything queued. False on timeout."""
        deadline = time.monotonic() + timeout_s
        return all(sub.wait_idle(max(0.0, deadline - time.monotonic())) for sub in self.subscriptions)

    def close(self, *, drain: bool = True, timeout_s: float = 5.0) -> bool:
        """Stop all dispatchers (delivering what is queued first if ``drain``).

        Returns False if a dispatcher did not finish within ``timeout_s`` (a subscriber stuck in
        its callback); its daemon thread is then abandoned rather than hanging the caller.
        """
        with self._lock:
            self._closed = True
            subs = list(self._subs)
            self._subs.clear()
        deadline = time.monotonic() + timeout_s
        ok = True
        for sub in subs:
            ok &= sub._shutdown(drain, max(0.0, deadline - time.monotonic()))
        return ok

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> SampleBus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
