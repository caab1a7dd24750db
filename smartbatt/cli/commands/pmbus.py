"""``smartbatt pmbus``: read, status, info, dump and clear-faults for a PMBus device.

Usage::

    smartbatt --address 0x40 pmbus info
    smartbatt --address 0x40 pmbus --page 1 read READ_VOUT READ_IOUT
    smartbatt --address 0x40 pmbus status          # exit code 1 when STATUS_WORD is not 0
    smartbatt --address 0x40 pmbus dump --json
    smartbatt --address 0x40 pmbus clear-faults

The device address comes from the global ``--address``. Its default, 0x0B, is the smart-battery
address (SMBus reserves it for the battery; sbs.md §6), where no PMBus device can be, so
``pmbus`` refuses it with a usage error that says to pass ``--address``. ``--pec``/``--no-pec``
force PEC; by default it follows the device's CAPABILITY register.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from typing import Any

from smartbatt.cli.context import CliContext, UsageError
from smartbatt.cli.main import EXIT_CHECK_FAILED, EXIT_OK, EXIT_USAGE
from smartbatt.errors import UnknownCommand
from smartbatt.pmbus.commands import BitField, FieldValue, PMBusCommand, Value, load_table
from smartbatt.pmbus.device import ALL_PAGES, MAX_PAGE, DumpEntry, PMBusDevice, PMBusReading, PMBusStatus
from smartbatt.pmbus.formats import VoutMode

#: the global ``--address`` default: the smart battery, never a PMBus device.
BATTERY_ADDRESS = 0x0B


def register(sub: Any) -> None:
    """Add the ``pmbus`` command group to the root parser's subcommands."""
    parser = sub.add_parser(
        "pmbus",
        help="PMBus power devices: read, status, info, dump, clear-faults",
        description="Talk to a PMBus device (converter, hot-swap controller) at --address.",
        epilog="example: smartbatt --address 0x40 pmbus --page 1 read READ_VOUT",
    )
    parser.add_argument(
        "--page", type=_page, default=None, help=f"select this page (0..{MAX_PAGE}) first; 'all' for clear-faults"
    )
    parser.set_defaults(handler=_no_action, pmbus_parser=parser)
    actions = parser.add_subparsers(dest="pmbus_action", metavar="ACTION")

    read = actions.add_parser("read", help="read and decode commands", description="Read PMBus commands by name.")
    read.add_argument("names", nargs="+", metavar="NAME", help="command name (READ_VOUT) or code (0x8B)")
    read.add_argument("--json", action="store_true", help="print JSON")
    read.set_defaults(handler=cmd_read)

    status = actions.add_parser("status", help="decode STATUS_WORD and its detail registers (exit 1 if any bit is set)")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(handler=cmd_status)

    info = actions.add_parser("info", help="manufacturer, model, revisions and capabilities")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(handler=cmd_info)

    dump = actions.add_parser("dump", help="read every standard command the device supports")
    dump.add_argument("--json", action="store_true", help="print JSON")
    dump.set_defaults(handler=cmd_dump)

    clear = actions.add_parser("clear-faults", help="send CLEAR_FAULTS (clears latched status bits)")
    clear.set_defaults(handler=cmd_clear_faults)


def _page(text: str) -> int:
    if text.lower() == "all":
        return ALL_PAGES
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a page number") from None
    if not 0 <= value <= MAX_PAGE and value != ALL_PAGES:
        raise argparse.ArgumentTypeError(f"page {value} is outside 0..{MAX_PAGE}")
    return value


def _no_action(args: argparse.Namespace, ctx: CliContext) -> int:
    args.pmbus_parser.print_help()
    return EXIT_USAGE


def _device(args: argparse.Namespace, ctx: CliContext) -> PMBusDevice:
    if ctx.address == BATTERY_ADDRESS:
        raise UsageError(
            "pmbus needs the PMBus device's address: smartbatt --address 0x40 pmbus ... "
            "(0x0B, the default, is the smart battery's address)"
        )
    return PMBusDevice(ctx.transport(), ctx.address, pec=ctx.pec)


def _read_page(args: argparse.Namespace) -> int | None:
    if args.page == ALL_PAGES:
        raise UsageError("--page all is only valid for clear-faults; read one page at a time")
    page: int | None = args.page
    return page


# --- handlers ------------------------------------------------------------------------------------


def cmd_read(args: argparse.Namespace, ctx: CliContext) -> int:
    """``pmbus read NAME...``: one line per command, or JSON."""
    table = load_table()
    try:
        commands = [table.get(name) for name in args.names]
    except UnknownCommand as exc:
        raise UsageError(str(exc)) from None
    page = _read_page(args)
    device = _device(args, ctx)
    readings = [device.read(command.code, page) for command in commands]
    if args.json:
        _print_json({"address": ctx.address, "page": page, "readings": [_reading_json(r) for r in readings]})
    else:
        width = max(len(c.name) for c in commands)
        for reading in readings:
            _line(ctx, f"{reading.name:<{width}}  {reading.text}")
    return EXIT_OK


def cmd_status(args: argparse.Namespace, ctx: CliContext) -> int:
    """``pmbus status``: the set bits with their meaning; exit 1 when the summary is not 0."""
    page = _read_page(args)
    status = _device(args, ctx).status(page)
    if args.json:
        _print_json(_status_json(status, ctx.address))
    else:
        _print_status(ctx, status)
    return EXIT_OK if status.ok else EXIT_CHECK_FAILED


