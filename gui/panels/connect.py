"""The connect dialog: adapter (detected adapters and serial ports listed), address, PEC, profile,
a bus scan and the recent devices."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from gui import theme
from gui.app_model import AppModel
from gui.settings import DeviceChoice
from gui.tasks import TaskError
from gui.widgets import muted
from smartbatt.profiles.loader import available_profiles
from smartbatt.sbs.scan import Found, scan
from smartbatt.transports import detect_all, open_transport

PEC_CHOICES = {"Auto (from SpecificationInfo)": None, "On": True, "Off": False}


def adapter_uris() -> list[tuple[str, str]]:
    """(URI, description) of every adapter found: emulated, i2c-dev buses, serial ports (Bus Pirate)."""
    out = [("emulated:bq4050?scenario=laptop", "Emulated pack (bq4050, 4S, laptop load)"),
           ("emulated:bq40z50?scenario=drone&speed=10", "Emulated drone pack (bq40z50), 10× speed"),
           ("emulated:generic-sbs?scenario=powertool", "Emulated plain SBS pack, power-tool load")]
    for uri in detect_all():
        if uri.startswith("emulated:"):
            continue
        out.append((uri, "Linux I2C bus" if uri.startswith("i2c:") else uri.split(":", 1)[0]))
    try:
        from serial.tools import list_ports

        for port in list_ports.comports():
            out.append((f"buspirate:{port.device}", f"Serial port {port.device} ({port.description}) — Bus Pirate"))
    except ImportError:  # pyserial is a dependency; this only guards a broken install
        pass
    return out


def parse_address(text: str) -> int:
    """``0x0B`` / ``11`` → 11. :raises ValueError: not a 7-bit address 0x03..0x77."""
    value = int(text.strip(), 0)
    if not 0x03 <= value <= 0x77:
        raise ValueError(f"address 0x{value:02X} is outside 0x03..0x77")
    return value


class ConnectDialog(QDialog):
    """Returns a :class:`DeviceChoice` (``choice()``) when accepted."""

    def __init__(self, model: AppModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.setWindowTitle("Connect to a pack")
        self.setMinimumWidth(560)
        layout = QVBoxLayout(self)
        form = QFormLayout()
        self.adapter = QComboBox()
        self.adapter.setEditable(True)
        for uri, text in adapter_uris():
            self.adapter.addItem(uri, text)
        self.adapter.setToolTip("A device URI: emulated:…, i2c:1, buspirate:/dev/ttyUSB0 — or type one")
        self.adapter.currentIndexChanged.connect(self._describe)
        self.adapter_text = muted("")
        self.address = QLineEdit("0x0B")
        self.address.setFont(theme.mono_font())
        self.pec = QComboBox()
        self.pec.addItems(list(PEC_CHOICES))
        self.profile = QComboBox()
        self.profile.addItem("Auto-detect (from DeviceName)", "")
        for name in available_profiles():
            self.profile.addItem(name, name)
        form.addRow("Adapter", self.adapter)
        form.addRow("", self.adapter_text)
        form.addRow("Address", self.address)
        form.addRow("PEC", self.pec)
        form.addRow("Chip profile", self.profile)
        layout.addLayout(form)

        scan_row = QHBoxLayout()
        self.scan_button = QPushButton("Scan bus")
        self.scan_button.clicked.connect(self.scan)
        self.scan_result = muted("Probe every address on the adapter (reads only).")
        scan_row.addWidget(self.scan_button)
        scan_row.addWidget(self.scan_result, 1)
        layout.addLayout(scan_row)
        self.found = QListWidget()
        self.found.setMaximumHeight(90)
        self.found.itemClicked.connect(self._pick_found)
        layout.addWidget(self.found)

        title = QLabel("RECENT")
        title.setObjectName("CardTitle")
        layout.addWidget(title)
        self.recent = QListWidget()
        self.recent.setMaximumHeight(120)
        for choice in model.settings.recent_devices():
            item = QListWidgetItem(choice.label())
            item.setData(256, choice)
            self.recent.addItem(item)
        self.recent.itemClicked.connect(lambda item: self.set_choice(item.data(256)))
        self.recent.itemDoubleClicked.connect(self._pick_recent)
        layout.addWidget(self.recent)

        self.error = QLabel("")
        self.error.setStyleSheet(f"color: {theme.CRITICAL};")
        layout.addWidget(self.error)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Connect")
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        recent = model.settings.recent_devices()
        if recent:
            self.set_choice(recent[0])
        self._describe()

    def _pick_recent(self, item: QListWidgetItem) -> None:
        self.set_choice(item.data(256))
        self.accept()

    def _describe(self, *_: object) -> None:
        text = self.adapter.currentData()
        self.adapter_text.setText(str(text) if text else "")

    def set_choice(self, choice: DeviceChoice) -> None:
        self.adapter.setEditText(choice.uri)
        self.address.setText(f"0x{choice.address:02X}")
        self.pec.setCurrentIndex(list(PEC_CHOICES.values()).index(choice.pec))
        index = self.profile.findData(choice.profile)
        self.profile.setCurrentIndex(max(0, index))

    def choice(self) -> DeviceChoice:
        """The entered choice. :raises ValueError: an invalid address or URI."""
        return DeviceChoice(
            uri=self.adapter.currentText().strip(),
            address=parse_address(self.address.text()),
            pec=PEC_CHOICES[self.pec.currentText()],
            profile=str(self.profile.currentData() or ""),
        )

    def _accept(self) -> None:
        try:
            self.choice()
        except ValueError as exc:
            self.error.setText(str(exc))
            return
        self.accept()

    # --- scan -------------------------------------------------------------------------------------------

    def scan(self) -> None:
        uri = self.adapter.currentText().strip()
        self.scan_button.setEnabled(False)
        self.scan_result.setText(f"Scanning {uri}…")
        self.found.clear()
        connection = self.model.connection
        if connection.choice is not None and connection.choice.uri == uri and connection.poller is not None:
            # the adapter is in use by the poller: scan on its I/O thread instead of opening it twice
            connection.call("scan", lambda b: scan(b.transport), self._scanned, self._scan_failed, timeout=30.0)
            return

        def run() -> list[Found]:
            with open_transport(uri) as transport:
                return scan(transport)

        self.model.tasks.submit(f"scan {uri}", run, self._scanned, self._scan_failed)

    def _scanned(self, found: list[Found]) -> None:
        self.scan_button.setEnabled(True)
        self.scan_result.setText(f"{len(found)} device(s) answered" if found else "Nothing answered on this bus.")
        for f in found:
            item = QListWidgetItem(str(f))
            item.setData(256, f.address)
            self.found.addItem(item)

    def _scan_failed(self, error: TaskError) -> None:
        self.scan_button.setEnabled(True)
        self.scan_result.setText(error.message)

    def _pick_found(self, item: QListWidgetItem) -> None:
        address = item.data(256)
        if isinstance(address, int):
            self.address.setText(f"0x{address:02X}")
