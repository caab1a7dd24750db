"""Emulator: scenario, speed and one button per fault — for demonstrations and training."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QComboBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from gui import emulator_control as emu
from gui import theme
from gui.app_model import AppModel
from gui.widgets import Card, muted, page_header
from smartbatt.gauge.flags import decode

SPEEDS = {"1× (real time)": 1.0, "10×": 10.0, "60×": 60.0, "600×": 600.0}
#: how long the "Unplug adapter" button keeps the emulated adapter out, s.
UNPLUG_S = 8.0
GROUP_TITLES = {"pack": "Pack and sensors", "gauge": "Gauge", "bus": "Bus (wire)"}


class EmulatorPanel(QWidget):
    title = "Emulator"

    def __init__(self, model: AppModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 12, 16, 12)
        layout.setSpacing(10)
        layout.addWidget(page_header(
            "Emulator", "The emulated pack's load and speed, and faults to inject. Each button says what the pack "
            "and this app should show; the truth below is the simulation's, not the gauge's."))
        self.unavailable = muted("Connect to an emulated pack (device emulated:) to use these controls.")
        layout.addWidget(self.unavailable)
        self.body = QWidget()
        body = QVBoxLayout(self.body)
        body.setContentsMargins(0, 0, 0, 0)
        controls = QHBoxLayout()
        controls.addWidget(QLabel("Scenario"))
        self.scenario = QComboBox()
        self.scenario.addItems(list(emu.SCENARIOS))
        controls.addWidget(self.scenario)
        apply_scenario = QPushButton("Apply")
        apply_scenario.clicked.connect(lambda: model.emulator.set_scenario(self.scenario.currentText()))
        self.scenario.activated.connect(lambda _i: model.emulator.set_scenario(self.scenario.currentText()))
        controls.addWidget(apply_scenario)
        controls.addSpacing(20)
        controls.addWidget(QLabel("Speed"))
        self.speed = QComboBox()
        self.speed.addItems(list(SPEEDS))
        self.speed.activated.connect(lambda _i: model.emulator.set_speed(self._speed_value()))
        controls.addWidget(self.speed)
        controls.addStretch(1)
        self.unplug = QPushButton(f"Unplug adapter ({UNPLUG_S:g} s)")
        self.unplug.setToolTip("The adapter disappears: the link is lost, the banner shows, and the app "
                               "reconnects by itself when it returns")
        self.unplug.clicked.connect(lambda: model.emulator.unplug(UNPLUG_S))
        self.clear = QPushButton("Clear all faults")
        self.clear.setObjectName("Primary")
        self.clear.clicked.connect(model.emulator.clear_faults)
        controls.addWidget(self.unplug)
        controls.addWidget(self.clear)
        body.addLayout(controls)

        faults = QHBoxLayout()
        self.buttons: dict[str, QPushButton] = {}
        for group, title in GROUP_TITLES.items():
            box = QGroupBox(title)
            grid = QVBoxLayout(box)
            for fault in (f for f in emu.FAULTS.values() if f.group == group):
                button = QPushButton(fault.label)
                button.setToolTip(fault.description)
                button.setCheckable(True)
                button.clicked.connect(lambda _c=False, key=fault.key: self._inject(key))
                grid.addWidget(button)
                self.buttons[fault.key] = button
            grid.addStretch(1)
            faults.addWidget(box, 1)
        body.addLayout(faults)

        truth = QGridLayout()
        truth.setSpacing(10)
        self.time_card = Card("Simulated time")
        self.load_card = Card("Load (requested)")
        self.soc_card = Card("True SOC per cell")
        self.temp_card = Card("True cell temperatures")
        self.protect_card = Card("Protections")
        for card, row, col in ((self.time_card, 0, 0), (self.load_card, 0, 2), (self.protect_card, 0, 4),
                               (self.soc_card, 1, 0), (self.temp_card, 1, 3)):
            truth.addWidget(card, row, col, 1, 2 if row == 0 else 3)
        for col in range(6):
            truth.setColumnStretch(col, 1)
        for card in (self.soc_card, self.temp_card):
            card.value.setFont(theme.mono_font(10, bold=True))
        body.addLayout(truth)
        self.active = muted("")
        body.addWidget(self.active)
        body.addStretch(1)
        layout.addWidget(self.body, 1)
        self.body.hide()
        model.emulator.available_changed.connect(self.set_available)
        model.emulator.state_changed.connect(self.show_state)

    def _speed_value(self) -> float:
        text = self.speed.currentText()
        return SPEEDS.get(text) or float(text.rstrip("×").split()[0])

    def _inject(self, key: str) -> None:
        button = self.buttons[key]
        button.setChecked(True)  # shown as active until the state says otherwise
        self.model.emulator.inject(key)

    def set_available(self, available: bool) -> None:
        self.body.setVisible(available)
        self.unavailable.setVisible(not available)

    def showEvent(self, event: object) -> None:
        self.model.emulator.watch(True)
        super().showEvent(event)  # type: ignore[arg-type]

    def hideEvent(self, event: object) -> None:
        self.model.emulator.watch(False)
        super().hideEvent(event)  # type: ignore[arg-type]

    def _flag_names(self, register: str, raw: int) -> list[str]:
        """Names of the set bits of ``register`` per the chip profile (``bit N`` if unnamed)."""
        profile = self.model.connection.profile
        if not raw or profile is None or register not in profile.bitfields:
            return []
        decoded = decode(profile.bitfields[register], raw)
        return [f.name for f in decoded.active] + [f"bit {b}" for b in decoded.unknown_bits]

    def show_state(self, state: emu.EmulatorState) -> None:
        minutes, seconds = divmod(int(state.sim_time_s), 60)
        hours, minutes = divmod(minutes, 60)
        speed = "manual" if state.speed is None else f"{state.speed:g}× real time"
        self.time_card.set(f"{hours:d}:{minutes:02d}:{seconds:02d}", speed)
        self.load_card.set(f"{state.requested_a:+.2f} A".replace("-", "−"), state.scenario)
        self.soc_card.set("  ".join(f"{s * 100:.1f}" for s in state.true_soc) + " %", "cell 1 … n")
        self.temp_card.set("  ".join(f"{t:.1f}" for t in state.cell_temps_c) + " °C", "cell 1 … n")
        names = self._flag_names("SafetyStatus", state.safety_status) + self._flag_names("PFStatus", state.pf_status)
        tripped = bool(state.safety_status or state.pf_status)
        self.protect_card.set(
            ", ".join(names) if names else ("tripped" if tripped else "none tripped"),
            f"SafetyStatus 0x{state.safety_status:08X} · PFStatus 0x{state.pf_status:08X} · {state.security}",
            theme.CRITICAL if tripped else None,
        )
        if state.scenario in emu.SCENARIOS and not self.scenario.view().isVisible():
            self.scenario.setCurrentText(state.scenario)
        if state.speed is not None and not self.speed.view().isVisible():
            label = next((k for k, v in SPEEDS.items() if v == state.speed), f"{state.speed:g}×")
            if self.speed.findText(label) < 0:
                self.speed.addItem(label)
            self.speed.setCurrentText(label)
        for key, button in self.buttons.items():
            button.setChecked(key in state.faults)
        names = [emu.FAULTS[k].label for k in state.faults if k in emu.FAULTS]
        self.active.setText("Active faults: " + (", ".join(names) if names else "none"))
