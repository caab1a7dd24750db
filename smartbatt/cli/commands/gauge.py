"""TI gauge subcommands: ``profiles``, ``flags``, ``mac``, ``cells``, ``unseal``, ``fullaccess``,
``seal``, ``df get|set|list|export|import``, ``flashstream``.

The chip profile comes from ``--profile NAME`` (optionally ``--variant R2``) or is detected:
DeviceName, and the MAC DeviceType unless ``--no-mac-probe`` forbids the one ManufacturerAccess
write that costs (clones and non-TI packs then stay in generic SBS mode, which never writes
ManufacturerAccess). The profile and the security state are printed with every gauge command.

Keys: ``--key K`` works but leaves the key in the shell history. Prefer ``--key -`` (asked for
without echo) or the environment variable ``SMARTBATT_KEY`` (the key of the command you run). With
none of them the profile's published default key is used. Key text: ``WORD1:WORD2`` in sending
order (``0414:3672``) or one 32-bit hex number, high word first (``0x04143672``). Keys are never
printed, and ``-v`` shows the key writes as ``[redacted]``.

Files: ``df export``/``df import`` choose the format by name — ``*.gg.csv`` (bqStudio data-memory
export), ``*.fs`` (export only: TI FlashStream; run one with ``smartbatt flashstream``), anything
else our JSON golden image. ``df import`` prints the differences first, backs up the present values
next to the file (or in ``--backup-dir``), then writes; ``--dry-run`` stops after the differences.

Exit codes as :mod:`smartbatt.cli.main`: 0 ok, 2 usage (bad value, unknown name), 3 device, bus or
security error (one line naming what failed; an interrupted import lists what was written).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.table import Table

from smartbatt.cli.context import CliContext, UsageError
from smartbatt.cli.main import EXIT_OK
from smartbatt.errors import DecodeError, RangeError, SmartBattError, UnknownCommand
from smartbatt.gauge import security
from smartbatt.gauge.dataflash import DataFlash, FsStep, ImportResult, plan_flashstream
from smartbatt.gauge.gauge import Gauge
from smartbatt.profiles.loader import available_profiles, load_profile
from smartbatt.profiles.schema import DFType, DFValue, Profile
from smartbatt.sbs.battery import Battery

#: environment variable holding the key of the ``unseal`` / ``fullaccess`` command being run.
KEY_ENV = "SMARTBATT_KEY"


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the gauge subcommands to the ``smartbatt`` parser."""
    chip = argparse.ArgumentParser(add_help=False)
    chip.add_argument("--profile", metavar="NAME", help="chip profile (default: detect; see `smartbatt profiles`)")
    chip.add_argument("--variant", metavar="NAME", help="firmware variant of --profile (e.g. R2)")
    chip.add_argument(
        "--no-mac-probe",
        action="store_true",
        help="detect by DeviceName only: never write ManufacturerAccess to read the DeviceType",
    )

    p = sub.add_parser("profiles", help="list the chip profiles (or show one)")
    p.add_argument("name", nargs="?", metavar="NAME", help="show this profile in detail")
    p.set_defaults(handler=cmd_profiles)

    p = sub.add_parser("flags", parents=[chip], help="every status word, set bits highlighted with descriptions")
    p.add_argument("--set-only", action="store_true", help="list only the bits that are set")
    p.add_argument("--json", action="store_true", help="one JSON object: register -> raw, set flags, error")
    p.set_defaults(handler=cmd_flags)

    p = sub.add_parser("mac", parents=[chip], help="send a ManufacturerAccess subcommand (read and decode its result)")
    p.add_argument("subcommand", metavar="NAME", help="subcommand name or code (DeviceType, 0x0054)")
    p.add_argument("--data", metavar="HEX", help="send these data bytes with it (through 0x44)")
    p.set_defaults(handler=cmd_mac)

    p = sub.add_parser("cells", parents=[chip], help="cell voltages, read the fastest way the chip offers")
    p.add_argument("--method", choices=("words", "dastatus1"), help="force one way of reading")
    p.add_argument("--json", action="store_true", help="print a JSON list of mV")
    p.set_defaults(handler=cmd_cells)

    for name, what in (("unseal", "SEALED -> UNSEALED"), ("fullaccess", "UNSEALED -> FULL ACCESS")):
        p = sub.add_parser(name, parents=[chip], help=f"{what} with a key, confirmed from the security bits")
        p.add_argument(
            "--key",
            metavar="K",
            help=f"key (WORD1:WORD2 or 0xHHHHLLLL); '-' asks for it; default ${KEY_ENV}, else the published default",
        )
        p.set_defaults(handler=cmd_unseal if name == "unseal" else cmd_fullaccess)

    p = sub.add_parser("seal", parents=[chip], help="seal the gauge and confirm it")
    p.set_defaults(handler=cmd_seal)

    df = sub.add_parser("df", help="data flash: get, set, list, export, import")
    actions = df.add_subparsers(dest="df_action", metavar="ACTION", parser_class=type(df))
    a = actions.add_parser("get", parents=[chip], help="read one entry (Class:Subclass:Name)")
    a.add_argument("name", metavar="NAME")
    a.set_defaults(handler=cmd_df_get)
    a = actions.add_parser("set", parents=[chip], help="write one entry with range check and read-back")
    a.add_argument("name", metavar="NAME")
    a.add_argument("value", metavar="VALUE", help="as bqStudio shows it: 4200, 55.0, ff (hex entries), text")
    a.set_defaults(handler=cmd_df_set)
    a = actions.add_parser("list", parents=[chip], help="the data-flash map (--profile: no device; --read: values)")
    a.add_argument("--read", action="store_true", help="also read every addressed entry")
    a.set_defaults(handler=cmd_df_list)
    a = actions.add_parser("export", parents=[chip], help="save the data flash: FILE.json, FILE.gg.csv or FILE.fs")
    a.add_argument("file", metavar="FILE")
    a.set_defaults(handler=cmd_df_export)
    a = actions.add_parser("import", parents=[chip], help="program a golden image (.json) or a .gg.csv")
    a.add_argument("file", metavar="FILE")
    a.add_argument("--dry-run", action="store_true", help="show the differences, write nothing")
    a.add_argument("--backup-dir", metavar="DIR", help="where the backup and journal go (default: beside FILE)")
    a.set_defaults(handler=cmd_df_import)
    df.set_defaults(handler=_df_usage)

    p = sub.add_parser("flashstream", parents=[chip], help="run a TI FlashStream file (.bq.fs/.df.fs, SMBus)")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--dry-run", action="store_true", help="list what the file does; needs no device")
    p.set_defaults(handler=cmd_flashstream)


