"""Run an end-of-line plan against one pack and produce the result record.

>>> plan = load_plan("examples/eol_drone_4s.toml")
>>> with open_battery("emulated:bq40z50?speed=0") as battery, ResultsDb.open("eol.sqlite") as db:
...     result = run_plan(plan, battery, station="EOL-1", operator="ana", results_db=db)
>>> result.outcome
<Outcome.PASS: 'pass'>

Rules the runner enforces, whatever the steps do:

* A pack is PASS only if every step of the plan ran and passed. A step that failed, errored, timed
  out, was skipped or was aborted makes the run FAIL, ERROR or ABORTED — never PASS.
* Each step runs on a worker thread with the step's time limit. On timeout (or Ctrl-C) the step is
  cancelled at its next checkpoint; a step that does not stop within :data:`CANCEL_GRACE_S` leaves
  the bus in an unknown state and aborts the run.
* A bus or adapter failure mid-plan (``AdapterGone``, ``BusBusy``, ``BusTimeout``, a NACK of the
  battery's address, a PEC error that survived the retries) aborts the run; Ctrl-C aborts it too.
  An aborted run is still recorded, with the steps that had run.
* After a failure the remaining steps are skipped (``stop_on_fail``, the default); with
  ``stop_on_fail = false`` checks go on but steps that change the pack (program, custom) never
  run on a failing pack.
"""

from __future__ import annotations

import contextlib
import datetime
import enum
import queue
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from smartbatt.errors import NoAcknowledge, SmartBattError, TransportError
from smartbatt.factory.plan import Plan, Step
from smartbatt.factory.steps import (
    Measurement,
    SerialRegistry,
    StepCancelled,
    StepContext,
    StepOutput,
    run_step,
)
from smartbatt.sbs.battery import Battery
from smartbatt.transports import Transport

if TYPE_CHECKING:
    from smartbatt.factory.results_db import ResultsDb

__all__ = [
    "CANCEL_GRACE_S",
    "Outcome",
    "RunEvent",
    "RunResult",
    "StepFinished",
    "StepResult",
    "StepStarted",
    "StepStatus",
    "StepWorker",
    "execute_step",
    "run_plan",
    "wait_for_pack",
    "wait_for_removal",
]

#: after a timeout or Ctrl-C, how long a step may take to reach its next checkpoint, seconds.
CANCEL_GRACE_S = 2.0

#: skip reason of the steps after an abort.
ABORTED_PREFIX = "not run: the run was aborted"
#: the message of a step ended by Ctrl-C.
INTERRUPTED = "interrupted (Ctrl-C)"

#: SBS Voltage (0x09): the register polled to see whether a pack answers (every SBS gauge has it).
PRESENCE_COMMAND = 0x09


class StepStatus(enum.StrEnum):
    PASS = "pass"
    FAIL = "fail"
    #: the step could not judge the pack (the gauge refused, a driver or database was missing).
    ERROR = "error"
    TIMEOUT = "timeout"
    SKIPPED = "skipped"
    #: the run was aborted during this step (bus/adapter failure, Ctrl-C).
    ABORTED = "aborted"


class Outcome(enum.StrEnum):
    PASS = "pass"
    FAIL = "fail"
    ERROR = "error"
    ABORTED = "aborted"


def _utc(ts: datetime.datetime) -> datetime.datetime:
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=datetime.UTC)


def _parse_ts(text: Any) -> datetime.datetime:
    if isinstance(text, datetime.datetime):
        return _utc(text)
    return _utc(datetime.datetime.fromisoformat(str(text)))


