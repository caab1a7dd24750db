"""Sample history for the plots: a thread-safe ring buffer of numpy columns (no Qt).

Samples arrive on a sample-bus dispatcher thread and are read by the GUI thread, so every access
takes one lock, held only for array copies (microseconds). The buffer is *double length*: data
live in ``[start, end)`` of arrays twice the capacity, and when the write position reaches the
end the live part is moved to the front in one copy — amortised O(1) per sample, and every
window is one contiguous slice (``setData`` takes it without reassembly).

Values are stored as float32 (7 significant digits: ample for mV, mA and 0.1 K readings) and
times as float64 unix seconds, so a day at 2 Hz on 16 channels takes about 30 MB.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]

#: default capacity: two days at 1 Hz, or one day at the poller's 2 Hz.
DEFAULT_CAPACITY = 172_800


class History:
    """The last ``capacity`` samples of any number of channels.

    :param capacity: samples kept (≥ 2); older ones are dropped first.
    :raises ValueError: capacity below 2.
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 2:
            raise ValueError("history capacity must be at least 2 samples")
        self.capacity = capacity
        self._lock = threading.Lock()
        self._t: F64 = np.empty(2 * capacity, dtype=np.float64)
        self._cols: dict[str, F32] = {}
        self._start = 0
        self._end = 0
        #: incremented on every change; readers redraw only when it moved.
        self.version = 0

    # --- writing ------------------------------------------------------------------------------

    def append(self, t: float, values: Mapping[str, float]) -> None:
        """Add one sample at unix time ``t``; channels never seen before start here (NaN before)."""
        with self._lock:
            if self._end == len(self._t):
                self._compact()
            if self._end - self._start == self.capacity:
                self._start += 1
            i = self._end
            self._t[i] = t
            for name, col in self._cols.items():
                value = values.get(name)
                col[i] = math.nan if value is None else value
            for name in values.keys() - self._cols.keys():
                col = self._new_column()
                col[i] = values[name]
                self._cols[name] = col
            self._end = i + 1
            self.version += 1

    def load(self, t: npt.ArrayLike, columns: Mapping[str, npt.ArrayLike]) -> None:
        """Replace everything with ``t`` (ascending unix s) and equally long ``columns``.

        Only the last ``capacity`` samples are kept. Used for replays and the benchmark.
        :raises ValueError: a column's length differs from ``t``'s.
        """
        all_t = np.asarray(t, dtype=np.float64)
        n = min(len(all_t), self.capacity)
        cols: dict[str, F32] = {}
        for name, values in columns.items():
            arr = np.asarray(values, dtype=np.float32)
            if len(arr) != len(all_t):
                raise ValueError(f"column {name!r} has {len(arr)} values for {len(all_t)} times")
            col = self._new_column()
            col[:n] = arr[len(arr) - n :]
            cols[name] = col
        with self._lock:
            self._t[:n] = all_t[len(all_t) - n :]
            self._cols = cols
            self._start, self._end = 0, n
            self.version += 1

    def clear(self) -> None:
        """Forget every sample and channel."""
        with self._lock:
            self._cols = {}
            self._start = self._end = 0
            self.version += 1

    def _new_column(self) -> F32:
        return np.full(len(self._t), np.nan, dtype=np.float32)

    def _compact(self) -> None:
        """Move the live part to the front (lock held)."""
        n = self._end - self._start
        self._t[:n] = self._t[self._start : self._end]
        for col in self._cols.values():
            col[:n] = col[self._start : self._end]
        self._start, self._end = 0, n

    # --- reading ------------------------------------------------------------------------------

    def __len__(self) -> int:
        with self._lock:
            return self._end - self._start

    @property
    def channels(self) -> list[str]:
        with self._lock:
            return sorted(self._cols)

    def span(self) -> tuple[float, float] | None:
        """Times of the first and last sample, or None when empty."""
        with self._lock:
            if self._end == self._start:
                return None
            return float(self._t[self._start]), float(self._t[self._end - 1])

    def window(
        self, names: Iterable[str], t0: float | None = None, t1: float | None = None
    ) -> tuple[F64, dict[str, F32]]:
        """Copies of the samples with ``t0 ≤ t ≤ t1``: times and the requested channels.

        A channel never seen comes back as all-NaN, so callers need no special case.
        """
        with self._lock:
            t = self._t[self._start : self._end]
            lo = 0 if t0 is None else int(np.searchsorted(t, t0, side="left"))
            hi = len(t) if t1 is None else int(np.searchsorted(t, t1, side="right"))
            a, b = self._start + lo, self._start + hi
            times = self._t[a:b].copy()
            out: dict[str, F32] = {}
            for name in names:
                col = self._cols.get(name)
                out[name] = col[a:b].copy() if col is not None else np.full(b - a, np.nan, dtype=np.float32)
        return times, out

    def at(self, t: float) -> tuple[float, dict[str, float]] | None:
        """The last sample at or before ``t`` (the first one if ``t`` is earlier): time and values."""
        with self._lock:
            if self._end == self._start:
                return None
            live = self._t[self._start : self._end]
            i = max(0, int(np.searchsorted(live, t, side="right")) - 1) + self._start
            values = {name: float(col[i]) for name, col in self._cols.items() if not math.isnan(col[i])}
            return float(self._t[i]), values

    def nbytes(self) -> int:
        """Memory held by the arrays, bytes."""
        with self._lock:
            return int(self._t.nbytes + sum(c.nbytes for c in self._cols.values()))
