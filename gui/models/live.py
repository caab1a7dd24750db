"""The live-data sub-model: latest sample, derived pack state and the plot history.

Samples arrive on the sample bus's dispatcher thread (one per subscriber); there the callback
only appends to the thread-safe :class:`~gui.history.History` and stores a reference to the
sample. A GUI-thread timer then emits :data:`LiveModel.sample_changed` at most ten times a
second — so a fast poller or a replay at 100× costs the GUI a bounded amount of work, and no
widget is ever touched from a foreign thread.

A recorded session can be loaded for scrubbing (:meth:`LiveModel.load_replay`); the model then
serves the replay's history and the sample at the scrub position instead of live data, while
live samples keep being collected underneath.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal

from gui.history import History
from gui.pack_state import PackState, derive
from smartbatt.errors import SmartBattError
from smartbatt.monitor.cellmodel import CellModel
from smartbatt.monitor.live import LiveEstimator, estimator_for
from smartbatt.monitor.sample import Sample, SampleBus, Subscription, cell_channels
from smartbatt.monitor.store import Window
from smartbatt.profiles.schema import Profile

#: the dashboard/cells refresh rate cap, ms.
REFRESH_MS = 100


@dataclass(frozen=True)
class Replay:
    """A recorded session loaded for scrubbing."""

    session_id: int
    #: ``Window`` from the store: times, value channels and status words.
    window: Window
    title: str = ""


class LiveModel(QObject):
    """Latest sample, derived state and history; the source the dashboard, cells and plots read.

    Signals (GUI thread): ``sample_changed(Sample)`` at most every :data:`REFRESH_MS`;
    ``source_changed()`` when switching between live data and a replay.
    """

    sample_changed = Signal(object)
    source_changed = Signal()

    def __init__(self, capacity: int = 172_800, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.live = History(capacity)
        self.replay_history = History(2)
        self.replay: Replay | None = None
        self.profile: Profile | None = None
        self.design_capacity_ah: float | None = None
        #: status words read outside the poller (the gauge model's OperationStatus), used when a
        #: sample lacks them.
        self.extra_status: dict[str, int] = {}
        #: the user's cell model; None = the generic model for the pack's chemistry.
        self.cell_model: CellModel | None = None
        self.chemistry = ""
        self._identity_key: tuple[object, object] | None = None
        self.estimator: LiveEstimator | None = None
        self._estimator_note = ""
        self._latest: Sample | None = None
        self._shown: Sample | None = None
        self._lock = threading.Lock()
        self._subscription: Subscription | None = None
        self._received = 0
        self._timer = QTimer(self)
        self._timer.setInterval(REFRESH_MS)
        self._timer.timeout.connect(self._tick)
        self._timer.start()

    # --- wiring ----------------------------------------------------------------------------------

    def attach(self, bus: SampleBus) -> None:
        """Receive samples from ``bus`` (called when a session starts)."""
        self._subscription = bus.subscribe(self._on_sample, name="gui-live", accept=(Sample,), maxlen=8192)

    def detach(self) -> None:
        self._subscription = None

    def set_profile(self, profile: Profile | None) -> None:
        self.profile = profile

    def set_identity(self, identity: object) -> None:
        """The pack's identity (DesignCapacity and DeviceChemistry choose the generic model)."""
        if identity is None:
            return
        key = (getattr(identity, "serial_number", None), getattr(identity, "manufacture_date", None))
        if key != self._identity_key:
            self._identity_key = key
            self.estimator = None  # another pack: start the estimate afresh
        capacity = getattr(identity, "design_capacity", None)
        self.design_capacity_ah = float(capacity) if isinstance(capacity, int | float) else None
        self.chemistry = str(getattr(identity, "chemistry", "") or "")

    def clear(self) -> None:
        """Forget live history and restart the estimator (a new session or pack)."""
        self.live.clear()
        self.estimator = None
        self._identity_key = None
        self._estimator_note = ""
        with self._lock:
            self._latest = None

    # --- bus thread ---------------------------------------------------------------------------------

    def _on_sample(self, sample: Sample) -> None:
        """Runs on the bus dispatcher thread: no Qt calls here."""
        estimates = self._estimate(sample)
        if estimates:
            sample = Sample(sample.time, {**sample.values, **estimates}, sample.status, sample.missing,
                            sample.session_id)
        values = dict(sample.values)
        v, i = sample.get("Voltage"), sample.get("Current")
        if v is not None and i is not None:
            values["Power"] = v * i
        self.live.append(sample.time, values)
        with self._lock:
            self._latest = sample
            self._received += 1

    def _estimate(self, sample: Sample) -> dict[str, float]:
        """The independent estimate for ``sample`` (bus thread); builds the estimator on first use.

        The model is the user's (File → Load cell model), else the monitoring core's generic
        model for the pack's DeviceChemistry scaled to its DesignCapacity — usable from the first
        sample (the filter adapts R0 and learns capacity), a fitted model being more accurate.
        """
        estimator = self.estimator
        if estimator is None:
            if self.cell_model is None and self._identity_key is None:
                self._estimator_note = "estimator waiting for the pack's identity"
                return {}
            try:
                estimator = estimator_for(sample, self.chemistry, self.design_capacity_ah, self.cell_model)
            except SmartBattError as exc:
                self._estimator_note = f"estimator not started: {exc}"
                return {}
            self.estimator = estimator
        return dict(estimator.step(sample))

    def set_cell_model(self, model: CellModel | None) -> None:
        """Estimate SOC/SOH/SOP with ``model`` from the next sample on (None: the generic model)."""
        self.estimator = None
        self._estimator_note = ""
        self.cell_model = model

    def estimate_status(self) -> str:
        """One line for the dashboard: what the estimator runs on, or why it does not run."""
        if self.estimator is not None:
            return self.estimator.status().text
        if self._estimator_note:
            return self._estimator_note
        return "estimator starts with the next sample"

    # --- GUI thread ------------------------------------------------------------------------------------

    @property
    def received(self) -> int:
        """Live samples received so far."""
        with self._lock:
            return self._received

    @property
    def latest(self) -> Sample | None:
        """The newest live sample."""
        with self._lock:
            return self._latest

    def _tick(self) -> None:
        if self.replay is not None:
            return
        sample = self.latest
        if sample is not None and sample is not self._shown:
            self._shown = sample
            self.sample_changed.emit(sample)

    def current(self) -> Sample | None:
        """The sample the views should show: the scrub position in a replay, else the newest."""
        return self._shown if self.replay is not None else self.latest

    def with_extra(self, sample: Sample) -> Sample:
        """``sample`` with the status words read outside the poller added where it lacks them
        (live data only: a replay shows what was recorded)."""
        missing = {k: v for k, v in self.extra_status.items() if k not in sample.status}
        if not missing or self.replay is not None:
            return sample
        return Sample(sample.time, sample.values, {**sample.status, **missing}, sample.missing, sample.session_id)

    def state(self, sample: Sample | None = None) -> PackState:
        sample = sample or self.current()
        if sample is None:
            return PackState()
        return derive(self.with_extra(sample), self.profile, self.design_capacity_ah)

    @property
    def history(self) -> History:
        """The history the plots show: the replay's when one is loaded."""
        return self.replay_history if self.replay is not None else self.live

    def cell_names(self) -> list[str]:
        return cell_channels(self.history.channels)

    # --- replay -------------------------------------------------------------------------------------

    def load_replay(self, replay: Replay) -> None:
        """Show a recorded session instead of live data."""
        window = replay.window
        history = History(max(2, len(window)))
        columns = dict(window.values)
        if "Voltage" in columns and "Current" in columns:
            columns["Power"] = columns["Voltage"] * columns["Current"]
        history.load(window.t, columns)
        self.replay_history = history
        self.replay = replay
        self.source_changed.emit()
        if len(window):
            self.scrub(float(window.t[-1]))

    def close_replay(self) -> None:
        """Back to live data."""
        self.replay = None
        self.replay_history = History(2)
        self._shown = None
        self.source_changed.emit()
        self._tick()

    def scrub(self, t: float) -> Sample | None:
        """Move the replay position to unix time ``t``; emits ``sample_changed``."""
        replay = self.replay
        if replay is None or not len(replay.window):
            return None
        window = replay.window
        i = max(0, int(np.searchsorted(window.t, t, side="right")) - 1)
        values = {k: float(col[i]) for k, col in window.values.items() if math.isfinite(col[i])}
        status = {k: int(col[i]) for k, col in window.status.items() if col[i] >= 0}
        sample = Sample(float(window.t[i]), values, status, session_id=replay.session_id)
        self._shown = sample
        self.sample_changed.emit(sample)
        return sample
