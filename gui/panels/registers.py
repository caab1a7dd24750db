"""Registers: every SBS and profile register — code, raw hex, decoded value, unit — with checked writes."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QSortFilterProxyModel, Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from gui import theme
from gui.app_model import AppModel
from gui.editors import ValueEditor, command_editor
from gui.format import MISSING, format_time
from gui.registers import RegisterRow
from gui.table import Index, RowsTableModel
from gui.tasks import TaskError
from gui.widgets import muted, page_header
from smartbatt.sbs.codecs import BitFields

COLUMNS = ("Code", "Name", "Access", "Raw", "Value", "Unit", "Source", "Read")
PERIODS = {"Manual": 0.0, "Every 2 s": 2.0, "Every 5 s": 5.0, "Every 30 s": 30.0}


def value_text(row: RegisterRow) -> str:
    """The decoded value as text (no unit), or the reason there is none."""
    if row.error:
        return row.error
    reading = row.reading
    if reading is None:
        return "" if row.time == 0 else MISSING
    if reading.meaning:
        return reading.meaning
    value = reading.value
    if isinstance(value, BitFields):
        return reading.text
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, bytes):
        return "  ".join(f"{k}={v}" for k, v in row.fields) if row.fields else value.hex(" ").upper()
    return str(value) if value is not None else reading.text


class RegisterTable(RowsTableModel):
    columns = COLUMNS

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.rows: list[RegisterRow] = []

    def set_rows(self, rows: list[RegisterRow]) -> None:
        if [r.command for r in rows] == [r.command for r in self.rows]:
            self.rows = rows
            self.dataChanged.emit(self.index(0, 0), self.index(len(rows) - 1, len(COLUMNS) - 1))
            return
        self.beginResetModel()
        self.rows = rows
        self.endResetModel()

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row = self.rows[index.row()]
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self._text(row, col)
        if role == Qt.ItemDataRole.ToolTipRole:
            desc = row.command.description or row.command.label
            extra = "\n".join(f"{k}: {v}" for k, v in row.fields)
            shown = value_text(row) if col == 4 and not row.error else ""
            return "\n".join(x for x in (shown, desc, extra, row.error) if x) or None
        if role == Qt.ItemDataRole.ForegroundRole:
            if row.error and col == 4:
                return QColor(theme.MUTED)
            if col == 2 and row.command.writable:
                return QColor(theme.ACCENT)
        if role == Qt.ItemDataRole.FontRole and col in (0, 3, 4):
            return theme.mono_font()
        if role == Qt.ItemDataRole.UserRole:
            return row
        return None

    @staticmethod
    def _text(row: RegisterRow, col: int) -> str:
        c = row.command
        reading = row.reading
        if col == 0:
            return f"0x{c.code:02X}"
        if col == 1:
            return c.name
        if col == 2:
            return c.access.value.upper()
        if col == 3:
            return reading.raw_text if reading is not None else ""
        if col == 4:
            return value_text(row)
        if col == 5:
            return reading.unit if reading is not None else c.unit
        if col == 6:
            return "SBS 1.1" if row.origin == "sbs" else row.origin
        return format_time(row.time) if row.time else ""


class TextFilter(QSortFilterProxyModel):
    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.text = ""

    def set_text(self, text: str) -> None:
        self.text = text.strip().lower()
        self.invalidate()

    def filterAcceptsRow(self, source_row: int, source_parent: Index) -> bool:
        if not self.text:
            return True
        model = self.sourceModel()
        cells = [str(model.data(model.index(source_row, c)) or "") for c in range(model.columnCount())]
        return self.text in " ".join(cells).lower()


class RegistersPanel(QWidget):
    title = "Registers"

    def __init__(self, model: AppModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.table_model = RegisterTable(self)
        self.proxy = TextFilter(self)
        self.proxy.setSourceModel(self.table_model)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 12, 16, 12)
        layout.addWidget(page_header(
            "Registers", "Every SBS 1.1 register and the chip profile's extra commands: raw word or bytes as "
            "read, decoded value and unit. Writable words are range-checked and verified by reading back."))
        bar = QHBoxLayout()
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.setObjectName("Primary")
        self.refresh_button.clicked.connect(model.registers.refresh)
        self.period = QComboBox()
        self.period.addItems(list(PERIODS))
        self.period.currentTextChanged.connect(lambda t: model.registers.set_period(PERIODS[t]))
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Filter (name, code, value…)")
        self.filter.textChanged.connect(self.proxy.set_text)
        self.status = muted("")
        bar.addWidget(self.refresh_button)
        bar.addWidget(self.period)
        bar.addWidget(self.filter, 1)
        bar.addWidget(self.status)
        layout.addLayout(bar)
        body = QHBoxLayout()
        self.view = QTableView()
        self.view.setModel(self.proxy)
        self.view.setAlternatingRowColors(True)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.verticalHeader().hide()
        self.view.verticalHeader().setDefaultSectionSize(24)
        header = self.view.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(False)
        header.setSectionResizeMode(4, QHeaderView.ResizeMode.Stretch)
        for col, width in ((0, 60), (1, 190), (2, 64), (3, 130), (5, 56), (6, 80), (7, 74)):
            self.view.setColumnWidth(col, width)
        self.view.selectionModel().selectionChanged.connect(self._selected)
        body.addWidget(self.view, 1)
        self.editor_box = QGroupBox("Write")
        self.editor_box.setFixedWidth(280)
        box = QVBoxLayout(self.editor_box)
        self.editor_title = QLabel("Select a writable register (access RW).")
        self.editor_title.setWordWrap(True)
        self.editor_holder = QVBoxLayout()
        self.write_button = QPushButton("Write and verify")
        self.write_button.setObjectName("Primary")
        self.write_button.setEnabled(False)
        self.write_button.clicked.connect(self.write)
        self.write_result = muted("")
        box.addWidget(self.editor_title)
        box.addLayout(self.editor_holder)
        box.addWidget(self.write_button)
        box.addWidget(self.write_result)
        box.addStretch(1)
        body.addWidget(self.editor_box)
        layout.addLayout(body, 1)
        self.editor: ValueEditor[float] | None = None
        self._row: RegisterRow | None = None
        self.table_model.set_rows(model.registers.rows)
        model.registers.rows_changed.connect(self._rows)
        model.registers.busy_changed.connect(self._busy)
        model.registers.written.connect(self._written)
        model.registers.write_failed.connect(self._write_failed)

    def _rows(self, rows: list[RegisterRow]) -> None:
        self.table_model.set_rows(rows)
        failed = sum(1 for r in rows if r.error)
        read = sum(1 for r in rows if r.reading is not None)
        if read or failed:
            self.status.setText(f"{read} read · {failed} refused")

    def _busy(self, busy: bool) -> None:
        self.refresh_button.setEnabled(not busy)
        if busy:
            self.status.setText("Reading…")

    def _selected(self, *_: Any) -> None:
        indexes = self.view.selectionModel().selectedRows()
        row = self.proxy.data(indexes[0], Qt.ItemDataRole.UserRole) if indexes else None
        self.select(row if isinstance(row, RegisterRow) else None)

    def select(self, row: RegisterRow | None) -> None:
        """Show the editor for ``row`` (or clear it)."""
        if self.editor is not None:
            self.editor.setParent(None)
            self.editor.deleteLater()
            self.editor = None
        self._row = row
        self.write_result.setText("")
        if row is None or not row.editable:
            reason = "" if row is None else f"{row.command.name} is not a writable word."
            self.editor_title.setText(reason or "Select a writable register (access RW).")
            self.write_button.setEnabled(False)
            return
        c = row.command
        self.editor_title.setText(f"<b>{c.name}</b> (0x{c.code:02X})<br>{c.description or c.label}")
        self.editor = command_editor(c, unit=row.reading.unit if row.reading is not None else c.unit)
        if row.reading is not None and isinstance(row.reading.value, int | float):
            self.editor.set_value(float(row.reading.value))
        self.editor.changed.connect(self._validate)
        self.editor_holder.addWidget(self.editor)
        self._validate()

    def _validate(self) -> None:
        ok = self.editor is not None and self.editor.valid and bool(self.editor.edit.text().strip())
        self.write_button.setEnabled(ok)
        self.write_result.setText("" if self.editor is None or self.editor.valid else self.editor.error)

    def write(self) -> None:
        if self._row is None or self.editor is None:
            return
        value = self.editor.get_value()
        self.write_button.setEnabled(False)
        self.write_result.setText("Writing…")
        self.model.registers.write(self._row.command, self._row.origin, value)

    def _written(self, row: RegisterRow) -> None:
        if self._row is not None and row.command == self._row.command:
            self._row = row
            text = row.reading.text if row.reading is not None else ""
            self.write_result.setText(f"Verified: read back {text}")
            self.write_button.setEnabled(True)

    def _write_failed(self, error: TaskError) -> None:
        self.write_result.setText(error.message)
        self._validate()
