"""Bus monitor: every SMBus transaction (time, address, command, bytes, PEC, result) and error details."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
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
from gui.models.busmon import BusFilter
from gui.widgets import muted, page_header


class BusMonitorPanel(QWidget):
    title = "Bus monitor"

    def __init__(self, model: AppModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.proxy = BusFilter(self)
        self.proxy.setSourceModel(model.busmon)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 12, 16, 12)
        layout.addWidget(page_header(
            "Bus monitor", "Every transaction on the bus, newest at the bottom, and the full text of every error "
            "the app reported in one sentence. Keys sent to unseal a gauge are never shown."))
        bar = QHBoxLayout()
        self.search = QLineEdit()
        self.search.setPlaceholderText("Filter: 0x0B, read_block, 0x16, NoAcknowledge…")
        self.errors_only = QCheckBox("Errors only")
        self.follow = QCheckBox("Follow")
        self.follow.setChecked(True)
        self.pause = QPushButton("Pause")
        self.pause.setCheckable(True)
        self.clear = QPushButton("Clear")
        self.count = muted("")
        bar.addWidget(self.search, 1)
        bar.addWidget(self.errors_only)
        bar.addWidget(self.follow)
        bar.addWidget(self.count)
        bar.addWidget(self.pause)
        bar.addWidget(self.clear)
        layout.addLayout(bar)
        self.view = QTableView()
        self.view.setModel(self.proxy)
        self.view.setFont(theme.mono_font(8.5))
        self.view.setAlternatingRowColors(True)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.verticalHeader().hide()
        self.view.verticalHeader().setDefaultSectionSize(21)
        header = self.view.horizontalHeader()
        header.setSectionResizeMode(7, QHeaderView.ResizeMode.Stretch)
        for col, width in ((0, 112), (1, 46), (2, 120), (3, 46), (4, 110), (5, 190), (6, 40), (8, 72)):
            self.view.setColumnWidth(col, width)
        layout.addWidget(self.view, 1)
        self.search.textChanged.connect(self.proxy.set_text)
        self.errors_only.toggled.connect(self.proxy.set_errors_only)
        self.pause.toggled.connect(self._pause)
        self.clear.clicked.connect(model.busmon.clear)
        model.busmon.rowsInserted.connect(self._inserted)

    def _pause(self, paused: bool) -> None:
        self.model.busmon.paused = paused
        self.pause.setText("Resume" if paused else "Pause")

    def _inserted(self, *_: object) -> None:
        m = self.model.busmon
        self.count.setText(f"{m.rowCount()} shown · {m.total} seen")
        if self.follow.isChecked() and self.isVisible():
            self.view.scrollToBottom()
