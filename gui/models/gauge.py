"""The gauge sub-model: security state, unseal / full access / seal, and data flash.

Everything runs on the poller's I/O thread through ``Poller.call`` with the library's TI driver
(:mod:`smartbatt.gauge`): :class:`~smartbatt.gauge.gauge.Gauge` for the security state,
:mod:`smartbatt.gauge.security` for the key sequences and :mod:`smartbatt.gauge.dataflash` for
data flash by name, golden-image export/import with a diff preview. The GUI adds nothing to the
protocol; see :mod:`gui.gauge_ops` for the exact calls.

Keys typed into the unseal dialog travel straight to the call and are dropped afterwards: they
are never stored, logged, or kept in this model.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal

from gui import gauge_ops
from gui.models.connection import ConnectionModel, Link
from gui.tasks import TaskError
from smartbatt.profiles.schema import DataFlashEntry, DFValue, Profile

#: how often the security state is re-read when the poller's samples do not carry it, ms.
SECURITY_POLL_MS = 5000


class GaugeModel(QObject):
    """Signals (GUI thread):

    * ``security_changed(SecurityInfo)``;
    * ``thresholds_changed(list[ThresholdRow])`` after a read of the data-flash thresholds;
    * ``entry_written(ThresholdRow)`` after a verified write;
    * ``preview_ready(ImportPreview)`` — the diff of an image against the pack;
    * ``message(str)`` — an action completed; ``error(TaskError)``.
    """

    security_changed = Signal(object)
    thresholds_changed = Signal(object)
    entry_written = Signal(object)
    preview_ready = Signal(object)
    message = Signal(str)
    error = Signal(object)
    busy_changed = Signal(bool)

    def __init__(self, connection: ConnectionModel, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.connection = connection
        self.profile: Profile | None = None
        self.security = gauge_ops.SecurityInfo(None, "not connected")
        self.rows: list[gauge_ops.ThresholdRow] = []
        self.busy = False
        self._timer = QTimer(self)
        self._timer.setInterval(SECURITY_POLL_MS)
        self._timer.timeout.connect(self.refresh_security)
        connection.state_changed.connect(self._on_state)

    # --- state ---------------------------------------------------------------------------------------

    def set_profile(self, profile: Profile | None) -> None:
        self.profile = profile
        self.rows = gauge_ops.threshold_rows(profile)
        self.thresholds_changed.emit(self.rows)
        if profile is None:
            self._timer.stop()
            self._set_security(gauge_ops.SecurityInfo(None, "not connected"))
        else:
            self._timer.start()
            self.refresh_security()

    def _on_state(self, state: object) -> None:
        if self.connection.state.link is not Link.CONNECTED:
            return
        if self.security.level is None and self.profile is not None:
            self.refresh_security()

    def _set_security(self, info: gauge_ops.SecurityInfo) -> None:
        changed = info != self.security
        self.security = info
        if changed:
            self.security_changed.emit(info)

    def refresh_security(self) -> None:
        profile = self.profile
        if profile is None or self.connection.state.link is not Link.CONNECTED:
            return
        self.connection.call(
            "read the security state",
            lambda b: gauge_ops.security_state(b, profile),
            self._set_security,
            lambda e: self._set_security(gauge_ops.SecurityInfo(None, e.message)),
        )

    def _set_busy(self, busy: bool) -> None:
        self.busy = busy
        self.busy_changed.emit(busy)

    def _run(self, what: str, fn: gauge_ops.BatteryFn, done: gauge_ops.Callback, *, timeout: float = 10.0) -> None:
        self._set_busy(True)

        def ok(result: object) -> None:
            self._set_busy(False)
            done(result)

        def failed(error: TaskError) -> None:
            self._set_busy(False)
            self.error.emit(error)

        self.connection.call(what, fn, ok, failed, timeout=timeout)

    # --- security ------------------------------------------------------------------------------------

    def unseal(self, key: str | None) -> None:
        """Unseal with ``key`` (``0x04143672`` / ``0414:3672``) or the profile's default key (None)."""
        profile = self.profile
        self._run("unseal", lambda b: gauge_ops.unseal(b, profile, key), self._after_security)

    def full_access(self, key: str | None) -> None:
        profile = self.profile
        self._run("full access", lambda b: gauge_ops.full_access(b, profile, key), self._after_security)

    def seal(self) -> None:
        profile = self.profile
        self._run("seal", lambda b: gauge_ops.seal(b, profile), self._after_security)

    def _after_security(self, result: object) -> None:
        if isinstance(result, gauge_ops.SecurityInfo):
            self._set_security(result)
            self.message.emit(f"Security mode: {result.label}")

    # --- data flash --------------------------------------------------------------------------------------

    def read_thresholds(self) -> None:
        """Read every data-flash threshold the profile can address (others are listed with why not)."""
        profile = self.profile
        if profile is None:
            return

        def done(rows: object) -> None:
            assert isinstance(rows, list)
            self.rows = rows
            self.thresholds_changed.emit(rows)

        self._run("read data flash", lambda b: gauge_ops.read_thresholds(b, profile), done, timeout=30.0)

    def write_entry(self, entry: DataFlashEntry, value: DFValue) -> None:
        """Write one entry; the driver checks type and range and verifies by reading back."""
        profile = self.profile

        def done(row: object) -> None:
            assert isinstance(row, gauge_ops.ThresholdRow)
            self.rows = [row if r.entry.key == row.entry.key else r for r in self.rows]
            self.entry_written.emit(row)
            self.thresholds_changed.emit(self.rows)
            self.message.emit(f"{entry.key} = {row.text} (verified)")

        self._run(f"write {entry.key}", lambda b: gauge_ops.write_entry(b, profile, entry, value), done)

    def export_image(self, path: Path) -> None:
        profile = self.profile
        self._run(
            "export data flash",
            lambda b: gauge_ops.export_image(b, profile, path),
            lambda text: self.message.emit(str(text)),
            timeout=120.0,
        )

    def preview_import(self, path: Path) -> None:
        profile = self.profile
        self._run(
            "compare image with the pack",
            lambda b: gauge_ops.preview_import(b, profile, path),
            self.preview_ready.emit,
            timeout=120.0,
        )

    def import_image(self, path: Path, backup_dir: Path) -> None:
        profile = self.profile

        def done(text: object) -> None:
            self.message.emit(str(text))
            self.read_thresholds()

        self._run(
            "import data flash", lambda b: gauge_ops.import_image(b, profile, path, backup_dir), done, timeout=300.0
        )
