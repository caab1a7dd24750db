"""Thresholds: host alarm limits, and the gauge's protection thresholds in data flash.

Gauge writes are guarded three times: the editor refuses values the profile's entry refuses
(type and range), a confirmation shows old → new before anything is sent, and the driver
verifies by reading back. While the pack is sealed the editor is disabled and says why; the
unseal dialog sends the key and forgets it (never stored, never logged).
"""

from __future__ import annotations

import datetime as dt

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from gui import dialogs, theme
from gui.app_model import AppModel
from gui.editors import ValueEditor, entry_editor
from gui.gauge_ops import ImportPreview, SecurityInfo, ThresholdRow
from gui.limits_edit import FIELDS, apply_edits, limit_rows
from gui.tasks import TaskError
from gui.widgets import Pill, muted, page_header
from smartbatt.errors import SmartBattError
from smartbatt.monitor.alarms import available_limits, load_limits, save_limits
from smartbatt.profiles.schema import DFValue, SecurityLevel

DF_COLUMNS = ("Parameter", "Value", "Default", "Unit", "Range", "Status")


#: shown for a default or range no public source gives.
UNPUBLISHED = "—"


def range_text(row: ThresholdRow) -> str:
    e = row.entry
    if e.minimum is None and e.maximum is None:
        return UNPUBLISHED
    lo = "−∞" if e.minimum is None else f"{e.minimum:g}"
    hi = "∞" if e.maximum is None else f"{e.maximum:g}"
    return f"{lo} … {hi}"


def default_text(row: ThresholdRow) -> str:
    e = row.entry
    if e.default is None:
        return UNPUBLISHED
    try:
        return e.format_display(e.default)
    except SmartBattError:
        return str(e.default)


class KeyDialog(QDialog):
    """Asks for an unseal or full-access key. The text is cleared as soon as it has been read."""

    def __init__(self, what: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(what)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel(
            f"<b>{what}</b><br>Leave empty to use the key the chip's vendor publishes as the default. "
            "The key is sent to the pack and then forgotten: it is never stored or logged."))
        form = QFormLayout()
        self.key = QLineEdit()
        self.key.setEchoMode(QLineEdit.EchoMode.Password)
        self.key.setPlaceholderText("0x04143672 or 0414:3672 (empty = default key)")
        self.key.setFont(theme.mono_font())
        form.addRow("Key", self.key)
        layout.addLayout(form)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def take_key(self) -> str | None:
        """The typed key (None = default), clearing the field."""
        text = self.key.text().strip()
        self.key.clear()
        return text or None


def ask_key(parent: QWidget | None, what: str) -> tuple[bool, str | None]:
    """(accepted, key or None for the default). A seam for tests."""
    dialog = KeyDialog(what, parent)
    try:
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return False, None
        return True, dialog.take_key()
    finally:
        dialog.key.clear()
        dialog.deleteLater()


