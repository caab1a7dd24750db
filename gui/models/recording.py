"""The recording sub-model: record to the monitoring core's store, list and open past sessions.

Recording is the library's :class:`~smartbatt.monitor.store.Recorder` on the session's sample
bus (its own writer thread; commits at least every 0.5 s). The recorder stays attached while the
poller reconnects after a lost link, so a session spans an unplugged adapter and nothing already
committed is lost. Every store access runs on a task thread and opens its own connection (a
SQLite connection belongs to the thread that made it).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from gui.models.live import Replay
from gui.tasks import TaskError, TaskRunner
from smartbatt.monitor.sample import SampleBus
from smartbatt.monitor.store import PackInfo, Recorder, SessionInfo, Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecordingState:
    """Whether a recording runs, into which session and file."""

    active: bool = False
    session_id: int | None = None
    path: str = ""
    samples: int = 0


def pack_info(identity: object, pack_type: str = "") -> PackInfo:
    """A store :class:`PackInfo` from a poller ``PackIdentity`` (read attribute by attribute)."""
    date = getattr(identity, "manufacture_date", None)
    capacity = getattr(identity, "design_capacity", None)
    voltage = getattr(identity, "design_voltage", None)

    def number(x: object) -> float | None:
        return float(x) if isinstance(x, int | float) and math.isfinite(x) else None

    cells = getattr(identity, "cells", None)
    return PackInfo(
        manufacturer=str(getattr(identity, "manufacturer_name", "") or ""),
        device_name=str(getattr(identity, "device_name", "") or ""),
        serial=str(getattr(identity, "serial_number", "") or ""),
        manufacture_date=date.isoformat() if date is not None and hasattr(date, "isoformat") else "",
        chemistry=str(getattr(identity, "chemistry", "") or ""),
        design_capacity_ah=number(capacity),
        design_voltage_v=number(voltage),
        cells=cells if isinstance(cells, int) and cells > 0 else None,
        pack_type=pack_type,
    )


class RecordingModel(QObject):
    """Signals (GUI thread): ``state_changed(RecordingState)``, ``sessions_listed(list)``,
    ``replay_loaded(Replay)``, ``exported(str)``, ``error(TaskError)``."""

    state_changed = Signal(object)
    sessions_listed = Signal(object)
    replay_loaded = Signal(object)
    exported = Signal(str)
    error = Signal(object)

    def __init__(self, tasks: TaskRunner, path: Path, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.tasks = tasks
        self.path = path
        self.state = RecordingState(path=str(path))
        self._recorder: Recorder | None = None
        self._busy = False

    # --- recording -------------------------------------------------------------------------------

    @property
    def recorder(self) -> Recorder | None:
        return self._recorder

    def start(self, bus: SampleBus, identity: object, source: str, pack_type: str = "") -> None:
        """Start a new session on ``bus``. Does nothing if a recording runs or is starting."""
        if self._recorder is not None or self._busy:
            return
        self._busy = True
        path = self.path

        def open_session() -> Recorder:
            path.parent.mkdir(parents=True, exist_ok=True)
            with Store(path) as store:
                pack_id = store.add_pack(pack_info(identity, pack_type)) if identity is not None else None
                session_id = store.start_session(pack_id, source=source, note="recorded by smartbatt-gui")
            recorder = Recorder(path, session_id)
            recorder.attach(bus)
            return recorder

        def started(recorder: Recorder) -> None:
            self._busy = False
            self._recorder = recorder
            self._set(RecordingState(True, recorder.session_id, str(path)))

        def failed(error: TaskError) -> None:
            self._busy = False
            self.error.emit(error)

        self.tasks.submit("start recording", open_session, started, failed)

    def stop(self) -> None:
        """End the session: write what is queued, close the recorder."""
        recorder, self._recorder = self._recorder, None
        if recorder is None:
            return
        state = self.state

        def close() -> int:
            recorder.close(end_session=True)
            return recorder.samples_written

        def closed(samples: int) -> None:
            self._set(RecordingState(False, state.session_id, state.path, samples))
            self.list_sessions()

        self.tasks.submit("stop recording", close, closed, self.error.emit)

    def _set(self, state: RecordingState) -> None:
        self.state = state
        self.state_changed.emit(state)

    def samples_written(self) -> int:
        recorder = self._recorder
        return recorder.samples_written if recorder is not None else self.state.samples

    # --- past sessions ----------------------------------------------------------------------------

    def list_sessions(self) -> None:
        """List the sessions of the store (``sessions_listed`` gets the list; none if no file)."""
        path = self.path

        def read() -> list[SessionInfo]:
            if not path.exists():
                return []
            with Store(path, readonly=True) as store:
                return list(reversed(store.sessions()))

        self.tasks.submit("list recordings", read, self.sessions_listed.emit, self.error.emit)

    def open_session(self, session: SessionInfo) -> None:
        """Load a session's samples for scrubbing (``replay_loaded`` gets a :class:`Replay`)."""
        path = self.path

        def read() -> Replay:
            with Store(path, readonly=True) as store:
                window = store.window(session.id)
            title = f"session {session.id} ({session.source or 'unknown device'})"
            return Replay(session.id, window, title)

        self.tasks.submit(f"open recording {session.id}", read, self.replay_loaded.emit, self.error.emit)

    def export_csv(self, session_id: int, target: Path, t0: float | None = None, t1: float | None = None) -> None:
        """Write a session (or the part between ``t0`` and ``t1``) as CSV."""
        path = self.path

        def write() -> str:
            with Store(path, readonly=True) as store, target.open("w", encoding="utf-8", newline="") as out:
                rows = store.export_csv(session_id, out, t0=t0, t1=t1)
            return f"{rows} rows written to {target}"

        self.tasks.submit("export CSV", write, self.exported.emit, self.error.emit)

    def shutdown(self, timeout: float = 5.0) -> None:
        """Close the recorder synchronously (application exit)."""
        recorder, self._recorder = self._recorder, None
        if recorder is not None:
            try:
                recorder.close(timeout, end_session=True)
            except Exception as exc:  # noqa: BLE001 - exit must go on; the store keeps committed data
                log.warning("closing the recorder: %s", exc)
