"""The bus-monitor sub-model: every SMBus transaction, plus the app's error details, as a table.

Transaction records arrive on the poller's I/O thread (the listener must be quick and must not
raise): the listener only appends to a bounded deque. A GUI timer moves them into the table in
batches, keeping the newest :data:`MAX_ROWS`. Errors the app shows as one sentence are logged
here in full (source ``app``), so "details in the bus monitor" is literally true.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QModelIndex, QSortFilterProxyModel, Qt, QTimer
from PySide6.QtGui import QColor

from gui import theme
from gui.format import format_time
from gui.table import Index, RowsTableModel
from smartbatt.transports.txlog import TransactionRecord

#: rows kept in the table (oldest dropped first).
MAX_ROWS = 20_000
#: records waiting for the GUI timer (the I/O thread never blocks on a full queue).
MAX_PENDING = 50_000
DRAIN_MS = 250

COLUMNS = ("Time", "Addr", "Transaction", "Cmd", "Sent", "Received", "PEC", "Result", "Took")



@dataclass(frozen=True)
class BusRow:
    """One row: a transaction (``source == "bus"``) or an app error (``source == "app"``)."""

    time: float
    source: str
    address: int | None
    kind: str
    command: int | None
    sent: bytes
    received: bytes
    pec: bool
    result: str
    detail: str
    duration_s: float
    attempt: int = 1

    @property
    def ok(self) -> bool:
        return self.result == "ok"

    @classmethod
    def from_record(cls, r: TransactionRecord) -> BusRow:
        return cls(
            r.time, "bus", r.address, r.protocol.value, r.command, r.data_out, r.data_in, r.pec, r.result, r.error,
            r.duration_s, r.attempt,
        )

    def cells(self) -> tuple[str, ...]:
        if self.source == "app":
            return (format_time(self.time), "", "app error", "", "", "", "", self.result, self.detail)
        addr = f"0x{self.address:02X}" if self.address is not None else ""
        cmd = f"0x{self.command:02X}" if self.command is not None else ""
        result = self.result if self.ok else f"{self.result}: {self.detail}"
        if self.attempt > 1:
            result += f" (try {self.attempt})"
        took = f"{self.duration_s * 1e3:.2f} ms"
        return (
            f"{format_time(self.time)}.{int(self.time * 1000) % 1000:03d}",
            addr,
            self.kind,
            cmd,
            self.sent.hex(" ").upper(),
            self.received.hex(" ").upper(),
            "yes" if self.pec else "",
            result,
            took,
        )


class BusMonitorModel(RowsTableModel):
    """Table of :class:`BusRow`. ``paused`` stops taking new rows (they are counted, not kept)."""

    columns = COLUMNS

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.rows: deque[BusRow] = deque()
        self._pending: deque[BusRow] = deque(maxlen=MAX_PENDING)
        self.paused = False
        #: rows not shown because the monitor was paused or the queue overflowed.
        self.skipped = 0
        self.total = 0
        self._timer = QTimer(self)
        self._timer.setInterval(DRAIN_MS)
        self._timer.timeout.connect(self.drain)
        self._timer.start()

    # --- producers ---------------------------------------------------------------------------------

    def on_transaction(self, record: TransactionRecord) -> None:
        """Transaction listener: runs on the I/O thread; one deque append, never raises."""
        self._pending.append(BusRow.from_record(record))

    def log_error(self, message: str, detail: str, when: float) -> None:
        """An app error: the one sentence and the full text (GUI thread)."""
        self._pending.append(BusRow(when, "app", None, "", None, b"", b"", False, message, detail, 0.0))

    # --- GUI thread ----------------------------------------------------------------------------------

    def drain(self) -> None:
        batch: list[BusRow] = []
        while self._pending:
            batch.append(self._pending.popleft())
        if not batch:
            return
        self.total += len(batch)
        if self.paused:
            self.skipped += len(batch)
            return
        batch = batch[-MAX_ROWS:]
        overflow = len(self.rows) + len(batch) - MAX_ROWS
        if overflow > 0:
            self.beginRemoveRows(QModelIndex(), 0, overflow - 1)
            for _ in range(overflow):
                self.rows.popleft()
            self.endRemoveRows()
        first = len(self.rows)
        self.beginInsertRows(QModelIndex(), first, first + len(batch) - 1)
        self.rows.extend(batch)
        self.endInsertRows()

    def clear(self) -> None:
        self.beginResetModel()
        self.rows.clear()
        self.endResetModel()

    # --- Qt model -------------------------------------------------------------------------------------

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row = self.rows[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return row.cells()[index.column()]
        if role == Qt.ItemDataRole.ToolTipRole:
            return row.detail or None
        if role == Qt.ItemDataRole.ForegroundRole and not row.ok:
            return QColor(theme.CRITICAL if row.source == "app" else theme.ALARM)
        if role == Qt.ItemDataRole.UserRole:
            return row
        return None


class BusFilter(QSortFilterProxyModel):
    """Filter rows by text (address, command, bytes, result) and by "errors only"."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.text = ""
        self.errors_only = False

    def set_text(self, text: str) -> None:
        self.text = text.strip().lower()
        self.invalidate()

    def set_errors_only(self, on: bool) -> None:
        self.errors_only = on
        self.invalidate()

    def filterAcceptsRow(self, source_row: int, source_parent: Index) -> bool:
        model = self.sourceModel()
        assert isinstance(model, BusMonitorModel)
        row = model.rows[source_row]
        if self.errors_only and row.ok:
            return False
        if not self.text:
            return True
        return all(word in " ".join(row.cells()).lower() for word in self.text.split())
