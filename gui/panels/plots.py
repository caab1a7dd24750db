"""Plots page: the stacked time-series plots with their settings persisted."""

from __future__ import annotations

import datetime as dt

from PySide6.QtWidgets import QVBoxLayout, QWidget

from gui import dialogs
from gui.app_model import AppModel
from gui.plots import PlotArea
from gui.widgets import page_header


class PlotsPanel(QWidget):
    title = "Plots"

    def __init__(self, model: AppModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 12, 16, 12)
        layout.addWidget(page_header(
            "Plots", "Drag to pan, wheel to zoom (either stops following the live edge: press Live). "
            "The readout below shows every series at the cursor."))
        self.area = PlotArea(lambda: model.live.history)
        layout.addWidget(self.area, 1)
        self.area.set_prefs(model.units)
        self.area.set_window(model.settings.plot_window())
        self.area.set_hidden(model.settings.hidden_series())
        self.area.window_changed.connect(model.settings.set_plot_window)
        self.area.hidden_changed.connect(model.settings.set_hidden_series)
        self.area.png_button.clicked.connect(self.export_png)
        self.area.csv_button.clicked.connect(self.export_csv)
        model.units_changed.connect(self.area.set_prefs)
        model.live.source_changed.connect(self._source_changed)
        model.live.sample_changed.connect(self._follow_replay)
        model.connection.session_started.connect(self._session_started)

    def _session_started(self, _bus: object) -> None:
        self.area.reset()

    def _source_changed(self) -> None:
        replay = self.model.live.replay is not None
        self.area.set_window("All" if replay else self.model.settings.plot_window())
        self.area.reset()
        if not replay:
            self.area.show_cursor(None)

    def _follow_replay(self, sample: object) -> None:
        if self.model.live.replay is not None:
            self.area.show_cursor(getattr(sample, "time", None))

    def _stamp(self) -> str:
        return dt.datetime.now().strftime("%Y%m%d-%H%M%S")

    def export_png(self) -> None:
        path = dialogs.save_path(self, "Export plot as PNG", f"smartbatt-plot-{self._stamp()}.png", "PNG image (*.png)")
        if path is None:
            return
        try:
            self.area.export_png(path)
        except OSError as exc:
            self.model.error.emit(f"Export PNG: {exc}")
            return
        self.model.message.emit(f"Plot saved to {path}")

    def export_csv(self) -> None:
        path = dialogs.save_path(self, "Export visible data as CSV", f"smartbatt-data-{self._stamp()}.csv",
                                 "CSV (*.csv)")
        if path is None:
            return
        try:
            rows = self.area.export_csv(path)
        except OSError as exc:
            self.model.error.emit(f"Export CSV: {exc}")
            return
        self.model.message.emit(f"{rows} rows saved to {path}")
