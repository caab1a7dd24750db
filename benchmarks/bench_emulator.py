"""Emulator speed: simulated time / wall time for a 4S pack at 1 s steps, physics alone and whole pack.

Two figures, each against the target of 10,000x real time (one simulated hour in under 0.36 s):

* **physics**: one simulated hour of ``Pack.step`` driven by a scenario load (the load is evaluated
  every step, as the device does);
* **whole pack**: the emulated pack as users and tests run it — ``VirtualPack`` (physics + gauge +
  protections + balancing + lifetime data) built by ``build_bus("bq40z50", {"speed": "0", ...})``,
  advanced by ``vpack.advance(1.0)`` 3600 times. (One ``advance(3600)`` would use coarse catch-up
  steps, not 1 s steps.)

The best of ``--repeat`` runs is reported, because the machine is shared and a run can be slowed by
other work.

    .venv/bin/python benchmarks/bench_emulator.py [--scenario laptop|drone] [--repeat 5]
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

from smartbatt.emulator import build_bus
from smartbatt.emulator.device import EmulatedGauge, VirtualPack
from smartbatt.emulator.load import scenario
from smartbatt.emulator.pack import Pack, PackConfig

TARGET_RATIO = 10_000.0
SIMULATED_S = 3600.0
STEP_S = 1.0


def run_once(name: str) -> tuple[float, Pack]:
    """Wall seconds to simulate one hour of ``name`` on a fresh 4S1P 3 Ah NMC pack (physics only)."""
    pack = Pack(PackConfig(series=4, initial_soc=1.0))
    load = scenario(name)
    steps = int(SIMULATED_S / STEP_S)
    start = time.perf_counter()
    t = 0.0
    for _ in range(steps):
        pack.step(STEP_S, load.current(t, pack))
        t += STEP_S
    return time.perf_counter() - start, pack


def run_whole_once(name: str) -> tuple[float, VirtualPack]:
    """Wall seconds to simulate one hour of ``name`` on the whole emulated bq40z50 pack (4S 3 Ah)."""
    bus = build_bus("bq40z50", {"speed": "0", "scenario": name})
    device = bus.devices[0x0B]
    assert isinstance(device, EmulatedGauge)
    vpack = device.vpack
    steps = int(SIMULATED_S / STEP_S)
    start = time.perf_counter()
    for _ in range(steps):
        vpack.advance(STEP_S)
    return time.perf_counter() - start, vpack


def _report(label: str, walls: list[float]) -> float:
    """Print one figure; returns the speed ratio of the best run."""
    best = min(walls)
    median = sorted(walls)[len(walls) // 2]
    ratio = SIMULATED_S / best
    verdict = "PASS" if ratio >= TARGET_RATIO else "FAIL"
    print(f"{label}: best {best * 1000:.1f} ms, median {median * 1000:.1f} ms ({len(walls)} runs)")
    print(f"{label}: {ratio:,.0f}x real time (target >= {TARGET_RATIO:,.0f}x): {verdict}")
    return ratio


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--scenario", default="laptop", choices=("laptop", "drone", "powertool", "idle"))
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    repeat = max(1, args.repeat)
    walls: list[float] = []
    whole_walls: list[float] = []
    pack: Pack | None = None
    vpack: VirtualPack | None = None
    for _ in range(repeat):
        wall, pack = run_once(args.scenario)
        walls.append(wall)
        wall, vpack = run_whole_once(args.scenario)
        whole_walls.append(wall)
    assert pack is not None and vpack is not None
    print(f"python {platform.python_version()}, numpy {np.__version__}, {platform.machine()}")
    print(f"scenario {args.scenario}: 4S1P NMC 3 Ah, {SIMULATED_S:.0f} s simulated at {STEP_S:g} s steps")
    soc, temps = np.round(pack.cell_soc, 3), np.round(pack.cell_temperatures, 1)
    print(f"physics end state: {pack.voltage:.3f} V, SOC {soc}, T {temps} °C")
    physics = _report("physics (Pack.step + load)", walls)
    m = vpack.gauge.measurement
    print(f"whole-pack end state: {m.voltage_mv} mV, RSOC {vpack.gauge.rsoc:.1f} %, {m.current_ma} mA")
    whole = _report("whole pack (VirtualPack.advance(1.0))", whole_walls)
    return 0 if min(physics, whole) >= TARGET_RATIO else 1


if __name__ == "__main__":
    raise SystemExit(main())