def cmd_info(args: argparse.Namespace, ctx: CliContext) -> int:
    """``pmbus info``: identity and capabilities."""
    device = _device(args, ctx)
    identity = device.identify()
    if args.json:
        _print_json(
            {
                "address": ctx.address,
                "mfr_id": identity.mfr_id,
                "mfr_model": identity.mfr_model,
                "mfr_revision": identity.mfr_revision,
                "pmbus_revision": _fields_json(identity.pmbus_revision),
                "capability": _fields_json(identity.capability),
                "pec_in_use": device.pec,
            }
        )
        return EXIT_OK
    rows = [
        ("Address", f"0x{ctx.address:02X}"),
        ("Manufacturer", _or_unsupported(identity.mfr_id)),
        ("Model", _or_unsupported(identity.mfr_model)),
        ("Revision", _or_unsupported(identity.mfr_revision)),
        ("PMBus revision", _fields_text(identity.pmbus_revision)),
    ]
    rows.extend((v.field.label or v.name, v.text) for v in identity.capability or ())
    if identity.capability is None:
        rows.append(("Capability", "not supported"))
    rows.append(("PEC in use", "yes" if device.pec else "no"))
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        _line(ctx, f"{label:<{width}}  {value}")
    return EXIT_OK


def cmd_dump(args: argparse.Namespace, ctx: CliContext) -> int:
    """``pmbus dump``: every readable command of the table; unsupported ones are marked."""
    page = _read_page(args)
    entries = _device(args, ctx).dump(page)
    unsupported = sum(1 for e in entries if e.error == "not supported")
    if args.json:
        _print_json({"address": ctx.address, "page": page, "commands": [_entry_json(e) for e in entries]})
    else:
        width = max(len(e.command.name) for e in entries)
        for entry in entries:
            shown = entry.reading.text if entry.reading is not None else f"({entry.error})"
            _line(ctx, f"0x{entry.command.code:02X}  {entry.command.name:<{width}}  {shown}")
    if unsupported:
        ctx.err.print(
            f"{unsupported} commands are not supported; the device flags each in STATUS_CML "
            "(smartbatt pmbus clear-faults clears it)",
            markup=False,
        )
    return EXIT_OK


def cmd_clear_faults(args: argparse.Namespace, ctx: CliContext) -> int:
    """``pmbus clear-faults``: send CLEAR_FAULTS (the user asked for it)."""
    device = _device(args, ctx)
    device.clear_faults(args.page)
    where = "" if args.page is None else (" (all pages)" if args.page == ALL_PAGES else f" (page {args.page})")
    _line(ctx, f"CLEAR_FAULTS sent to 0x{ctx.address:02X}{where}")
    return EXIT_OK


# --- text output ---------------------------------------------------------------------------------


def _line(ctx: CliContext, text: str) -> None:
    # device strings (MFR_*) are data, never rich markup
    ctx.console.print(text, markup=False, highlight=False)


def _or_unsupported(text: str | None) -> str:
    return "not supported" if text is None else text


def _fields_text(fields: Iterable[FieldValue] | None) -> str:
    if fields is None:
        return "not supported"
    return ", ".join(f"{v.field.label or v.name} {v.text}" for v in fields)


def _print_status(ctx: CliContext, status: PMBusStatus) -> None:
    where = "" if status.page is None else f" (page {status.page})"
    summary = status.summary
    raw = summary.raw or 0
    digits = 4 if summary.name == "STATUS_WORD" else 2
    _line(ctx, f"{summary.name} 0x{raw:0{digits}X}{where}")
    if status.ok:
        _line(ctx, "  no faults or warnings; output on")
        return
    _print_flags(ctx, summary.flags)
    for detail in status.details:
        if detail.raw is None:
            _line(ctx, f"{detail.name}: {detail.error}")
            continue
        _line(ctx, f"{detail.name} 0x{detail.raw:02X}")
        _print_flags(ctx, detail.flags)


def _print_flags(ctx: CliContext, flags: Iterable[BitField]) -> None:
    for flag in flags:
        _line(ctx, f"  {flag.name:<26} {flag.description}")


# --- JSON output ---------------------------------------------------------------------------------


def _print_json(data: Any) -> None:
    # plain stdout, not the rich console: JSON must reach pipes byte for byte
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def _value_json(value: Value) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, VoutMode):
        return {
            "raw": value.raw,
            "mode": value.kind.value,
            "parameter": value.parameter,
            "exponent": value.exponent,
            "relative": value.relative,
        }
    if isinstance(value, tuple):
        return _fields_json(value)
    return value


def _fields_json(fields: Iterable[FieldValue] | None) -> Any:
    if fields is None:
        return None
    return {v.name: {"value": v.value, "text": v.text} for v in fields}


def _reading_json(reading: PMBusReading) -> dict[str, Any]:
    return {
        "code": reading.code,
        "name": reading.name,
        "raw": reading.raw.hex() if isinstance(reading.raw, bytes) else reading.raw,
        "value": _value_json(reading.value),
        "unit": reading.unit,
        "text": reading.text,
    }


def _entry_json(entry: DumpEntry) -> dict[str, Any]:
    if entry.reading is not None:
        return _reading_json(entry.reading)
    command: PMBusCommand = entry.command
    return {"code": command.code, "name": command.name, "error": entry.error}


def _status_json(status: PMBusStatus, address: int) -> dict[str, Any]:
    registers = [status.summary, *status.details]
    return {
        "address": address,
        "page": status.page,
        "ok": status.ok,
        "flags": status.flags(),
        "registers": [
            {"name": r.name, "raw": r.raw, "bits": list(r.flag_names), **({"error": r.error} if r.error else {})}
            for r in registers
        ],
    }
