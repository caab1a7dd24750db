"""Time-series plots over the sample history: curves created once, ``setData`` on a fixed-rate timer.

Layout (data, :data:`PLOT_ROWS`): pack voltage, cell voltages, current, temperature and state
of charge (gauge and independent estimate), stacked with a shared time axis. Each channel gets
one ``PlotDataItem`` when it first appears and keeps it; the refresh timer copies only the
visible time window out of the :class:`~gui.history.History` and calls ``setData``, with
pyqtgraph's ``clipToView`` and automatic *peak* downsampling, so a day of 1 Hz data on eight
traces draws as a few thousand points. The data refresh interval follows the window: when one
pixel spans a minute there is no point in copying the window ten times a second
(:func:`refresh_interval_ms`).

Interaction: mouse pan/zoom (which stops following the live edge until *Live* is pressed),
time-window presets from one minute to all, pause, a crosshair with a readout of every series at
the cursor, per-series toggles, and export of the visible plot as PNG and its data as CSV.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from gui import theme
from gui.format import UnitPrefs, channel_info, convert, format_number, format_time
from gui.history import History
from smartbatt.monitor.sample import cell_channels


@dataclass(frozen=True)
class PlotRow:
    """One stacked plot: a title, the channels it shows (``CellVoltage*`` = every cell)."""

    key: str
    title: str
    #: unit of the channels (the library's units; temperatures follow the user's preference).
    unit: str
    channels: tuple[str, ...]
    #: relative height.
    stretch: int = 1


PLOT_ROWS: tuple[PlotRow, ...] = (
    PlotRow("voltage", "Pack", "V", ("Voltage",)),
    PlotRow("cells", "Cells", "V", ("CellVoltage*",), 2),
    PlotRow("current", "Current", "A", ("Current",)),
    PlotRow("temperature", "Temp.", "°C", ("Temperature",)),
    PlotRow("soc", "SOC", "%", ("RelativeStateOfCharge", "est_soc")),
)

#: time-window presets: label → seconds (None = everything in the history).
WINDOWS: Mapping[str, float | None] = MappingProxyType(
    {"1 min": 60.0, "5 min": 300.0, "15 min": 900.0, "1 h": 3600.0, "6 h": 21600.0, "24 h": 86400.0, "All": None}
)

#: refresh interval limits, ms.
MIN_REFRESH_MS = 100
MAX_REFRESH_MS = 2000


#: fixed colours of the non-cell series (cells take the palette in cell order).
SERIES_COLOR: Mapping[str, str] = MappingProxyType(
    {
        "Voltage": theme.SERIES_COLORS[0],
        "Current": theme.SERIES_COLORS[1],
        "Temperature": theme.SERIES_COLORS[5],
        "RelativeStateOfCharge": theme.SERIES_COLORS[2],
        "est_soc": theme.SERIES_COLORS[4],
    }
)


def series_color(channel: str) -> str:
    """The colour of a series (cells: palette by cell number)."""
    if channel in SERIES_COLOR:
        return SERIES_COLOR[channel]
    if channel.startswith("CellVoltage") and channel[11:].isdigit():
        return theme.CELL_COLORS[(int(channel[11:]) - 1) % len(theme.CELL_COLORS)]
    return theme.SERIES_COLORS[7]


def refresh_interval_ms(window_s: float, plot_width_px: int) -> int:
    """How often to copy new data into the curves: about once per horizontal pixel of time,
    bounded to 0.1–2 s (10 Hz when a minute is shown, every 2 s for a day)."""
    per_pixel_ms = 1000.0 * window_s / max(plot_width_px, 100)
    return int(min(MAX_REFRESH_MS, max(MIN_REFRESH_MS, per_pixel_ms)))


def decimate(
    t: npt.NDArray[np.float64], columns: Mapping[str, npt.NDArray[np.float32]], bins: int
) -> tuple[npt.NDArray[np.float64], dict[str, npt.NDArray[np.float32]]]:
    """Peak decimation: at most ``2 × bins`` points per series, keeping every min and max.

    Each bin of ``k`` consecutive samples becomes two points (its minimum and its maximum, at
    the bin's first time), so spikes stay visible at any zoom — the "peak" method pyqtgraph
    offers, done once per data refresh for all series instead of on every paint. NaN (a missing
    reading) is ignored within a bin; an all-NaN bin stays NaN, so gaps still break the line.
    """
    n = len(t)
    if bins < 1 or n <= 2 * bins:
        return t, dict(columns)
    k = n // bins
    m = bins * k
    tt = np.repeat(t[:m:k], 2)
    tail_t = t[m:]
    out: dict[str, npt.NDArray[np.float32]] = {}
    for name, y in columns.items():
        block = y[:m].reshape(bins, k)
        pair = np.empty((bins, 2), dtype=np.float32)
        pair[:, 0] = np.fmin.reduce(block, axis=1)
        pair[:, 1] = np.fmax.reduce(block, axis=1)
        out[name] = np.concatenate([pair.reshape(-1), y[m:]])
    return np.concatenate([tt, tail_t]), out


def row_channels(row: PlotRow, available: Sequence[str]) -> list[str]:
    """The channels of ``row`` present in ``available`` (cells expanded and ordered)."""
    out: list[str] = []
    for pattern in row.channels:
        if pattern == "CellVoltage*":
            out.extend(cell_channels(available))
        else:
            out.append(pattern)
    return out


class PlotArea(QWidget):
    """The stacked plots, their toolbar and the series toggles.

    :param history_source: returns the history to draw (live or replay).
    """

    #: the set of hidden series changed (settings persist it).
    hidden_changed = Signal(object)
    #: the window preset changed.
    window_changed = Signal(str)

    def __init__(self, history_source: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._source = history_source
        self.prefs = UnitPrefs()
        self.following = True
        self.paused = False
        self.window_label = "5 min"
        self.hidden: set[str] = set()
        self.curves: dict[str, pg.PlotDataItem] = {}
        self.plots: dict[str, pg.PlotItem] = {}
        self.lines: list[pg.InfiniteLine] = []
        self.cursor_lines: list[pg.InfiniteLine] = []
        self._toggles: dict[str, QCheckBox] = {}
        self._version = -1
        self._drawn_range: tuple[float, float] | None = None
        self._setting_range = False
        self.frames = 0

        self.view = pg.GraphicsLayoutWidget()
        self.view.ci.setSpacing(2)
        self._build_plots()
        self._build_toolbar()
        self.readout = QLabel("")
        self.readout.setFont(theme.mono_font(9))
        self.readout.setObjectName("Muted")
        self.readout.setMinimumHeight(18)
        self.legend = QVBoxLayout()
        self.legend.setSpacing(4)
        legend_box = QWidget()
        legend_box.setFixedWidth(170)
        outer_legend = QVBoxLayout(legend_box)
        outer_legend.setContentsMargins(6, 0, 0, 0)
        title = QLabel("SERIES")
        title.setObjectName("CardTitle")
        outer_legend.addWidget(title)
        outer_legend.addLayout(self.legend)
        outer_legend.addStretch(1)

        body = QHBoxLayout()
        body.addWidget(self.view, 1)
        body.addWidget(legend_box)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(self.toolbar)
        layout.addLayout(body, 1)
        layout.addWidget(self.readout)

        self._mouse = pg.SignalProxy(self.view.scene().sigMouseMoved, rateLimit=30, slot=self._on_mouse)
        self.timer = QTimer(self)
        self.timer.setInterval(MIN_REFRESH_MS)
        self.timer.timeout.connect(self.refresh)
        self.timer.start()

    # --- construction --------------------------------------------------------------------------------

    def _build_plots(self) -> None:
        first: pg.PlotItem | None = None
        for i, row in enumerate(PLOT_ROWS):
            last = i == len(PLOT_ROWS) - 1
            # every plot has a time axis; only the lowest visible one shows it (_show_rows)
            plot: pg.PlotItem = self.view.addPlot(
                row=i, col=0, axisItems={"bottom": pg.DateAxisItem(orientation="bottom")}
            )
            self.view.ci.layout.setRowStretchFactor(i, row.stretch)
            plot.showGrid(x=False, y=True, alpha=1.0)
            plot.setMenuEnabled(False)
            plot.hideButtons()
            for side in ("left", "bottom"):
                axis = plot.getAxis(side)
                axis.setPen(pg.mkPen(theme.GRID))
                axis.setTextPen(pg.mkPen(theme.MUTED))
                axis.setTickFont(theme.mono_font(8))
                # opaque grid lines: alpha-blended ones cost 4× more to paint (measured, bench_gui)
                # major ticks only on the value axes: a calm grid, and half the axis paint cost
                axis.setStyle(tickAlpha=255, maxTickLevel=1 if side == "bottom" else 0)
                axis.enableAutoSIPrefix(False)
                axis.setZValue(-1)  # grid lines under the curves (opaque lines would hide them)
            plot.getAxis("left").setWidth(66)
            plot.setLabel("left", f"{row.title} ({row.unit})")
            if not last:
                plot.hideAxis("bottom")  # one time axis: the others' labels and ticks cost frames
            if first is None:
                first = plot
            else:
                plot.setXLink(first)
            plot.getViewBox().sigRangeChangedManually.connect(self._on_manual_range)
            dotted = pg.mkPen(theme.MUTED, width=1, style=Qt.PenStyle.DotLine)
            line = pg.InfiniteLine(angle=90, movable=False, pen=dotted)
            line.hide()
            plot.addItem(line, ignoreBounds=True)
            self.lines.append(line)
            cursor = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen(theme.ACCENT, width=1))
            cursor.hide()
            plot.addItem(cursor, ignoreBounds=True)
            self.cursor_lines.append(cursor)
            self.plots[row.key] = plot

    def _build_toolbar(self) -> None:
        self.toolbar = QHBoxLayout()
        self.window_box = QComboBox()
        self.window_box.addItems(list(WINDOWS))
        self.window_box.setCurrentText(self.window_label)
        self.window_box.currentTextChanged.connect(self.set_window)
        self.live_button = QPushButton("Live")
        self.live_button.setToolTip("Follow the newest data again after panning or zooming")
        self.live_button.clicked.connect(self.go_live)
        self.pause_button = QPushButton("Pause")
        self.pause_button.setCheckable(True)
        self.pause_button.setToolTip("Freeze the plots; data keeps being collected")
        self.pause_button.toggled.connect(self.set_paused)
        self.png_button = QPushButton("Export PNG…")
        self.csv_button = QPushButton("Export CSV…")
        window_label = QLabel("Window")
        window_label.setObjectName("Muted")
        self.toolbar.addWidget(window_label)
        self.toolbar.addWidget(self.window_box)
        self.toolbar.addWidget(self.live_button)
        self.toolbar.addWidget(self.pause_button)
        self.toolbar.addStretch(1)
        self.toolbar.addWidget(self.png_button)
        self.toolbar.addWidget(self.csv_button)

    def _row_of(self, channel: str) -> PlotRow | None:
        for row in PLOT_ROWS:
            if channel in row.channels or (channel.startswith("CellVoltage") and "CellVoltage*" in row.channels):
                return row
        return None

    def _ensure_curve(self, channel: str) -> pg.PlotDataItem | None:
        curve = self.curves.get(channel)
        if curve is not None:
            return curve
        row = self._row_of(channel)
        if row is None:
            return None
        plot = self.plots[row.key]
        color = series_color(channel)
        curve = plot.plot(pen=pg.mkPen(color, width=1), name=channel, connect="finite")
        # the data arrive already clipped to the view and peak-decimated (see decimate())
        curve.setClipToView(False)
        curve.setDownsampling(auto=False)
        curve.setVisible(channel not in self.hidden)
        self.curves[channel] = curve
        self._add_toggle(channel, color)
        return curve

    def _add_toggle(self, channel: str, color: str) -> None:
        box = QCheckBox(channel_info(channel).label)
        box.setChecked(channel not in self.hidden)
        box.setStyleSheet(f"QCheckBox::indicator:checked {{ background: {color}; border: 1px solid {color}; }}"
                          f" QCheckBox::indicator {{ width: 10px; height: 10px; border: 1px solid {theme.BORDER};"
                          " border-radius: 2px; }")
        box.toggled.connect(lambda on, ch=channel: self.set_series_visible(ch, on))
        self._toggles[channel] = box
        self.legend.addWidget(box)

    # --- public controls -----------------------------------------------------------------------------

    @property
    def history(self) -> History:
        source = self._source
        return source() if callable(source) else source  # type: ignore[no-any-return]

    def set_prefs(self, prefs: UnitPrefs) -> None:
        """Display units; plots keep the library's units (V, A, °C) except temperature in °F/K."""
        self.prefs = prefs
        unit = {"C": "°C", "F": "°F", "K": "K"}[prefs.temperature]
        self.plots["temperature"].setLabel("left", f"Temp. ({unit})")
        self._version = -1

    def set_window(self, label: str) -> None:
        if label not in WINDOWS:
            return
        self.window_label = label
        if self.window_box.currentText() != label:
            self.window_box.setCurrentText(label)
        self.following = True
        self._version = -1
        self.window_changed.emit(label)
        self.refresh()

    def set_paused(self, paused: bool) -> None:
        self.paused = paused
        if self.pause_button.isChecked() != paused:
            self.pause_button.setChecked(paused)
        self.pause_button.setText("Resume" if paused else "Pause")
        if not paused:
            self._version = -1
            self.refresh()

    def go_live(self) -> None:
        self.following = True
        self.set_paused(False)
        self._version = -1
        self.refresh()

    def set_series_visible(self, channel: str, visible: bool) -> None:
        if visible:
            self.hidden.discard(channel)
        else:
            self.hidden.add(channel)
        curve = self.curves.get(channel)
        if curve is not None:
            curve.setVisible(visible)
        box = self._toggles.get(channel)
        if box is not None and box.isChecked() != visible:
            box.setChecked(visible)
        self.hidden_changed.emit(set(self.hidden))
        self._version = -1

    def set_hidden(self, hidden: set[str]) -> None:
        for channel in set(hidden) | set(self.hidden):
            self.set_series_visible(channel, channel not in hidden)

    def reset(self) -> None:
        """Forget drawn data (a new session or a replay): curves stay, data is redrawn."""
        for curve in self.curves.values():
            curve.setData([], [])
        self._version = -1
        self.following = True
        self.refresh()

    def show_cursor(self, t: float | None) -> None:
        """The replay position (unix s) as a vertical line (None hides it)."""
        for line in self.cursor_lines:
            if t is None:
                line.hide()
            else:
                line.setPos(t)
                line.show()

    def _set_x(self, x0: float, x1: float) -> None:
        self._setting_range = True
        try:
            self.plots[PLOT_ROWS[0].key].setXRange(x0, x1, padding=0.0)
        finally:
            self._setting_range = False

    # --- refresh -------------------------------------------------------------------------------------

    def _show_rows(self) -> None:
        """Hide the plots that have no series yet (no cells on a generic pack, no estimate); the
        time axis goes under the lowest plot shown."""
        shown = [row for row in PLOT_ROWS if any(self._row_of(c) is row for c in self.curves)]
        lowest = shown[-1].key if shown else PLOT_ROWS[-1].key
        for i, row in enumerate(PLOT_ROWS):
            plot = self.plots[row.key]
            has = row in shown
            if plot.isVisible() != has:
                plot.setVisible(has)
                self.view.ci.layout.setRowStretchFactor(i, row.stretch if has else 0)
                self.view.ci.layout.setRowMaximumHeight(i, 10_000 if has else 0)
            axis_shown = plot.getAxis("bottom").isVisible()
            if row.key == lowest and not axis_shown:
                plot.showAxis("bottom")
            elif row.key != lowest and axis_shown:
                plot.hideAxis("bottom")

    def _on_manual_range(self, *_: Any) -> None:
        if not self._setting_range:
            self.following = False

    def _x_range(self, history: History) -> tuple[float, float] | None:
        span = history.span()
        if span is None:
            return None
        seconds = WINDOWS[self.window_label]
        first, last = span
        if seconds is None:
            return first, max(last, first + 1.0)
        if last - first < seconds:  # not a full window yet: data grow from the left
            return first, first + seconds
        return last - seconds, last

    def refresh(self) -> None:
        """Copy the visible window into the curves if anything changed (timer slot)."""
        history = self.history
        if self.paused:
            return
        available = history.channels
        for row in PLOT_ROWS:
            for name in row_channels(row, available):
                if name in available and name not in self.curves:
                    self._ensure_curve(name)
        self._show_rows()
        if self.following:
            wanted = self._x_range(history)
            if wanted is not None:
                self._set_x(*wanted)
        view = self.plots[PLOT_ROWS[0].key].viewRange()[0]
        x0, x1 = float(view[0]), float(view[1])
        key = (round(x0, 3), round(x1, 3))
        if history.version == self._version and key == self._drawn_range:
            return
        self._version = history.version
        self._drawn_range = key
        margin = (x1 - x0) * 0.05
        names = [c for c in self.curves if c not in self.hidden]
        t, cols = history.window(names, x0 - margin, x1 + margin)
        width = int(self.plots[PLOT_ROWS[0].key].getViewBox().width()) or 800
        t, cols = decimate(t, cols, max(100, int(width * 1.1)))
        for name in names:
            y = cols[name]
            if channel_info(name).quantity == "temperature" and self.prefs.temperature != "C":
                y = _temperature(y, self.prefs)
            self.curves[name].setData(t, y)
        self.frames += 1
        self.timer.setInterval(refresh_interval_ms(x1 - x0, width))

    # --- crosshair -----------------------------------------------------------------------------------

    def _on_mouse(self, event: tuple[QPointF]) -> None:
        pos = event[0]
        for plot in self.plots.values():
            if plot.sceneBoundingRect().contains(pos):
                t = float(plot.getViewBox().mapSceneToView(pos).x())
                self.set_crosshair(t)
                return
        self.set_crosshair(None)

    def set_crosshair(self, t: float | None) -> str:
        """Show the crosshair at unix time ``t`` and return the readout text (None hides it)."""
        if t is None:
            for line in self.lines:
                line.hide()
            self.readout.setText("")
            return ""
        for line in self.lines:
            line.setPos(t)
            line.show()
        found = self.history.at(t)
        if found is None:
            self.readout.setText("")
            return ""
        when, values = found
        parts = [format_time(when)]
        for name in self.curves:
            if name in self.hidden or name not in values:
                continue
            info = channel_info(name)
            value, unit, decimals = convert(values[name], info, self.prefs)
            parts.append(f"{info.label} {format_number(value, decimals, unit)}")
        text = "   ".join(parts)
        self.readout.setText(text)
        return text

    # --- export --------------------------------------------------------------------------------------

    def visible_range(self) -> tuple[float, float]:
        """The time span on screen, unix seconds."""
        view = self.plots[PLOT_ROWS[0].key].viewRange()[0]
        return float(view[0]), float(view[1])

    def export_png(self, path: Path) -> None:
        """Save the plots as they are on screen.

        :raises OSError: the file cannot be written.
        """
        if not self.view.grab().save(str(path), "PNG"):
            raise OSError(f"cannot write {path}")

    def export_csv(self, path: Path) -> int:
        """Write the visible time range of every shown series as CSV; returns the row count.

        Columns: ISO time, unix seconds, each series with its unit in the header.
        """
        x0, x1 = self.visible_range()
        names = [c for c in self.curves if c not in self.hidden]
        t, cols = self.history.window(names, x0, x1)
        with path.open("w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out, lineterminator="\n")
            header = ["time", "unix_s"]
            for name in names:
                unit = channel_info(name).unit
                header.append(f"{name} [{unit}]" if unit else name)
            writer.writerow(header)
            for i, when in enumerate(t.tolist()):
                row = [format_time(when, date=True), f"{when:.3f}"]
                for name in names:
                    v = float(cols[name][i])
                    row.append("" if math.isnan(v) else f"{v:.{channel_info(name).decimals + 1}f}")
                writer.writerow(row)
        return len(t)


def _temperature(celsius: Any, prefs: UnitPrefs) -> Any:
    if prefs.temperature == "F":
        return celsius * 9.0 / 5.0 + 32.0
    if prefs.temperature == "K":
        return celsius + 273.15
    return celsius