# --- helpers ------------------------------------------------------------------------------------------


def _df_usage(args: argparse.Namespace, ctx: CliContext) -> int:
    raise UsageError("df needs an action: get, set, list, export or import")


def _gauge(args: argparse.Namespace, ctx: CliContext) -> Gauge:
    battery = Battery(ctx.transport(), address=ctx.address, pec=ctx.pec)
    try:
        gauge = Gauge(battery, args.profile, variant=args.variant, allow_mac=not args.no_mac_probe)
    except UnknownCommand as exc:
        raise UsageError(str(exc)) from None
    return gauge


def _header(gauge: Gauge, ctx: CliContext) -> None:
    """The profile (and why), and the security state — shown by every gauge command."""
    p = gauge.profile
    name = p.name + (f" {p.variant}" if p.variant else "")
    how = f" ({gauge.detection.reason})" if gauge.detection is not None else " (--profile)"
    ctx.console.print(f"[bold]{name}[/bold]{how}")
    note = gauge.bus_speed_note()
    if note:
        ctx.err.print(f"warning: {note}")
    try:
        state = gauge.security_state()
    except SmartBattError as exc:
        ctx.console.print(f"security: [red]unknown[/red] ({exc})")
        return
    inferred = " (inferred)" if state.inferred else ""
    ctx.console.print(f"security: [bold]{state}[/bold]{inferred}")


def _usage_errors(fn: Callable[[], Any]) -> Any:
    """Value, range and name errors are the user's input: exit 2, not 3."""
    try:
        return fn()
    except (RangeError, DecodeError, UnknownCommand) as exc:
        raise UsageError(str(exc)) from None


def _show_value(value: DFValue, entry_type: DFType, size: int) -> str:
    if entry_type is DFType.H and isinstance(value, int):
        return f"0x{value:0{2 * size}X}"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


# --- profiles -----------------------------------------------------------------------------------------


def cmd_profiles(args: argparse.Namespace, ctx: CliContext) -> int:
    if args.name:
        _show_profile(load_profile(args.name), ctx)
        return EXIT_OK
    table = Table(title="Chip profiles", title_justify="left")
    table.add_column("name", no_wrap=True)
    for col in ("chip", "DeviceType", "MAC", "security", "data flash", "variants"):
        table.add_column(col)
    for name in available_profiles():
        p = load_profile(name)
        addressed = sum(1 for e in p.data_flash if e.address is not None)
        table.add_row(
            p.name,
            p.title,
            ", ".join(f"0x{d:04X}" for d in p.identity.device_types) or "-",
            str(len(p.mac)) if p.mac else "never",
            p.security.method.value,
            f"{p.data_flash_access.method.value}: {addressed}/{len(p.data_flash)} addressed",
            ", ".join(v.name for v in p.variants) or "-",
        )
    ctx.console.print(table)
    return EXIT_OK


