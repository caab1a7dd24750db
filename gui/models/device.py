"""Device sub-models that act through ``Poller.call``: registers and the emulator controls.

Both run their I/O on the poller's thread (between polls) and report back on the GUI thread;
neither ever blocks the window.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, QTimer, Signal

from gui import emulator_control as emu
from gui.models.connection import ConnectionModel, Link
from gui.registers import RegisterRow, command_list, read_all, write_one
from gui.tasks import TaskError
from smartbatt.errors import SmartBattError
from smartbatt.profiles.schema import Profile
from smartbatt.sbs.battery import Battery
from smartbatt.sbs.command import Command
from smartbatt.transports.emulated import EmulatedTransport
from smartbatt.uri import parse_uri


class RegistersModel(QObject):
    """Every SBS and profile register; refresh on demand or every ``period_s``.

    Signals: ``rows_changed(list[RegisterRow])`` after a refresh; ``written(RegisterRow)`` after a
    verified write; ``write_failed(TaskError)``.
    """

    rows_changed = Signal(object)
    written = Signal(object)
    write_failed = Signal(object)
    busy_changed = Signal(bool)

    def __init__(self, connection: ConnectionModel, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.connection = connection
        self.profile: Profile | None = None
        self.rows: list[RegisterRow] = [RegisterRow(c, o) for c, o in command_list(None)]
        self.busy = False
        self._timer = QTimer(self)
        self._timer.timeout.connect(self.refresh)

    def set_profile(self, profile: Profile | None) -> None:
        self.profile = profile
        self.rows = [RegisterRow(c, o) for c, o in command_list(profile)]
        self.rows_changed.emit(self.rows)

    def set_period(self, seconds: float) -> None:
        """Refresh every ``seconds`` (0 = only on demand)."""
        if seconds <= 0:
            self._timer.stop()
        else:
            self._timer.start(int(seconds * 1000))

    def refresh(self) -> None:
        """Read every register (skipped while a refresh runs or the link is down)."""
        if self.busy or self.connection.state.link is not Link.CONNECTED:
            return
        commands = command_list(self.profile)
        profile = self.profile
        self._set_busy(True)

        def done(rows: list[RegisterRow]) -> None:
            self._set_busy(False)
            self.rows = rows
            self.rows_changed.emit(rows)

        def failed(_error: TaskError) -> None:
            self._set_busy(False)

        self.connection.call("read registers", lambda b: read_all(b, commands, profile), done, failed, timeout=20.0)

    def write(self, command: Command, origin: str, value: float) -> None:
        """Write with range check and read-back; ``written`` or ``write_failed`` follows."""

        def done(row: RegisterRow) -> None:
            self.rows = [row if r.command == command else r for r in self.rows]
            self.written.emit(row)
            self.rows_changed.emit(self.rows)

        self.connection.call(
            f"write {command.name}", lambda b: write_one(b, command, origin, value), done, self.write_failed.emit
        )

    def _set_busy(self, busy: bool) -> None:
        self.busy = busy
        self.busy_changed.emit(busy)


class EmulatorModel(QObject):
    """Scenario, speed and fault injection of the emulated pack (see :mod:`gui.emulator_control`).

    Signals: ``available_changed(bool)`` — the connected device is (not) the emulator;
    ``state_changed(EmulatorState)`` — ground truth, refreshed every second while watched;
    ``done(str)`` — an action completed (one sentence).
    """

    available_changed = Signal(bool)
    state_changed = Signal(object)
    done = Signal(str)
    failed = Signal(object)

    def __init__(self, connection: ConnectionModel, link: emu.EmulatorLink, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.connection = connection
        self.link = link
        self.available = False
        self.state: emu.EmulatorState | None = None
        self._busy = False
        self._timer = QTimer(self)
        self._timer.setInterval(1000)
        self._timer.timeout.connect(self.refresh)
        connection.state_changed.connect(self._check_available)

    def _check_available(self, _state: object = None) -> None:
        available = isinstance(self.connection.transport, EmulatedTransport) or (
            self.available and self.connection.state.active
        )
        if available != self.available:
            self.available = available
            self.available_changed.emit(available)

    def watch(self, on: bool) -> None:
        """Refresh the ground truth every second while ``on`` (the panel is visible)."""
        if on:
            self._timer.start()
            self.refresh()
        else:
            self._timer.stop()

    def refresh(self) -> None:
        if self._busy or not self.available or self.connection.state.link is not Link.CONNECTED:
            return
        self._busy = True

        def done(state: emu.EmulatorState) -> None:
            self._busy = False
            self.state = state
            self.state_changed.emit(state)

        def failed(_e: TaskError) -> None:
            self._busy = False

        choice = self.connection.choice
        uri_scenario = ""
        if choice is not None:
            try:
                uri_scenario = parse_uri(choice.uri).options.get("scenario", "idle")
            except SmartBattError:
                uri_scenario = ""
        self.connection.call("read the emulator state", lambda b: emu.state(b, uri_scenario), done, failed)

    def _act(self, what: str, fn: Callable[[Battery], object], message: str) -> None:
        def ok(_: object) -> None:
            self.done.emit(message)
            self.refresh()

        self.connection.call(what, fn, ok, self.failed.emit)

    def set_scenario(self, name: str) -> None:
        self._act(f"set scenario {name}", lambda b: emu.set_scenario(b, name), f"Scenario: {name}")

    def set_speed(self, speed: float) -> None:
        self._act(f"set speed {speed:g}×", lambda b: emu.set_speed(b, speed), f"Simulation speed: {speed:g}× real time")

    def inject(self, key: str) -> None:
        fault = emu.FAULTS[key]
        self._act(f"inject {fault.label}", lambda b: emu.inject(b, key), f"Injected: {fault.label}")

    def clear_faults(self) -> None:
        self._act("clear faults", emu.clear_faults, "All injected faults cleared")

    def unplug(self, seconds: float) -> None:
        """Pull the emulated adapter out for ``seconds`` (the link is lost, then restored)."""
        self._act("unplug the adapter", emu.unplug(self.link, seconds), f"Adapter unplugged for {seconds:g} s")
