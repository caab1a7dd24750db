"""Dashboard: the pack at a glance — measurements, SOC (gauge and estimate), capacity, times,
health, power capability and the protection/security state."""

from __future__ import annotations

import html
import math
from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from gui import theme
from gui.app_model import AppModel
from gui.format import MISSING, first_sentence, format_minutes, format_number, format_time, format_value
from gui.pack_state import SECURITY_LABELS, PackState
from gui.plots import series_color
from gui.widgets import Card, Pill, page_header
from smartbatt.monitor.alarms import AlarmLimits
from smartbatt.monitor.sample import Sample, Severity
from smartbatt.profiles.schema import SecurityLevel


class DashboardPanel(QWidget):
    """Cards bound to the live model's current sample."""

    title = "Dashboard"

    def __init__(self, model: AppModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 12, 16, 12)
        layout.setSpacing(10)
        layout.addWidget(page_header("Dashboard", "The pack now, as its gauge reports it, next to our own estimate."))
        self.identity = QLabel("No pack connected")
        self.identity.setObjectName("Muted")
        self.identity.setWordWrap(True)
        layout.addWidget(self.identity)

        grid = QGridLayout()
        grid.setSpacing(10)
        self.cards: dict[str, Card] = {}

        def card(key: str, title: str, row: int, col: int, tip: str = "", span: int = 1) -> Card:
            c = Card(title, tooltip=tip)
            grid.addWidget(c, row, col, 1, span)
            self.cards[key] = c
            return c

        card("voltage", "Pack voltage", 0, 0, "SBS Voltage (0x09)")
        card("current", "Current", 0, 1, "SBS Current (0x0A); positive = charging")
        card("power", "Power", 0, 2, "Voltage × Current; positive = charging")
        card("temperature", "Temperature", 0, 3, "SBS Temperature (0x08)")
        soc = card("soc", "State of charge — gauge", 1, 0, "RelativeStateOfCharge (0x0D) and MaxError (0x0C)")
        self.soc_bar = QProgressBar()
        self.soc_bar.setRange(0, 100)
        self.soc_bar.setTextVisible(False)
        self.soc_bar.setFixedHeight(6)
        soc.box.addWidget(self.soc_bar)
        est = card("estimate", "State of charge — our estimate", 1, 1,
                   "Independent estimate (extended Kalman filter on a cell model) with its 1σ uncertainty")
        self.est_bar = QProgressBar()
        self.est_bar.setRange(0, 100)
        self.est_bar.setTextVisible(False)
        self.est_bar.setFixedHeight(6)
        est.box.addWidget(self.est_bar)
        card("capacity", "Remaining / full", 1, 2, "RemainingCapacity (0x0F) / FullChargeCapacity (0x10)")
        card("time", "Time to empty / full", 1, 3, "RunTimeToEmpty (0x11) / AverageTimeToFull (0x13)")
        card("cycles", "Cycle count", 2, 0, "CycleCount (0x17)")
        card("soh", "State of health", 2, 1, "FullChargeCapacity / DesignCapacity (gauge); our estimate below")
        card("sop", "Peak power, next 10 s", 2, 2,
             "State of power: the discharge / charge power the pack can hold for 10 s without crossing its "
             "cell voltage and current limits (needs a cell model)")
        protection = card("protection", "Protection & security", 2, 3,
                          "Charge/discharge FETs, security mode and balancing from OperationStatus")
        pills = QHBoxLayout()
        pills.setSpacing(6)
        self.chg = Pill("CHG")
        self.dsg = Pill("DSG")
        self.sec = Pill("—")
        self.bal = Pill("BAL")
        for p in (self.chg, self.dsg, self.sec, self.bal):
            pills.addWidget(p)
        pills.addStretch(1)
        protection.value.hide()
        protection.box.insertLayout(1, pills)
        for col in range(4):
            grid.setColumnStretch(col, 1)
        layout.addLayout(grid)
        lower = QHBoxLayout()
        lower.setSpacing(10)
        self.trend = TrendStrip(model)
        lower.addWidget(self.trend, 3)
        self.events = RecentEvents(model)
        lower.addWidget(self.events, 2)
        layout.addLayout(lower, 1)

        model.live.sample_changed.connect(self.show_sample)
        model.connection.state_changed.connect(self._show_identity)
        model.connection.profile_changed.connect(self._redraw)
        model.units_changed.connect(self._redraw)
        model.gauge.security_changed.connect(self._redraw)

    # --- rendering -------------------------------------------------------------------------------------

    def _redraw(self, _changed: object = None) -> None:
        self._show_identity(self.model.connection.state)
        self.show_sample(self.model.live.current())

    def _show_identity(self, state: Any) -> None:
        ident = state.identity
        if ident is None:
            self.identity.setText(f"{state.device or 'No pack'} — {state.link.value}")
            return
        date = ident.manufacture_date.isoformat() if ident.manufacture_date else "unknown date"
        cap = getattr(ident, "design_capacity", math.nan)
        volt = getattr(ident, "design_voltage", math.nan)
        parts = [
            f"{ident.manufacturer_name} {ident.device_name}".strip() or "unnamed pack",
            ident.chemistry or "unknown chemistry",
            f"serial {ident.serial_number}",
            f"made {date}",
            f"design {format_number(cap, 3, 'Ah')} / {format_number(volt, 2, 'V')}",
            f"{ident.cells} cells" if ident.cells else "cell count unknown",
            f"profile {ident.profile}",
        ]
        self.identity.setText("   ·   ".join(parts))
        self.identity.setToolTip(getattr(ident, "profile_reason", ""))

    def show_sample(self, sample: Sample | None) -> None:
        if sample is None:
            return
        prefs = self.model.units
        state = self.model.live.state(sample)
        c = self.cards

        def val(name: str) -> str:
            return format_value(name, sample.get(name), prefs)

        current = sample.get("Current")
        direction = "" if current is None else ("charging" if current > 0.005 else
                                                 "discharging" if current < -0.005 else "at rest")
        c["voltage"].set(val("Voltage"), _cell_summary(sample))
        c["current"].set(val("Current"), f"avg {val('AverageCurrent')} · {direction}" if direction else "")
        c["power"].set(format_number(state.power_w, 2, "W"), "")
        temp = sample.get("Temperature")
        c["temperature"].set(val("Temperature"), "", _temp_color(temp, self.model.alarms.limits))
        self._show_soc(sample)
        rem, full = sample.get("RemainingCapacity"), sample.get("FullChargeCapacity")
        c["capacity"].set(f"{format_value('RemainingCapacity', rem, prefs)}",
                          f"of {format_value('FullChargeCapacity', full, prefs)} full charge")
        tte, ttf = sample.get("RunTimeToEmpty"), sample.get("AverageTimeToFull")
        if current is not None and current > 0.005:
            c["time"].set(format_minutes(ttf), "to full (charging)")
        else:
            c["time"].set(format_minutes(tte), f"to empty · to full {format_minutes(ttf)}")
        cycles = sample.get("CycleCount")
        c["cycles"].set(MISSING if cycles is None else f"{cycles:.0f}", "")
        est_soh = sample.get("est_soh")
        c["soh"].set(format_number(state.soh_pct, 1, "%"),
                     f"estimate {format_number(est_soh, 1, '%')}" if est_soh is not None else
                     "of design capacity (gauge)")
        sop_d, sop_c = sample.get("est_sop_discharge_10s_w"), sample.get("est_sop_charge_10s_w")
        if sop_d is None:
            c["sop"].set(MISSING, self.model.estimate_status())
        else:
            c["sop"].set(format_number(sop_d, 0, "W"), f"discharge · charge {format_number(sop_c, 0, 'W')}")
        self._show_protection(state)

    def _show_soc(self, sample: Sample) -> None:
        soc = sample.get("RelativeStateOfCharge")
        max_error = sample.get("MaxError")
        self.cards["soc"].set(format_number(soc, 0, "%"),
                              f"gauge MaxError ± {format_number(max_error, 0, '%')}" if max_error is not None else "")
        self.soc_bar.setValue(round(soc) if soc is not None else 0)
        est, sigma = sample.get("est_soc"), sample.get("est_soc_sigma")
        if est is None:
            self.cards["estimate"].set(MISSING, self.model.estimate_status())
            self.est_bar.setValue(0)
        else:
            diff = f" · {est - soc:+.1f} points vs gauge".replace("-", "−") if soc is not None else ""
            self.cards["estimate"].set(f"{est:.1f} %", f"± {format_number(sigma, 1, '%')} (1σ){diff}")
            self.est_bar.setValue(round(est))

    def _show_protection(self, state: PackState) -> None:
        def fet(pill: Pill, name: str, on: bool | None) -> None:
            if on is None:
                pill.set(f"{name} ?", theme.MUTED, f"{name} FET state unknown (OperationStatus not readable)")
            elif on:
                pill.set(f"{name} ON", theme.OK, f"{name} FET closed: current can flow")
            else:
                pill.set(f"{name} OFF", theme.CRITICAL, f"{name} FET open: the gauge blocks this direction")

        fet(self.chg, "CHG", state.charge_fet)
        fet(self.dsg, "DSG", state.discharge_fet)
        sec = state.security or self.model.gauge.security.level
        if sec is None:
            self.sec.set("SECURITY ?", theme.MUTED, "Security mode unknown (OperationStatus not readable)")
        else:
            color = {SecurityLevel.SEALED: theme.OK, SecurityLevel.UNSEALED: theme.WARNING,
                     SecurityLevel.FULL_ACCESS: theme.ALARM}.get(sec, theme.MUTED)
            self.sec.set(SECURITY_LABELS[sec].upper(), color, f"Security mode: {SECURITY_LABELS[sec]}")
        if state.balancing is None:
            self.bal.set("BAL ?", theme.MUTED, "Balancing state unknown")
        else:
            self.bal.set("BALANCING" if state.balancing else "BAL OFF",
                         theme.INFO if state.balancing else theme.MUTED, "Cell balancing (OperationStatus CB)")
        spread = state.cell_spread_v
        self.cards["protection"].sub.setText(
            f"cell spread {format_number(spread * 1000, 0, 'mV')}" if spread is not None else ""
        )


