"""Record / replay: record to the monitoring store, open a past session and scrub through it."""

from __future__ import annotations

import datetime as dt

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSlider,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from gui import dialogs, theme
from gui.app_model import AppModel
from gui.format import format_time
from gui.models.live import Replay
from gui.models.recording import RecordingState
from gui.widgets import Pill, muted, page_header
from smartbatt.monitor.store import SessionInfo

#: the scrub slider's resolution (steps over the session).
SLIDER_STEPS = 10_000
PLAY_SPEEDS = {"1×": 1.0, "10×": 10.0, "60×": 60.0, "600×": 600.0}


def duration_text(session: SessionInfo) -> str:
    if session.first is None or session.last is None:
        return "empty"
    seconds = int(session.last - session.first)
    return str(dt.timedelta(seconds=seconds))


class RecordingsPanel(QWidget):
    title = "Record / replay"

    def __init__(self, model: AppModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.sessions: list[SessionInfo] = []
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 12, 16, 12)
        layout.addWidget(page_header(
            "Record / replay", "Recordings go to the monitoring core's database (samples and events). Open a past "
            "session to scrub through it: the dashboard, cells and plots then show the recording."))
        rec = QHBoxLayout()
        self.record_button = QPushButton("● Record")
        self.record_button.setObjectName("Danger")
        self.record_button.clicked.connect(self.toggle_recording)
        self.rec_pill = Pill("NOT RECORDING")
        self.rec_text = muted(str(model.recording.path))
        rec.addWidget(self.record_button)
        rec.addWidget(self.rec_pill)
        rec.addWidget(self.rec_text, 1)
        layout.addLayout(rec)

        bar = QHBoxLayout()
        title = QLabel("SESSIONS")
        title.setObjectName("CardTitle")
        self.refresh_button = QPushButton("Refresh list")
        self.open_button = QPushButton("Open")
        self.open_button.setObjectName("Primary")
        self.csv_button = QPushButton("Export CSV…")
        bar.addWidget(title)
        bar.addStretch(1)
        bar.addWidget(self.refresh_button)
        bar.addWidget(self.csv_button)
        bar.addWidget(self.open_button)
        layout.addLayout(bar)
        self.table = QTableWidget(0, 6)
        self.table.setHorizontalHeaderLabels(["Session", "Started", "Length", "Samples", "Device", "Note"])
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setAlternatingRowColors(True)
        self.table.horizontalHeader().setSectionResizeMode(4, QHeaderView.ResizeMode.Stretch)
        for col, width in ((0, 70), (1, 160), (2, 90), (3, 90), (5, 200)):
            self.table.setColumnWidth(col, width)
        self.table.doubleClicked.connect(lambda _i: self.open_selected())
        self.empty = muted("No sessions in this database yet: press ● Record while connected.")
        layout.addWidget(self.empty)
        layout.addWidget(self.table, 1)

        replay = QHBoxLayout()
        self.replay_label = QLabel("Live data")
        self.replay_label.setFont(theme.mono_font(9))
        self.play_button = QPushButton("Play")
        self.play_button.setCheckable(True)
        self.speed = QComboBox()
        self.speed.addItems(list(PLAY_SPEEDS))
        self.speed.setCurrentText("60×")
        self.live_button = QPushButton("Back to live")
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, SLIDER_STEPS)
        self.slider.valueChanged.connect(self._scrubbed)
        for w in (self.play_button, self.speed, self.live_button):
            w.setEnabled(False)
        self.slider.setEnabled(False)
        replay.addWidget(self.play_button)
        replay.addWidget(self.speed)
        replay.addWidget(self.slider, 1)
        replay.addWidget(self.replay_label)
        replay.addWidget(self.live_button)
        layout.addLayout(replay)

        self._play = QTimer(self)
        self._play.setInterval(100)
        self._play.timeout.connect(self._advance)
        self.refresh_button.clicked.connect(model.recording.list_sessions)
        self.open_button.clicked.connect(self.open_selected)
        self.csv_button.clicked.connect(self.export_csv)
        self.live_button.clicked.connect(self.back_to_live)
        self.play_button.toggled.connect(self._toggle_play)
        model.recording.sessions_listed.connect(self.show_sessions)
        model.recording.state_changed.connect(self.show_state)
        model.recording.replay_loaded.connect(self.show_replay)
        model.recording.exported.connect(model.message)
        model.recording.list_sessions()

    # --- recording ----------------------------------------------------------------------------------

    def toggle_recording(self) -> None:
        if self.model.recording.state.active:
            self.model.recording.stop()
        else:
            self.model.start_recording()

    def show_state(self, state: RecordingState) -> None:
        if state.active:
            self.record_button.setText("■ Stop")
            self.rec_pill.set(f"RECORDING · SESSION {state.session_id}", theme.CRITICAL)
        else:
            self.record_button.setText("● Record")
            self.rec_pill.set("NOT RECORDING", theme.MUTED)
            if state.session_id is not None:
                self.rec_text.setText(f"Session {state.session_id} saved ({state.samples} samples) in {state.path}")

    # --- sessions -----------------------------------------------------------------------------------------

    def show_sessions(self, sessions: list[SessionInfo]) -> None:
        self.sessions = sessions
        self.table.setRowCount(len(sessions))
        for row, s in enumerate(sessions):
            cells = (str(s.id), format_time(s.started, date=True), duration_text(s), str(s.samples), s.source, s.note)
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if col in (0, 2, 3):
                    item.setFont(theme.mono_font())
                self.table.setItem(row, col, item)
        self.open_button.setEnabled(bool(sessions))
        self.csv_button.setEnabled(bool(sessions))
        self.empty.setVisible(not sessions)

    def selected(self) -> SessionInfo | None:
        rows = self.table.selectionModel().selectedRows()
        if not rows and self.sessions:
            return self.sessions[0]
        return self.sessions[rows[0].row()] if rows else None

    def open_selected(self) -> None:
        session = self.selected()
        if session is not None:
            self.model.recording.open_session(session)

    def export_csv(self) -> None:
        session = self.selected()
        if session is None:
            return
        path = dialogs.save_path(self, "Export session as CSV", f"smartbatt-session-{session.id}.csv", "CSV (*.csv)")
        if path is not None:
            self.model.recording.export_csv(session.id, path)

    # --- replay ------------------------------------------------------------------------------------------------

    def show_replay(self, replay: Replay) -> None:
        self.model.live.load_replay(replay)
        enabled = len(replay.window) > 0
        for w in (self.play_button, self.speed, self.live_button):
            w.setEnabled(True)
        self.slider.setEnabled(enabled)
        self.slider.blockSignals(True)
        self.slider.setValue(SLIDER_STEPS)
        self.slider.blockSignals(False)
        self._show_position()
        self.model.message.emit(f"Replaying {replay.title}: {len(replay.window)} samples")

    def _span(self) -> tuple[float, float] | None:
        replay = self.model.live.replay
        if replay is None or not len(replay.window):
            return None
        return float(replay.window.t[0]), float(replay.window.t[-1])

    def position(self) -> float | None:
        span = self._span()
        if span is None:
            return None
        return span[0] + (span[1] - span[0]) * self.slider.value() / SLIDER_STEPS

    def scrub_to(self, t: float) -> None:
        """Move the replay to unix time ``t`` (clamped to the session)."""
        span = self._span()
        if span is None:
            return
        frac = 0.0 if span[1] <= span[0] else (t - span[0]) / (span[1] - span[0])
        self.slider.setValue(round(min(1.0, max(0.0, frac)) * SLIDER_STEPS))

    def _scrubbed(self, _value: int) -> None:
        t = self.position()
        if t is not None:
            self.model.live.scrub(t)
            self._show_position()

    def _show_position(self) -> None:
        replay = self.model.live.replay
        t = self.position()
        if replay is None or t is None:
            self.replay_label.setText("Live data")
            return
        self.replay_label.setText(f"session {replay.session_id}  {format_time(t, date=True)}")

    def _toggle_play(self, on: bool) -> None:
        self.play_button.setText("Pause" if on else "Play")
        if on:
            if self.slider.value() >= SLIDER_STEPS:
                self.slider.setValue(0)
            self._play.start()
        else:
            self._play.stop()

    def _advance(self) -> None:
        t = self.position()
        span = self._span()
        if t is None or span is None:
            self.play_button.setChecked(False)
            return
        step = PLAY_SPEEDS[self.speed.currentText()] * self._play.interval() / 1000.0
        if t + step >= span[1]:
            self.scrub_to(span[1])
            self.play_button.setChecked(False)
            return
        self.scrub_to(t + step)

    def back_to_live(self) -> None:
        self.play_button.setChecked(False)
        self.model.live.close_replay()
        for w in (self.play_button, self.speed, self.live_button):
            w.setEnabled(False)
        self.slider.setEnabled(False)
        self._show_position()
