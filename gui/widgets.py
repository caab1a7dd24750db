"""Small shared widgets: value cards, status pills, banners, indicator lamps, page headers."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPaintEvent
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from gui import theme


class Card(QFrame):
    """A titled value tile: title, big monospace value, small line below."""

    def __init__(self, title: str, parent: QWidget | None = None, *, tooltip: str = "") -> None:
        super().__init__(parent)
        self.setObjectName("Card")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 9, 12, 9)
        layout.setSpacing(2)
        #: the card's layout (panels add bars or pills to it).
        self.box = layout
        self.title = QLabel(title.upper())
        self.title.setObjectName("CardTitle")
        self.value = QLabel("—")
        self.value.setObjectName("CardValue")
        self.value.setFont(theme.mono_font(15, bold=True))
        self.value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.sub = QLabel("")
        self.sub.setObjectName("CardSub")
        self.sub.setWordWrap(True)
        layout.addWidget(self.title)
        layout.addWidget(self.value)
        layout.addWidget(self.sub)
        layout.addStretch(1)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Minimum)
        if tooltip:
            self.setToolTip(tooltip)

    def set(self, value: str, sub: str = "", color: str | None = None) -> None:
        self.value.setText(value)
        self.sub.setText(sub)
        self.value.setStyleSheet(f"color: {color};" if color else "")


class Pill(QLabel):
    """A rounded status badge (``CONNECTED``, ``SEALED``, ``CHG ON``)."""

    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(text, parent)
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.set(text, theme.MUTED)

    def set(self, text: str, color: str, tooltip: str = "") -> None:
        self.setText(text)
        self.setToolTip(tooltip)
        c = QColor(color)
        self.setStyleSheet(
            f"QLabel {{ color: {color}; background: rgba({c.red()},{c.green()},{c.blue()},38);"
            f" border: 1px solid rgba({c.red()},{c.green()},{c.blue()},140); border-radius: 9px;"
            " padding: 1px 9px; font-weight: 600; font-size: 8.5pt; }"
        )


class Lamp(QWidget):
    """A round indicator lamp: on (colour), off (dim) or unknown (outline)."""

    def __init__(self, parent: QWidget | None = None, size: int = 12) -> None:
        super().__init__(parent)
        self._state: bool | None = None
        self._color = QColor(theme.OK)
        self.setFixedSize(size, size)

    def set(self, state: bool | None, color: str = theme.OK) -> None:
        if state == self._state and QColor(color) == self._color:
            return
        self._state = state
        self._color = QColor(color)
        self.update()

    @property
    def state(self) -> bool | None:
        return self._state

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        r = self.rect().adjusted(1, 1, -1, -1)
        if self._state is None:
            painter.setPen(QColor(theme.BORDER))
            painter.setBrush(Qt.BrushStyle.NoBrush)
        elif self._state:
            painter.setPen(self._color.darker(130))
            painter.setBrush(self._color)
        else:
            painter.setPen(QColor(theme.BORDER))
            painter.setBrush(QColor(theme.PANEL_ALT))
        painter.drawEllipse(r)


class Banner(QFrame):
    """A full-width coloured message strip with an optional action button; hidden when empty."""

    action = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(14, 7, 10, 7)
        self.label = QLabel("")
        self.label.setWordWrap(True)
        self.button = QPushButton("")
        self.button.clicked.connect(self.action)
        self.button.hide()
        layout.addWidget(self.label, 1)
        layout.addWidget(self.button)
        self.hide()

    def show_message(self, text: str, color: str, button: str = "") -> None:
        c = QColor(color)
        self.setStyleSheet(
            f"Banner {{ background: rgba({c.red()},{c.green()},{c.blue()},46);"
            f" border: 1px solid {color}; border-radius: 5px; }}"
            f" QLabel {{ color: {theme.TEXT}; font-weight: 600; }}"
        )
        self.label.setText(text)
        self.button.setText(button)
        self.button.setVisible(bool(button))
        self.show()

    def clear(self) -> None:
        self.label.setText("")
        self.hide()


def page_header(title: str, subtitle: str = "") -> QWidget:
    """A page title with a muted one-line explanation."""
    box = QWidget()
    layout = QVBoxLayout(box)
    layout.setContentsMargins(0, 0, 0, 4)
    layout.setSpacing(1)
    t = QLabel(title)
    t.setObjectName("PageTitle")
    layout.addWidget(t)
    if subtitle:
        s = QLabel(subtitle)
        s.setObjectName("Muted")
        s.setWordWrap(True)
        layout.addWidget(s)
    return box


def muted(text: str) -> QLabel:
    label = QLabel(text)
    label.setObjectName("Muted")
    label.setWordWrap(True)
    return label
