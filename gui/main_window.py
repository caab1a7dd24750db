"""The main window: header with the link state, banners, page navigation, status bar."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from gui import dialogs, theme
from gui.app_model import AppModel
from gui.format import UNIT_CHOICES, UnitPrefs, first_sentence
from gui.models.connection import ConnectionState, Link
from gui.models.recording import RecordingState
from gui.panels.alarms import AlarmsPanel
from gui.panels.bus_monitor import BusMonitorPanel
from gui.panels.cells import CellsPanel
from gui.panels.connect import ConnectDialog
from gui.panels.dashboard import DashboardPanel
from gui.panels.emulator import EmulatorPanel
from gui.panels.flags import FlagsPanel
from gui.panels.plots import PlotsPanel
from gui.panels.recordings import RecordingsPanel
from gui.panels.registers import RegistersPanel
from gui.panels.thresholds import ThresholdsPanel
from gui.widgets import Banner, Pill

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Page:
    key: str
    title: str
    factory: Callable[[AppModel], QWidget]


#: the pages, in navigation order.
PAGES: tuple[Page, ...] = (
    Page("dashboard", "Dashboard", DashboardPanel),
    Page("plots", "Plots", PlotsPanel),
    Page("cells", "Cells", CellsPanel),
    Page("registers", "Registers", RegistersPanel),
    Page("flags", "Flags", FlagsPanel),
    Page("alarms", "Alarms", AlarmsPanel),
    Page("thresholds", "Thresholds", ThresholdsPanel),
    Page("recordings", "Record / replay", RecordingsPanel),
    Page("bus", "Bus monitor", BusMonitorPanel),
    Page("emulator", "Emulator", EmulatorPanel),
)

LINK_COLORS = {
    Link.CONNECTED: theme.OK,
    Link.CONNECTING: theme.INFO,
    Link.LOST: theme.CRITICAL,
    Link.DISCONNECTED: theme.MUTED,
    Link.STOPPED: theme.MUTED,
}


class UnitsDialog(QDialog):
    def __init__(self, prefs: UnitPrefs, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Display units")
        form = QFormLayout(self)
        self.boxes: dict[str, QComboBox] = {}
        for name, choices in UNIT_CHOICES.items():
            box = QComboBox()
            box.addItems(list(choices))
            box.setCurrentText(getattr(prefs, name))
            form.addRow(name.capitalize(), box)
            self.boxes[name] = box
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def prefs(self) -> UnitPrefs:
        return UnitPrefs(**{name: box.currentText() for name, box in self.boxes.items()})


class MainWindow(QMainWindow):
    def __init__(self, model: AppModel) -> None:
        super().__init__()
        self.model = model
        self.setWindowTitle("smartbatt")
        self.resize(1360, 860)
        self.panels: dict[str, QWidget] = {}
        self._was_lost = False

        central = QWidget()
        root = QVBoxLayout(central)
        root.setContentsMargins(0, 0, 0, 0)
        root.setSpacing(0)
        root.addWidget(self._header())
        banners = QWidget()
        b = QVBoxLayout(banners)
        b.setContentsMargins(12, 6, 12, 0)
        b.setSpacing(6)
        self.link_banner = Banner()
        self.alarm_banner = Banner()
        self.alarm_banner.action.connect(model.alarms.acknowledge_all)
        b.addWidget(self.link_banner)
        b.addWidget(self.alarm_banner)
        root.addWidget(banners)
        body = QHBoxLayout()
        body.setContentsMargins(0, 0, 0, 0)
        body.setSpacing(0)
        self.nav = QListWidget()
        self.nav.setObjectName("Nav")
        self.nav.setFixedWidth(170)
        self.stack = QStackedWidget()
        for page in PAGES:
            panel = page.factory(model)
            self.panels[page.key] = panel
            self.stack.addWidget(panel)
            item = QListWidgetItem(page.title)
            item.setData(Qt.ItemDataRole.UserRole, page.key)
            self.nav.addItem(item)
        self.nav.currentRowChanged.connect(self._page_changed)
        body.addWidget(self.nav)
        body.addWidget(self.stack, 1)
        root.addLayout(body, 1)
        self.setCentralWidget(central)
        self._status_bar()
        self._menus()

        model.connection.state_changed.connect(self.show_connection)
        model.alarms.events_changed.connect(self.show_alarms)
        model.recording.state_changed.connect(self.show_recording)
        model.error.connect(self.show_error)
        model.message.connect(self.show_message)
        model.emulator.available_changed.connect(self._emulator_available)
        self._emulator_available(False)
        self._counters = QTimer(self)
        self._counters.setInterval(1000)
        self._counters.timeout.connect(self._update_counters)
        self._counters.start()
        self.show_connection(model.connection.state)
        self._restore()

    # --- construction ------------------------------------------------------------------------------

    def _header(self) -> QWidget:
        bar = QFrame()
        bar.setStyleSheet(f"QFrame {{ background: {theme.PANEL}; border-bottom: 1px solid {theme.BORDER}; }}")
        h = QHBoxLayout(bar)
        h.setContentsMargins(14, 8, 14, 8)
        name = QLabel("smartbatt")
        name.setStyleSheet(f"font-size: 13pt; font-weight: 700; color: {theme.ACCENT}; border: none;")
        h.addWidget(name)
        h.addSpacing(18)
        self.device_label = QLabel("No device")
        self.device_label.setFont(theme.mono_font(9.5))
        self.device_label.setStyleSheet("border: none;")
        self.link_pill = Pill("DISCONNECTED")
        h.addWidget(self.device_label)
        h.addWidget(self.link_pill)
        h.addStretch(1)
        self.rec_pill = Pill("")
        self.rec_pill.hide()
        h.addWidget(self.rec_pill)
        self.record_button = QPushButton("● Record")
        self.record_button.clicked.connect(self.toggle_recording)
        self.connect_button = QPushButton("Connect…")
        self.connect_button.setObjectName("Primary")
        self.connect_button.clicked.connect(self.connect_or_disconnect)
        h.addWidget(self.record_button)
        h.addWidget(self.connect_button)
        return bar

    def _status_bar(self) -> None:
        sb = self.statusBar()
        self.status_message = QLabel("")
        self.samples_label = QLabel("")
        self.samples_label.setFont(theme.mono_font(8.5))
        self.load_label = QLabel("")
        self.load_label.setFont(theme.mono_font(8.5))
        sb.addWidget(self.status_message, 1)
        sb.addPermanentWidget(self.samples_label)
        sb.addPermanentWidget(self.load_label)
        self._message_timer = QTimer(self)
        self._message_timer.setSingleShot(True)
        self._message_timer.timeout.connect(lambda: self.status_message.setText(""))

    def _menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        connect = QAction("&Connect…", self)
        connect.setShortcut(QKeySequence("Ctrl+K"))
        connect.triggered.connect(self.open_connect_dialog)
        disconnect = QAction("&Disconnect", self)
        disconnect.triggered.connect(self.model.disconnect_device)
        model_action = QAction("Load cell &model…", self)
        model_action.setToolTip("A cell model from `smartbatt model fit`, for the independent SOC/SOH/SOP estimate")
        model_action.triggered.connect(self.load_cell_model)
        units = QAction("Display &units…", self)
        units.triggered.connect(self.edit_units)
        quit_action = QAction("&Quit", self)
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.close)
        for action in (connect, disconnect, model_action, units, quit_action):
            file_menu.addAction(action)
        view = self.menuBar().addMenu("&View")
        for i, page in enumerate(PAGES):
            action = QAction(page.title, self)
            action.setShortcut(QKeySequence(f"Ctrl+{i + 1}") if i < 9 else QKeySequence())
            action.triggered.connect(lambda _c=False, key=page.key: self.show_page(key))
            view.addAction(action)
        help_menu = self.menuBar().addMenu("&Help")
        about = QAction("&About smartbatt", self)
        about.triggered.connect(self.about)
        help_menu.addAction(about)

    # --- pages -----------------------------------------------------------------------------------------

    def show_page(self, key: str) -> None:
        for row in range(self.nav.count()):
            item = self.nav.item(row)
            if item.data(Qt.ItemDataRole.UserRole) == key and not item.isHidden():
                self.nav.setCurrentRow(row)
                return

    def current_page(self) -> str:
        item = self.nav.currentItem()
        return str(item.data(Qt.ItemDataRole.UserRole)) if item is not None else "dashboard"

    def _page_changed(self, row: int) -> None:
        if row < 0:
            return
        key = PAGES[row].key
        self.stack.setCurrentIndex(row)
        self.model.settings.set_page(key)
        if key == "registers" and not any(r.reading for r in self.model.registers.rows):
            self.model.registers.refresh()
        gauge = self.model.gauge
        unread = not any(r.value is not None for r in gauge.rows) and any(r.addressable for r in gauge.rows)
        if key == "thresholds" and gauge.security.writable and unread and not gauge.busy:
            gauge.read_thresholds()

    def _emulator_available(self, available: bool) -> None:
        row = [p.key for p in PAGES].index("emulator")
        self.nav.item(row).setHidden(not available)
        if not available and self.nav.currentRow() == row:
            self.show_page("dashboard")

    # --- connection --------------------------------------------------------------------------------------

    def open_connect_dialog(self) -> None:
        dialog = ConnectDialog(self.model, self)
        if dialog.exec() == QDialog.DialogCode.Accepted:
            self.model.connect_device(dialog.choice())

    def connect_or_disconnect(self) -> None:
        if self.model.connection.state.active:
            self.model.disconnect_device()
        else:
            self.open_connect_dialog()

    def show_connection(self, state: ConnectionState) -> None:
        self.device_label.setText(state.device or "No device")
        ident = state.identity
        if ident is not None:
            self.device_label.setText(f"{state.device}   {ident.manufacturer_name} {ident.device_name}".rstrip())
        self.link_pill.set(state.link.value.upper(), LINK_COLORS[state.link], state.last_error)
        self.connect_button.setText("Disconnect" if state.active else "Connect…")
        self.connect_button.setObjectName("" if state.active else "Primary")
        self.connect_button.style().unpolish(self.connect_button)
        self.connect_button.style().polish(self.connect_button)
        self.record_button.setEnabled(state.active)
        if state.link is Link.LOST:
            self._was_lost = True
            reason = first_sentence(state.last_error or "the pack stopped answering", 160)
            self.link_banner.show_message(
                f"Connection to the pack lost: {reason}. Reconnecting automatically; recording continues when it "
                "returns.",
                theme.CRITICAL,
            )
        elif state.link is Link.CONNECTING and state.last_error:
            self.link_banner.show_message(
                f"Cannot reach the pack yet: {first_sentence(state.last_error, 200)}. Retrying…", theme.WARNING
            )
        else:
            self.link_banner.clear()
            if state.link is Link.CONNECTED and self._was_lost:
                self._was_lost = False
                self.show_message("Connection restored")

    def toggle_recording(self) -> None:
        if self.model.recording.state.active:
            self.model.recording.stop()
        else:
            self.model.start_recording()

    def show_recording(self, state: RecordingState) -> None:
        self.rec_pill.setVisible(state.active)
        if state.active:
            self.rec_pill.set(f"● REC  session {state.session_id}", theme.CRITICAL, state.path)
        self.record_button.setText("■ Stop recording" if state.active else "● Record")

    # --- alarms -----------------------------------------------------------------------------------------------

    def show_alarms(self) -> None:
        standing = self.model.alarms.standing()
        if not standing:
            self.alarm_banner.clear()
            return
        worst = standing[0]
        more = f"  (+{len(standing) - 1} more)" if len(standing) > 1 else ""
        state = "" if worst.active else " — cleared, not acknowledged"
        self.alarm_banner.show_message(
            f"{worst.severity.name}: {first_sentence(worst.message, 160)}{state}{more}",
            theme.severity_color(worst.severity),
            "Acknowledge all" if any(not e.acknowledged for e in standing) else "",
        )

    # --- status bar ---------------------------------------------------------------------------------------------

    def show_error(self, text: str) -> None:
        self.status_message.setStyleSheet(f"color: {theme.CRITICAL};")
        self.status_message.setText(first_sentence(text))
        self.status_message.setToolTip(text + "\n(details in the bus monitor)")
        self._message_timer.start(15000)

    def show_message(self, text: str) -> None:
        self.status_message.setStyleSheet(f"color: {theme.TEXT};")
        self.status_message.setText(first_sentence(text))
        self.status_message.setToolTip("")
        self._message_timer.start(8000)

    def _update_counters(self) -> None:
        state = self.model.connection.state
        if not state.active:
            self.samples_label.setText("")
            self.load_label.setText("")
            return
        rec = self.model.recording
        recorded = f" · {rec.samples_written()} recorded" if rec.state.active else ""
        self.samples_label.setText(f"{state.samples} samples · {state.missing} missing{recorded}")
        over = " (over budget: polling slowed)" if state.over_budget else ""
        self.load_label.setText(f"bus load {state.bus_load:.0%}{over}")

    def load_cell_model(self) -> None:
        path = dialogs.open_path(self, "Load cell model", "Cell model (*.json)")
        if path is not None:
            self.model.load_cell_model(path)

    def edit_units(self) -> None:
        dialog = UnitsDialog(self.model.units, self)
        if dialog.exec() == QDialog.DialogCode.Accepted:
            self.model.set_units(dialog.prefs())

    def about(self) -> None:
        from smartbatt import __version__

        QMessageBox.about(
            self,
            "About smartbatt",
            f"<b>smartbatt {__version__}</b><br>Open smart-battery driver and desktop utility.<br><br>"
            f"Settings: {self.model.settings.location}<br>Recordings: {self.model.recording.path}",
        )

    # --- layout persistence -------------------------------------------------------------------------------------

    def _restore(self) -> None:
        geometry, state = self.model.settings.window_state()
        if geometry is not None:
            self.restoreGeometry(geometry)
        if state is not None:
            self.restoreState(state)
        self.show_page(self.model.settings.page())
        if self.nav.currentRow() < 0:
            self.nav.setCurrentRow(0)

    def closeEvent(self, event: QCloseEvent) -> None:
        self.model.settings.set_window_state(self.saveGeometry(), self.saveState())
        self.model.settings.set_page(self.current_page())
        super().closeEvent(event)