def _cell_summary(sample: Sample) -> str:
    cells = sample.cells()
    if not cells:
        return ""
    return f"{len(cells)} cells · min {min(cells):.3f} · max {max(cells):.3f} V"


def _temp_color(celsius: float | None, limits: AlarmLimits) -> str | None:
    """The severity colour of the host over/under-temperature limits the value crosses, if any."""
    if celsius is None:
        return None
    worst: Severity | None = None
    for rule, above in ((limits.over_temperature, True), (limits.under_temperature, False)):
        if rule is None:
            continue
        for severity, level in rule.tiers():
            if (celsius >= level) if above else (celsius <= level):
                worst = severity if worst is None else max(worst, severity)
    return theme.severity_color(worst) if worst is not None else None


#: how much history the dashboard's trend shows, s.
TREND_S = 600.0


class TrendStrip(QFrame):
    """Pack voltage and current over the last ten minutes (refreshed once a second)."""

    def __init__(self, model: AppModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("Card")
        self.model = model
        box = QVBoxLayout(self)
        box.setContentsMargins(12, 9, 12, 9)
        title = QLabel("LAST 10 MINUTES")
        title.setObjectName("CardTitle")
        box.addWidget(title)
        self.view = pg.GraphicsLayoutWidget()
        self.view.setBackground(theme.PANEL)
        self.view.setMinimumHeight(150)
        self.curves: dict[str, pg.PlotDataItem] = {}
        first: pg.PlotItem | None = None
        for col, (name, label) in enumerate((("Voltage", "Pack voltage (V)"), ("Current", "Current (A)"))):
            plot = self.view.addPlot(row=0, col=col, axisItems={"bottom": pg.DateAxisItem(orientation="bottom")})
            plot.setMenuEnabled(False)
            plot.hideButtons()
            plot.setMouseEnabled(x=False, y=False)
            plot.showGrid(x=True, y=True, alpha=0.1)
            plot.setTitle(label, color=theme.MUTED, size="8pt")
            if first is None:
                first = plot
            else:
                plot.setXLink(first)
            for side in ("left", "bottom"):
                axis = plot.getAxis(side)
                axis.setPen(pg.mkPen(theme.BORDER))
                axis.setTextPen(pg.mkPen(theme.MUTED))
                axis.setTickFont(theme.mono_font(7.5))
                axis.setZValue(-1)  # grid under the curves
            self.curves[name] = plot.plot(pen=pg.mkPen(series_color(name), width=1.5), connect="finite")
        box.addWidget(self.view, 1)
        assert first is not None
        self.first: pg.PlotItem = first
        self._version = -1
        self._timer = QTimer(self)
        self._timer.setInterval(1000)
        self._timer.timeout.connect(self.refresh)
        self._timer.start()

    def refresh(self) -> None:
        history = self.model.live.history
        if history.version == self._version or not self.isVisible():
            return
        self._version = history.version
        span = history.span()
        if span is None:
            for curve in self.curves.values():
                curve.setData([], [])
            return
        start = max(span[0], span[1] - TREND_S)
        t, cols = history.window(list(self.curves), start, span[1])
        for name, curve in self.curves.items():
            curve.setData(t, cols[name])
        self.first.setXRange(start, start + TREND_S, padding=0.0)  # as on the Plots page: data grow from the left


class RecentEvents(QFrame):
    """The newest events with their severity colour."""

    ROWS = 7

    def __init__(self, model: AppModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("Card")
        self.model = model
        box = QVBoxLayout(self)
        box.setContentsMargins(12, 9, 12, 9)
        title = QLabel("RECENT EVENTS")
        title.setObjectName("CardTitle")
        box.addWidget(title)
        self.lines: list[QLabel] = []
        for _ in range(self.ROWS):
            label = QLabel("")
            label.setFont(theme.mono_font(8.5))
            label.setTextFormat(Qt.TextFormat.RichText)
            label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
            label.setWordWrap(True)
            box.addWidget(label)
            self.lines.append(label)
        box.addStretch(1)
        self.lines[0].setText(f"<span style='color:{theme.MUTED}'>No events.</span>")
        model.alarms.events_changed.connect(self.refresh)

    def refresh(self) -> None:
        events = [e for _, e in self.model.alarms.events()][-self.ROWS :][::-1]
        for i, label in enumerate(self.lines):
            if i >= len(events):
                label.setText("" if events or i else f"<span style='color:{theme.MUTED}'>No events.</span>")
                continue
            e = events[i]
            color = theme.severity_color(e.severity) if e.standing else theme.MUTED
            text = html.escape(first_sentence(e.message, 90))
            label.setText(
                f"<span style='color:{theme.MUTED}'>{format_time(e.time)}</span>&nbsp;&nbsp;"
                f"<span style='color:{color}'>{e.severity.name.ljust(8).replace(' ', '&nbsp;')}</span>&nbsp;{text}"
            )
            label.setToolTip(e.message)
