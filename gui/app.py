"""Build the application: QApplication, theme, settings, app model, main window; and the smoke run.

``--smoke`` opens every page against the device, waits for live data, reads the registers,
records a few samples, and exits 0 — or 1 on the first error (an error the app reports, an
exception escaping a Qt slot, or a step that does not finish in time). It is the check that the
whole window works, run by the test suite and usable on a target machine.
"""

from __future__ import annotations

import logging
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from PySide6.QtCore import QCoreApplication, QTimer
from PySide6.QtWidgets import QApplication

from gui import theme
from gui.app_model import AppModel
from gui.main_window import PAGES, MainWindow
from gui.models.connection import Link, PollerFactory
from gui.settings import APPLICATION, ORGANIZATION, DeviceChoice, Settings

log = logging.getLogger(__name__)

#: what the app connects to when nothing else is said: a lively emulated pack, on a chip whose
#: data-flash addresses are published (bq4050), so every panel — thresholds included — works.
DEFAULT_DEVICE = "emulated:bq4050?scenario=laptop"


@dataclass
class Options:
    """Command-line options of ``smartbatt-gui``."""

    device: str | None = None
    address: int = 0x0B
    pec: bool | None = None
    profile: str = ""
    smoke: bool = False
    settings: Path | None = None
    #: smoke: the longest any step may take, s.
    smoke_timeout_s: float = 30.0
    recordings: Path | None = None


def application(argv: list[str] | None = None) -> QApplication:
    """The QApplication (created once) with the theme applied."""
    app = QApplication.instance()
    if not isinstance(app, QApplication):
        QCoreApplication.setOrganizationName(ORGANIZATION)
        QCoreApplication.setApplicationName(APPLICATION)
        app = QApplication(argv or [APPLICATION])
    if app.property("smartbatt-theme") != theme.STYLE_SHEET:  # re-polishing every widget is slow: once
        theme.apply(app)
        app.setProperty("smartbatt-theme", theme.STYLE_SHEET)
    return app


def build(options: Options, factory: PollerFactory | None = None) -> tuple[AppModel, MainWindow]:
    """The model and window for ``options`` (connects to the device at once)."""
    settings = Settings(options.settings)
    if options.recordings is not None:
        settings.set_recordings_path(options.recordings)
    model = AppModel(settings, factory)
    window = MainWindow(model)
    choice = initial_choice(options, settings)
    model.connect_device(choice)
    return model, window


def initial_choice(options: Options, settings: Settings) -> DeviceChoice:
    """The device named on the command line, else the most recent one, else the emulated pack."""
    if options.device:
        return DeviceChoice(options.device, options.address, options.pec, options.profile)
    recent = settings.recent_devices()
    if recent:
        return recent[0]
    return DeviceChoice(DEFAULT_DEVICE, options.address, options.pec, options.profile)


def run(options: Options) -> int:
    """Run the app until the window closes (or the smoke run ends). Returns the exit code."""
    app = application(sys.argv[:1])
    model, window = build(options)
    log.info("settings: %s; recordings: %s", model.settings.location, model.recording.path)
    app.aboutToQuit.connect(model.shutdown)
    window.show()
    if options.smoke:
        runner = SmokeRun(model, window, options.smoke_timeout_s)
        runner.start()
        code = app.exec()
        return runner.result if runner.result is not None else code
    return int(app.exec())


# --- the smoke run -------------------------------------------------------------------------------------


Step = tuple[str, Callable[[], bool]]


class SmokeRun:
    """Walks through the app on a timer, never blocking the event loop."""

    def __init__(self, model: AppModel, window: MainWindow, timeout_s: float) -> None:
        self.model = model
        self.window = window
        self.timeout_s = timeout_s
        self.result: int | None = None
        self.failures: list[str] = []
        self._steps = self._plan()
        self._step: Step | None = None
        self._deadline = 0.0
        self._timer = QTimer()
        self._timer.setInterval(50)
        self._timer.timeout.connect(self._tick)
        model.error.connect(lambda text: self.failures.append(f"app error: {text}"))
        self._old_hook = sys.excepthook

    def start(self) -> None:
        sys.excepthook = self._excepthook
        self._next()
        self._timer.start()

    def _excepthook(self, kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        self.failures.append("exception: " + "".join(traceback.format_exception(kind, exc, tb)))

    def _plan(self) -> Iterator[Step]:
        m = self.model
        yield "connected", lambda: m.connection.state.link is Link.CONNECTED
        yield "live samples", lambda: m.live.received >= 3
        for page in PAGES:
            if page.key == "emulator" and not m.emulator.available:
                continue
            yield f"page {page.title}", self._show(page.key)
        yield "registers read", self._registers()
        yield "recording started", self._record_start()
        yield "recording stopped", self._record_stop()

    def _show(self, key: str) -> Callable[[], bool]:
        def check() -> bool:
            self.window.show_page(key)
            return self.window.current_page() == key

        return check

    def _registers(self) -> Callable[[], bool]:
        asked = False

        def check() -> bool:
            nonlocal asked
            if not asked:
                asked = True
                self.model.registers.refresh()
            return not self.model.registers.busy and any(r.reading for r in self.model.registers.rows)

        return check

    def _record_start(self) -> Callable[[], bool]:
        asked = False

        def check() -> bool:
            nonlocal asked
            if not asked:
                asked = True
                self.model.start_recording()
            rec = self.model.recording
            return rec.state.active and rec.samples_written() >= 1

        return check

    def _record_stop(self) -> Callable[[], bool]:
        asked = False

        def check() -> bool:
            nonlocal asked
            if not asked:
                asked = True
                self.model.recording.stop()
            return not self.model.recording.state.active and self.model.recording.state.samples >= 1

        return check

    def _next(self) -> None:
        self._step = next(self._steps, None)
        self._deadline = time.monotonic() + self.timeout_s

    def _tick(self) -> None:
        if self.failures:
            self._finish(1)
            return
        step = self._step
        if step is None:
            self._finish(0)
            return
        name, done = step
        try:
            ok = done()
        except Exception:  # noqa: BLE001 - the smoke run reports every failure and exits
            self.failures.append(f"{name}: " + traceback.format_exc())
            return
        if ok:
            print(f"smoke: {name} ok", flush=True)
            self._next()
        elif time.monotonic() > self._deadline:
            self.failures.append(f"{name}: not done within {self.timeout_s:g} s")

    def _finish(self, code: int) -> None:
        self._timer.stop()
        sys.excepthook = self._old_hook
        for failure in self.failures:
            print(f"smoke: FAILED {failure}", file=sys.stderr, flush=True)
        if code == 0:
            print("smoke: every page opened, no errors", flush=True)
        self.result = code
        self.window.close()
        QApplication.instance().exit(code)  # type: ignore[union-attr]
