"""``smartbatt-gui [--device URI] [--smoke]``: the desktop app's entry point.

Checks before anything Qt is imported: without PySide6/pyqtgraph it prints how to install the
GUI extra and exits 2; on Linux without a display (no ``DISPLAY``/``WAYLAND_DISPLAY`` and no
``QT_QPA_PLATFORM`` chosen) it says so and runs the terminal monitor instead.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

INSTALL_HINT = "The desktop app needs PySide6 and pyqtgraph: pip install 'smartbatt[gui]'"
EXIT_USAGE = 2


def _address(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (write 0x0B or 11)") from None
    if not 0x03 <= value <= 0x77:
        raise argparse.ArgumentTypeError(f"address 0x{value:02X} is outside the 7-bit range 0x03..0x77")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="smartbatt-gui", description="smartbatt desktop app")
    parser.add_argument(
        "--device", "-d", default=os.environ.get("SMARTBATT_DEVICE"), metavar="URI",
        help="adapter URI (default: the last device used, else an emulated pack)",
    )
    parser.add_argument("--address", "-a", type=_address, default=0x0B, help="battery address (default 0x0B)")
    pec = parser.add_mutually_exclusive_group()
    pec.add_argument("--pec", dest="pec", action="store_const", const=True, default=None, help="force PEC on")
    pec.add_argument("--no-pec", dest="pec", action="store_const", const=False, help="force PEC off")
    parser.add_argument("--profile", default="", help="chip profile (default: detect from DeviceName)")
    parser.add_argument("--smoke", action="store_true", help="open every panel, check for errors, exit (0 = ok)")
    parser.add_argument("--smoke-timeout", type=float, default=30.0, help="seconds allowed per smoke step")
    parser.add_argument("--settings", type=Path, help="use this INI file instead of the platform settings")
    parser.add_argument("--recordings", type=Path, help="recording database (default: the app-data folder)")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log to stderr (-vv: debug)")
    return parser


def has_display() -> bool:
    """False only on Linux/BSD without a display server and without a chosen Qt platform."""
    if os.name == "nt" or sys.platform == "darwin":
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or os.environ.get("QT_QPA_PLATFORM"))


def gui_available() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in ("PySide6", "pyqtgraph"))


def binding_problem() -> str:
    """A Qt binding known to break on this Python, as one sentence ("" if none).

    shiboken6 6.12.0 returns ``None`` from every void method without taking a reference: on
    Python < 3.12 (where ``None`` is not immortal) its reference count falls by one per Qt call
    until the interpreter aborts with "none_dealloc" — within minutes in a live app. Measured
    here: −1.00 per ``QLabel.setText`` on 6.12.0, 0.00 on 6.11.3.
    """
    from importlib.metadata import PackageNotFoundError, version

    try:
        shiboken = version("shiboken6")
    except PackageNotFoundError:
        return ""
    major, minor = sys.version_info[0], sys.version_info[1]
    if shiboken.startswith("6.12.0") and (major, minor) < (3, 12):
        return (
            f"shiboken6 {shiboken} corrupts reference counts on Python {major}.{minor} and crashes long "
            "sessions: pip install 'PySide6-Essentials<6.12'"
        )
    return ""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``smartbatt-gui``; returns (and exits with) the exit code."""
    code = run(argv)
    if argv is None:
        sys.exit(code)
    return code


def run(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.verbose:
        logging.basicConfig(level=logging.DEBUG if args.verbose > 1 else logging.INFO, stream=sys.stderr)
    if not gui_available():
        print(INSTALL_HINT, file=sys.stderr)
        return EXIT_USAGE
    problem = binding_problem()
    if problem:
        print(f"warning: {problem}", file=sys.stderr)
    if not has_display():
        print("No display found (DISPLAY/WAYLAND_DISPLAY unset): starting the terminal monitor instead.",
              file=sys.stderr)
        from smartbatt.cli.main import main as cli_main

        cli_args = ["--device", args.device or "emulated:bq4050?scenario=laptop", "--address", hex(args.address)]
        if args.pec is not None:
            cli_args.append("--pec" if args.pec else "--no-pec")
        return cli_main([*cli_args, "monitor"])
    from gui.app import Options
    from gui.app import run as run_app

    options = Options(
        device=args.device,
        address=args.address,
        pec=args.pec,
        profile=args.profile,
        smoke=args.smoke,
        settings=args.settings,
        smoke_timeout_s=args.smoke_timeout,
        recordings=args.recordings,
    )
    return run_app(options)


if __name__ == "__main__":
    main()