@dataclass(frozen=True)
class StepResult:
    """What one step did to one pack."""

    step_id: str
    kind: str
    title: str
    status: StepStatus
    measurements: tuple[Measurement, ...] = ()
    started_at: datetime.datetime | None = None
    duration_s: float = 0.0
    #: why it did not pass (error text, timeout, skip reason).
    message: str = ""

    @property
    def failures(self) -> tuple[Measurement, ...]:
        return tuple(m for m in self.measurements if not m.passed)

    def problem(self) -> str:
        """One line saying why this step did not pass (empty for a pass)."""
        if self.status is StepStatus.PASS:
            return ""
        if self.status is StepStatus.FAIL and self.failures:
            return "; ".join(m.summary() for m in self.failures)
        return self.message or self.status.value

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.step_id,
            "kind": self.kind,
            "title": self.title,
            "status": self.status.value,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "duration_s": self.duration_s,
            "message": self.message,
            "measurements": [m.to_json() for m in self.measurements],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StepResult:
        started = data.get("started_at")
        return cls(
            step_id=str(data["id"]),
            kind=str(data["kind"]),
            title=str(data.get("title") or data["id"]),
            status=StepStatus(data["status"]),
            measurements=tuple(Measurement.from_json(m) for m in data.get("measurements", ())),
            started_at=_parse_ts(started) if started else None,
            duration_s=float(data.get("duration_s") or 0.0),
            message=str(data.get("message") or ""),
        )


