"""Alarms: the event list with severity colours, acknowledge and filters."""

from __future__ import annotations

import math
from typing import Any

from PySide6.QtCore import QSortFilterProxyModel, Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLineEdit,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from gui import theme
from gui.app_model import AppModel
from gui.format import format_time
from gui.models.alarms import EventKey
from gui.table import Index, RowsTableModel
from gui.widgets import muted, page_header
from smartbatt.monitor.sample import Event, Severity

COLUMNS = ("Time", "Severity", "Source", "Message", "Value", "State")


def state_text(event: Event) -> str:
    """``active``, ``active, acknowledged``, ``cleared 14:02:11, not acknowledged`` …"""
    if event.active:
        return "active, acknowledged" if event.acknowledged else "active"
    cleared = f"cleared {format_time(event.cleared)}" if event.cleared is not None else "cleared"
    if event.latched and not event.acknowledged:
        return f"{cleared}, not acknowledged"
    return f"{cleared}, acknowledged" if event.acknowledged else cleared


def value_text(event: Event) -> str:
    if math.isnan(event.value):
        return ""
    if event.source in ("SafetyStatus", "SafetyAlert", "PFStatus", "PFAlert", "BatteryStatus"):
        return f"0x{int(event.value):04X}"
    limit = "" if math.isnan(event.limit) else f" / {event.limit:.4g}"
    return f"{event.value:.4g}{limit}"


class EventTable(RowsTableModel):
    columns = COLUMNS

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.rows: list[tuple[EventKey, Event]] = []

    def set_rows(self, rows: list[tuple[EventKey, Event]]) -> None:
        self.beginResetModel()
        self.rows = list(reversed(rows))  # newest first
        self.endResetModel()

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        key, e = self.rows[index.row()]
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            cells = (format_time(e.time), e.severity.name.lower(), e.source, e.message, value_text(e), state_text(e))
            return cells[col]
        if role == Qt.ItemDataRole.ForegroundRole:
            if col == 1:
                return QColor(theme.severity_color(e.severity))
            if not e.standing:
                return QColor(theme.MUTED)
        if role == Qt.ItemDataRole.FontRole and col in (0, 4):
            return theme.mono_font()
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"{e.code}: {e.message}"
        if role == Qt.ItemDataRole.UserRole:
            return key
        return None


class EventFilter(QSortFilterProxyModel):
    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.min_severity = Severity.INFO
        self.standing_only = False
        self.text = ""

    def update(self, min_severity: Severity, standing_only: bool, text: str) -> None:
        self.min_severity, self.standing_only, self.text = min_severity, standing_only, text.strip().lower()
        self.invalidate()

    def filterAcceptsRow(self, source_row: int, source_parent: Index) -> bool:
        model = self.sourceModel()
        assert isinstance(model, EventTable)
        _, e = model.rows[source_row]
        if e.severity < self.min_severity or (self.standing_only and not e.standing):
            return False
        return not self.text or self.text in f"{e.source} {e.code} {e.message}".lower()


class AlarmsPanel(QWidget):
    title = "Alarms"

    def __init__(self, model: AppModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.table = EventTable(self)
        self.proxy = EventFilter(self)
        self.proxy.setSourceModel(self.table)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 12, 16, 12)
        layout.addWidget(page_header(
            "Alarms", "Host limits, thermal-runaway precursors, sensor faults, gauge flags and link events. "
            "Latched alarms stay until acknowledged."))
        bar = QHBoxLayout()
        self.severity = QComboBox()
        self.severity.addItems([s.name.capitalize() + " and above" for s in Severity])
        self.standing = QCheckBox("Standing only")
        self.search = QLineEdit()
        self.search.setPlaceholderText("Filter (source, code, text)")
        self.ack = QPushButton("Acknowledge")
        self.ack_all = QPushButton("Acknowledge all")
        self.ack_all.setObjectName("Primary")
        self.clear = QPushButton("Remove cleared")
        self.count = muted("")
        for w in (self.severity, self.standing, self.search):
            bar.addWidget(w, 1 if w is self.search else 0)
        bar.addWidget(self.count)
        bar.addWidget(self.ack)
        bar.addWidget(self.ack_all)
        bar.addWidget(self.clear)
        layout.addLayout(bar)
        self.view = QTableView()
        self.view.setModel(self.proxy)
        self.view.setAlternatingRowColors(True)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.verticalHeader().hide()
        self.view.verticalHeader().setDefaultSectionSize(24)
        header = self.view.horizontalHeader()
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        for col, width in ((0, 74), (1, 74), (2, 130), (4, 110), (5, 190)):
            self.view.setColumnWidth(col, width)
        layout.addWidget(self.view, 1)
        self.severity.currentIndexChanged.connect(self._filter)
        self.standing.toggled.connect(self._filter)
        self.search.textChanged.connect(self._filter)
        self.ack.clicked.connect(self.acknowledge_selected)
        self.ack_all.clicked.connect(model.alarms.acknowledge_all)
        self.clear.clicked.connect(model.alarms.clear_inactive)
        model.alarms.events_changed.connect(self.refresh)

    def _filter(self, *_: Any) -> None:
        self.proxy.update(list(Severity)[self.severity.currentIndex()], self.standing.isChecked(), self.search.text())

    def refresh(self) -> None:
        events = self.model.alarms.events()
        self.table.set_rows(events)
        standing = sum(1 for _, e in events if e.standing)
        self.count.setText(f"{len(events)} events, {standing} standing")

    def acknowledge_selected(self) -> None:
        for index in self.view.selectionModel().selectedRows():
            key = self.proxy.data(index, Qt.ItemDataRole.UserRole)
            if isinstance(key, tuple):
                self.model.alarms.acknowledge(key)
