"""SBS 1.1 subcommands: ``scan``, ``info``, ``dump``, ``read``, ``write``, ``decode``.

``decode`` works on raw values alone and never opens a device. The others open the ``--device``
adapter through the CLI context and talk to the battery at ``--address`` (PEC per ``--pec`` /
``--no-pec``, else from SpecificationInfo). Exit codes follow :mod:`smartbatt.cli.main`: 0 ok,
2 usage (unknown command name, bad raw value, value out of range, read-only command), 3 device or
bus error (the message names address, command and what failed). ``dump`` exits 3 only when no
command answered; a partial dump is printed with each failure in place and a warning on stderr.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
from collections.abc import Iterator
from contextlib import contextmanager

from rich.table import Table

from smartbatt.cli.context import CliContext, UsageError
from smartbatt.cli.main import EXIT_DEVICE, EXIT_OK
from smartbatt.errors import AccessDenied, DecodeError, RangeError, UnknownCommand
from smartbatt.sbs.battery import Battery, Snapshot
from smartbatt.sbs.codecs import SpecInfo, unit_of
from smartbatt.sbs.command import Command
from smartbatt.sbs.commands import sbs_table
from smartbatt.sbs.decode import Reading, decode
from smartbatt.sbs.scan import scan

#: commands ``info`` shows, in this order: identity first, then the present state.
INFO_COMMANDS = (
    "ManufacturerName",
    "DeviceName",
    "DeviceChemistry",
    "SerialNumber",
    "ManufactureDate",
    "SpecificationInfo",
    "DesignCapacity",
    "DesignVoltage",
    "FullChargeCapacity",
    "CycleCount",
    "Voltage",
    "Current",
    "Temperature",
    "RelativeStateOfCharge",
    "RemainingCapacity",
    "BatteryStatus",
    "BatteryMode",
)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the SBS subcommands to the ``smartbatt`` parser."""
    p = sub.add_parser("scan", help="find devices on the bus and name batteries, chargers, selectors")
    p.set_defaults(handler=cmd_scan)

    p = sub.add_parser("info", help="identity and present state of the battery")
    p.set_defaults(handler=cmd_info)

    p = sub.add_parser("dump", help="read every SBS command (table, --json or --csv)")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="one JSON object keyed by command name")
    fmt.add_argument("--csv", action="store_true", help="CSV: code,name,raw,value,unit,error")
    p.set_defaults(handler=cmd_dump)

    p = sub.add_parser("read", help="read one command (name or code, e.g. Voltage or 0x09)")
    p.add_argument("cmd", metavar="CMD")
    p.add_argument("--json", action="store_true", help="print {raw, value, unit} as JSON")
    p.set_defaults(handler=cmd_read)

    p = sub.add_parser("write", help="write a value to a writable command, then read it back")
    p.add_argument("cmd", metavar="CMD")
    p.add_argument("value", metavar="VALUE", help="in the command's unit (mAh, min, mA) or a raw word for BatteryMode")
    p.set_defaults(handler=cmd_write)

    p = sub.add_parser(
        "decode",
        help="decode a raw value without a device",
        description="Decode RAW as CMD. RAW is a number (0x3E80, 16000) or bytes in wire order, "
        "low byte first (80 3E); for block commands a leading byte count is accepted.",
    )
    p.add_argument("cmd", metavar="CMD")
    p.add_argument("raw", metavar="RAW", nargs="+")
    p.add_argument(
        "--capacity-mode", action="store_true", help="the pack reports 10 mW / 10 mWh (BatteryMode.CAPACITY_MODE = 1)"
    )
    p.add_argument("--spec-info", metavar="RAW", help="the pack's SpecificationInfo word, for VScale/IPScale")
    p.add_argument("--json", action="store_true", help="print {raw, value, unit} as JSON")
    p.set_defaults(handler=cmd_decode)


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------


@contextmanager
def _usage_errors(*kinds: type[Exception]) -> Iterator[None]:
    """Turn errors that are the user's input (not the device's) into exit code 2."""
    try:
        yield
    except kinds as exc:
        raise UsageError(str(exc)) from None


def _command(text: str) -> Command:
    with _usage_errors(UnknownCommand):
        return sbs_table().lookup(text)


def _battery(ctx: CliContext) -> Battery:
    return Battery(ctx.transport(), address=ctx.address, pec=ctx.pec)


def _emit(ctx: CliContext, text: str) -> None:
    ctx.console.file.write(text if text.endswith("\n") else text + "\n")


def _reading_line(reading: Reading) -> str:
    return f"{reading.name}: {reading.text} (raw {reading.raw_text})"


def _print_reading(ctx: CliContext, reading: Reading, as_json: bool) -> None:
    if as_json:
        _emit(ctx, json.dumps({reading.name: reading.to_json()}, indent=2))
        return
    _emit(ctx, _reading_line(reading))
    for flag in reading.flags:
        _emit(ctx, f"  {flag.short:<5} {flag.name}: {flag.description}")


