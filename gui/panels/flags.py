"""Flags: every status word as named indicators (profile descriptions as tooltips) and a change log."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QScrollArea,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from gui import theme
from gui.app_model import AppModel
from gui.format import format_hex, format_time
from gui.widgets import Lamp, page_header
from smartbatt.gauge.flags import DecodedRegister
from smartbatt.monitor.alarms import BATTERY_STATUS_ALARMS

#: colour of a set flag per register: protection and failure words are bad news when set.
REGISTER_COLORS = {
    "SafetyAlert": theme.WARNING,
    "SafetyStatus": theme.ALARM,
    "PFAlert": theme.ALARM,
    "PFStatus": theme.CRITICAL,
}
COLUMNS_PER_ROW = 8


def flag_color(register: str, flag: str) -> str:
    if register == "BatteryStatus" and flag in BATTERY_STATUS_ALARMS:
        return theme.ALARM
    return REGISTER_COLORS.get(register, theme.ACCENT)


class RegisterBox(QGroupBox):
    """One status word: a lamp per named flag and a line per multi-bit field."""

    def __init__(self, model: AppModel, register: str, parent: QWidget | None = None) -> None:
        super().__init__(register, parent)
        self.register = register
        bitfield = model.flags.profile.bitfields[register]
        self.lamps: dict[str, Lamp] = {}
        self.labels: dict[str, QLabel] = {}
        grid = QGridLayout(self)
        grid.setHorizontalSpacing(14)
        grid.setVerticalSpacing(5)
        flags = sorted(bitfield.flags, key=lambda f: f.bit)
        for i, f in enumerate(flags):
            cell = QWidget()
            row = QHBoxLayout(cell)
            row.setContentsMargins(0, 0, 0, 0)
            row.setSpacing(5)
            lamp = Lamp()
            label = QLabel(f.name)
            label.setFont(theme.mono_font(8.5))
            tip = f"bit {f.bit}: {f.label or f.name}" + (f"\n{f.description}" if f.description else "")
            cell.setToolTip(tip)
            row.addWidget(lamp)
            row.addWidget(label)
            row.addStretch(1)
            grid.addWidget(cell, i // COLUMNS_PER_ROW, i % COLUMNS_PER_ROW)
            self.lamps[f.name] = lamp
            self.labels[f.name] = label
        base = (len(flags) + COLUMNS_PER_ROW - 1) // COLUMNS_PER_ROW
        self.groups: dict[str, QLabel] = {}
        for j, g in enumerate(bitfield.groups):
            label = QLabel(f"{g.name}: —")
            label.setFont(theme.mono_font(8.5))
            label.setToolTip(f"bits {g.low}–{g.low + g.width - 1}: {g.label or g.name}\n{g.description}".strip())
            grid.addWidget(label, base + j, 0, 1, COLUMNS_PER_ROW)
            self.groups[g.name] = label

    def show(self, decoded: DecodedRegister | None) -> None:  # type: ignore[override]
        super().show()
        if decoded is None:
            self.setTitle(f"{self.register}   not read")
            for lamp in self.lamps.values():
                lamp.set(None)
            return
        unknown = f"   unknown bits set: {', '.join(map(str, decoded.unknown_bits))}" if decoded.unknown_bits else ""
        width = 32 if decoded.raw > 0xFFFF else 16
        self.setTitle(f"{self.register}   {format_hex(decoded.raw, width)}{unknown}")
        for f in decoded.flags:
            indicator = self.lamps.get(f.name)
            if indicator is not None:
                indicator.set(f.set, flag_color(self.register, f.name))
                self.labels[f.name].setStyleSheet(f"color: {theme.TEXT};" if f.set else f"color: {theme.MUTED};")
        for g in decoded.groups:
            label = self.groups.get(g.name)
            if label is not None:
                label.setText(f"{g.name} ({g.label or g.name}): {g.meaning} [{g.value}]")


class FlagsPanel(QWidget):
    title = "Flags"

    def __init__(self, model: AppModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.boxes: dict[str, RegisterBox] = {}
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 12, 16, 12)
        layout.addWidget(page_header(
            "Flags", "Every status word the pack reports, decoded with the chip profile's bit maps (hover a "
            "flag for its meaning). Changes are logged on the right with the time they were seen."))
        splitter = QSplitter(Qt.Orientation.Horizontal)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        self.body = QWidget()
        self.body_layout = QVBoxLayout(self.body)
        self.body_layout.setSpacing(8)
        self.empty = QLabel("No status words read yet.")
        self.empty.setObjectName("Muted")
        self.body_layout.addWidget(self.empty)
        self.unread = QLabel("")
        self.unread.setObjectName("Muted")
        self.unread.setWordWrap(True)
        self.body_layout.addWidget(self.unread)
        self.body_layout.addStretch(1)
        scroll.setWidget(self.body)
        splitter.addWidget(scroll)
        log_box = QWidget()
        log_layout = QVBoxLayout(log_box)
        log_layout.setContentsMargins(8, 0, 0, 0)
        title = QLabel("CHANGES")
        title.setObjectName("CardTitle")
        log_layout.addWidget(title)
        self.log = QTableWidget(0, 4)
        self.log.setHorizontalHeaderLabels(["Time", "Register", "Flag", "Change"])
        self.log.verticalHeader().hide()
        self.log.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.log.setAlternatingRowColors(True)
        self.log.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.log.horizontalHeader().setStretchLastSection(True)
        log_layout.addWidget(self.log)
        splitter.addWidget(log_box)
        splitter.setSizes([760, 340])
        layout.addWidget(splitter, 1)
        model.flags.flags_changed.connect(self.refresh)
        model.flags.log_changed.connect(self.refresh_log)

    def _rebuild(self) -> None:
        for box in self.boxes.values():
            box.setParent(None)
            box.deleteLater()
        self.boxes = {}
        profile = self.model.flags.profile
        order = [n for n in profile.bitfields if n in self.model.flags.registers]
        for name in order:
            box = RegisterBox(self.model, name)
            self.body_layout.insertWidget(self.body_layout.count() - 1, box)
            self.boxes[name] = box

    def refresh(self) -> None:
        registers = self.model.flags.registers
        if set(self.boxes) != set(registers):
            self._rebuild()
        self.empty.setVisible(not registers)
        for name, box in self.boxes.items():
            box.show(registers.get(name))
        profile = self.model.flags.profile
        unread = [n for n in profile.status_sources if n not in registers]
        sealed = self.model.gauge.security.sealed
        why = " Most are refused while the pack is sealed (Thresholds → Unseal)." if sealed else ""
        self.unread.setText(
            f"Not in the live poll: {', '.join(unread)} — read them once on the Registers page.{why}"
            if unread and registers else ""
        )

    def refresh_log(self) -> None:
        changes = list(self.model.flags.changes)[-500:]
        self.log.setRowCount(len(changes))
        for row, logged in enumerate(reversed(changes)):
            c = logged.change
            change = ("set" if c.raised else "cleared") if c.old in (0, 1) and c.new in (0, 1) else f"{c.old} → {c.new}"
            items = (format_time(logged.time), c.register, c.name, change)
            for col, text in enumerate(items):
                item = QTableWidgetItem(text)
                if col == 3:
                    item.setForeground(QColor(flag_color(c.register, c.name) if c.raised else theme.MUTED))
                if c.label:
                    item.setToolTip(c.label)
                self.log.setItem(row, col, item)
