"""GUI plotting speed: a day of 1 Hz history on 8 traces, new points at 10 Hz (offscreen Qt).

Measures, on the app's own :class:`gui.plots.PlotArea` and :class:`gui.history.History`:

* **redraw rate** — frames per second when the plots are redrawn as fast as possible while the
  view moves every frame (a pan across the whole day: new clip range, downsampling and paint
  each frame), with the 10 Hz appends going on;
* **plotting CPU** — share of one core the process uses while the app runs normally for a while
  (10 Hz appends, the plots' own refresh timer), for the "All" window (a whole day visible) and
  for the 1-minute window (the busiest refresh rate);
* **memory** — resident set size of the whole process with the history loaded and drawn.

Targets (the issue): ≥ 30 frames/s, < 25 % of one core, < 400 MB.

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/bench_gui.py
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QApplication

from gui import theme
from gui.history import History
from gui.plots import PlotArea

TRACES = ("Voltage", "Current", "Temperature", "RelativeStateOfCharge",
          "CellVoltage1", "CellVoltage2", "CellVoltage3", "CellVoltage4")  # fmt: skip


class PaintCounter(QObject):
    """Counts the paint events a widget really gets."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Paint:
            self.count += 1
        return False


def rss_mb() -> float:
    """Resident set size now, MB (Linux /proc; peak RSS elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def day_of_data(points: int, t_end: float) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """A plausible day at 1 Hz: a slow discharge with load noise (seeded)."""
    rng = np.random.default_rng(7)
    t = t_end - points + np.arange(points, dtype=np.float64)
    phase = np.linspace(0.0, 1.0, points)
    current = -2.0 - 1.5 * np.sin(phase * 40.0) + rng.normal(0.0, 0.3, points)
    cell = 4.15 - 0.9 * phase + 0.02 * current / 2.0
    cols = {
        "Voltage": 4 * cell,
        "Current": current,
        "Temperature": 25.0 + 8.0 * np.sin(phase * 6.0) + rng.normal(0.0, 0.05, points),
        "RelativeStateOfCharge": 100.0 * (1.0 - phase),
    }
    for i in range(1, 5):
        cols[f"CellVoltage{i}"] = cell + 0.003 * i + rng.normal(0.0, 0.001, points)
    return t, cols


class Feeder:
    """Appends one new sample per tick (10 Hz) after the loaded day."""

    def __init__(self, history: History, t0: float) -> None:
        self.history = history
        self.t = t0
        self.count = 0

    def tick(self) -> None:
        self.t += 0.1
        self.count += 1
        v = 3.3 + 0.01 * np.sin(self.count / 10.0)
        values = {"Voltage": 4 * v, "Current": -2.0, "Temperature": 30.0, "RelativeStateOfCharge": 5.0}
        values.update({f"CellVoltage{i}": v for i in range(1, 5)})
        self.history.append(self.t, values)


def run_for(app: QApplication, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.002)


def measure_cpu(app: QApplication, seconds: float, setup: Callable[[], None]) -> float:
    """Process CPU share of one core over ``seconds`` of normal running."""
    setup()
    run_for(app, 1.0)  # settle: first draws, caches
    wall0, cpu0 = time.monotonic(), time.process_time()
    run_for(app, seconds)
    return (time.process_time() - cpu0) / (time.monotonic() - wall0)


def responsiveness(app: QApplication) -> tuple[float, float]:
    """Longest gap (and 99th percentile) between 10 ms heartbeats of the GUI event loop while the
    full app is connected to an emulated pack at 10x speed, the user flips through every page,
    refreshes all registers and reads the data-flash thresholds (the issue's "answers input
    within 100 ms at all times")."""
    import tempfile
    from pathlib import Path

    from gui.app_model import AppModel
    from gui.main_window import PAGES, MainWindow
    from gui.models.connection import Link
    from gui.settings import DeviceChoice, Settings

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(Path(tmp) / "settings.ini")
        settings.set_recordings_path(Path(tmp) / "recordings.db")
        model = AppModel(settings, fast_hz=4.0, medium_hz=4.0, reconnect_s=0.2)
        window = MainWindow(model)
        window.resize(1360, 860)
        window.show()
        model.connect_device(DeviceChoice("emulated:bq4050?speed=10&scenario=drone&security=unsealed"))
        deadline = time.monotonic() + 20
        while model.connection.state.link is not Link.CONNECTED and time.monotonic() < deadline:
            run_for(app, 0.05)
        gaps: list[float] = []
        last = [time.monotonic()]

        def beat() -> None:
            now = time.monotonic()
            gaps.append(now - last[0])
            last[0] = now

        heartbeat = QTimer()
        heartbeat.setInterval(10)
        heartbeat.timeout.connect(beat)
        heartbeat.start()
        last[0] = time.monotonic()
        for _round in range(3):
            model.registers.refresh()
            model.gauge.read_thresholds()
            for page in PAGES:
                window.show_page(page.key)
                run_for(app, 0.2)
        heartbeat.stop()
        window.close()
        model.shutdown()
    ordered = sorted(gaps)
    return ordered[-1], ordered[int(0.99 * (len(ordered) - 1))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--points", type=int, default=86_400, help="samples per trace (default: a day at 1 Hz)")
    parser.add_argument("--frames", type=int, default=120, help="frames for the redraw-rate test")
    parser.add_argument("--seconds", type=float, default=15.0, help="duration of each CPU measurement")
    parser.add_argument("--width", type=int, default=1600)
    parser.add_argument("--height", type=int, default=900)
    args = parser.parse_args()

    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    theme.apply(app)
    rss_start = rss_mb()
    history = History(args.points + 36_000)  # a day plus an hour of 10 Hz appends
    t_end = time.time()
    t, cols = day_of_data(args.points, t_end)
    history.load(t, cols)
    area = PlotArea(history)
    area.resize(args.width, args.height)
    area.show()
    area.set_window("All")
    run_for(app, 1.0)
    feeder = Feeder(history, t_end)
    feed = QTimer()
    feed.setInterval(100)
    feed.timeout.connect(feeder.tick)
    feed.start()

    # 1) redraw rate: move the view every frame; the event loop paints (counted, not assumed)
    paints = PaintCounter()
    area.view.viewport().installEventFilter(paints)
    area.timer.stop()
    first, last = float(t[0]), float(t[-1])
    span = last - first
    plot = area.plots["voltage"]
    area.following = False
    start = time.perf_counter()
    for frame in range(args.frames):
        offset = span * 0.5 * frame / args.frames
        plot.setXRange(first + offset, first + offset + span * 0.5, padding=0.0)
        area.refresh()
        app.processEvents()
    fps = paints.count / (time.perf_counter() - start)

    paints.count = 0
    full_frames = max(10, args.frames // 4)
    full_start = time.perf_counter()
    for _frame in range(full_frames):
        area.go_live()  # whole day visible, data re-copied and redrawn each frame
        area._version = -1
        area.refresh()
        app.processEvents()
    fps_all = paints.count / (time.perf_counter() - full_start)
    area.timer.start()

    # 2) CPU at steady state: the app's own refresh timer, appends at 10 Hz
    cpu_all = measure_cpu(app, args.seconds, lambda: area.set_window("All"))
    cpu_min = measure_cpu(app, args.seconds, lambda: area.set_window("1 min"))
    feed.stop()
    rss = rss_mb()

    print(f"machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, {platform.platform()}")
    print(f"python {platform.python_version()}, Qt offscreen, window {args.width}x{args.height}")
    print(f"data: {len(TRACES)} traces x {args.points:,} points (+ {feeder.count} appended at 10 Hz)")
    print(f"redraw, panning half a day     : {fps:6.1f} frames/s   (target >= 30)")
    print(f"redraw, whole day re-copied    : {fps_all:6.1f} frames/s")
    print(f"plotting CPU, window 'All'     : {cpu_all * 100:6.1f} % of one core   (target < 25 %)")
    print(f"plotting CPU, window '1 min'   : {cpu_min * 100:6.1f} % of one core")
    print(f"memory (RSS)                   : {rss:6.0f} MB   (target < 400 MB; {rss_start:.0f} MB before the data)")
    stall_max, stall_p99 = responsiveness(app)
    print(f"event loop, longest stall      : {stall_max * 1e3:6.1f} ms (p99 {stall_p99 * 1e3:.1f} ms; target < 100 ms)")
    ok = fps >= 30 and max(cpu_all, cpu_min) < 0.25 and rss < 400 and stall_max < 0.1
    print("RESULT:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
