"""File and confirmation dialogs behind one seam (tests replace these functions)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget


def save_path(parent: QWidget | None, title: str, suggested: str, filters: str) -> Path | None:
    """Ask where to save; None if cancelled."""
    path, _ = QFileDialog.getSaveFileName(parent, title, suggested, filters)
    return Path(path) if path else None


def open_path(parent: QWidget | None, title: str, filters: str) -> Path | None:
    """Ask for a file to open; None if cancelled."""
    path, _ = QFileDialog.getOpenFileName(parent, title, "", filters)
    return Path(path) if path else None


def confirm(parent: QWidget | None, title: str, text: str, detail: str = "") -> bool:
    """A yes/no question; the default button is No (writes to a pack are never the default)."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Question)
    box.setWindowTitle(title)
    box.setText(text)
    if detail:
        box.setInformativeText(detail)
    box.setStandardButtons(QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No)
    box.setDefaultButton(QMessageBox.StandardButton.No)
    return box.exec() == QMessageBox.StandardButton.Yes
