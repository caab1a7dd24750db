"""``smartbatt eol``: factory end-of-line testing — ``run`` a plan on a station, ``report`` a lot, ``check`` a plan.

``eol run PLAN --station NAME`` waits for a pack (polling the battery address), runs the plan
with a progress display, shows PASS / FAIL / ERROR / ABORTED in large letters with the failing
step, its value and its limits, records the run (SQLite by default, ``--db postgresql://…`` for a
shared database), writes JUnit XML and CSV when asked, and with ``--loop`` waits for the pack to
be removed and starts again. ``--json`` prints each result record as one JSON line on stdout (the
human display then goes to stderr).

Exit codes: 0 every pack passed (or the operator stopped an idle loop), 1 a pack failed, 2 usage
error (bad plan file, bad option), 3 a run errored or was aborted (Ctrl-C mid-plan, adapter
unplugged) or the device, bus or database failed. With ``--loop`` the worst outcome of the session
decides.
"""

from __future__ import annotations

import argparse
import datetime
import json
import threading
from collections.abc import Callable
from pathlib import Path

from rich.console import Console, Group
from rich.panel import Panel
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from smartbatt.cli.context import CliContext, UsageError
from smartbatt.cli.main import EXIT_CHECK_FAILED, EXIT_DEVICE, EXIT_OK
from smartbatt.factory.plan import Plan, PlanError, load_plan
from smartbatt.factory.report import html_report, write_csv, write_junit
from smartbatt.factory.results_db import ResultsDb, ResultsDbError
from smartbatt.factory.runner import (
    Outcome,
    RunEvent,
    RunResult,
    StepFinished,
    StepStarted,
    StepStatus,
    run_plan,
    wait_for_pack,
    wait_for_removal,
)
from smartbatt.sbs.battery import BATTERY_ADDRESS, Battery
from smartbatt.transports import Transport

#: exit code per outcome (the worst outcome of a session decides).
EXIT_CODES: dict[Outcome, int] = {
    Outcome.PASS: EXIT_OK,
    Outcome.FAIL: EXIT_CHECK_FAILED,
    Outcome.ERROR: EXIT_DEVICE,
    Outcome.ABORTED: EXIT_DEVICE,
}
_SEVERITY = {Outcome.PASS: 0, Outcome.FAIL: 1, Outcome.ERROR: 2, Outcome.ABORTED: 3}
_STYLE = {Outcome.PASS: "bold white on green", Outcome.FAIL: "bold white on red"}
_DEFAULT_STYLE = "bold black on yellow"

#: 5-row block letters for the verdict banner, readable across a production line.
BANNER_FONT: dict[str, tuple[str, ...]] = {
    "A": (" ███ ", "█   █", "█████", "█   █", "█   █"),
    "B": ("████ ", "█   █", "████ ", "█   █", "████ "),
    "D": ("████ ", "█   █", "█   █", "█   █", "████ "),
    "E": ("█████", "█    ", "████ ", "█    ", "█████"),
    "F": ("█████", "█    ", "████ ", "█    ", "█    "),
    "I": ("█████", "  █  ", "  █  ", "  █  ", "█████"),
    "L": ("█    ", "█    ", "█    ", "█    ", "█████"),
    "O": (" ███ ", "█   █", "█   █", "█   █", " ███ "),
    "P": ("████ ", "█   █", "████ ", "█    ", "█    "),
    "R": ("████ ", "█   █", "████ ", "█  █ ", "█   █"),
    "S": (" ████", "█    ", " ███ ", "    █", "████ "),
    "T": ("█████", "  █  ", "  █  ", "  █  ", "  █  "),
}


def banner(word: str) -> str:
    """``word`` in 5-row block letters (letters of PASS, FAIL, ERROR, ABORTED)."""
    return "\n".join("  ".join(BANNER_FONT[c][row] for c in word.upper()) for row in range(5))