def _show_profile(p: Profile, ctx: CliContext) -> None:
    ctx.console.print(f"[bold]{p.name}[/bold] — {p.title}  (file {p.file})")
    ctx.console.print("sources: " + "; ".join(p.sources))
    ctx.console.print(
        f"bus: {p.bus.kind.value}, address {p.bus.address if p.bus.address is None else hex(p.bus.address)}"
    )
    ctx.console.print(f"security: {p.security.method.value}; SHA-1 authentication: {p.security.sha1_authentication}")
    ctx.console.print(f"status registers: {', '.join(p.status_sources) or '-'}")
    ctx.console.print(f"MAC subcommands: {len(p.mac)}; layouts: {', '.join(p.layouts) or '-'}")
    addressed = [e for e in p.data_flash if e.address is not None]
    ctx.console.print(
        f"data flash: {p.data_flash_access.method.value}, {len(addressed)} of {len(p.data_flash)} addressed"
    )


# --- flags --------------------------------------------------------------------------------------------


def cmd_flags(args: argparse.Namespace, ctx: CliContext) -> int:
    gauge = _gauge(args, ctx)
    words = gauge.status_words()
    if args.json:
        out: dict[str, Any] = {}
        for name, w in words.items():
            if w.decoded is None:
                out[name] = {"error": str(w.error), "source": w.source}
            else:
                out[name] = {
                    "raw": w.decoded.raw,
                    "source": w.source,
                    "set": [f.name for f in w.decoded.active],
                    "groups": {g.name: g.meaning for g in w.decoded.groups},
                    "unknown_bits": list(w.decoded.unknown_bits),
                }
        ctx.console.print_json(json.dumps(out))
        return EXIT_OK
    _header(gauge, ctx)
    for name, w in words.items():
        if w.decoded is None:
            ctx.console.print(f"\n[bold]{name}[/bold]: [red]{w.error}[/red]")
            continue
        d = w.decoded
        width = gauge.profile.bitfields[name].width
        table = Table(title=f"{name} = 0x{d.raw:0{(width + 3) // 4}X}  ({w.source})", title_justify="left")
        for col in ("bit", "name", "state", "meaning"):
            table.add_column(col)
        for f in d.flags:
            if args.set_only and not f.set:
                continue
            style = "bold red" if f.set else "dim"
            table.add_row(str(f.bit), f.name, "SET" if f.set else "-", f.description or f.label, style=style)
        for g in d.groups:
            bits = f"{g.low + g.width - 1}:{g.low}" if g.width > 1 else str(g.low)
            table.add_row(bits, g.name, str(g.value), g.meaning, style="bold")
        for bit in d.unknown_bits:
            table.add_row(str(bit), f"bit{bit}", "SET", "not described by the profile", style="yellow")
        ctx.console.print(table)
    return EXIT_OK


# --- mac ----------------------------------------------------------------------------------------------


def cmd_mac(args: argparse.Namespace, ctx: CliContext) -> int:
    gauge = _gauge(args, ctx)
    cmd = _usage_errors(lambda: gauge.mac.command(args.subcommand))
    data = b""
    if args.data:
        try:
            data = bytes.fromhex(args.data)
        except ValueError:
            raise UsageError(f"--data {args.data!r} is not hex bytes") from None
    _header(gauge, ctx)
    if data or cmd.access.value == "w":
        gauge.mac.write(cmd.code, data)
        ctx.console.print(f"sent MAC {cmd.name} (0x{cmd.code:04X})" + (f" with {len(data)} data bytes" if data else ""))
        return EXIT_OK
    result = gauge.mac.query(cmd.code)
    ctx.console.print(f"MAC {cmd.name} (0x{cmd.code:04X}) via {result.flow.value}: {result.data.hex(' ').upper()}")
    decoded = result.decoded
    if isinstance(decoded, dict):
        table = Table(show_header=True)
        table.add_column("field")
        table.add_column("value", justify="right")
        for key, value in decoded.items():
            table.add_row(key, value.hex(" ") if isinstance(value, bytes) else f"{value:g}")
        ctx.console.print(table)
    elif decoded is not None:
        active = ", ".join(f.name for f in decoded.active) or "none"
        groups = "; ".join(f"{g.name}={g.meaning}" for g in decoded.groups)
        ctx.console.print(f"set: {active}" + (f"; {groups}" if groups else ""))
    return EXIT_OK