@dataclass(frozen=True)
class RunResult:
    """The record of one pack on one station: what the database, JUnit and CSV files hold."""

    run_id: str
    plan_name: str
    plan_title: str
    #: SHA-256 of the plan file and the files it references.
    plan_hash: str
    plan_file: str
    product: str
    station: str
    operator: str
    lot: str
    #: SBS SerialNumber at the end of the run (after programming), None if never read.
    serial: int | None
    device_name: str
    started_at: datetime.datetime
    finished_at: datetime.datetime
    outcome: Outcome
    steps: tuple[StepResult, ...]
    #: why the run did not pass (first problem), empty for a pass.
    message: str = ""
    #: simulated bus time and transaction count (emulated transport only).
    bus_time_s: float | None = None
    transactions: int | None = None
    #: Ctrl-C ended the run (the station should stop looping).
    interrupted: bool = False

    @property
    def passed(self) -> bool:
        return self.outcome is Outcome.PASS

    @property
    def duration_s(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()

    def first_problem(self) -> StepResult | None:
        """The first step that did not pass (its failing measurements name value and limits)."""
        for s in self.steps:
            if s.status is not StepStatus.PASS:
                return s
        return None

    def measurement(self, name: str) -> Measurement | None:
        """The first measurement called ``name`` in any step."""
        for s in self.steps:
            for m in s.measurements:
                if m.name == name:
                    return m
        return None

    def to_json(self) -> dict[str, Any]:
        problem = self.first_problem()
        return {
            "run_id": self.run_id,
            "outcome": self.outcome.value,
            "message": self.message,
            "failed_step": problem.step_id if problem else None,
            "plan": {
                "name": self.plan_name,
                "title": self.plan_title,
                "sha256": self.plan_hash,
                "file": self.plan_file,
            },
            "product": self.product,
            "station": self.station,
            "operator": self.operator,
            "lot": self.lot,
            "serial": self.serial,
            "device_name": self.device_name,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat(),
            "duration_s": round(self.duration_s, 6),
            "bus_time_s": self.bus_time_s,
            "transactions": self.transactions,
            "interrupted": self.interrupted,
            "steps": [s.to_json() for s in self.steps],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunResult:
        plan = data["plan"]
        return cls(
            run_id=str(data["run_id"]),
            plan_name=str(plan["name"]),
            plan_title=str(plan.get("title") or plan["name"]),
            plan_hash=str(plan["sha256"]),
            plan_file=str(plan.get("file") or ""),
            product=str(data.get("product") or plan["name"]),
            station=str(data["station"]),
            operator=str(data.get("operator") or ""),
            lot=str(data.get("lot") or ""),
            serial=data.get("serial"),
            device_name=str(data.get("device_name") or ""),
            started_at=_parse_ts(data["started_at"]),
            finished_at=_parse_ts(data["finished_at"]),
            outcome=Outcome(data["outcome"]),
            steps=tuple(StepResult.from_json(s) for s in data.get("steps", ())),
            message=str(data.get("message") or ""),
            bus_time_s=data.get("bus_time_s"),
            transactions=data.get("transactions"),
            interrupted=bool(data.get("interrupted", False)),
        )


# --- progress events ------------------------------------------------------------------------------


@dataclass(frozen=True)
class StepStarted:
    index: int
    total: int
    step: Step


@dataclass(frozen=True)
class StepFinished:
    index: int
    total: int
    result: StepResult


RunEvent = StepStarted | StepFinished


# --- running one step -----------------------------------------------------------------------------


@dataclass
class _Box:
    output: StepOutput | None = None
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)


def _work(ctx: StepContext, box: _Box) -> None:
    try:
        box.output = run_step(ctx)
    except BaseException as exc:  # noqa: BLE001 - every outcome of user code is classified by the runner
        box.error = exc
    finally:
        box.done.set()


def _wait(done: threading.Event, timeout_s: float) -> tuple[bool, bool]:
    """Wait for the step; returns (finished, interrupted by Ctrl-C)."""
    try:
        return done.wait(timeout_s), False
    except KeyboardInterrupt:
        return done.is_set(), True


class StepWorker:
    """One daemon thread that runs a run's steps one after the other.

    One thread per run, not per step (starting a thread costs more than most steps' own work), and a
    daemon so a step that never returns cannot keep the process from exiting.
    """

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="eol-step", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while (job := self._jobs.get()) is not None:
            job()

    def submit(self, job: Callable[[], None]) -> None:
        self._jobs.put(job)

    def close(self) -> None:
        """Let the thread end after its current job (it is not waited for)."""
        self._jobs.put(None)


def execute_step(
    ctx: StepContext, clock: Callable[[], datetime.datetime], worker: StepWorker | None = None
) -> StepResult:
    """Run one step on a worker thread with its time limit; classify how it ended.

    :param worker: the run's worker thread; None = a worker for this step alone.
    """
    step = ctx.step
    box = _Box()
    started_at = clock()
    t0 = time.perf_counter()
    runner = worker or StepWorker()
    runner.submit(lambda: _work(ctx, box))
    if worker is None:
        runner.close()
    finished, interrupted = _wait(box.done, step.timeout_s)
    if not finished:
        ctx.cancel.set()
        stopped, again = _wait(box.done, CANCEL_GRACE_S)
        interrupted = interrupted or again
        elapsed = time.perf_counter() - t0
        return _cancelled(step, started_at, elapsed, interrupted=interrupted, stopped=stopped)
    elapsed = time.perf_counter() - t0
    if box.error is not None:
        status, message = _classify(box.error)
        if interrupted:
            status, message = StepStatus.ABORTED, INTERRUPTED
        return _result(step, status, (), started_at, elapsed, message)
    assert box.output is not None
    status = StepStatus.PASS if all(m.passed for m in box.output.measurements) else StepStatus.FAIL
    if interrupted:  # the step finished, but the operator asked to stop: never judge this pack
        return _result(step, StepStatus.ABORTED, box.output.measurements, started_at, elapsed, INTERRUPTED)
    return _result(step, status, box.output.measurements, started_at, elapsed, box.output.message)


def _cancelled(
    step: Step, started_at: datetime.datetime, elapsed: float, *, interrupted: bool, stopped: bool
) -> StepResult:
    if interrupted:
        return _result(step, StepStatus.ABORTED, (), started_at, elapsed, INTERRUPTED)
    if not stopped:
        message = (
            f"no result within {step.timeout_s:g} s and the step did not stop within {CANCEL_GRACE_S:g} s "
            "more; the bus state is unknown"
        )
        return _result(step, StepStatus.ABORTED, (), started_at, elapsed, message)
    return _result(step, StepStatus.TIMEOUT, (), started_at, elapsed, f"no result within {step.timeout_s:g} s")


def _result(
    step: Step,
    status: StepStatus,
    measurements: tuple[Measurement, ...],
    started_at: datetime.datetime,
    elapsed: float,
    message: str,
) -> StepResult:
    return StepResult(step.id, step.kind.value, step.title, status, measurements, started_at, elapsed, message)


def _bus_cause(exc: BaseException) -> TransportError | None:
    """The bus failure behind ``exc`` (itself, its ``cause`` — e.g. an interrupted image write — or
    its ``__cause__``), unless it is a NACK past the address byte (the gauge refusing, not the bus)."""
    for candidate in (exc, getattr(exc, "cause", None), exc.__cause__):
        if isinstance(candidate, NoAcknowledge) and candidate.byte_index not in (0, None):
            continue
        if isinstance(candidate, TransportError):
            return candidate
    return None


def _classify(exc: BaseException) -> tuple[StepStatus, str]:
    """How a step's exception ends the step: an error of this pack, or an abort of the run."""
    if isinstance(exc, KeyboardInterrupt | StepCancelled):
        return StepStatus.ABORTED, INTERRUPTED
    if isinstance(exc, SystemExit):
        return StepStatus.ABORTED, f"the step called exit({exc.code})"
    bus = _bus_cause(exc)
    if bus is not None:
        where = "" if bus is exc else f" ({exc})"
        return StepStatus.ABORTED, f"bus or adapter failure: {type(bus).__name__}: {bus}{where}"
    if isinstance(exc, SmartBattError):
        return StepStatus.ERROR, str(exc)
    return StepStatus.ERROR, f"{type(exc).__name__}: {exc}"


def _skipped(step: Step, reason: str) -> StepResult:
    return StepResult(step.id, step.kind.value, step.title, StepStatus.SKIPPED, message=reason)


# --- running a plan -------------------------------------------------------------------------------


def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclass
class _Progress:
    """Whether later steps may run, and why not."""

    stop_reason: str = ""
    #: a check failed but stop_on_fail is off: checks go on, writing steps do not.
    failed: str = ""

    def gate(self, step: Step) -> str:
        """Why ``step`` must be skipped, or empty if it may run."""
        if self.stop_reason:
            return self.stop_reason
        if self.failed and step.kind.writes:
            return f"not run: step {self.failed!r} failed and this step changes the pack"
        return ""

    def after(self, plan: Plan, result: StepResult) -> None:
        if result.status is StepStatus.PASS:
            return
        if result.status is StepStatus.ABORTED:
            self.stop_reason = f"{ABORTED_PREFIX} in step {result.step_id!r}"
        elif result.status in (StepStatus.ERROR, StepStatus.TIMEOUT):
            self.stop_reason = f"not run: step {result.step_id!r} ended with {result.status.value}"
        elif plan.stop_on_fail:
            self.stop_reason = f"not run: step {result.step_id!r} failed"
        elif not self.failed:
            self.failed = result.step_id


def _outcome(plan: Plan, steps: Sequence[StepResult]) -> Outcome:
    statuses = {s.status for s in steps}
    if StepStatus.ABORTED in statuses:
        return Outcome.ABORTED
    if statuses & {StepStatus.ERROR, StepStatus.TIMEOUT}:
        return Outcome.ERROR
    if StepStatus.FAIL in statuses:
        return Outcome.FAIL
    if len(steps) == len(plan.steps) and statuses == {StepStatus.PASS}:
        return Outcome.PASS
    return Outcome.ERROR  # a skip without a failure: never a pass


def _bus_counters(transport: Transport) -> tuple[float | None, int | None]:
    bus = getattr(transport, "bus_time_s", None)
    count = getattr(transport, "transactions", None)
    return (float(bus) if isinstance(bus, int | float) else None, count if isinstance(count, int) else None)


def run_plan(
    plan: Plan,
    battery: Battery,
    *,
    station: str,
    operator: str = "",
    results_db: ResultsDb | None = None,
    lot: str | None = None,
    clock: Callable[[], datetime.datetime] | None = None,
    on_event: Callable[[RunEvent], None] | None = None,
    run_id: str | None = None,
    sleep: Callable[[float], None] | None = None,
) -> RunResult:
    """Run every step of ``plan`` against ``battery`` and record the result.

    :param station: station name (required: it goes into every record).
    :param operator: operator name or badge.
    :param results_db: where the record goes and serials are claimed; None = no database
        (then ``serial_unique`` and ``serial = "allocate"`` steps end in an error).
    :param lot: production lot; default ``<plan name>/<UTC date>``.
    :param clock: UTC time source (tests pass a fixed one).
    :param on_event: progress callback (:class:`StepStarted`, :class:`StepFinished`), called on
        this thread.
    :param sleep: how the chip's mandated waits (data-flash write delays…) are spent; default: a
        real wait that a cancel interrupts. A bench on an emulated pack advances its clock instead.
    :returns: the :class:`RunResult`; Ctrl-C gives an ABORTED result with ``interrupted`` set.
    :raises ValueError: an empty station name.
    :raises ResultsDbError: the record could not be written (``exc.run_result`` holds it).
    """
    if not station.strip():
        raise ValueError("a station name is required")
    now = clock or _utc_now
    started = now()
    run_id = run_id or uuid.uuid4().hex
    bus0, tx0 = _bus_counters(battery.transport)
    pack_info: dict[str, Any] = {}
    results: list[StepResult] = []
    progress = _Progress()
    registry: SerialRegistry | None = results_db

    def context(step: Step) -> StepContext:
        return StepContext(
            battery=battery,
            plan=plan,
            step=step,
            results=tuple(results),
            run_id=run_id,
            station=station,
            registry=registry,
            clock=now,
            pack_info=pack_info,
            sleep=sleep,
        )

    user_abort = False
    worker = StepWorker()
    try:
        _run_steps(plan, results, progress, context, now, on_event, worker)
    except KeyboardInterrupt:
        # Ctrl-C outside a step's wait (between steps, in a progress callback): the step in hand is
        # aborted, nothing else runs, and the run is aborted even if every step had passed
        _interrupted(plan, results, progress)
        user_abort = True
    finally:
        # a step that never stopped keeps its thread; the run is aborted and nothing waits for it
        worker.close()
    if "serial" not in pack_info and not progress.stop_reason.startswith(ABORTED_PREFIX):
        _read_serial(battery, pack_info)
    result = _finish(plan, results, run_id, station, operator, lot, started, now(), pack_info)
    if user_abort:
        result = replace(result, outcome=Outcome.ABORTED, interrupted=True, message=result.message or INTERRUPTED)
    bus1, tx1 = _bus_counters(battery.transport)
    if bus0 is not None and bus1 is not None and tx0 is not None and tx1 is not None:
        result = _with_bus(result, bus1 - bus0, tx1 - tx0)
    if results_db is not None:
        results_db.record(result)
    return result


def _run_steps(
    plan: Plan,
    results: list[StepResult],
    progress: _Progress,
    context: Callable[[Step], StepContext],
    now: Callable[[], datetime.datetime],
    on_event: Callable[[RunEvent], None] | None,
    worker: StepWorker,
) -> None:
    total = len(plan.steps)
    for index, step in enumerate(plan.steps):
        reason = progress.gate(step)
        if reason:
            results.append(_skipped(step, reason))
            continue
        if on_event is not None:
            on_event(StepStarted(index, total, step))
        step_result = execute_step(context(step), now, worker)
        results.append(step_result)
        progress.after(plan, step_result)
        if on_event is not None:
            on_event(StepFinished(index, total, step_result))


def _interrupted(plan: Plan, results: list[StepResult], progress: _Progress) -> None:
    """Record an abort by Ctrl-C at the first step without a result; the rest are skipped."""
    if len(results) < len(plan.steps):
        step = plan.steps[len(results)]
        results.append(StepResult(step.id, step.kind.value, step.title, StepStatus.ABORTED, message=INTERRUPTED))
        progress.after(plan, results[-1])
    for step in plan.steps[len(results) :]:
        results.append(_skipped(step, progress.stop_reason))


def _with_bus(result: RunResult, bus_time_s: float, transactions: int) -> RunResult:
    return replace(result, bus_time_s=bus_time_s, transactions=transactions)


def _read_serial(battery: Battery, pack_info: dict[str, Any]) -> None:
    """Read SerialNumber for the record when no step did (a failed read leaves it unknown)."""
    with contextlib.suppress(SmartBattError):
        pack_info["serial"] = battery.serial_number


def _finish(
    plan: Plan,
    steps: list[StepResult],
    run_id: str,
    station: str,
    operator: str,
    lot: str | None,
    started: datetime.datetime,
    finished: datetime.datetime,
    pack_info: Mapping[str, Any],
) -> RunResult:
    outcome = _outcome(plan, steps)
    problem = next((s for s in steps if s.status is not StepStatus.PASS), None)
    message = f"{problem.step_id}: {problem.problem()}" if problem is not None and outcome is not Outcome.PASS else ""
    serial = pack_info.get("serial")
    return RunResult(
        run_id=run_id,
        plan_name=plan.name,
        plan_title=plan.title,
        plan_hash=plan.sha256,
        plan_file=str(plan.file) if plan.file else "",
        product=plan.product,
        station=station,
        operator=operator,
        lot=lot or f"{plan.name}/{started.date().isoformat()}",
        serial=serial if isinstance(serial, int) else None,
        device_name=str(pack_info.get("device_name", "")),
        started_at=_utc(started),
        finished_at=_utc(finished),
        outcome=outcome,
        steps=tuple(steps),
        message=message,
        interrupted=any(s.status is StepStatus.ABORTED and s.message == INTERRUPTED for s in steps),
    )


# --- pack insertion and removal -------------------------------------------------------------------


def _answers(transport: Transport, address: int) -> bool:
    """One presence probe: does anything acknowledge a Voltage read at ``address``?

    :raises TransportError: anything but a NACK (bus stuck, adapter gone): a station fault.
    """
    try:
        transport.read_word(address, PRESENCE_COMMAND, pec=False)
    except NoAcknowledge:
        return False
    return True


def _poll(
    transport: Transport,
    address: int,
    want_present: bool,
    *,
    timeout_s: float | None,
    poll_s: float,
    settle: int,
    stop: threading.Event | None,
) -> bool:
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    stop = stop or threading.Event()
    streak = 0
    while True:
        streak = streak + 1 if _answers(transport, address) == want_present else 0
        if streak >= settle:
            return True
        if deadline is not None and time.monotonic() >= deadline:
            return False
        if stop.wait(poll_s):
            return False


def wait_for_pack(
    transport: Transport,
    address: int = 0x0B,
    *,
    timeout_s: float | None,
    poll_s: float = 0.25,
    settle: int = 3,
    stop: threading.Event | None = None,
) -> bool:
    """Poll until a pack answers ``settle`` times in a row (contacts settled).

    :param timeout_s: give up after this long; None = wait until ``stop`` is set.
    :returns: True when a pack is present, False on timeout or stop.
    :raises TransportError: the bus or adapter failed (not a NACK).
    """
    return _poll(transport, address, True, timeout_s=timeout_s, poll_s=poll_s, settle=settle, stop=stop)


def wait_for_removal(
    transport: Transport,
    address: int = 0x0B,
    *,
    timeout_s: float | None,
    poll_s: float = 0.25,
    settle: int = 3,
    stop: threading.Event | None = None,
) -> bool:
    """Poll until nothing answers ``settle`` times in a row (the pack was taken off the station).

    :returns: True when the pack is gone, False on timeout or stop.
    :raises TransportError: the bus or adapter failed (not a NACK).
    """
    return _poll(transport, address, False, timeout_s=timeout_s, poll_s=poll_s, settle=settle, stop=stop)