def _date(text: str) -> datetime.datetime:
    """``2026-11-01`` or an ISO date-time → an aware UTC datetime (argparse type)."""
    try:
        value = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (write 2026-11-01 or 2026-11-01T08:00)") from None
    return value.replace(tzinfo=datetime.UTC) if value.tzinfo is None else value.astimezone(datetime.UTC)


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``eol run``, ``eol report`` and ``eol check`` to the ``smartbatt`` parser."""
    eol = sub.add_parser("eol", help="factory end-of-line testing: run a test plan, report a lot")
    eol_sub = eol.add_subparsers(dest="eol_command", metavar="ACTION", parser_class=type(eol))
    eol.set_defaults(handler=None)

    p = eol_sub.add_parser("run", help="test packs with a plan (waits for a pack, shows PASS/FAIL, records)")
    p.add_argument("plan", metavar="PLAN", help="test plan file (.toml, .yaml)")
    p.add_argument("--station", required=True, help="station name (recorded with every run)")
    p.add_argument("--operator", default="", help="operator name or badge (recorded)")
    p.add_argument("--lot", help="production lot (default: <plan name>/<UTC date>)")
    p.add_argument("--loop", action="store_true", help="after each pack wait for its removal and test the next")
    p.add_argument("--count", type=_count, help="stop after this many packs (implies --loop)")
    p.add_argument("--json", action="store_true", help="print each result record as a JSON line on stdout")
    p.add_argument("--db", metavar="URL", help="results database: a file, sqlite:PATH or postgresql://user@host/db")
    p.add_argument("--junit", metavar="DIR", type=Path, help="write a JUnit XML file per run into DIR")
    p.add_argument("--csv", metavar="DIR", type=Path, help="write a CSV file per run into DIR")
    p.add_argument("--wait", metavar="S", type=_positive, help="seconds to wait for a pack (single run)")
    p.set_defaults(handler=cmd_run)

    p = eol_sub.add_parser("report", help="HTML report per lot: yield, failures by step, histograms")
    p.add_argument("--since", type=_date, required=True, metavar="DATE", help="first day (UTC), e.g. 2026-11-01")
    p.add_argument("--until", type=_date, metavar="DATE", help="end (exclusive, UTC); default: now")
    p.add_argument("--lot", help="only this lot")
    p.add_argument("--db", metavar="URL", help="results database (as for run)")
    p.add_argument("-o", "--output", type=Path, default=Path("eol-report.html"), help="HTML file to write")
    p.set_defaults(handler=cmd_report)

    p = eol_sub.add_parser("check", help="validate a test plan and list its steps")
    p.add_argument("plan", metavar="PLAN")
    p.set_defaults(handler=cmd_check)


# --- helpers --------------------------------------------------------------------------------------


def _load(path: str) -> Plan:
    try:
        return load_plan(path)
    except PlanError as exc:
        raise UsageError(str(exc)) from None


def _open_db(ctx: CliContext, url: str | None) -> ResultsDb:
    db: ResultsDb = ctx.keep(ResultsDb.open(url))
    if ctx.verbose:
        ctx.err.print(f"results database: {db.label} ({db.dialect})")
    return db


# --- eol check ------------------------------------------------------------------------------------


def cmd_check(args: argparse.Namespace, ctx: CliContext) -> int:
    plan = _load(args.plan)
    out = ctx.console
    out.print(f"{plan.title} ({plan.name}, product {plan.product}) — plan OK", markup=False)
    out.print(f"sha256 {plan.sha256}", markup=False)
    for i, step in enumerate(plan.steps, start=1):
        out.print(f"  {i}. {step.id} [{step.kind.value}] {step.title} (≤ {step.timeout_s:g} s)", markup=False)
    return EXIT_OK


# --- eol report -----------------------------------------------------------------------------------


def cmd_report(args: argparse.Namespace, ctx: CliContext) -> int:
    if args.until is not None and args.until <= args.since:
        raise UsageError("--until must be after --since")
    db = _open_db(ctx, args.db)
    runs = db.runs(args.since, args.until, lot=args.lot)
    text = html_report(runs, since=args.since, until=args.until, source=db.label)
    try:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {args.output}: {exc.strerror or exc}") from None
    lots = len({r.lot for r in runs})
    ctx.console.print(f"{len(runs)} runs in {lots} lots → {args.output}")
    return EXIT_OK


# --- eol run --------------------------------------------------------------------------------------


class _Display:
    """Progress while a plan runs, then the verdict banner."""

    def __init__(self, out: Console, plan: Plan) -> None:
        self.out = out
        self.plan = plan
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(), console=out, transient=True,
        )  # fmt: skip
        self.task = self.progress.add_task(plan.title, total=len(plan.steps))

    def event(self, event: RunEvent) -> None:
        if isinstance(event, StepStarted):
            self.progress.update(self.task, description=f"{event.step.title}")
        elif isinstance(event, StepFinished):
            self.progress.advance(self.task)
            self._line(event)

    def _line(self, event: StepFinished) -> None:
        r = event.result
        ok = r.status is StepStatus.PASS
        text = Text.assemble(
            ("✔ " if ok else "✘ ", "green" if ok else "red"),
            f"{r.title} — {r.status.value.upper()} ({r.duration_s * 1e3:.0f} ms)",
        )
        problem = r.problem()
        if problem:
            text.append(f"\n    {problem}")
        self.progress.console.print(text, highlight=False)

    def verdict(self, result: RunResult) -> None:
        style = _STYLE.get(result.outcome, _DEFAULT_STYLE)
        lines: list[Text] = [Text(banner(result.outcome.value), style=style)]
        serial = "unknown" if result.serial is None else str(result.serial)
        lines.append(Text(f"Pack serial {serial} · {result.plan_title} · station {result.station}", style="bold"))
        problem = result.first_problem()
        if problem is not None and not result.passed:
            lines.append(Text(f"Step: {problem.title} ({problem.step_id}) — {problem.status.value.upper()}", "bold"))
            for m in problem.failures or ():
                lines.append(Text(f"  {m.name}: {m.value_text()}   {m.limit_label} {m.limits_text()}", style="bold"))
                if m.detail:
                    lines.append(Text(f"    {m.detail}"))
            if not problem.failures:
                lines.append(Text(f"  {problem.message}", style="bold"))
        self.out.print(Panel(Group(*lines), border_style=style.split()[-1], expand=False))


def _worst(outcomes: list[Outcome]) -> int:
    if not outcomes:
        return EXIT_OK
    return EXIT_CODES[max(outcomes, key=_SEVERITY.__getitem__)]


def cmd_run(args: argparse.Namespace, ctx: CliContext) -> int:
    plan = _load(args.plan)
    db = _open_db(ctx, args.db)
    out = ctx.err if args.json else ctx.console
    transport = ctx.transport()
    address = ctx.address if ctx.address != BATTERY_ADDRESS else plan.pack.address
    loop = args.loop or args.count is not None
    outcomes: list[Outcome] = []
    stop = threading.Event()
    while True:
        if not _await_pack(out, transport, address, plan, args, loop, stop):
            return _worst(outcomes) if loop else EXIT_DEVICE
        result = _one_pack(args, ctx, out, plan, db, Battery(transport, address=address, pec=ctx.pec))
        outcomes.append(result.outcome)
        if result.interrupted or not loop or (args.count is not None and len(outcomes) >= args.count):
            return _worst(outcomes)
        if not _await_removal(out, transport, address, plan, stop):
            return _worst(outcomes)


def _await_removal(out: Console, transport: Transport, address: int, plan: Plan, stop: threading.Event) -> bool:
    """Wait until the pack is taken off; remind the operator once after ``removal_timeout_s``."""
    presence = plan.presence
    out.print("Remove the pack…")

    def wait(timeout: float | None) -> bool:
        return wait_for_removal(
            transport, address, timeout_s=timeout, poll_s=presence.poll_interval_s,
            settle=presence.settle_reads, stop=stop,
        )  # fmt: skip

    if _interruptible(lambda: wait(presence.removal_timeout_s)):
        return True
    out.print(Text("The pack is still on the station: remove it to test the next one.", style="yellow"))
    return _interruptible(lambda: wait(None))


def _interruptible(wait: Callable[[], bool]) -> bool:
    """Run a presence wait; Ctrl-C while idle ends the session normally (False)."""
    try:
        return wait()
    except KeyboardInterrupt:
        return False


def _await_pack(
    out: Console,
    transport: Transport,
    address: int,
    plan: Plan,
    args: argparse.Namespace,
    loop: bool,
    stop: threading.Event,
) -> bool:
    timeout = None if loop else (args.wait or plan.presence.insert_timeout_s)
    out.print(f"Waiting for a pack at 0x{address:02X}…")
    present = _interruptible(
        lambda: wait_for_pack(
            transport, address, timeout_s=timeout, poll_s=plan.presence.poll_interval_s,
            settle=plan.presence.settle_reads, stop=stop,
        )
    )  # fmt: skip
    if not present and not loop:
        out.print(Text(f"No pack answered at 0x{address:02X} within {timeout:g} s.", style="red"))
    return present


def _one_pack(
    args: argparse.Namespace, ctx: CliContext, out: Console, plan: Plan, db: ResultsDb, battery: Battery
) -> RunResult:
    display = _Display(out, plan)
    db_error: ResultsDbError | None = None
    with display.progress:
        try:
            result = run_plan(
                plan, battery, station=args.station, operator=args.operator, results_db=db, lot=args.lot,
                on_event=display.event,
            )  # fmt: skip
        except ResultsDbError as exc:
            if exc.run_result is None:
                raise
            result, db_error = exc.run_result, exc  # the files and the JSON still get the record
    display.verdict(result)
    if args.junit is not None:
        out.print(f"JUnit: {write_junit(result, args.junit)}")
    if args.csv is not None:
        out.print(f"CSV: {write_csv(result, args.csv)}")
    if args.json:
        print(json.dumps(result.to_json(), ensure_ascii=False), flush=True)
    if db_error is not None:
        raise db_error
    if ctx.verbose:
        out.print(f"recorded as run {result.run_id} in {db.label}")
    return result