# --- cells --------------------------------------------------------------------------------------------


def cmd_cells(args: argparse.Namespace, ctx: CliContext) -> int:
    gauge = _gauge(args, ctx)
    plans = gauge.cell_read_plans()
    cells = gauge.cells(args.method)
    if args.json:
        ctx.console.print_json(json.dumps(cells))
        return EXIT_OK
    _header(gauge, ctx)
    method = args.method or (plans[0].method if plans else "?")
    table = Table(title=f"Cells ({method})", title_justify="left")
    table.add_column("cell")
    table.add_column("mV", justify="right")
    for i, mv in enumerate(cells, start=1):
        table.add_row(str(i), str(mv) if mv else "0 (unused input?)")
    ctx.console.print(table)
    used = [v for v in cells if v]
    if len(used) > 1:
        ctx.console.print(f"spread: {max(used) - min(used)} mV")
    return EXIT_OK


# --- security -------------------------------------------------------------------------------------------


def _key_text(args: argparse.Namespace) -> str | None:
    if args.key == "-":
        return getpass.getpass("key: ")
    if args.key:
        return str(args.key)
    return os.environ.get(KEY_ENV) or None


def _security(args: argparse.Namespace, ctx: CliContext, action: Callable[[Gauge, str | None], Any]) -> int:
    key = _key_text(args)
    gauge = _gauge(args, ctx)
    try:
        state = action(gauge, key)
    except DecodeError as exc:
        raise UsageError(str(exc)) from None
    where = "the given key" if key is not None else "the profile's default key"
    ctx.console.print(f"{gauge.profile.name}: security [bold]{state}[/bold] (used {where} if a key was needed)")
    return EXIT_OK


def cmd_unseal(args: argparse.Namespace, ctx: CliContext) -> int:
    return _security(args, ctx, security.unseal)


def cmd_fullaccess(args: argparse.Namespace, ctx: CliContext) -> int:
    return _security(args, ctx, security.full_access)


def cmd_seal(args: argparse.Namespace, ctx: CliContext) -> int:
    gauge = _gauge(args, ctx)
    state = security.seal(gauge)
    ctx.console.print(f"{gauge.profile.name}: security [bold]{state}[/bold]")
    return EXIT_OK


# --- data flash ------------------------------------------------------------------------------------------


def cmd_df_get(args: argparse.Namespace, ctx: CliContext) -> int:
    gauge = _gauge(args, ctx)
    df = DataFlash(gauge)
    entry = _usage_errors(lambda: df.entry(args.name))
    value = df.read(entry.key)
    ctx.console.print(f"{entry.key} = {_show_value(value, entry.type, entry.size)} {entry.unit}".rstrip())
    return EXIT_OK


def cmd_df_set(args: argparse.Namespace, ctx: CliContext) -> int:
    gauge = _gauge(args, ctx)
    df = DataFlash(gauge)
    entry = _usage_errors(lambda: df.entry(args.name))
    _usage_errors(lambda: entry.encode(entry.parse_display(args.value)))
    value = df.write(entry.key, args.value)
    shown = _show_value(value, entry.type, entry.size)
    ctx.console.print(f"{entry.key} = {shown} {entry.unit}".rstrip() + " (written, read back)")
    return EXIT_OK


def cmd_df_list(args: argparse.Namespace, ctx: CliContext) -> int:
    values: dict[str, DFValue] = {}
    if args.profile and not args.read:
        profile = load_profile(args.profile, variant=args.variant)  # the map alone: no device needed
    else:
        gauge = _gauge(args, ctx)
        profile = gauge.profile
        if args.read:
            values = DataFlash(gauge).read_all()
    table = Table(title=f"{profile.name} data flash", title_justify="left")
    for col in ("entry", "address", "type", "unit", "value" if values else "default"):
        table.add_column(col)
    for e in profile.data_flash:
        shown = (
            _show_value(values[e.key], e.type, e.size)
            if e.key in values
            else ("" if e.default is None else str(e.default))
        )
        address = f"0x{e.address:04X}" if e.address is not None else "unknown"
        table.add_row(e.key, address, e.type.value + (str(e.length) if e.length else ""), e.unit, shown)
    ctx.console.print(table)
    return EXIT_OK


