"""``smartbatt`` command line: global options, subcommand dispatch, exit codes, one-line errors.

Exit codes: 0 ok, 1 a check failed (e.g. a factory test FAIL), 2 usage error, 3 device or bus
error, 130 interrupted. Errors are one line on stderr that names the transaction; a traceback is
never shown (``-vv`` shows it, for bug reports).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from collections.abc import Sequence

from smartbatt import __version__
from smartbatt.cli.context import CliContext, UsageError
from smartbatt.errors import SmartBattError, UriError
from smartbatt.uri import DEFAULT_URI

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_USAGE = 2
EXIT_DEVICE = 3
EXIT_INTERRUPTED = 130

#: subcommand modules; each has ``register(subparsers)`` and sets ``handler(args, ctx) -> int``.
COMMAND_MODULES: tuple[str, ...] = (
    "smartbatt.cli.commands.sbs",
    "smartbatt.cli.commands.pmbus",
    "smartbatt.cli.commands.emulate",
    "smartbatt.cli.commands.monitor",
    "smartbatt.cli.commands.monitor_store",
    "smartbatt.cli.commands.gauge",
    "smartbatt.cli.commands.eol",
    "smartbatt.cli.commands.model",
)


def _address(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (write 0x0B or 11)") from None
    if not 0x03 <= value <= 0x77:
        raise argparse.ArgumentTypeError(f"address 0x{value:02X} is outside the 7-bit range 0x03..0x77")
    return value


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="smartbatt", description="Talk to smart batteries (SBS 1.1), TI gauges and PMBus devices.")
    parser.add_argument("--version", action="version", version=f"smartbatt {__version__}")
    parser.add_argument(
        "--device",
        "-d",
        default=os.environ.get("SMARTBATT_DEVICE", DEFAULT_URI),
        metavar="URI",
        help="adapter URI: emulated: (default), i2c:1, i2c:/dev/i2c-1, buspirate:/dev/ttyUSB0 "
        "(or set SMARTBATT_DEVICE)",
    )
    parser.add_argument("--address", "-a", type=_address, default=0x0B, help="7-bit device address (default 0x0B)")
    pec = parser.add_mutually_exclusive_group()
    pec.add_argument("--pec", dest="pec", action="store_const", const=True, default=None, help="force PEC on")
    pec.add_argument("--no-pec", dest="pec", action="store_const", const=False, help="force PEC off")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="log every bus transaction (-vv: tracebacks)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``smartbatt`` console script. Returns (and exits with) the exit code."""
    code = run(argv)
    if argv is None:
        sys.exit(code)
    return code


def run(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        print(f"smartbatt: usage error: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return EXIT_USAGE
    ctx = CliContext(args)
    try:
        return int(args.handler(args, ctx))
    except (UsageError, UriError) as exc:
        print(f"smartbatt: usage error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except SmartBattError as exc:
        if args.verbose > 1:
            traceback.print_exc()
        print(f"smartbatt: error: {exc}", file=sys.stderr)
        return EXIT_DEVICE
    except KeyboardInterrupt:
        print("smartbatt: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_OK
    finally:
        try:
            ctx.close()
        except SmartBattError as exc:
            print(f"smartbatt: error while closing: {exc}", file=sys.stderr)
