"""Factory end-of-line benchmark: per-pack time of each example plan against the emulator vs its bus time.

For each example plan, a fresh emulated pack (matching the plan's product) is tested ``--packs``
times, each pack a new serial, results recorded in a throwaway SQLite database as a station does.
The emulated transport accounts the time every transaction would take on a 100 kHz bus
(``EmulatedTransport.bus_time_s``: 9 clocks per byte, START/STOP, tBUF; NACKed and retried
transactions included). Reported per pack:

* ``bus``: that bus time — the floor of the per-pack time on real hardware;
* ``wall``: the per-pack time against the emulator (host work + the transport's retry back-off),
  the figure the target is about: ``wall ≤ 1.2 × bus``;
* ``waits``: waits the chip demands (data-flash write delay, 100 ms per block on bq40z50 per PX4),
  spent on the emulated pack's simulated clock; on hardware they add to the per-pack time.

Run: ``.venv/bin/python benchmarks/bench_eol.py [--packs 20]``. Figures: best and median pack
(the machine is shared; the best pack is the least disturbed one).
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from smartbatt.emulator.device import EmulatedGauge
from smartbatt.factory.plan import load_plan
from smartbatt.factory.results_db import ResultsDb
from smartbatt.factory.runner import Outcome, run_plan
from smartbatt.sbs.battery import Battery
from smartbatt.sbs.codecs import encode_date
from smartbatt.transports import open_transport
from smartbatt.transports.emulated import EmulatedTransport

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
#: the target of the issue: per-pack time ≤ 1.2 × bus time at 100 kHz.
TARGET_RATIO = 1.2

#: example plan → emulated pack of that product (identity fields the plans check).
CASES = {
    "eol_drone_4s.toml": "emulated:bq40z50?speed=0&cells=4&chemistry=lco&capacity=5000&soc=0.25&security=sealed",
    "eol_laptop_3s.toml": (
        "emulated:bq40z50?speed=0&cells=3&parallel=2&chemistry=nmc&capacity=5800&soc=0.4&security=sealed"
    ),
}


@dataclass(frozen=True)
class PackFigures:
    wall_s: float
    bus_s: float
    waits_s: float
    transactions: int


def gauge_of(transport: EmulatedTransport) -> EmulatedGauge:
    device = transport.target.devices[0x0B]  # type: ignore[attr-defined]
    assert isinstance(device, EmulatedGauge)
    return device


def one_pack(plan_file: Path, uri: str, db: ResultsDb, serial: int) -> PackFigures:
    """Test one freshly built pack; the pack's date is today and its serial new (a good pack)."""
    plan = load_plan(plan_file)
    transport = open_transport(uri)
    assert isinstance(transport, EmulatedTransport)
    with transport:
        gauge = gauge_of(transport)
        gauge.identity.manufacture_date = encode_date(datetime.datetime.now(datetime.UTC).date())
        gauge.identity.serial_number = serial
        waits: list[float] = []

        def chip_wait(seconds: float) -> None:
            waits.append(seconds)
            gauge.vpack.advance(seconds)  # the pack's own time moves; the host does not sleep

        battery = Battery(transport)
        start = time.perf_counter()
        result = run_plan(plan, battery, station="BENCH", results_db=db, sleep=chip_wait)
        wall = time.perf_counter() - start
    if result.outcome is not Outcome.PASS:
        raise SystemExit(f"{plan_file.name}: the benchmark pack did not pass: {result.message}")
    assert result.bus_time_s is not None and result.transactions is not None
    return PackFigures(wall, result.bus_time_s, sum(waits), result.transactions)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packs", type=int, default=20, help="packs per plan (default 20)")
    args = parser.parse_args(argv)
    failed = False
    with tempfile.TemporaryDirectory() as tmp, ResultsDb.open(Path(tmp) / "bench.sqlite") as db:
        for name, uri in CASES.items():
            packs = [one_pack(EXAMPLES / name, uri, db, 100 + i) for i in range(args.packs)]
            best = min(packs, key=lambda p: p.wall_s)
            median_wall = statistics.median(p.wall_s for p in packs)
            bus = best.bus_s
            ratio_best, ratio_median = best.wall_s / bus, median_wall / bus
            ok = ratio_median <= TARGET_RATIO
            failed |= not ok
            print(
                f"{name}: {best.transactions} transactions, bus {bus * 1e3:.1f} ms at 100 kHz, "
                f"wall best {best.wall_s * 1e3:.1f} ms / median {median_wall * 1e3:.1f} ms, "
                f"ratio best {ratio_best:.2f} / median {ratio_median:.2f} (target ≤ {TARGET_RATIO}), "
                f"chip waits {best.waits_s * 1e3:.0f} ms — {'PASS' if ok else 'FAIL'}"
            )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
