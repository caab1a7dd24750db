"""Typed value editors: ``set_value`` / ``get_value`` and one ``changed`` signal (tested as data).

Every editor is a text field with a parser and a formatter. Validation is the library's own —
:meth:`DataFlashEntry.parse_display <smartbatt.profiles.schema.DataFlashEntry.parse_display>`
for data flash, :func:`smartbatt.sbs.codecs.encode` for SBS words, the alarm-limit ranges for
host limits — so the GUI can never accept a value the driver would refuse, and the message the
user sees is the library's one sentence. An invalid entry is outlined in red with the reason as
its tooltip; :meth:`ValueEditor.get_value` raises it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Generic, TypeVar

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QLineEdit, QWidget

from gui import theme
from smartbatt.errors import RangeError, SmartBattError
from smartbatt.profiles.schema import DataFlashEntry, DFValue
from smartbatt.sbs.command import Command

V = TypeVar("V")


class ValueEditor(QWidget, Generic[V]):
    """A line edit with a parser, a formatter and a unit label.

    :param parse: text → value; raises a :class:`SmartBattError` (RangeError, DecodeError) when invalid.
    :param fmt: value → text.
    :param unit: shown after the field.
    """

    #: the text changed (valid or not); read :attr:`error` or call :meth:`get_value`.
    changed = Signal()

    def __init__(
        self,
        parse: Callable[[str], V],
        fmt: Callable[[V], str],
        unit: str = "",
        parent: QWidget | None = None,
        *,
        placeholder: str = "",
    ) -> None:
        super().__init__(parent)
        self._parse = parse
        self._fmt = fmt
        self.edit = QLineEdit()
        self.edit.setFont(theme.mono_font())
        self.edit.setPlaceholderText(placeholder)
        self.unit = QLabel(unit)
        self.unit.setObjectName("Muted")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        layout.addWidget(self.edit, 1)
        if unit:
            layout.addWidget(self.unit)
        self.edit.textChanged.connect(self._on_text)
        self._error = ""

    def set_value(self, value: V) -> None:
        """Show ``value`` (formatted); emits ``changed``."""
        self.edit.setText(self._fmt(value))

    def get_value(self) -> V:
        """The parsed value.

        :raises SmartBattError: the text is not a valid value (RangeError, DecodeError).
        """
        return self._parse(self.edit.text())

    def set_text(self, text: str) -> None:
        """Type ``text`` as a user would (tests, paste)."""
        self.edit.setText(text)

    @property
    def error(self) -> str:
        """Why the current text is invalid ("" when valid)."""
        return self._error

    @property
    def valid(self) -> bool:
        return not self._error

    def _on_text(self, _text: str) -> None:
        try:
            self._parse(self.edit.text())
        except SmartBattError as exc:
            self._error = str(exc)
        else:
            self._error = ""
        self.edit.setProperty("invalid", "true" if self._error else "false")
        self.edit.setToolTip(self._error)
        self.edit.style().unpolish(self.edit)
        self.edit.style().polish(self.edit)
        self.changed.emit()


# --- parsers -------------------------------------------------------------------------------------------


def number_parser(
    minimum: float | None = None, maximum: float | None = None, *, integer: bool = False, name: str = "value"
) -> Callable[[str], float]:
    """Parse a decimal (or ``0x`` hex integer) within ``[minimum, maximum]``.

    :raises RangeError: not a number, not whole when ``integer``, or out of range.
    """

    def parse(text: str) -> float:
        t = text.strip().replace("−", "-").replace(",", "")
        if not t:
            raise RangeError(f"{name}: enter a number")
        try:
            value = float(int(t, 16)) if t.lower().lstrip("-").startswith("0x") else float(t)
        except ValueError:
            raise RangeError(f"{name}: {text.strip()!r} is not a number") from None
        if not math.isfinite(value):
            raise RangeError(f"{name}: {text.strip()!r} is not a finite number")
        if integer and value != int(value):
            raise RangeError(f"{name}: {value:g} is not a whole number")
        if minimum is not None and value < minimum:
            raise RangeError(f"{name}: {value:g} is below the minimum {minimum:g}")
        if maximum is not None and value > maximum:
            raise RangeError(f"{name}: {value:g} is above the maximum {maximum:g}")
        return value

    return parse


def format_number(decimals: int) -> Callable[[float], str]:
    def fmt(value: float) -> str:
        return f"{value:.{decimals}f}"

    return fmt


def number_editor(
    unit: str = "",
    minimum: float | None = None,
    maximum: float | None = None,
    decimals: int = 0,
    *,
    name: str = "value",
) -> ValueEditor[float]:
    """An editor for a number with limits (integer when ``decimals`` is 0)."""
    placeholder = ""
    if minimum is not None and maximum is not None:
        placeholder = f"{minimum:g} … {maximum:g}"
    return ValueEditor(
        number_parser(minimum, maximum, integer=decimals == 0, name=name),
        format_number(decimals),
        unit,
        placeholder=placeholder,
    )


def command_editor(command: Command, capacity_mode: bool = False, unit: str = "") -> ValueEditor[float]:
    """An editor for a writable SBS-style word: the range check is the codec's own encode()."""
    from smartbatt.sbs import codecs

    def parse(text: str) -> float:
        value = number_parser(name=command.name)(text)
        # the codec refuses out-of-range values and values between raw steps
        codecs.encode(command, int(value) if value == int(value) else value, capacity_mode=capacity_mode)
        return value

    def fmt(value: float) -> str:
        return f"{value:g}"

    return ValueEditor(parse, fmt, unit or codecs.unit_of(command, capacity_mode))


def entry_editor(entry: DataFlashEntry) -> ValueEditor[DFValue]:
    """An editor for one data-flash entry: parsing and range checks by the entry itself."""
    limits = ""
    if entry.minimum is not None and entry.maximum is not None:
        limits = f"{entry.minimum:g} … {entry.maximum:g}"
    unit = "" if entry.unit == "hex" else entry.unit
    editor: ValueEditor[DFValue] = ValueEditor(entry.parse_display, entry.format_display, unit, placeholder=limits)
    return editor


def text_editor(max_length: int, *, name: str = "text") -> ValueEditor[str]:
    """Plain text of at most ``max_length`` characters."""

    def parse(text: str) -> str:
        if len(text) > max_length:
            raise RangeError(f"{name}: longer than {max_length} characters")
        return text

    return ValueEditor(parse, str)
