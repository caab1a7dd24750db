"""The alarms sub-model: the alarm engine on the sample bus, the event list and acknowledgements.

An :class:`~smartbatt.monitor.alarms.AlarmEngine` evaluates every sample on its own bus
subscriber thread and publishes :class:`~smartbatt.monitor.sample.Event` versions back onto the
bus; the poller publishes its link events (``link_lost``, ``link_restored``, ``pack_changed``,
``over_budget``) there too. This model collects every event version (bus thread → lock-protected
queue → GUI timer) and keeps the newest version per occurrence.

Events from the two producers are numbered independently, so an occurrence is keyed by
``(origin, id)``: ``engine`` for the alarm engine's, ``poller`` for the poller's link events.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace

from PySide6.QtCore import QObject, QTimer, Signal

from smartbatt.errors import SmartBattError
from smartbatt.monitor.alarms import AlarmEngine, AlarmLimits, load_limits
from smartbatt.monitor.sample import Event, SampleBus, Severity, Subscription
from smartbatt.profiles.schema import Profile

log = logging.getLogger(__name__)

#: codes the poller uses for its own events.
POLLER_CODES = frozenset({"link_lost", "link_restored", "pack_changed", "over_budget"})
#: events kept in the list (standing ones are never dropped).
MAX_EVENTS = 5000
DRAIN_MS = 200
CHECK_MS = 1000

EventKey = tuple[str, int]


def event_key(event: Event) -> EventKey:
    """``(origin, id)`` of an event occurrence."""
    origin = "poller" if event.source == "link" and event.code in POLLER_CODES else "engine"
    return origin, event.id


def bit_names(profile: Profile | None) -> dict[str, dict[int, str]]:
    """status word → bit → flag name, from the profile's bit maps (for event messages)."""
    if profile is None:
        return {}
    return {name: {f.bit: f.name for f in bf.flags} for name, bf in profile.bitfields.items()}


class AlarmsModel(QObject):
    """Signals (GUI thread): ``events_changed()`` after new event versions arrived."""

    events_changed = Signal()

    def __init__(
        self,
        limits: AlarmLimits | None = None,
        parent: QObject | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(parent)
        self.limits = limits or load_limits("default")
        self.clock = clock
        self.engine: AlarmEngine | None = None
        self._profile: Profile | None = None
        self._events: dict[EventKey, Event] = {}
        self._inbox: deque[Event] = deque()
        self._lock = threading.Lock()
        self._subscriptions: list[Subscription] = []
        self._drain = QTimer(self)
        self._drain.setInterval(DRAIN_MS)
        self._drain.timeout.connect(self.drain)
        self._drain.start()
        self._check = QTimer(self)
        self._check.setInterval(CHECK_MS)
        self._check.timeout.connect(self._check_link)

    # --- wiring ---------------------------------------------------------------------------------

    def attach(self, bus: SampleBus) -> None:
        """Evaluate samples on ``bus`` and collect its events (a new session)."""
        engine = AlarmEngine(self.limits, bit_names=bit_names(self._profile), clock=self.clock)
        self.engine = engine
        self._subscriptions = [
            engine.attach(bus),
            bus.subscribe(self._on_event, name="gui-events", accept=(Event,)),
        ]
        self._check.start()

    def detach(self) -> None:
        self._check.stop()
        self._subscriptions = []
        self.drain()

    def set_profile(self, profile: Profile | None) -> None:
        self._profile = profile
        if self.engine is not None:
            self.engine.bit_names = bit_names(profile)

    def set_limits(self, limits: AlarmLimits) -> None:
        """Use new host limits from now on (the running engine picks them up at the next sample)."""
        self.limits = limits
        if self.engine is not None:
            self.engine.limits = limits

    def _on_event(self, event: Event) -> None:
        """Bus thread: queue only."""
        with self._lock:
            self._inbox.append(event)

    def _check_link(self) -> None:
        engine = self.engine
        if engine is not None:
            engine.check()

    # --- GUI thread ---------------------------------------------------------------------------------

    def drain(self) -> None:
        """Take queued event versions into the list; emits ``events_changed`` if any."""
        with self._lock:
            batch = list(self._inbox)
            self._inbox.clear()
        if not batch:
            return
        for item in batch:
            key = event_key(item)
            self._events[key] = self._poller_event(item) if key[0] == "poller" else item
        if len(self._events) > MAX_EVENTS:
            drop = [k for k, e in self._events.items() if not e.standing][: len(self._events) - MAX_EVENTS]
            for k in drop:
                del self._events[k]
        self.events_changed.emit()

    def _poller_event(self, event: Event) -> Event:
        """The poller's events are moments, not conditions: only ``link_lost`` stands, until the
        link is restored."""
        if event.code == "link_lost":
            return event
        if event.code == "link_restored":
            for key, old in list(self._events.items()):
                if key[0] == "poller" and old.code == "link_lost" and old.active:
                    self._events[key] = old.with_clear(event.time)
        return event if event.cleared is not None else event.with_clear(event.time)

    def events(self) -> list[tuple[EventKey, Event]]:
        """Every kept occurrence (newest version), oldest first."""
        return sorted(self._events.items(), key=lambda kv: (kv[1].time, kv[0]))

    def standing(self, min_severity: Severity = Severity.WARNING) -> list[Event]:
        """Events still shown to the operator at or above ``min_severity``, worst first."""
        out = [e for e in self._events.values() if e.standing and e.severity >= min_severity]
        return sorted(out, key=lambda e: (-int(e.severity), -e.time))

    def acknowledge(self, key: EventKey) -> None:
        """Acknowledge one occurrence (the engine publishes the new version; poller events locally)."""
        event = self._events.get(key)
        if event is None or event.acknowledged:
            return
        origin, event_id = key
        if origin == "engine" and self.engine is not None:
            try:
                self.engine.acknowledge(event_id)
            except SmartBattError as exc:  # an event the engine forgot (its log is bounded)
                log.info("acknowledge %s: %s", key, exc)
            else:
                return
        self._events[key] = replace(event, acknowledged=True, ack_time=self.clock())
        self.events_changed.emit()

    def acknowledge_all(self) -> None:
        for key, event in list(self._events.items()):
            if event.standing and not event.acknowledged:
                self.acknowledge(key)

    def clear_inactive(self) -> None:
        """Drop events that no longer stand from the list."""
        self._events = {k: e for k, e in self._events.items() if e.standing}
        self.events_changed.emit()
