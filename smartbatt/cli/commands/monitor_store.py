"""Recording subcommands: ``sessions``, ``replay``, ``events``, ``export``.

They read a recording database written by the recorder (:mod:`smartbatt.monitor.store`) and never
open a device. ``replay`` publishes the samples on a :class:`~smartbatt.monitor.sample.SampleBus`
exactly as a live poll would, and prints them from a subscriber (the terminal view will subscribe
the same way). Times are shown in UTC, ISO 8601.

Exit codes follow :mod:`smartbatt.cli.main`: 0 ok, 2 usage (no such file, bad ``--since``,
unknown session), 3 the database cannot be read (not a recording, corrupt).
"""

from __future__ import annotations

import argparse
import datetime as dt
import fnmatch
import json
import math
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from smartbatt.cli.context import CliContext, UsageError
from smartbatt.cli.main import EXIT_OK
from smartbatt.errors import StoreError
from smartbatt.monitor.sample import Event, Sample, SampleBus, Severity
from smartbatt.monitor.store import SessionInfo, Store, replay, unit_of

_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the recording subcommands to the ``smartbatt`` parser."""
    p = sub.add_parser("sessions", help="list the recording sessions in a database")
    _db(p)
    p.set_defaults(handler=cmd_sessions)

    p = sub.add_parser("replay", help="replay a recorded session as live samples (printed)")
    _db(p)
    p.add_argument("--session", type=int, metavar="N", help="session id (default: the latest with samples)")
    p.add_argument(
        "--speed",
        type=float,
        default=1.0,
        metavar="X",
        help="1 = real time (default), 10 = ten times faster, 0 = as fast as possible",
    )
    p.add_argument("--channels", metavar="LIST", help="comma-separated channels or patterns (Voltage,CellVoltage*)")
    p.set_defaults(handler=cmd_replay)

    p = sub.add_parser("events", help="the alarm event log")
    _db(p)
    p.add_argument("--since", metavar="WHEN", help="2025-06-15, 2025-06-15T12:00, unix seconds, or 30m / 2h / 7d ago")
    p.add_argument("--session", type=int, metavar="N", help="only this session")
    p.add_argument(
        "--severity", default="info", metavar="LEVEL", help="lowest severity: info, warning, alarm, critical"
    )
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(handler=cmd_events)

    p = sub.add_parser("export", help="export a session to CSV")
    _db(p)
    p.add_argument("--session", type=int, metavar="N", help="session id (default: the latest with samples)")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="CSV file to write, - for stdout")
    p.set_defaults(handler=cmd_export)


def _db(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", required=True, type=Path, metavar="FILE", help="recording database (SQLite)")


def _open(ctx: CliContext, path: Path) -> Store:
    if not path.is_file():
        raise UsageError(f"{path}: no such recording database")
    store: Store = ctx.keep(Store(path, readonly=True))
    return store


def _session(store: Store, wanted: int | None) -> int:
    sessions = store.sessions()
    if wanted is not None:
        if wanted not in {s.id for s in sessions}:
            raise UsageError(f"{store.path}: no session {wanted} (have {_ids(sessions)})")
        return wanted
    with_samples = [s.id for s in sessions if s.samples]
    if not with_samples:
        raise UsageError(f"{store.path}: no session with samples")
    return with_samples[-1]


def _ids(sessions: Sequence[SessionInfo]) -> str:
    return ", ".join(str(s.id) for s in sessions) or "none"


def _print_table(ctx: CliContext, table: Table) -> None:
    if ctx.console.is_terminal:
        ctx.console.print(table)
    else:  # piped: never shorten cells with an ellipsis to fit 80 columns
        Console(file=ctx.console.file, width=1000, highlight=False).print(table)


def iso(t: float | None) -> str:
    """Unix seconds → ``2025-06-15T15:06:40.000Z`` ('' for None)."""
    if t is None:
        return ""
    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_since(text: str, now: float | None = None) -> float:
    """``--since`` → unix seconds: ISO date/time (UTC unless it says otherwise), unix seconds, or
    a relative age ``90s``, ``30m``, ``2h``, ``7d``, ``1w``.

    :raises UsageError: none of these.
    """
    now = time.time() if now is None else now
    match = _RELATIVE.match(text)
    if match:
        return now - float(match.group(1)) * _SECONDS[match.group(2)]
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        if math.isfinite(value):
            return value
    try:
        when = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"--since {text!r}: use a date (2025-06-15), a time (2025-06-15T12:00), unix seconds, or 30m / 2h / 7d"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


# --- sessions --------------------------------------------------------------------------------------


def cmd_sessions(args: argparse.Namespace, ctx: CliContext) -> int:
    store = _open(ctx, args.db)
    table = Table(box=None, pad_edge=False)
    for col in ("session", "pack", "started", "ended", "samples", "first", "last", "source", "note"):
        table.add_column(col, justify="right" if col in ("session", "samples") else "left")
    for s in store.sessions():
        table.add_row(
            str(s.id),
            "" if s.pack_id is None else str(s.pack_id),
            iso(s.started),
            iso(s.ended),
            str(s.samples),
            iso(s.first),
            iso(s.last),
            s.source,
            s.note,
        )
    _print_table(ctx, table)
    return EXIT_OK


# --- replay ----------------------------------------------------------------------------------------


def format_sample(sample: Sample, patterns: list[str] | None = None) -> str:
    """One line: time, then ``name value unit`` per channel and ``name 0x…`` per status word."""

    def wanted(name: str) -> bool:
        return patterns is None or any(fnmatch.fnmatchcase(name, p) for p in patterns)

    parts = [iso(sample.time)]
    for name, value in sample.values.items():
        if wanted(name):
            unit = unit_of(name)
            parts.append(f"{name} {value:.6g}{' ' + unit if unit else ''}")
    for name, word in sample.status.items():
        if wanted(name):
            parts.append(f"{name} 0x{word:04X}")
    missing = sorted(n for n in sample.missing if wanted(n))
    if missing:
        parts.append("missing: " + ",".join(missing))
    return "  ".join(parts)


def cmd_replay(args: argparse.Namespace, ctx: CliContext) -> int:
    if args.speed < 0 or not math.isfinite(args.speed):
        raise UsageError("--speed must be 0 (as fast as possible) or more")
    patterns = [p.strip() for p in args.channels.split(",") if p.strip()] if args.channels else None
    store = _open(ctx, args.db)
    sid = _session(store, args.session)
    bus = SampleBus(maxlen=256)
    try:
        printer = bus.subscribe(lambda s: print(format_sample(s, patterns), flush=True), name="print")
        n = replay(store, sid, bus, speed=args.speed)
    finally:
        bus.close(timeout_s=60.0)
    if printer.errors:
        if isinstance(printer.last_error, BrokenPipeError):
            return EXIT_OK
        raise StoreError(f"printing failed: {printer.last_error}")
    ctx.err.print(f"replayed {n} samples of session {sid}")
    return EXIT_OK


# --- events ----------------------------------------------------------------------------------------


def _state(e: Event) -> str:
    state = "active" if e.active else "cleared"
    return state + (", acknowledged" if e.acknowledged else "")


def _num(x: float) -> str:
    return "" if math.isnan(x) else f"{x:.6g}"


def cmd_events(args: argparse.Namespace, ctx: CliContext) -> int:
    try:
        severity = Severity.parse(args.severity)
    except ValueError as exc:
        raise UsageError(f"--severity: {exc}") from None
    since = None if args.since is None else parse_since(args.since)
    store = _open(ctx, args.db)
    events = store.events(since=since, session_id=args.session, min_severity=severity)
    if args.json:
        for e in events:
            record = {
                "id": e.id,
                "session": e.session_id,
                "time": iso(e.time),
                "severity": e.severity.name.lower(),
                "source": e.source,
                "code": e.code,
                "message": e.message,
                "value": None if math.isnan(e.value) else e.value,
                "limit": None if math.isnan(e.limit) else e.limit,
                "latched": e.latched,
                "acknowledged": e.acknowledged,
                "cleared": iso(e.cleared) or None,
            }
            sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
        return EXIT_OK
    table = Table(box=None, pad_edge=False)
    for col in ("session", "id", "time", "severity", "source", "code", "value", "limit", "state", "message"):
        table.add_column(col)
    for e in events:
        table.add_row(
            str(e.session_id or ""),
            str(e.id),
            iso(e.time),
            e.severity.name.lower(),
            e.source,
            e.code,
            _num(e.value),
            _num(e.limit),
            _state(e),
            e.message,
        )
    _print_table(ctx, table)
    if not events:
        ctx.err.print("no events")
    return EXIT_OK


# --- export ----------------------------------------------------------------------------------------


def cmd_export(args: argparse.Namespace, ctx: CliContext) -> int:
    store = _open(ctx, args.db)
    sid = _session(store, args.session)
    if args.output == "-":
        n = store.export_csv(sid, sys.stdout)
    else:
        try:
            with open(args.output, "w", encoding="utf-8", newline="") as out:
                n = store.export_csv(sid, out)
        except OSError as exc:
            raise UsageError(f"{args.output}: cannot write: {exc.strerror or exc}") from None
    ctx.err.print(f"exported {n} samples of session {sid}")
    return EXIT_OK