class HostLimitsTab(QWidget):
    """The alarm engine's limits: pick a limits file, edit tiers, apply, save."""

    def __init__(self, model: AppModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        layout = QVBoxLayout(self)
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Limits file"))
        self.files = QComboBox()
        self.files.addItems(available_limits())
        current = model.settings.limits_name()
        if self.files.findText(current) < 0:
            self.files.addItem(current)  # a user's own limits file
        self.files.setCurrentText(current)
        self.files.currentTextChanged.connect(self.load_file)
        bar.addWidget(self.files)
        self.description = muted(model.alarms.limits.description)
        bar.addWidget(self.description, 1)
        layout.addLayout(bar)
        self.table = QTableWidget(0, 2 + len(FIELDS))
        self.table.setHorizontalHeaderLabels(["Rule", "Unit", "Warning", "Alarm", "Critical", "Hysteresis", "Delay s"])
        self.table.verticalHeader().hide()
        self.table.setAlternatingRowColors(True)
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        layout.addWidget(self.table, 1)
        buttons = QHBoxLayout()
        self.result = muted("Edit a cell, then Apply. An empty tier is not used; a rule with no tier is off.")
        self.apply_button = QPushButton("Apply")
        self.apply_button.setObjectName("Primary")
        self.apply_button.clicked.connect(self.apply)
        self.save_button = QPushButton("Save as…")
        self.save_button.clicked.connect(self.save)
        buttons.addWidget(self.result, 1)
        buttons.addWidget(self.apply_button)
        buttons.addWidget(self.save_button)
        layout.addLayout(buttons)
        self.show_limits()

    def load_file(self, name: str) -> None:
        try:
            limits = load_limits(name)
        except SmartBattError as exc:
            self.result.setText(str(exc))
            return
        self.model.set_limits(name, limits)
        self.description.setText(limits.description)
        self.show_limits()

    def show_limits(self) -> None:
        rows = limit_rows(self.model.alarms.limits)
        self.table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, text in enumerate((row.label, row.unit, *row.cells)):
                item = QTableWidgetItem(text)
                if c < 2:
                    item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
                    item.setData(Qt.ItemDataRole.UserRole, row.rule)
                else:
                    item.setFont(theme.mono_font())
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(r, c, item)

    def edits(self) -> dict[str, tuple[str, ...]]:
        out: dict[str, tuple[str, ...]] = {}
        for r in range(self.table.rowCount()):
            first = self.table.item(r, 0)
            if first is None:
                continue
            cells = [self.table.item(r, c) for c in range(2, 2 + len(FIELDS))]
            out[str(first.data(Qt.ItemDataRole.UserRole))] = tuple(c.text() if c is not None else "" for c in cells)
        return out

    def apply(self) -> bool:
        """Validate and use the edited limits; False (with the reason shown) if refused."""
        try:
            limits = apply_edits(self.model.alarms.limits, self.edits())
        except SmartBattError as exc:
            self.result.setText(f"Not applied: {exc}")
            self.result.setStyleSheet(f"color: {theme.CRITICAL};")
            return False
        self.model.set_limits(self.files.currentText(), limits)
        self.result.setText("Applied: the alarm engine uses these limits from the next sample.")
        self.result.setStyleSheet(f"color: {theme.OK};")
        self.show_limits()
        return True

    def save(self) -> None:
        if not self.apply():
            return
        path = dialogs.save_path(self, "Save alarm limits", f"{self.model.alarms.limits.name}.toml", "TOML (*.toml)")
        if path is None:
            return
        try:
            save_limits(self.model.alarms.limits, path)
        except SmartBattError as exc:
            self.result.setText(str(exc))
            return
        self.model.set_limits(str(path), self.model.alarms.limits)
        self.result.setText(f"Saved to {path}")


class GaugeTab(QWidget):
    """Data-flash protection thresholds, security, golden image export/import."""

    def __init__(self, model: AppModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.rows: list[ThresholdRow] = []
        self.editor: ValueEditor[DFValue] | None = None
        self._row: ThresholdRow | None = None
        layout = QVBoxLayout(self)
        sec = QHBoxLayout()
        sec.addWidget(QLabel("Security"))
        self.security_pill = Pill("UNKNOWN")
        sec.addWidget(self.security_pill)
        self.security_text = muted("")
        sec.addWidget(self.security_text, 1)
        self.unseal_button = QPushButton("Unseal…")
        self.full_button = QPushButton("Full access…")
        self.seal_button = QPushButton("Seal")
        for b in (self.unseal_button, self.full_button, self.seal_button):
            sec.addWidget(b)
        layout.addLayout(sec)
        bar = QHBoxLayout()
        self.read_button = QPushButton("Read from pack")
        self.read_button.setObjectName("Primary")
        self.show_all = QCheckBox("Show entries without a known address")
        self.export_button = QPushButton("Export image…")
        self.import_button = QPushButton("Import image…")
        bar.addWidget(self.read_button)
        bar.addWidget(self.show_all)
        bar.addStretch(1)
        bar.addWidget(self.export_button)
        bar.addWidget(self.import_button)
        layout.addLayout(bar)
        self.note = muted("")
        layout.addWidget(self.note)
        body = QHBoxLayout()
        self.table = QTableWidget(0, len(DF_COLUMNS))
        self.table.setHorizontalHeaderLabels(list(DF_COLUMNS))
        self.table.verticalHeader().hide()
        self.table.setAlternatingRowColors(True)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().setDefaultSectionSize(24)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(5, QHeaderView.ResizeMode.Stretch)
        for col, width in ((1, 100), (2, 80), (3, 50), (4, 110)):
            self.table.setColumnWidth(col, width)
        self.table.itemSelectionChanged.connect(self._selected)
        body.addWidget(self.table, 1)
        self.edit_box = QGroupBox("Change")
        self.edit_box.setFixedWidth(290)
        box = QVBoxLayout(self.edit_box)
        self.edit_title = QLabel("Select a threshold.")
        self.edit_title.setWordWrap(True)
        self.editor_holder = QVBoxLayout()
        self.write_button = QPushButton("Write…")
        self.write_button.setObjectName("Danger")
        self.write_button.setEnabled(False)
        self.edit_reason = muted("")
        box.addWidget(self.edit_title)
        box.addLayout(self.editor_holder)
        box.addWidget(self.write_button)
        box.addWidget(self.edit_reason)
        box.addStretch(1)
        body.addWidget(self.edit_box)
        layout.addLayout(body, 1)

        g = model.gauge
        self.read_button.clicked.connect(g.read_thresholds)
        self.show_all.toggled.connect(lambda _on: self.show_rows(self.rows))
        self.unseal_button.clicked.connect(self.unseal)
        self.full_button.clicked.connect(self.full_access)
        self.seal_button.clicked.connect(g.seal)
        self.write_button.clicked.connect(self.write)
        self.export_button.clicked.connect(self.export_image)
        self.import_button.clicked.connect(self.import_image)
        g.thresholds_changed.connect(self.show_rows)
        g.security_changed.connect(self.show_security)
        g.busy_changed.connect(self._busy)
        g.preview_ready.connect(self.confirm_import)
        g.error.connect(self._error)
        self.show_rows(g.rows)
        self.show_security(g.security)

    def _error(self, error: TaskError) -> None:
        self.edit_reason.setText(error.message)

    # --- security ---------------------------------------------------------------------------------------

    def show_security(self, info: SecurityInfo) -> None:
        colors = {SecurityLevel.SEALED: theme.OK, SecurityLevel.UNSEALED: theme.WARNING,
                  SecurityLevel.FULL_ACCESS: theme.ALARM}
        self.security_pill.set(info.label.upper(), colors.get(info.level, theme.MUTED) if info.level else theme.MUTED)
        self.security_text.setText(info.source + (" (inferred)" if info.inferred else ""))
        has_scheme = self.model.gauge.profile is not None and self.model.gauge.profile.security.method.value != "none"
        self.unseal_button.setEnabled(has_scheme and info.level is not SecurityLevel.FULL_ACCESS)
        self.full_button.setEnabled(has_scheme and info.level is SecurityLevel.UNSEALED)
        self.seal_button.setEnabled(has_scheme and info.level in (SecurityLevel.UNSEALED, SecurityLevel.FULL_ACCESS))
        self._update_editor_state()

    def unseal(self) -> None:
        ok, key = ask_key(self, "Unseal the gauge")
        if ok:
            self.model.gauge.unseal(key)

    def full_access(self) -> None:
        ok, key = ask_key(self, "Full access")
        if ok:
            self.model.gauge.full_access(key)

    # --- table ----------------------------------------------------------------------------------------------

    def show_rows(self, rows: list[ThresholdRow]) -> None:
        self.rows = rows
        shown = [r for r in rows if self.show_all.isChecked() or r.addressable]
        hidden = len(rows) - len(shown)
        profile = self.model.gauge.profile
        name = profile.name if profile is not None else "this chip"
        notes = []
        if hidden:
            notes.append(f"{hidden} thresholds of {name} have no published data-flash address and cannot be read or "
                         "written here (tick the box to list them).")
        if rows and not any(r.addressable for r in rows):
            notes.append("No public source gives the addresses for this chip.")
        if not rows:
            notes.append(f"The {name} profile maps no protection thresholds." if profile else "No pack connected.")
        self.note.setText(" ".join(notes))
        self.note.setVisible(bool(notes))
        self.table.setRowCount(len(shown))
        for i, row in enumerate(shown):
            e = row.entry
            status = ("no address" if not row.addressable else row.problem) or ("read" if row.text else "not read yet")
            cells = (f"{e.subclass} · {e.name}", row.text or "—", default_text(row), e.unit, range_text(row), status)
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setData(Qt.ItemDataRole.UserRole, e.key)
                if col in (1, 2):
                    item.setFont(theme.mono_font())
                if not row.addressable:
                    item.setForeground(QColor(theme.MUTED))
                tips = {
                    0: f"{e.key}\n{e.description}".strip(),
                    2: "default: not published" if e.default is None else "",
                    4: "range: not published" if e.minimum is None and e.maximum is None else "",
                    5: row.problem,
                }
                item.setToolTip(tips.get(col, ""))
                self.table.setItem(i, col, item)
        if self._row is not None:
            self._row = next((r for r in rows if r.entry.key == self._row.entry.key), None)
            self._update_editor_state()

    def _selected(self) -> None:
        items = self.table.selectedItems()
        key = items[0].data(Qt.ItemDataRole.UserRole) if items else None
        self.select(next((r for r in self.rows if r.entry.key == key), None))

    def select(self, row: ThresholdRow | None) -> None:
        if self.editor is not None:
            self.editor.setParent(None)
            self.editor.deleteLater()
            self.editor = None
        self._row = row
        if row is None:
            self.edit_title.setText("Select a threshold.")
            self._update_editor_state()
            return
        e = row.entry
        self.edit_title.setText(f"<b>{e.subclass} · {e.name}</b><br>{e.class_name}"
                                + (f"<br>{e.description}" if e.description else ""))
        self.editor = entry_editor(e)
        if row.value is not None:
            self.editor.set_value(row.value)
        self.editor.changed.connect(self._update_editor_state)
        self.editor_holder.addWidget(self.editor)
        self._update_editor_state()

    def write_block_reason(self) -> str:
        """Why writing is not possible now ("" if it is)."""
        row = self._row
        if row is None:
            return "Select a threshold."
        if row.problem and not row.addressable:
            return row.problem
        sec = self.model.gauge.security
        if sec.sealed:
            return "The pack is sealed: data flash can only be written after Unseal."
        if not sec.writable:
            return "Security mode unknown: read the pack first."
        if row.value is None:
            return "Read the current value from the pack first."
        if self.editor is None or not self.editor.valid:
            return self.editor.error if self.editor is not None else ""
        return ""

    def _update_editor_state(self) -> None:
        reason = self.write_block_reason()
        if self.editor is not None:
            self.editor.setEnabled(not (self._row is not None and not self._row.addressable)
                                   and not self.model.gauge.security.sealed)
        self.write_button.setEnabled(not reason and not self.model.gauge.busy)
        self.edit_reason.setText(reason)

    def _busy(self, busy: bool) -> None:
        for b in (self.read_button, self.export_button, self.import_button):
            b.setEnabled(not busy)
        self._update_editor_state()

    def write(self) -> None:
        row, editor = self._row, self.editor
        if row is None or editor is None:
            return
        try:
            value = editor.get_value()
        except SmartBattError as exc:
            self.edit_reason.setText(str(exc))
            return
        e = row.entry
        new_text = e.format_display(value)
        if not dialogs.confirm(self, "Write data flash", f"Change {e.key}?",
                               f"{row.text} → {new_text} {e.unit}".strip()):
            return
        self.model.gauge.write_entry(e, value)

    # --- image -----------------------------------------------------------------------------------------------

    def export_image(self) -> None:
        profile = self.model.gauge.profile
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        name = f"{profile.name if profile else 'pack'}-dataflash-{stamp}.json"
        path = dialogs.save_path(self, "Export data flash image", name, "Data flash image (*.json)")
        if path is not None:
            self.model.gauge.export_image(path)

    def import_image(self) -> None:
        path = dialogs.open_path(self, "Import data flash image", "Data flash image (*.json)")
        if path is not None:
            self.model.gauge.preview_import(path)

    def confirm_import(self, preview: ImportPreview) -> None:
        if not preview.changes:
            self.model.message.emit(f"{preview.path.name}: the pack already matches ({preview.unchanged} entries)")
            return
        lines = [f"{key}: {old} → {new} {unit}".strip() for key, old, new, unit in preview.changes]
        skipped = f"\n\nNot written ({len(preview.skipped)}): " + ", ".join(k for k, _ in preview.skipped) \
            if preview.skipped else ""
        detail = "\n".join(lines[:40]) + (f"\n… and {len(lines) - 40} more" if len(lines) > 40 else "") + skipped
        if dialogs.confirm(self, "Import data flash image",
                           f"Write {len(preview.changes)} changed entries from {preview.path.name}? "
                           "The present values are backed up first.", detail):
            backup = self.model.settings.recordings_path().parent / "dataflash-backups"
            self.model.gauge.import_image(preview.path, backup)


class ThresholdsPanel(QWidget):
    title = "Thresholds"

    def __init__(self, model: AppModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 12, 16, 12)
        layout.addWidget(page_header(
            "Thresholds", "Host alarm limits (this app's alarm engine) and the gauge's own protection thresholds "
            "in data flash (written to the pack, verified by reading back)."))
        self.tabs = QTabWidget()
        self.gauge_tab = GaugeTab(model)
        self.host_tab = HostLimitsTab(model)
        self.tabs.addTab(self.gauge_tab, "Gauge protections (data flash)")
        self.tabs.addTab(self.host_tab, "Host alarm limits")
        layout.addWidget(self.tabs, 1)
