"""Cells: one bar per cell with its voltage, the session's min and max, the spread and balancing."""

from __future__ import annotations

import math

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QFont, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QGridLayout, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from gui import theme
from gui.app_model import AppModel
from gui.format import MISSING, format_number
from gui.widgets import Card, Lamp, page_header
from smartbatt.monitor.alarms import AlarmLimits
from smartbatt.monitor.sample import Sample

#: bar scale when the limits name none, V (a Li-ion window; LFP packs still fit).
DEFAULT_SCALE_V = (2.5, 4.35)


def bar_scale(limits: AlarmLimits) -> tuple[float, float]:
    """Bar range from the host limits: a little below the lowest under-voltage tier and above the
    highest over-voltage tier, so the limit lines sit inside the bars."""
    low, high = DEFAULT_SCALE_V
    if limits.cell_under_voltage is not None and limits.cell_under_voltage.tiers():
        low = min(v for _, v in limits.cell_under_voltage.tiers()) - 0.25
    if limits.cell_over_voltage is not None and limits.cell_over_voltage.tiers():
        high = max(v for _, v in limits.cell_over_voltage.tiers()) + 0.1
    return low, high


def nice_ticks(low: float, high: float, count: int = 9) -> list[float]:
    """Round tick values (steps of 1, 2 or 5 × 10^n) covering ``[low, high]``."""
    span = max(high - low, 1e-9)
    raw = span / max(count - 1, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step - 1e-9) * step
    ticks = []
    v = first
    while v <= high + 1e-9:
        ticks.append(round(v, 10))
        v += step
    return ticks


