"""Recorder store figures: ingest rate, bytes per row on disk, one-day window query time.

Targets (issue "Monitoring core"): ingest >= 100,000 samples/s in batches; a one-day window from a
30-million-row store in < 100 ms; <= 60 bytes per row on disk for a typical 1 Hz sample.

A "typical 1 Hz sample" here is what the poller records from a 4-series bq40z50-class pack:
Voltage, Current, Temperature, RelativeStateOfCharge, FullChargeCapacity, CellVoltage1..4 and the
status words BatteryStatus, SafetyStatus, PFStatus, OperationStatus (13 channels).

1. ingest: 200,000 ``Sample`` records written in batches of 10,000 through ``Store.append``, and the
   same through the ``Recorder`` writer thread (``submit`` + ``flush``), end to end;
2. bytes/row: one simulated day of the emulator (4S 3 Ah NMC pack cycling laptop use, drone flights
   and CC-CV charges, measured at gauge resolution: 1 mV, 1 mA, 0.1 K) recorded at 1 Hz;
3. window: a 30M-row store (one session, synthetic gauge-like signals, generated once into
   ``benchmarks/.cache/``), 20 random one-day windows read with ``Store.window`` (warm OS cache).

    .venv/bin/python benchmarks/bench_store.py [--rows 30000000] [--regen]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from smartbatt.monitor.sample import Sample
from smartbatt.monitor.store import Recorder, Store

CACHE = Path(__file__).resolve().parent / ".cache"
T0 = 1_700_000_000.0
DAY = 86_400
STATUS = ("BatteryStatus", "SafetyStatus", "PFStatus", "OperationStatus")


def synthetic_columns(start: int, n: int, seed: int) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """n seconds of gauge-like 1 Hz data starting at second ``start`` (quantised as SBS reports it)."""
    rng = np.random.default_rng(seed)
    t = T0 + start + np.arange(n, dtype=np.float64)
    phase = 2 * np.pi * (start + np.arange(n)) / (6 * 3600)  # a charge/discharge cycle every 6 h
    soc = 55 + 40 * np.sin(phase)
    current = np.round(np.where(np.cos(phase) > 0, 1.5, -2.0) + rng.normal(0, 0.005, n), 3)
    ocv = 3.4 + 0.8 * soc / 100
    cells = {
        f"CellVoltage{k}": np.round(ocv + 0.002 * k + current * 0.03 + rng.normal(0, 0.001, n), 3) for k in range(1, 5)
    }
    values = {
        "Voltage": np.round(sum(cells.values()), 3),
        "Current": current,
        "Temperature": np.round(25 + 5 * np.sin(phase / 4) + rng.normal(0, 0.03, n), 1),
        "RelativeStateOfCharge": np.round(soc),
        "FullChargeCapacity": np.full(n, 2.925),
        **cells,
    }
    status = {
        "BatteryStatus": np.where(current < 0, 0x00C0, 0x0080),
        "SafetyStatus": np.zeros(n, dtype=np.int64),
        "PFStatus": np.zeros(n, dtype=np.int64),
        "OperationStatus": np.where(current < 0, 0x0107, 0x0105),
    }
    return t, values, status


def as_samples(t: np.ndarray, values: dict[str, np.ndarray], status: dict[str, np.ndarray]) -> list[Sample]:
    vcols = {k: v.tolist() for k, v in values.items()}
    scols = {k: v.tolist() for k, v in status.items()}
    return [
        Sample(ti, {k: c[i] for k, c in vcols.items()}, {k: c[i] for k, c in scols.items()})
        for i, ti in enumerate(t.tolist())
    ]


def bench_ingest(tmp: Path, n: int = 200_000, batch: int = 10_000) -> tuple[float, float]:
    samples = as_samples(*synthetic_columns(0, n, seed=1))
    with Store(tmp / "ingest.db") as store:
        sid = store.start_session(started=T0)
        start = time.perf_counter()
        for i in range(0, n, batch):
            store.append(sid, samples[i : i + batch])
        direct = n / (time.perf_counter() - start)
        sid2 = store.start_session(started=T0)
    recorder = Recorder(tmp / "ingest.db", sid2)
    start = time.perf_counter()
    for s in samples:
        recorder.submit(s)
    assert recorder.flush(600.0)
    threaded = n / (time.perf_counter() - start)
    recorder.close()
    assert recorder.samples_written == n
    return direct, threaded


#: assumed measurement noise (standard deviation) before quantisation: V, A, °C. An engineering
#: assumption for a gauge ADC, not a datasheet figure; noise is what makes real rows bigger.
NOISE = (0.001, 0.002, 0.05)


def emulated_day(noise: bool) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """One day of a 4S 3 Ah NMC pack at gauge resolution: laptop use, flights, charges, rests."""
    from smartbatt.emulator.load import scenario
    from smartbatt.emulator.pack import Pack, PackConfig

    pack = Pack(PackConfig(chemistry="nmc", series=4, cell_capacity_ah=3.0, initial_soc=0.9, seed=3))
    plan = [("laptop", 7200), ("idle", 3600), ("charge", 10800), ("drone", 900), ("idle", 1800), ("charge", 10800)]
    rows: list[list[float]] = []
    t = 0
    while t < DAY:
        for name, length in plan:
            load = scenario(name, seed=t)
            for k in range(length):
                if t >= DAY:
                    break
                current = load.current(float(k), pack)
                pack.step(1.0, current)
                cells = pack.cell_voltages
                rows.append(
                    [
                        T0 + t,
                        pack.voltage,
                        current,
                        float(pack.cell_temperatures.max()),
                        float(pack.cell_soc.mean()) * 100,
                        *cells,
                    ]
                )
                t += 1
    a = np.asarray(rows)
    n = len(a)
    if noise:
        rng = np.random.default_rng(11)
        sv, si, st = NOISE
        a[:, 5:] += rng.normal(0, sv, (n, 4))
        a[:, 1] = a[:, 5:].sum(axis=1) + rng.normal(0, sv, n)
        a[:, 2] += rng.normal(0, si, n)
        a[:, 3] += rng.normal(0, st, n)
    values = {
        "Voltage": np.round(a[:, 1], 3),
        "Current": np.round(a[:, 2], 3),
        "Temperature": np.round(a[:, 3], 1),
        "RelativeStateOfCharge": np.round(a[:, 4]),
        "FullChargeCapacity": np.full(n, 2.925),
        **{f"CellVoltage{k}": np.round(a[:, 4 + k], 3) for k in range(1, 5)},
    }
    status = {
        "BatteryStatus": np.where(a[:, 2] <= 0, 0x00C0, 0x0080),
        "SafetyStatus": np.zeros(n, dtype=np.int64),
        "PFStatus": np.zeros(n, dtype=np.int64),
        "OperationStatus": np.where(a[:, 2] <= 0, 0x0107, 0x0105),
    }
    return a[:, 0], values, status


def file_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def bench_bytes_per_row(tmp: Path, noise: bool) -> tuple[float, int]:
    t, values, status = emulated_day(noise)
    path = tmp / f"day-{noise}.db"
    with Store(path) as store:
        sid = store.start_session(started=T0)
        # the live recorder writes a few samples per commit: emulate it (~1 s batches) so the
        # open-chunk rewrites and page reuse are measured, not just a bulk load
        for i in range(0, len(t), 3600):
            store.append_columns(sid, t[i : i + 3600], {k: v[i : i + 3600] for k, v in values.items()},
                                 {k: v[i : i + 3600] for k, v in status.items()})  # fmt: skip
        store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return file_bytes(path) / len(t), len(t)


def build_big(rows: int, regen: bool) -> tuple[Path, float | None]:
    CACHE.mkdir(exist_ok=True)
    path = CACHE / f"store_{rows}.db"
    if path.exists() and not regen:
        return path, None
    for old in CACHE.glob(path.name + "*"):
        old.unlink()
    start = time.perf_counter()
    step = 1_000_000
    with Store(path) as store:
        sid = store.start_session(started=T0)
        for i in range(0, rows, step):
            n = min(step, rows - i)
            store.append_columns(sid, *synthetic_columns(i, n, seed=i))
        store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path, rows / (time.perf_counter() - start)


def bench_window(path: Path, rows: int, repeat: int = 20) -> list[float]:
    rng = np.random.default_rng(7)
    times = []
    with Store(path, readonly=True) as store:
        sid = store.sessions()[0].id
        for _ in range(repeat):
            day0 = T0 + float(rng.integers(0, max(1, rows - DAY)))
            start = time.perf_counter()
            w = store.window(sid, day0, day0 + DAY - 1)
            times.append(time.perf_counter() - start)
            assert len(w) == min(DAY, rows), len(w)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=30_000_000, help="rows in the big store (default 30M)")
    parser.add_argument("--regen", action="store_true", help="rebuild the cached big store")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cpu, {platform.platform()}, Python {platform.python_version()}, "
          f"numpy {np.__version__}, date {dt.date.today()}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        direct, threaded = bench_ingest(tmp)
        print(f"ingest, Store.append in batches of 10,000: {direct:,.0f} samples/s (target >= 100,000)")
        print(f"ingest, Recorder thread submit+flush:      {threaded:,.0f} samples/s")
        for noise in (True, False):
            per_row, n = bench_bytes_per_row(tmp, noise)
            what = "with measurement noise" if noise else "noiseless"
            print(
                f"bytes/row on disk, one emulated day {what} ({n} samples, 13 channels): {per_row:.1f} (target <= 60)"
            )
    path, gen_rate = build_big(args.rows, args.regen)
    if gen_rate is not None:
        print(f"generated {args.rows:,} rows with append_columns: {gen_rate:,.0f} samples/s")
    print(
        f"big store: {file_bytes(path) / 1e6:.0f} MB, {file_bytes(path) / args.rows:.1f} bytes/row (synthetic signals)"
    )
    times = sorted(bench_window(path, args.rows))
    ms = [x * 1000 for x in times]
    print(
        f"one-day window ({DAY} rows) from {args.rows:,} rows: median {statistics.median(ms):.1f} ms, "
        f"p90 {ms[int(0.9 * len(ms)) - 1]:.1f} ms, max {ms[-1]:.1f} ms (target < 100 ms)"
    )


if __name__ == "__main__":
    main()
