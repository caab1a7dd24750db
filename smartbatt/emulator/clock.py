"""Simulated time for the emulator: real time (× speed) or as fast as possible.

``SimClock(None)`` is for tests and benchmarks: simulated time advances only when told
(:meth:`SimClock.advance`), so a run is deterministic and as fast as the CPU allows.
``SimClock(speed)`` follows the host's monotonic clock scaled by ``speed`` (1.0 = real time), for
the GUI and the serial/pty device; :meth:`SimClock.advance` then skips ahead.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable


def _check_speed(speed: float | None) -> float | None:
    if speed is None:
        return None
    if isinstance(speed, bool) or not isinstance(speed, int | float) or not math.isfinite(speed) or speed <= 0:
        raise ValueError(f"speed must be a positive finite number or None, not {speed!r}")
    return float(speed)


class SimClock:
    """A simulated clock in seconds since creation.

    :param speed: ``None`` = as fast as possible (time moves only by :meth:`advance`); a positive
        number = real time multiplied by ``speed``.
    :param monotonic: host clock, s (injectable for tests; default :func:`time.monotonic`).
    :raises ValueError: for a speed that is not positive and finite.
    """

    def __init__(self, speed: float | None = None, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._speed = _check_speed(speed)
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._origin_host = monotonic()
        self._origin_sim = 0.0

    @property
    def speed(self) -> float | None:
        """Simulated seconds per host second, or ``None`` when running as fast as possible."""
        return self._speed

    @property
    def realtime(self) -> bool:
        """True when the clock follows the host clock."""
        return self._speed is not None

    def _now_locked(self) -> float:
        if self._speed is None:
            return self._origin_sim
        return self._origin_sim + (self._monotonic() - self._origin_host) * self._speed

    def now(self) -> float:
        """Simulated seconds since creation."""
        with self._lock:
            return self._now_locked()

    def advance(self, dt_s: float) -> float:
        """Move simulated time forward by ``dt_s`` (>= 0) seconds; returns the new time.

        :raises ValueError: for a negative or non-finite ``dt_s``.
        """
        if not (isinstance(dt_s, int | float) and math.isfinite(dt_s) and dt_s >= 0):
            raise ValueError(f"dt_s must be a finite number >= 0, not {dt_s!r}")
        with self._lock:
            self._origin_sim += float(dt_s)
            return self._now_locked()

    def set_speed(self, speed: float | None) -> None:
        """Change the speed without a jump in simulated time.

        :raises ValueError: for a speed that is not positive and finite.
        """
        checked = _check_speed(speed)
        with self._lock:
            now = self._now_locked()
            self._speed = checked
            self._origin_sim = now
            self._origin_host = self._monotonic()

    def host_seconds_until(self, t_s: float) -> float:
        """Host seconds until simulated time ``t_s`` (0 if already there; ``inf`` when not real time)."""
        with self._lock:
            remaining = t_s - self._now_locked()
            if remaining <= 0:
                return 0.0
            return math.inf if self._speed is None else remaining / self._speed

    def wait_until(self, t_s: float, stop: threading.Event, timeout_s: float) -> bool:
        """Block until simulated time ``t_s``, ``stop`` is set or ``timeout_s`` host seconds pass.

        As-fast-as-possible clocks jump to ``t_s`` at once. Returns True if ``t_s`` was reached.

        :raises ValueError: for a negative or non-finite ``timeout_s``.
        """
        if not (math.isfinite(timeout_s) and timeout_s >= 0):
            raise ValueError(f"timeout_s must be a finite number >= 0, not {timeout_s!r}")
        if self._speed is None:
            with self._lock:
                self._origin_sim = max(self._origin_sim, t_s)
            return True
        deadline = self._monotonic() + timeout_s
        while not stop.is_set():
            wait = self.host_seconds_until(t_s)
            if wait <= 0:
                return True
            left = deadline - self._monotonic()
            if left <= 0:
                return False
            # Event.wait may return a little early; loop until the clock really is there
            stop.wait(min(wait, left))
        return False
