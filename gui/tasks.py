"""Run blocking work off the GUI thread and deliver the outcome on it.

``Poller.call`` waits for the I/O thread (up to its timeout), stopping a poller joins a thread,
and opening a recording touches the disk: none of that may run on the GUI thread, which must
answer input within 100 ms. :class:`TaskRunner` runs such callables on a small thread pool and
hands the result — or the error, as one readable sentence — back to the GUI thread through a
queued signal. Callbacks therefore run on the GUI thread and may touch widgets.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from PySide6.QtCore import QObject, Qt, Signal, Slot

from gui.format import first_sentence
from smartbatt.errors import SmartBattError

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class TaskError:
    """Why a task failed: one sentence for the user, the full text for the log."""

    #: what was being done (``read registers``).
    what: str
    #: one readable sentence.
    message: str
    #: the complete error text (and traceback for unexpected exceptions), for the bus monitor.
    detail: str
    #: the exception itself.
    exception: BaseException

    @property
    def expected(self) -> bool:
        """A device or usage error (a SmartBattError), not a bug."""
        return isinstance(self.exception, SmartBattError)


def describe_error(what: str, exc: BaseException) -> TaskError:
    """Turn an exception into a :class:`TaskError` (never raises)."""
    if isinstance(exc, SmartBattError):
        return TaskError(what, first_sentence(f"{what}: {exc}"), str(exc), exc)
    # not a SmartBattError: a bug or an unexpected library failure; keep the traceback for the log
    detail = "".join(traceback.format_exception(exc))
    return TaskError(what, first_sentence(f"{what} failed unexpectedly: {type(exc).__name__}: {exc}"), detail, exc)


class TaskRunner(QObject):
    """A thread pool whose results come back on the GUI thread.

    :param workers: threads; 2 is enough (one long call may wait on the poller while another runs).
    """

    _finished = Signal(int, object, object)
    #: every failure, for the status bar and the bus monitor log.
    failed = Signal(object)

    def __init__(self, parent: QObject | None = None, workers: int = 2) -> None:
        super().__init__(parent)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gui-task")
        self._callbacks: dict[int, tuple[str, Callable[[Any], None] | None, Callable[[TaskError], None] | None]] = {}
        self._next = 0
        self._lock = threading.Lock()
        self._pending = 0
        self._closed = False
        self._finished.connect(self._deliver, Qt.ConnectionType.QueuedConnection)

    @property
    def pending(self) -> int:
        """Tasks submitted whose callbacks have not run yet."""
        with self._lock:
            return self._pending

    def submit(
        self,
        what: str,
        fn: Callable[[], T],
        on_done: Callable[[T], None] | None = None,
        on_error: Callable[[TaskError], None] | None = None,
    ) -> Future[T] | None:
        """Run ``fn()`` on a worker thread; then ``on_done(result)`` or ``on_error(TaskError)`` on the GUI thread.

        :param what: short description for error messages (``"write RemainingCapacityAlarm"``).
        :returns: the future, or None after :meth:`shutdown` (the task is then dropped).
        """
        with self._lock:
            if self._closed:
                return None
            ticket = self._next
            self._next += 1
            self._pending += 1
            self._callbacks[ticket] = (what, on_done, on_error)

        def run() -> T:
            try:
                result = fn()
            except BaseException as exc:
                self._report(ticket, None, exc)
                raise
            self._report(ticket, result, None)
            return result

        try:
            return self._pool.submit(run)
        except RuntimeError:  # the pool was shut down meanwhile
            with self._lock:
                self._callbacks.pop(ticket, None)
                self._pending -= 1
            return None

    def _report(self, ticket: int, result: object, exc: BaseException | None) -> None:
        """Queue the outcome for the GUI thread (called on the worker thread)."""
        with self._lock:
            if self._closed:
                return  # the window is closing: nobody is left to tell
        try:
            self._finished.emit(ticket, result, exc)
        except RuntimeError:  # the QObject was deleted while the task ran
            log.debug("task %d finished after its runner was deleted", ticket)

    @Slot(int, object, object)
    def _deliver(self, ticket: int, result: object, exc: object) -> None:
        with self._lock:
            if self._closed:  # shut down after the result was queued: nobody is listening
                self._callbacks.pop(ticket, None)
                self._pending -= 1
                return
            what, on_done, on_error = self._callbacks.pop(ticket, ("", None, None))
            self._pending -= 1
        if isinstance(exc, BaseException):
            error = describe_error(what, exc)
            if not error.expected:
                log.error("task %s failed:\n%s", what, error.detail)
            self.failed.emit(error)
            if on_error is not None:
                on_error(error)
            return
        if on_done is not None:
            on_done(result)

    def shutdown(self, wait: bool = False) -> None:
        """Stop accepting tasks; running ones finish on their own (their callbacks are dropped)."""
        with self._lock:
            self._closed = True
        self._pool.shutdown(wait=wait, cancel_futures=True)