def _kind(path: str) -> str:
    name = path.lower()
    if name.endswith((".gg.csv", ".csv", ".gg.txt")):
        return "gg"
    if name.endswith(".fs"):
        return "fs"
    return "image"


def cmd_df_export(args: argparse.Namespace, ctx: CliContext) -> int:
    gauge = _gauge(args, ctx)
    df = DataFlash(gauge)
    kind = _kind(args.file)
    if kind == "gg":
        values = df.export_gg(args.file)
        ctx.console.print(f"wrote {len(values)} entries to {args.file} (bqStudio .gg.csv)")
    elif kind == "fs":
        blocks = df.export_flashstream(args.file)
        ctx.console.print(f"wrote {blocks} data-flash block(s) to {args.file} (FlashStream, with read-back compares)")
    else:
        image = df.export_image(args.file)
        ctx.console.print(f"wrote {len(image.values)} entries to {args.file} (smartbatt golden image)")
    return EXIT_OK


def cmd_df_import(args: argparse.Namespace, ctx: CliContext) -> int:
    kind = _kind(args.file)
    if kind == "fs":
        raise UsageError(f"{args.file} is a FlashStream file: run it with `smartbatt flashstream {args.file}`")
    gauge = _gauge(args, ctx)
    _header(gauge, ctx)
    df = DataFlash(gauge)
    run = df.import_gg if kind == "gg" else df.import_image
    preview = run(args.file, dry_run=True, backup_dir=args.backup_dir)
    _print_plan(preview, ctx)
    if args.dry_run or not preview.plan.changes:
        return EXIT_OK
    result = run(args.file, backup_dir=args.backup_dir, progress=_progress(ctx))
    if result.written_before:
        ctx.console.print(f"completed an interrupted import: {len(result.written_before)} entries were written before")
    ctx.console.print(f"wrote and verified {len(result.written)} entries; previous values backed up to {result.backup}")
    return EXIT_OK


def _print_plan(result: ImportResult, ctx: CliContext) -> None:
    plan = result.plan
    if result.written_before:
        ctx.console.print(
            f"an earlier import of this file was interrupted after {len(result.written_before)} entries; "
            "this run completes it"
        )
    table = Table(title=f"Differences: {plan.source}", title_justify="left")
    for col in ("entry", "address", "pack now", "file", "unit"):
        table.add_column(col)
    for c in plan.changes:
        table.add_row(c.key, f"0x{c.address:04X}", f"{c.old}", f"{c.new}", c.unit, style="bold")
    ctx.console.print(table)
    ctx.console.print(
        f"{len(plan.changes)} to write, {len(plan.unchanged)} already equal, {len(plan.skipped)} skipped"
        + (" (dry run: nothing written)" if result.dry_run else "")
    )
    for key, why in plan.skipped:
        ctx.err.print(f"skipped {key}: {why}")


def _progress(ctx: CliContext) -> Callable[[int, int, str], None] | None:
    if not ctx.err.is_terminal:
        return None

    def show(done: int, total: int, what: str) -> None:
        ctx.err.print(f"[{done}/{total}] {what}")

    return show


# --- flashstream ---------------------------------------------------------------------------------------------


def cmd_flashstream(args: argparse.Namespace, ctx: CliContext) -> int:
    if args.dry_run:
        profile = load_profile(args.profile, variant=args.variant) if args.profile else None
        steps = plan_flashstream(args.file, profile)
        _print_steps(args.file, steps, ctx)
        return EXIT_OK
    if not Path(args.file).is_file():
        raise UsageError(f"no such file: {args.file}")
    plan_flashstream(args.file)  # a malformed file is refused before the device is opened
    gauge = _gauge(args, ctx)
    _header(gauge, ctx)
    result = DataFlash(gauge).run_flashstream(args.file, progress=_progress(ctx))
    ctx.console.print(
        f"{args.file}: ran {result.executed} lines ({result.writes} writes, {result.compares} compares passed)"
    )
    return EXIT_OK


def _print_steps(file: str, steps: tuple[FsStep, ...], ctx: CliContext) -> None:
    table = Table(title=f"{file} (dry run: nothing sent)", title_justify="left")
    table.add_column("line", justify="right")
    table.add_column("op")
    table.add_column("what")
    for s in steps:
        table.add_row(str(s.line), s.op.kind.value, s.text, style="bold" if s.writes else "")
    ctx.console.print(table)
    writes = sum(1 for s in steps if s.writes)
    ctx.console.print(f"{len(steps)} lines: {writes} writes")