class CellBars(QWidget):
    """Painted bars: fill = voltage, thin marks = session min/max, dashed lines = host limits."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.values: list[float | None] = []
        self.minima: list[float] = []
        self.maxima: list[float] = []
        self.scale = DEFAULT_SCALE_V
        self.limits: list[tuple[float, str]] = []
        self.setMinimumHeight(260)

    def set_data(self, values: list[float | None], minima: list[float], maxima: list[float]) -> None:
        self.values, self.minima, self.maxima = values, minima, maxima
        self.update()

    def _y(self, rect: QRectF, v: float) -> float:
        lo, hi = self.scale
        frac = min(1.0, max(0.0, (v - lo) / (hi - lo)))
        return rect.bottom() - frac * rect.height()

    def paintEvent(self, event: QPaintEvent) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        n = max(1, len(self.values))
        area = QRectF(self.rect()).adjusted(50, 30, -46, -28)
        p.setFont(theme.mono_font(8))
        p.setPen(QColor(theme.MUTED))
        for v in nice_ticks(*self.scale):
            y = self._y(area, v)
            p.drawText(QRectF(0, y - 8, 44, 16), int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter),
                       f"{v:.2f}")
            p.setPen(QPen(QColor(theme.BORDER), 1))
            p.drawLine(int(area.left()), int(y), int(area.right()), int(y))
            p.setPen(QColor(theme.MUTED))
        slot = area.width() / n
        width = min(90.0, slot * 0.55)
        for i, value in enumerate(self.values):
            cx = area.left() + slot * (i + 0.5)
            bar = QRectF(cx - width / 2, area.top(), width, area.height())
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(QColor(theme.PANEL_ALT))
            p.drawRoundedRect(bar, 3, 3)
            if value is not None:
                top = self._y(area, value)
                fill = QRectF(bar.left(), top, width, bar.bottom() - top)
                p.setBrush(QColor(self._color(value)))
                p.drawRoundedRect(fill, 3, 3)
            if i < len(self.minima) and math.isfinite(self.minima[i]):
                p.setPen(QPen(QColor(theme.TEXT), 2))
                for mark in (self.minima[i], self.maxima[i]):
                    y = self._y(area, mark)
                    p.drawLine(int(bar.left() - 5), int(y), int(bar.right() + 5), int(y))
            p.setPen(QColor(theme.TEXT))
            bold = QFont(theme.mono_font(10, bold=True))
            p.setFont(bold)
            text = MISSING if value is None else f"{value:.3f} V"
            p.drawText(QRectF(cx - slot / 2, 4, slot, 22), int(Qt.AlignmentFlag.AlignCenter), text)
            p.setFont(theme.mono_font(8))
            p.setPen(QColor(theme.MUTED))
            p.drawText(QRectF(cx - slot / 2, area.bottom() + 4, slot, 20), int(Qt.AlignmentFlag.AlignCenter),
                       f"Cell {i + 1}")
        p.setFont(theme.mono_font(7.5))
        label_y: list[float] = []
        for level, color in sorted(self.limits, reverse=True):
            y = self._y(area, level)
            p.setPen(QPen(QColor(color), 1, Qt.PenStyle.DashLine))
            p.drawLine(int(area.left()), int(y), int(area.right()), int(y))
            text_y = y
            if label_y and text_y - label_y[-1] < 11:  # two limits close together: stack the labels
                text_y = label_y[-1] + 11
            label_y.append(text_y)
            p.setPen(QColor(color))
            p.drawText(QRectF(area.right() + 4, text_y - 8, 44, 16), int(Qt.AlignmentFlag.AlignVCenter), f"{level:.2f}")
        p.end()

    def _color(self, value: float) -> str:
        for level, color in self.limits:
            if (level > sum(self.scale) / 2 and value >= level) or (level < sum(self.scale) / 2 and value <= level):
                return color
        return theme.ACCENT


class CellsPanel(QWidget):
    title = "Cells"

    def __init__(self, model: AppModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.minima: dict[str, float] = {}
        self.maxima: dict[str, float] = {}
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 12, 16, 12)
        layout.setSpacing(10)
        layout.addWidget(page_header(
            "Cells", "Each cell's voltage (bar), the lowest and highest since the session began (marks) and the "
            "host limits (dashed)."))
        self.bars = CellBars()
        layout.addWidget(self.bars, 1)
        grid = QGridLayout()
        grid.setSpacing(10)
        self.spread = Card("Spread now", tooltip="Highest minus lowest cell voltage")
        self.low = Card("Lowest cell")
        self.high = Card("Highest cell")
        balance = Card("Balancing", tooltip="OperationStatus CB: the gauge bleeds the higher cells")
        balance.value.hide()
        row = QHBoxLayout()
        self.lamp = Lamp(size=14)
        self.balance_text = QLabel("unknown")
        row.addWidget(self.lamp)
        row.addWidget(self.balance_text, 1)
        balance.box.insertLayout(1, row)
        self.balance = balance
        for i, card in enumerate((self.spread, self.low, self.high, balance)):
            grid.addWidget(card, 0, i)
            grid.setColumnStretch(i, 1)
        layout.addLayout(grid)
        reset = QPushButton("Reset min/max")
        reset.clicked.connect(self.reset_extremes)
        bottom = QHBoxLayout()
        bottom.addStretch(1)
        bottom.addWidget(reset)
        layout.addLayout(bottom)
        model.live.sample_changed.connect(self.show_sample)
        model.connection.session_started.connect(self._session_started)
        self._apply_limits()

    def _apply_limits(self) -> None:
        limits = self.model.alarms.limits
        self.bars.scale = bar_scale(limits)
        marks: list[tuple[float, str]] = []
        for rule in (limits.cell_over_voltage, limits.cell_under_voltage):
            if rule is not None:
                marks.extend((v, theme.severity_color(sev)) for sev, v in rule.tiers())
        self.bars.limits = marks

    def _session_started(self, _bus: object) -> None:
        self.reset_extremes()

    def reset_extremes(self) -> None:
        self.minima.clear()
        self.maxima.clear()
        self.show_sample(self.model.live.current())

    def show_sample(self, sample: Sample | None) -> None:
        if sample is None:
            return
        self._apply_limits()
        names = sorted((n for n in sample.values if n.startswith("CellVoltage") and n[11:].isdigit()),
                       key=lambda n: int(n[11:]))
        values = [sample.get(n) for n in names]
        for name, v in zip(names, values, strict=True):
            if v is not None:
                self.minima[name] = min(self.minima.get(name, v), v)
                self.maxima[name] = max(self.maxima.get(name, v), v)
        self.bars.set_data(values, [self.minima.get(n, math.nan) for n in names],
                           [self.maxima.get(n, math.nan) for n in names])
        present = [(n, v) for n, v in zip(names, values, strict=True) if v is not None]
        if len(present) >= 2:
            lo = min(present, key=lambda x: x[1])
            hi = max(present, key=lambda x: x[1])
            self.spread.set(format_number((hi[1] - lo[1]) * 1000, 0, "mV"), f"{len(present)} cells")
            self.low.set(format_number(lo[1], 3, "V"), f"cell {lo[0][11:]}")
            self.high.set(format_number(hi[1], 3, "V"), f"cell {hi[0][11:]}")
        elif not present:
            for card in (self.spread, self.low, self.high):
                card.set(MISSING, "no cell voltages on this pack/profile")
        balancing = self.model.live.state(sample).balancing
        self.lamp.set(balancing, theme.INFO)
        self.balance_text.setText(
            "unknown (OperationStatus not readable)" if balancing is None else ("active" if balancing else "off")
        )
