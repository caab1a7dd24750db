"""SMBus transactions per second over the ``buspirate:`` backend, through a real pty.

The Bus Pirate responder answers from the static register file with ``latency_s`` of added
serial latency in each direction (a USB-serial bridge), and the transport runs:

* pipelined (default): a whole transaction per serial write, one round trip;
* byte-at-a-time (``pipeline=0``): one Bus Pirate command per round trip, for comparison;
* block reads with both strategies: ``predict`` (one round trip once the count is known) and
  ``split`` (count, then the rest, in one bus transaction but two round trips).

Run ``python benchmarks/bench_buspirate.py [latency_ms] [n]``; :func:`measure` returns the
figures for ``bench_protocol.py``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from smartbatt.emulator.buspirate_pty import Mode, open_pty
from smartbatt.emulator.register_file import BATTERY_ADDRESS, RegisterFileDevice
from smartbatt.emulator.target import EmulatedBus
from smartbatt.transports.buspirate import BusPirateOptions, BusPirateTransport

VOLTAGE = 0x09
DEVICE_NAME = 0x21  # "EMU-4S3000": 10 data bytes


def _rate(options: BusPirateOptions, latency_s: float, n: int, op: Callable[[BusPirateTransport], object]) -> float:
    """Transactions per second of ``op`` over a fresh pty (mode entry not counted)."""
    with (
        open_pty(EmulatedBus([RegisterFileDevice()]), latency_s, mode=Mode.BBIO) as session,
        BusPirateTransport.open(session.path, options) as transport,
    ):
        op(transport)  # warm up (and let block=predict learn the count)
        start = time.perf_counter()
        for _ in range(n):
            op(transport)
        return n / (time.perf_counter() - start)


def measure(latency_s: float = 0.001, n: int = 200) -> dict[str, float]:
    """SMBus transactions per second for each mode; ``n`` transactions each (byte-at-a-time: n/10).

    Keys: ``read_word_pec`` and ``read_block_pec`` (10-byte block with PEC), each ``_pipelined``
    or ``_byte_at_a_time``; ``read_block_pec_split`` (the other block strategy) and
    ``read_word_pec_no_probe`` (without the stuck-bus probe).
    """
    timeout = max(0.25, 200 * latency_s)  # byte-at-a-time needs ~40 round trips per transaction
    piped = BusPirateOptions(timeout=timeout)
    split = BusPirateOptions(timeout=timeout, block="split")
    no_probe = BusPirateOptions(timeout=timeout, busprobe=False)
    by_byte = BusPirateOptions(timeout=timeout, pipeline=False)
    slow_n = max(2, n // 10)

    def word(t: BusPirateTransport) -> object:
        return t.read_word(BATTERY_ADDRESS, VOLTAGE, pec=True)

    def block(t: BusPirateTransport) -> object:
        return t.read_block(BATTERY_ADDRESS, DEVICE_NAME, pec=True)

    return {
        "read_word_pec_pipelined": _rate(piped, latency_s, n, word),
        "read_word_pec_no_probe": _rate(no_probe, latency_s, n, word),
        "read_word_pec_byte_at_a_time": _rate(by_byte, latency_s, slow_n, word),
        "read_block_pec_pipelined": _rate(piped, latency_s, n, block),
        "read_block_pec_split": _rate(split, latency_s, n, block),
        "read_block_pec_byte_at_a_time": _rate(by_byte, latency_s, slow_n, block),
    }


def main(argv: list[str]) -> int:
    latency_ms = float(argv[0]) if argv else 1.0
    n = int(argv[1]) if len(argv) > 1 else 200
    figures = measure(latency_ms / 1e3, n)
    print(f"Bus Pirate over a pty, {latency_ms:g} ms added latency per direction, n={n}")
    for key, rate in figures.items():
        print(f"  {key:32s} {rate:9.1f} tx/s  ({1e3 / rate:7.2f} ms per transaction)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
