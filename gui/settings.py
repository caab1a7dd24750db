"""Persistent settings in the platform's config location (``QSettings``).

Linux: ``$XDG_CONFIG_HOME/smartbatt/smartbatt-gui.conf``; Windows: the registry under
``HKCU\\Software\\smartbatt``; macOS: ``~/Library/Preferences/com.smartbatt.smartbatt-gui.plist``.
Structured values are stored as JSON text and validated when read back: a damaged or
hand-edited entry falls back to its default instead of breaking the app. Keys are never stored
(the unseal dialog does not even offer to).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QSettings, QStandardPaths

from gui.format import UnitPrefs

log = logging.getLogger(__name__)

ORGANIZATION = "smartbatt"
APPLICATION = "smartbatt-gui"
#: how many recent devices are remembered.
RECENT_MAX = 8


@dataclass(frozen=True)
class DeviceChoice:
    """What the connect dialog chose: adapter URI, address, PEC and profile."""

    uri: str = "emulated:"
    address: int = 0x0B
    #: True/False forces PEC; None = as the pack's SpecificationInfo says.
    pec: bool | None = None
    #: chip profile name, or "" for auto-detection.
    profile: str = ""

    def __post_init__(self) -> None:
        if not self.uri or ":" not in self.uri:
            raise ValueError(f"{self.uri!r} is not a device URI (scheme:target)")
        if not 0x03 <= self.address <= 0x77:
            raise ValueError(f"address 0x{self.address:02X} is outside 0x03..0x77")

    def label(self) -> str:
        """``emulated: @0x0B`` for lists."""
        pec = "" if self.pec is None else (", PEC" if self.pec else ", no PEC")
        profile = f", {self.profile}" if self.profile else ""
        return f"{self.uri} @0x{self.address:02X}{pec}{profile}"


class Settings:
    """Typed access to the app's settings.

    :param path: an INI file to use instead of the platform location (tests, portable installs).
    """

    def __init__(self, path: str | Path | None = None) -> None:
        if path is None:
            self.qs = QSettings(ORGANIZATION, APPLICATION)
        else:
            self.qs = QSettings(str(path), QSettings.Format.IniFormat)

    @property
    def location(self) -> str:
        """Where the settings live (shown in the About box and logged with -v)."""
        return self.qs.fileName()

    def sync(self) -> None:
        self.qs.sync()

    # --- helpers ------------------------------------------------------------------------------

    def _json(self, key: str) -> Any:
        text = self.qs.value(key, "")
        if not isinstance(text, str) or not text:
            return None
        try:
            return json.loads(text)
        except ValueError:
            log.warning("settings %s: ignoring unreadable value", key)
            return None

    def _set_json(self, key: str, value: Any) -> None:
        self.qs.setValue(key, json.dumps(value))

    def _text(self, key: str, default: str) -> str:
        value = self.qs.value(key, default)
        return value if isinstance(value, str) else default

    # --- recent devices -------------------------------------------------------------------------

    def recent_devices(self) -> list[DeviceChoice]:
        """Most recent first; entries that no longer validate are skipped."""
        data = self._json("devices/recent")
        out: list[DeviceChoice] = []
        if not isinstance(data, list):
            return out
        for item in data:
            try:
                choice = DeviceChoice(
                    uri=str(item["uri"]),
                    address=int(item["address"]),
                    pec=None if item.get("pec") is None else bool(item["pec"]),
                    profile=str(item.get("profile", "")),
                )
            except (KeyError, TypeError, ValueError):
                continue
            out.append(choice)
        return out[:RECENT_MAX]

    def remember_device(self, choice: DeviceChoice) -> None:
        """Put ``choice`` first in the recent list (duplicates removed)."""
        recent = [c for c in self.recent_devices() if c != choice]
        self._set_json("devices/recent", [asdict(c) for c in [choice, *recent][:RECENT_MAX]])

    # --- units -------------------------------------------------------------------------------

    def units(self) -> UnitPrefs:
        data = self._json("display/units")
        if isinstance(data, dict):
            try:
                return UnitPrefs(**{k: str(v) for k, v in data.items() if k in UnitPrefs.__dataclass_fields__})
            except ValueError:
                log.warning("settings display/units: invalid, using defaults")
        return UnitPrefs()

    def set_units(self, prefs: UnitPrefs) -> None:
        self._set_json("display/units", asdict(prefs))

    # --- window layout ---------------------------------------------------------------------------

    def window_state(self) -> tuple[QByteArray | None, QByteArray | None]:
        """Saved (geometry, dock/toolbar state) of the main window, or None."""
        geometry = self.qs.value("window/geometry")
        state = self.qs.value("window/state")
        return (
            geometry if isinstance(geometry, QByteArray) else None,
            state if isinstance(state, QByteArray) else None,
        )

    def set_window_state(self, geometry: QByteArray, state: QByteArray) -> None:
        self.qs.setValue("window/geometry", geometry)
        self.qs.setValue("window/state", state)

    def page(self) -> str:
        return self._text("window/page", "dashboard")

    def set_page(self, page: str) -> None:
        self.qs.setValue("window/page", page)

    def plot_window(self) -> str:
        return self._text("plots/window", "5 min")

    def set_plot_window(self, label: str) -> None:
        self.qs.setValue("plots/window", label)

    def hidden_series(self) -> set[str]:
        data = self._json("plots/hidden")
        return {str(x) for x in data} if isinstance(data, list) else set()

    def set_hidden_series(self, names: set[str]) -> None:
        self._set_json("plots/hidden", sorted(names))

    # --- monitoring ------------------------------------------------------------------------------

    def limits_name(self) -> str:
        """Alarm-limits file in use (a shipped name or a path)."""
        return self._text("alarms/limits", "default")

    def set_limits_name(self, name: str) -> None:
        self.qs.setValue("alarms/limits", name)

    def cell_model_path(self) -> Path | None:
        """The cell model of the independent estimate, if one was loaded."""
        text = self._text("estimator/model", "")
        return Path(text) if text else None

    def set_cell_model_path(self, path: Path | None) -> None:
        self.qs.setValue("estimator/model", str(path) if path is not None else "")

    def recordings_path(self) -> Path:
        """The recording database; defaults to the platform's app-data folder."""
        text = self._text("recording/path", "")
        if text:
            return Path(text)
        base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation)
        return Path(base or Path.home() / ".smartbatt") / "recordings.db"

    def set_recordings_path(self, path: Path) -> None:
        self.qs.setValue("recording/path", str(path))
