"""One calm dark theme: palette, style sheet, severity colours, fonts and plot colours.

Everything visual is decided here so panels stay consistent: values use a monospace font with
fixed-width digits (numbers do not jitter as they change), severity colours follow the usual
blue / amber / orange / red order, and plots use a colour-blind-friendlier palette (Okabe–Ito
hues, lightened for a dark background).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from PySide6.QtGui import QColor, QFont, QFontDatabase, QPalette
from PySide6.QtWidgets import QApplication

from smartbatt.monitor.sample import Severity

BG = "#17191d"
PANEL = "#1f2228"
PANEL_ALT = "#252932"
BORDER = "#323743"
#: plot grid lines: opaque (cheap to paint) and just above the panel colour.
GRID = "#2a2e37"
TEXT = "#d9dee7"
MUTED = "#8b93a3"
ACCENT = "#4ea3e0"
OK = "#4cb782"
INFO = "#5aa9e6"
WARNING = "#e2b33c"
ALARM = "#ec7a3c"
CRITICAL = "#e5484d"

SEVERITY_COLORS: Mapping[Severity, str] = MappingProxyType(
    {Severity.INFO: INFO, Severity.WARNING: WARNING, Severity.ALARM: ALARM, Severity.CRITICAL: CRITICAL}
)

#: plot series colours in order (Okabe–Ito, lightened for a dark background).
SERIES_COLORS: tuple[str, ...] = (
    "#56b4e9",  # sky blue
    "#e69f00",  # orange
    "#34c796",  # bluish green
    "#f0e442",  # yellow
    "#d58fc0",  # reddish purple
    "#f0773a",  # vermillion
    "#3d8fd1",  # blue
    "#b8c2cc",  # grey
)


#: cell series colours (distinct from the pack series above), cell 1 first.
CELL_COLORS: tuple[str, ...] = (
    "#f0e442",  # yellow
    "#7fd4f5",  # light cyan
    "#f49ac2",  # pink
    "#a6e22e",  # light green
    "#c5a3ff",  # lavender
    "#ffb870",  # apricot
    "#66d9c2",  # teal
    "#e6e6e6",  # light grey
)


def severity_color(severity: Severity) -> str:
    return SEVERITY_COLORS.get(severity, MUTED)


def mono_font(point_size: float = 0.0, *, bold: bool = False) -> QFont:
    """The system's fixed-width font (DejaVu Sans Mono on most Linux systems)."""
    font = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
    if point_size:
        font.setPointSizeF(point_size)
    font.setBold(bold)
    return font


