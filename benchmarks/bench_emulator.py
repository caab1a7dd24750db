"""Emulator physics speed: simulated time / wall time for a 4S pack at 1 s steps.

Runs one simulated hour of ``Pack.step`` driven by a scenario load (the load is evaluated every
step, as the device does) and prints the ratio against the target of 10,000x real time (one
simulated hour in under 0.36 s). The best of ``--repeat`` runs is reported, because the machine
is shared and a run can be slowed by other work.

    .venv/bin/python benchmarks/bench_emulator.py [--scenario laptop|drone] [--repeat 5]
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

from smartbatt.emulator.load import scenario
from smartbatt.emulator.pack import Pack, PackConfig

TARGET_RATIO = 10_000.0
SIMULATED_S = 3600.0
STEP_S = 1.0


def run_once(name: str) -> tuple[float, Pack]:
    """Wall seconds to simulate one hour of ``name`` on a fresh 4S1P 3 Ah NMC pack."""
    pack = Pack(PackConfig(series=4, initial_soc=1.0))
    load = scenario(name)
    steps = int(SIMULATED_S / STEP_S)
    start = time.perf_counter()
    t = 0.0
    for _ in range(steps):
        pack.step(STEP_S, load.current(t, pack))
        t += STEP_S
    return time.perf_counter() - start, pack


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="laptop", choices=("laptop", "drone", "powertool", "idle"))
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    walls = []
    pack = None
    for _ in range(max(1, args.repeat)):
        wall, pack = run_once(args.scenario)
        walls.append(wall)
    assert pack is not None
    best = min(walls)
    ratio = SIMULATED_S / best
    print(f"python {platform.python_version()}, numpy {np.__version__}, {platform.machine()}")
    print(f"scenario {args.scenario}: 4S1P NMC 3 Ah, {SIMULATED_S:.0f} s simulated at {STEP_S:g} s steps")
    median = sorted(walls)[len(walls) // 2]
    print(f"wall time: best {best * 1000:.1f} ms, median {median * 1000:.1f} ms ({args.repeat} runs)")
    soc, temps = np.round(pack.cell_soc, 3), np.round(pack.cell_temperatures, 1)
    print(f"end state: {pack.voltage:.3f} V, SOC {soc}, T {temps} °C")
    verdict = "PASS" if ratio >= TARGET_RATIO else "FAIL"
    print(f"speed: {ratio:,.0f}x real time (target >= {TARGET_RATIO:,.0f}x): {verdict}")
    return 0 if ratio >= TARGET_RATIO else 1


if __name__ == "__main__":
    raise SystemExit(main())
