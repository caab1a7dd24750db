"""The application model: small sub-models wired together, no widgets (STYLE.md §10).

``AppModel`` owns the task runner, the settings and one instance of each sub-model:

* :class:`~gui.models.connection.ConnectionModel` — the poller, its sample bus, link state;
* :class:`~gui.models.live.LiveModel` — latest sample, derived state, plot history, replay;
* :class:`~gui.models.alarms.AlarmsModel` — the alarm engine and the event list;
* :class:`~gui.models.flags.FlagsModel` — decoded status words and their change log;
* :class:`~gui.models.busmon.BusMonitorModel` — the transaction log and error details;
* :class:`~gui.models.recording.RecordingModel` — recorder, past sessions, CSV export;
* :class:`~gui.models.device.RegistersModel`, :class:`~gui.models.gauge.GaugeModel`,
  :class:`~gui.models.device.EmulatorModel` — operations run through ``Poller.call``.

Panels subscribe to the sub-models' signals and call their methods; bus I/O stays on the
poller's thread, store I/O on task threads. Every error reaches :data:`AppModel.error` as one
sentence and the bus monitor with its full text.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from gui.emulator_control import EmulatorLink
from gui.format import UnitPrefs
from gui.gauge_ops import SecurityInfo
from gui.models.alarms import AlarmsModel
from gui.models.busmon import BusMonitorModel
from gui.models.connection import ConnectionModel, ConnectionState, Link, PollerFactory, poller_factory
from gui.models.device import EmulatorModel, RegistersModel
from gui.models.flags import FlagsModel
from gui.models.gauge import GaugeModel
from gui.models.live import LiveModel
from gui.models.recording import RecordingModel, RecordingState
from gui.settings import DeviceChoice, Settings
from gui.tasks import TaskError, TaskRunner
from smartbatt.errors import SmartBattError
from smartbatt.monitor.alarms import AlarmLimits, load_limits
from smartbatt.monitor.cellmodel import CellModel
from smartbatt.monitor.sample import SampleBus
from smartbatt.profiles.schema import Profile

log = logging.getLogger(__name__)


class AppModel(QObject):
    """Everything the window shows, without the window.

    :param settings: persisted settings.
    :param factory: builds pollers (tests inject one); default: the library's Poller with the
        emulator-aware opener.
    :param poller_options: keyword arguments for the default Poller (``fast_hz``, ``reconnect_s``).
    """

    #: one readable sentence for the status bar.
    error = Signal(str)
    #: a short success message for the status bar.
    message = Signal(str)
    units_changed = Signal(object)

    def __init__(
        self,
        settings: Settings,
        factory: PollerFactory | None = None,
        parent: QObject | None = None,
        **poller_options: Any,
    ) -> None:
        super().__init__(parent)
        self.settings = settings
        self.units: UnitPrefs = settings.units()
        self.tasks = TaskRunner(self)
        self.link = EmulatorLink()
        self.connection = ConnectionModel(self.tasks, factory or poller_factory(self.link.open, **poller_options), self)
        self.live = LiveModel(parent=self)
        self.alarms = AlarmsModel(self._initial_limits(), self)
        self.flags = FlagsModel(self)
        self.busmon = BusMonitorModel(self)
        self.recording = RecordingModel(self.tasks, settings.recordings_path(), self)
        self.registers = RegistersModel(self.connection, self)
        self.gauge = GaugeModel(self.connection, self)
        self.emulator = EmulatorModel(self.connection, self.link, self)
        self.errors: list[TaskError] = []
        self._pack_key: tuple[object, object] | None = None
        self._restart_recording = False
        self._wire()
        saved = settings.cell_model_path()
        if saved is not None:
            self.tasks.submit(f"load cell model {saved.name}", lambda: CellModel.load(saved), self.live.set_cell_model)

    def _initial_limits(self) -> AlarmLimits:
        name = self.settings.limits_name()
        try:
            return load_limits(name)
        except SmartBattError as exc:
            log.warning("alarm limits %s: %s; using the defaults", name, exc)
            return load_limits("default")

    def _wire(self) -> None:
        c = self.connection
        c.session_started.connect(self._on_session_started)
        c.session_ended.connect(self._on_session_ended)
        c.profile_changed.connect(self._on_profile)
        c.state_changed.connect(self._on_state)
        c.error.connect(self._on_error)
        c.add_transaction_listener(self.busmon.on_transaction)
        self.tasks.failed.connect(self._on_task_failed)
        self.live.sample_changed.connect(lambda sample: self.flags.update(self.live.with_extra(sample)))
        self.live.source_changed.connect(self.flags.reset)  # live and replay changes are not one log
        self.recording.error.connect(self._on_error)
        self.recording.state_changed.connect(self._on_recording)
        self.gauge.error.connect(self._on_error)
        self.gauge.message.connect(self.message)
        self.gauge.security_changed.connect(self._on_security)
        self.emulator.failed.connect(self._on_error)
        self.emulator.done.connect(self.message)
        self.registers.write_failed.connect(self._on_error)

    # --- session wiring ------------------------------------------------------------------------------

    def _on_session_started(self, bus: SampleBus) -> None:
        self._pack_key = None
        self.live.clear()
        self.flags.reset()
        self.live.attach(bus)
        self.alarms.attach(bus)

    def _on_session_ended(self) -> None:
        self.recording.stop()
        self.live.detach()
        self.alarms.detach()

    def _on_profile(self, profile: Profile | None) -> None:
        self.live.set_profile(profile)
        self.alarms.set_profile(profile)
        self.flags.set_profile(profile)
        self.registers.set_profile(profile)
        self.gauge.set_profile(profile)

    def _on_security(self, info: SecurityInfo) -> None:
        extra = {info.state_register: info.state_raw} if info.state_register and info.state_raw is not None else {}
        self.live.extra_status = extra

    def _on_state(self, state: ConnectionState) -> None:
        self.live.set_identity(state.identity)
        identity = state.identity
        if identity is None:
            return
        key = (getattr(identity, "serial_number", None), getattr(identity, "manufacture_date", None))
        previous, self._pack_key = self._pack_key, key
        if previous is not None and previous != key and self.recording.state.active:
            # another pack answers: its samples belong in a session of its own
            self._restart_recording = True
            self.recording.stop()

    def _on_recording(self, state: RecordingState) -> None:
        if not state.active and self._restart_recording:
            self._restart_recording = False
            self.start_recording()

    # --- errors ----------------------------------------------------------------------------------------

    def _on_task_failed(self, error: TaskError) -> None:
        self.busmon.log_error(error.message, error.detail, time.time())
        self.errors.append(error)
        del self.errors[:-200]

    def _on_error(self, error: object) -> None:
        if isinstance(error, TaskError):
            self.error.emit(error.message)

    # --- user actions ------------------------------------------------------------------------------------

    def connect_device(self, choice: DeviceChoice) -> None:
        """Connect (the choice goes first in the recent list)."""
        self.settings.remember_device(choice)
        self.link.forget()
        self.connection.connect_device(choice)

    def disconnect_device(self) -> None:
        self.connection.disconnect_device()

    def set_units(self, prefs: UnitPrefs) -> None:
        self.units = prefs
        self.settings.set_units(prefs)
        self.units_changed.emit(prefs)

    def set_limits(self, name: str, limits: AlarmLimits) -> None:
        self.alarms.set_limits(limits)
        self.settings.set_limits_name(name)

    def start_recording(self) -> None:
        bus = self.connection.bus
        state = self.connection.state
        if bus is None or state.link is Link.DISCONNECTED:
            self.error.emit("Start recording: connect to a pack first")
            return
        profile = self.connection.profile
        self.recording.start(bus, state.identity, state.device, profile.name if profile else "")

    def estimate_status(self) -> str:
        """What the independent estimator runs on, or why it does not (one short line)."""
        return self.live.estimate_status()

    def load_cell_model(self, path: Path) -> None:
        """Use the cell model at ``path`` for the independent estimate (remembered in the settings)."""

        def done(model: CellModel) -> None:
            self.live.set_cell_model(model)
            self.settings.set_cell_model_path(path)
            self.message.emit(f"Cell model {model.name or path.name} loaded: the estimate starts with the next sample")

        self.tasks.submit(f"load cell model {path.name}", lambda: CellModel.load(path), done, self._on_error)

    def unload_cell_model(self) -> None:
        self.live.set_cell_model(None)
        self.settings.set_cell_model_path(None)

    def shutdown(self) -> None:
        """Stop recording, polling and tasks (application exit; bounded waits)."""
        self.recording.shutdown()
        self.connection.shutdown()
        self.tasks.shutdown()
        for timer in self.findChildren(QTimer):
            timer.stop()
        self.settings.sync()