STYLE_SHEET = f"""
QWidget {{ color: {TEXT}; font-size: 10pt; }}
QMainWindow, QDialog, QStackedWidget, QScrollArea, QScrollArea > QWidget > QWidget {{ background: {BG}; }}
QMainWindow::separator {{ background: {BORDER}; width: 1px; height: 1px; }}
QFrame#Card, QGroupBox {{ background: {PANEL}; border: 1px solid {BORDER}; border-radius: 6px; }}
QGroupBox {{ margin-top: 14px; padding: 10px 8px 8px 8px; font-weight: 600; }}
QGroupBox::title {{ subcontrol-origin: margin; left: 10px; padding: 0 4px; color: {MUTED}; }}
QLabel {{ background: transparent; }}
QLabel#CardTitle {{ color: {MUTED}; font-size: 8.5pt; font-weight: 600; letter-spacing: 0.5px; }}
QLabel#CardValue {{ font-size: 17pt; font-weight: 600; }}
QLabel#CardSub {{ color: {MUTED}; font-size: 8.5pt; }}
QLabel#PageTitle {{ font-size: 13pt; font-weight: 600; }}
QLabel#Muted {{ color: {MUTED}; }}
QListWidget#Nav {{ background: {PANEL}; border: none; border-right: 1px solid {BORDER}; padding-top: 6px;
    outline: none; }}
QListWidget#Nav::item {{ padding: 7px 14px; border-left: 3px solid transparent; color: {MUTED}; }}
QListWidget#Nav::item:selected {{ background: {PANEL_ALT}; color: {TEXT}; border-left: 3px solid {ACCENT}; }}
QListWidget#Nav::item:hover {{ color: {TEXT}; }}
QPushButton, QToolButton {{ background: {PANEL_ALT}; border: 1px solid {BORDER}; border-radius: 4px;
    padding: 4px 10px; }}
QPushButton:hover, QToolButton:hover {{ border-color: {ACCENT}; }}
QPushButton:pressed, QToolButton:checked {{ background: #2f3644; }}
QPushButton:checked {{ background: #3b2b23; border-color: {ALARM}; color: #ffd9c4; }}
QPushButton:disabled, QToolButton:disabled {{ color: #5c6370; border-color: #2a2e36; }}
QPushButton#Primary {{ background: #2c5d86; border-color: #3a78ad; }}
QPushButton#Danger {{ background: #6b2a2d; border-color: #8f3a3e; }}
QPushButton#Primary:disabled, QPushButton#Danger:disabled {{ background: {PANEL_ALT}; border-color: #2a2e36;
    color: #5c6370; }}
QLineEdit, QSpinBox, QDoubleSpinBox, QComboBox, QPlainTextEdit {{ background: {PANEL_ALT};
    border: 1px solid {BORDER}; border-radius: 4px; padding: 3px 6px; selection-background-color: #2c5d86; }}
QLineEdit:focus, QSpinBox:focus, QDoubleSpinBox:focus, QComboBox:focus {{ border-color: {ACCENT}; }}
QLineEdit[invalid="true"], QDoubleSpinBox[invalid="true"] {{ border-color: {CRITICAL}; }}
QComboBox QAbstractItemView {{ background: {PANEL_ALT}; border: 1px solid {BORDER}; }}
QTableView, QTreeView, QListView {{ background: {PANEL}; alternate-background-color: {PANEL_ALT};
    border: 1px solid {BORDER}; gridline-color: {BORDER}; selection-background-color: #2c4a66; }}
QHeaderView::section {{ background: {PANEL_ALT}; color: {MUTED}; border: none;
    border-right: 1px solid {BORDER}; border-bottom: 1px solid {BORDER}; padding: 4px 6px; font-weight: 600; }}
QTabWidget::pane {{ border: 1px solid {BORDER}; border-radius: 4px; }}
QTabBar::tab {{ background: {PANEL}; padding: 5px 12px; border: 1px solid {BORDER}; border-bottom: none; }}
QTabBar::tab:selected {{ background: {PANEL_ALT}; color: {TEXT}; }}
QStatusBar {{ background: {PANEL}; border-top: 1px solid {BORDER}; color: {MUTED}; }}
QStatusBar QLabel {{ padding: 0 8px; }}
QToolTip {{ background: {PANEL_ALT}; color: {TEXT}; border: 1px solid {BORDER}; padding: 4px; }}
QScrollBar:vertical {{ background: {PANEL}; width: 10px; }}
QScrollBar::handle:vertical {{ background: {BORDER}; border-radius: 4px; min-height: 24px; }}
QScrollBar:horizontal {{ background: {PANEL}; height: 10px; }}
QScrollBar::handle:horizontal {{ background: {BORDER}; border-radius: 4px; min-width: 24px; }}
QScrollBar::add-line, QScrollBar::sub-line {{ width: 0; height: 0; }}
QProgressBar {{ background: {PANEL_ALT}; border: 1px solid {BORDER}; border-radius: 3px; text-align: center; }}
QProgressBar::chunk {{ background: {ACCENT}; border-radius: 3px; }}
QSlider::groove:horizontal {{ height: 4px; background: {BORDER}; border-radius: 2px; }}
QSlider::handle:horizontal {{ background: {ACCENT}; width: 12px; margin: -5px 0; border-radius: 6px; }}
QCheckBox {{ background: transparent; spacing: 6px; }}
QCheckBox::indicator {{ width: 12px; height: 12px; border: 1px solid {MUTED}; border-radius: 3px;
    background: {PANEL_ALT}; }}
QCheckBox::indicator:checked {{ background: {ACCENT}; border-color: {ACCENT}; }}
QCheckBox::indicator:disabled {{ border-color: {BORDER}; }}
"""


def apply(app: QApplication) -> None:
    """Install the palette, style sheet and pyqtgraph defaults on ``app``."""
    app.setStyle("Fusion")
    palette = QPalette()
    roles = {
        QPalette.ColorRole.Window: BG,
        QPalette.ColorRole.WindowText: TEXT,
        QPalette.ColorRole.Base: PANEL,
        QPalette.ColorRole.AlternateBase: PANEL_ALT,
        QPalette.ColorRole.Text: TEXT,
        QPalette.ColorRole.Button: PANEL_ALT,
        QPalette.ColorRole.ButtonText: TEXT,
        QPalette.ColorRole.Highlight: "#2c5d86",
        QPalette.ColorRole.HighlightedText: "#ffffff",
        QPalette.ColorRole.ToolTipBase: PANEL_ALT,
        QPalette.ColorRole.ToolTipText: TEXT,
        QPalette.ColorRole.PlaceholderText: MUTED,
    }
    for role, color in roles.items():
        palette.setColor(role, QColor(color))
    palette.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text, QColor("#5c6370"))
    palette.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.ButtonText, QColor("#5c6370"))
    app.setPalette(palette)
    app.setStyleSheet(STYLE_SHEET)
    configure_pyqtgraph()


def configure_pyqtgraph() -> None:
    """Plot defaults: theme colours, no antialiasing (it costs frame rate on dense traces)."""
    import pyqtgraph as pg

    pg.setConfigOptions(background=PANEL, foreground=MUTED, antialias=False)