def _readings_table(snapshot: Snapshot, names: tuple[str, ...] | None = None) -> Table:
    table = Table(show_edge=False, box=None, pad_edge=False)
    table.add_column("Code", justify="right", no_wrap=True)
    table.add_column("Command", no_wrap=True)
    table.add_column("Value", overflow="fold", min_width=30)
    table.add_column("Raw", overflow="fold", max_width=24)
    sbs = sbs_table()
    for name in names or tuple(snapshot):
        cmd = sbs.by_name(name)
        reading = snapshot.readings.get(name)
        if reading is not None:
            table.add_row(f"0x{cmd.code:02X}", cmd.name, reading.text, reading.raw_text)
        elif name in snapshot.errors:
            table.add_row(f"0x{cmd.code:02X}", cmd.name, f"[red]error: {snapshot.errors[name]}[/red]", "")
    return table


def _check_snapshot(ctx: CliContext, snapshot: Snapshot) -> None:
    """Raise the first error if nothing answered; warn on stderr about partial failures."""
    if not snapshot.readings and snapshot.errors:
        raise next(iter(snapshot.errors.values()))
    if snapshot.errors:
        ctx.err.print(
            f"smartbatt: warning: {len(snapshot.errors)} of {len(snapshot.errors) + len(snapshot.readings)} "
            f"commands failed (first: {next(iter(snapshot.errors))})"
        )


# ------------------------------------------------------------------------------------------------
# handlers
# ------------------------------------------------------------------------------------------------


def cmd_scan(args: argparse.Namespace, ctx: CliContext) -> int:
    found = scan(ctx.transport())
    if not found:
        ctx.err.print(
            "smartbatt: error: no device acknowledged any address 0x03..0x77 — check SDA/SCL, GND, "
            "pull-ups and that the pack is awake (connect the charger to wake it)"
        )
        return EXIT_DEVICE
    table = Table(show_edge=False, box=None, pad_edge=False)
    table.add_column("Address", no_wrap=True)
    table.add_column("Role", no_wrap=True)
    table.add_column("Device", overflow="fold")
    for item in found:
        table.add_row(f"0x{item.address:02X}", item.role, item.description)
    ctx.console.print(table)
    return EXIT_OK


def cmd_info(args: argparse.Namespace, ctx: CliContext) -> int:
    snapshot = _battery(ctx).snapshot()
    _check_snapshot(ctx, snapshot)
    names = tuple(n for n in INFO_COMMANDS if n in snapshot.readings or n in snapshot.errors)
    ctx.console.print(_readings_table(snapshot, names))
    return EXIT_OK


def cmd_dump(args: argparse.Namespace, ctx: CliContext) -> int:
    snapshot = _battery(ctx).snapshot()
    _check_snapshot(ctx, snapshot)
    if args.json:
        _emit(ctx, json.dumps(snapshot.to_json(), indent=2))
    elif args.csv:
        _emit(ctx, _csv(snapshot))
    else:
        ctx.console.print(_readings_table(snapshot))
    return EXIT_OK


def _csv(snapshot: Snapshot) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["code", "name", "raw", "value", "unit", "error"])
    sbs = sbs_table()
    for name in snapshot:
        cmd = sbs.by_name(name)
        reading = snapshot.readings.get(name)
        if reading is not None:
            plain = reading.to_json()["value"]
            value = reading.meaning or (plain if isinstance(plain, (int, float, str)) else json.dumps(plain))
            writer.writerow([f"0x{cmd.code:02X}", name, reading.raw_text, value, reading.unit, ""])
        else:
            unit = unit_of(cmd, bool(snapshot.capacity_mode))
            writer.writerow([f"0x{cmd.code:02X}", name, "", "", unit, str(snapshot.errors[name])])
    return out.getvalue()


def cmd_read(args: argparse.Namespace, ctx: CliContext) -> int:
    cmd = _command(args.cmd)
    if not cmd.readable:
        raise UsageError(f"{cmd.name} is write-only")
    reading = _battery(ctx).read(cmd.name)
    _print_reading(ctx, reading, args.json)
    return EXIT_OK


def _number(text: str) -> int | float:
    try:
        return int(text, 0)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise UsageError(f"{text!r} is not a number (write 300, -1500, 0x6001 or 2.5)") from None


def cmd_write(args: argparse.Namespace, ctx: CliContext) -> int:
    cmd = _command(args.cmd)
    value = _number(args.value)
    if not cmd.writable:
        writable = ", ".join(c.name for c in sbs_table().writable())
        raise UsageError(f"{cmd.name} is read-only (writable: {writable})")
    # out of range / not a whole raw step is the user's input; a failed read-back is the device's
    with _usage_errors(RangeError, AccessDenied):
        reading = _battery(ctx).write(cmd.name, value)
    if reading is None:
        _emit(ctx, f"{cmd.name}: wrote {args.value} (not verifiable by reading back)")
    else:
        _emit(ctx, f"{cmd.name}: wrote and verified {reading.text} (raw {reading.raw_text})")
    return EXIT_OK


def cmd_decode(args: argparse.Namespace, ctx: CliContext) -> int:
    cmd = _command(args.cmd)
    with _usage_errors(DecodeError):
        spec: SpecInfo | None = None
        if args.spec_info is not None:
            given = decode("SpecificationInfo", args.spec_info).value
            if not isinstance(given, SpecInfo):
                raise DecodeError(f"--spec-info {args.spec_info} is a filler value, not a SpecificationInfo")
            spec = given
        reading = decode(cmd, " ".join(args.raw), capacity_mode=args.capacity_mode, spec_info=spec)
    _print_reading(ctx, reading, args.json)
    return EXIT_OK
