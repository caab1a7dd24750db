"""One function per step kind: read the pack, compare with the plan, return measurements.

Every step function takes a :class:`StepContext` and returns a :class:`StepOutput` whose
:class:`Measurement` records each carry the value, its limits (or the expected text), the unit and
a verdict. A step fails when any of its measurements fails. A step that cannot judge the pack —
the gauge refuses a command, the pack reports capacities in mWh, the TI gauge driver is missing —
raises a :class:`~smartbatt.errors.SmartBattError` and the runner records it as an error (never a
pass). Bus errors propagate unchanged: the runner decides whether they abort the run.

Steps call :meth:`StepContext.checkpoint` between bus operations, so a timed-out or interrupted
step stops at the next transaction boundary instead of running on.
"""

from __future__ import annotations

import contextlib
import datetime
import enum
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from smartbatt.errors import SmartBattError, TransportError, VerifyError
from smartbatt.factory.plan import (
    QUANTITIES,
    IdentitySpec,
    KeySource,
    Limit,
    MeasureSpec,
    Plan,
    ProgramSpec,
    PythonSpec,
    SecuritySpec,
    StatusSpec,
    Step,
    StepKind,
    TextCheck,
    image_kind,
)
from smartbatt.gauge import ggcsv
from smartbatt.gauge.dataflash import DataFlash, ImportPlan, load_image
from smartbatt.gauge.gauge import Gauge
from smartbatt.gauge.security import Key, seal, unseal
from smartbatt.profiles.schema import DFValue
from smartbatt.sbs.battery import Battery
from smartbatt.sbs.codecs import BitFields, encode_date

if TYPE_CHECKING:
    from smartbatt.factory.runner import StepResult

__all__ = [
    "CELL_VOLTAGE_CODES",
    "STEP_FUNCTIONS",
    "Measurement",
    "SerialRegistry",
    "StepCancelled",
    "StepContext",
    "StepNotAvailable",
    "StepOutput",
    "Verdict",
    "check_limit",
    "check_text",
    "run_step",
]

#: CellVoltage1..4 → SBS codes 0x3F..0x3C (TI bq40z50 family, ti_gauges.md §2).
CELL_VOLTAGE_CODES: tuple[int, ...] = (0x3F, 0x3E, 0x3D, 0x3C)


class StepNotAvailable(SmartBattError):
    """The step needs something this installation or this pack does not offer (driver, database)."""


class StepCancelled(BaseException):
    """Raised at a checkpoint when the runner cancelled the step (timeout, Ctrl-C).

    A BaseException so a custom step's ``except Exception`` cannot swallow it.
    """


class Verdict(enum.StrEnum):
    PASS = "pass"
    FAIL = "fail"


@dataclass(frozen=True)
class Measurement:
    """One checked value: what was read, what was allowed, and the verdict."""

    #: ``cell_voltage_3``, ``device_name``, ``serial_unique``.
    name: str
    value: float | int | str | None
    verdict: Verdict
    unit: str = ""
    #: numeric limits (inclusive), or None when open / not numeric.
    low: float | None = None
    high: float | None = None
    #: what a non-numeric check expected (``= 'EMU-4S5000'``, ``sealed``).
    expected: str = ""
    #: why it failed, or extra context.
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.verdict is Verdict.PASS

    def limits_text(self) -> str:
        """``3700..4100 mV``, ``≤ 30 mV``, ``= 'LION'``; empty when unchecked."""
        if self.low is not None or self.high is not None:
            return Limit(self.name, self.unit, self.low, self.high).text()
        return self.expected

    @property
    def limit_label(self) -> str:
        """``limit`` for numeric limits, ``expected`` for a text expectation."""
        return "limit" if self.low is not None or self.high is not None else "expected"

    def value_text(self) -> str:
        if self.value is None:
            return "(none)"
        text = f"{self.value:.6g}" if isinstance(self.value, float) else str(self.value)
        return f"{text} {self.unit}" if self.unit else text

    def summary(self) -> str:
        """``cell_spread = 62 mV (limit ≤ 30 mV): FAIL``, ``security_state = unsealed (expected sealed): FAIL``."""
        limits = self.limits_text()
        text = f"{self.name} = {self.value_text()}"
        if limits:
            text += f" ({self.limit_label} {limits})"
        text += f": {self.verdict.value.upper()}"
        if self.detail:
            text += f" — {self.detail}"
        return text

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "unit": self.unit,
            "low": self.low,
            "high": self.high,
            "expected": self.expected,
            "verdict": self.verdict.value,
            "detail": self.detail,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Measurement:
        return cls(
            name=str(data["name"]),
            value=data.get("value"),
            verdict=Verdict(data["verdict"]),
            unit=str(data.get("unit") or ""),
            low=data.get("low"),
            high=data.get("high"),
            expected=str(data.get("expected") or ""),
            detail=str(data.get("detail") or ""),
        )


def check_limit(name: str, value: float, limit: Limit) -> Measurement:
    """A numeric measurement judged against ``limit``."""
    verdict = Verdict.PASS if limit.check(float(value)) else Verdict.FAIL
    return Measurement(name, value, verdict, limit.unit, limit.low, limit.high)


def check_text(name: str, value: str | None, check: TextCheck) -> Measurement:
    """A text register judged against an exact value or a pattern."""
    ok = value is not None and check.matches(value)
    return Measurement(name, value, Verdict.PASS if ok else Verdict.FAIL, expected=check.text())


@dataclass(frozen=True)
class StepOutput:
    measurements: tuple[Measurement, ...] = ()
    message: str = ""


class SerialRegistry(Protocol):
    """What steps need from the results database (see :class:`~smartbatt.factory.results_db.ResultsDb`)."""

    def claim_serial(self, product: str, serial: int, run_id: str, station: str) -> str | None:
        """Claim ``serial`` for this run; None if granted, else why not (who holds it)."""
        ...

    def allocate_serial(self, product: str, low: int, high: int, run_id: str, station: str) -> int:
        """Claim and return the next free serial in ``low..high``."""
        ...


@dataclass
class StepContext:
    """What a step gets: the pack, the plan, the results so far, the station and a cancel flag."""

    battery: Battery
    plan: Plan
    step: Step
    #: results of the steps run before this one.
    results: Sequence[StepResult]
    run_id: str
    station: str
    #: the results database (serial uniqueness, allocation); None when running without one.
    registry: SerialRegistry | None = None
    #: current UTC time (tests pass a fixed clock).
    clock: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC)
    #: set by the runner on timeout or Ctrl-C; :meth:`checkpoint` then stops the step.
    cancel: threading.Event = field(default_factory=threading.Event)
    #: identity learnt during the run (``serial``, ``device_name``, ``manufacture_date``).
    pack_info: dict[str, Any] = field(default_factory=dict)
    #: per-step cache of raw reads (cell voltages shared by cell_voltage and cell_spread).
    cache: dict[str, Any] = field(default_factory=dict)
    #: how the chip's mandated waits are spent (data-flash write delays, MAC delays), seconds. The
    #: default sleeps on the cancel flag; a bench on an emulated pack advances the pack's clock instead.
    sleep: Callable[[float], None] | None = None

    def checkpoint(self) -> None:
        """Stop here if the runner cancelled the step."""
        if self.cancel.is_set():
            raise StepCancelled()

    def today(self) -> datetime.date:
        return self.clock().date()

    def keys(self) -> tuple[tuple[int, int] | None, tuple[int, int] | None]:
        """(unseal key, full-access key) from the plan's key source; never logged or stored.

        :raises StepNotAvailable: the source gives no key.
        """
        return resolve_keys(self.plan)


# --- keys -----------------------------------------------------------------------------------------

UNSEAL_KEY_ENV = "SMARTBATT_UNSEAL_KEY"
FULL_ACCESS_KEY_ENV = "SMARTBATT_FULL_ACCESS_KEY"


def resolve_keys(plan: Plan) -> tuple[tuple[int, int] | None, tuple[int, int] | None]:
    """The unseal and full-access keys the plan's ``[security] keys`` source names.

    :raises StepNotAvailable: ``keys = "none"``, or a malformed environment variable.
    """
    if plan.keys is KeySource.NONE:
        raise StepNotAvailable("the plan has keys = 'none': this step needs the unseal key")
    if plan.keys is KeySource.ENV:
        return _env_key(UNSEAL_KEY_ENV), _env_key(FULL_ACCESS_KEY_ENV)
    from smartbatt.profiles.loader import load_profile

    security = load_profile(plan.pack.profile).security
    return security.default_unseal_key, security.default_full_access_key


def _env_key(name: str) -> tuple[int, int] | None:
    text = os.environ.get(name)
    if not text:
        return None
    parts = [p for p in re.split(r"[\s,;:]+", text.strip()) if p]
    try:
        words = [int(p, 0) for p in parts]
    except ValueError:
        raise StepNotAvailable(f"{name} must be two 16-bit words like 0x0414,0x3672") from None
    if len(words) != 2 or not all(0 <= w <= 0xFFFF for w in words):
        raise StepNotAvailable(f"{name} must be two 16-bit words like 0x0414,0x3672")
    return words[0], words[1]


# --- identity -------------------------------------------------------------------------------------


def identity_step(ctx: StepContext) -> StepOutput:
    """Read the identity registers and check them; claim the serial when it must be unique."""
    spec = ctx.step.spec
    assert isinstance(spec, IdentitySpec)
    b = ctx.battery
    out: list[Measurement] = []
    for name, check in (
        ("device_name", spec.device_name),
        ("manufacturer_name", spec.manufacturer_name),
        ("device_chemistry", spec.device_chemistry),
    ):
        if check is not None:
            ctx.checkpoint()
            value = str(getattr(b, name))
            ctx.pack_info[name] = value
            out.append(check_text(name, value, check))
    if spec.manufacture_date_max_age_days is not None:
        ctx.checkpoint()
        out.append(_check_date(ctx, b.manufacture_date, spec.manufacture_date_max_age_days))
    ctx.checkpoint()
    serial = b.serial_number
    ctx.pack_info["serial"] = serial
    out.extend(_check_serial(ctx, spec, serial))
    return StepOutput(tuple(out))


def _check_date(ctx: StepContext, made: datetime.date | None, max_age: int) -> Measurement:
    today = ctx.today()
    expected = f"within {max_age} days before {today.isoformat()}"
    if made is None:
        return Measurement("manufacture_date", None, Verdict.FAIL, expected=expected, detail="not set (0)")
    ctx.pack_info["manufacture_date"] = made.isoformat()
    age = (today - made).days
    if age < 0:
        detail = f"{-age} days in the future"
    elif age > max_age:
        detail = f"{age} days old"
    else:
        return Measurement("manufacture_date", made.isoformat(), Verdict.PASS, expected=expected)
    return Measurement("manufacture_date", made.isoformat(), Verdict.FAIL, expected=expected, detail=detail)


def _check_serial(ctx: StepContext, spec: IdentitySpec, serial: int) -> list[Measurement]:
    out: list[Measurement] = []
    if spec.serial_min is not None or spec.serial_max is not None:
        limit = Limit("serial_number", "", spec.serial_min, spec.serial_max)
        out.append(check_limit("serial_number", serial, limit))
    if spec.serial_pattern is not None:
        check = TextCheck(pattern=spec.serial_pattern)
        out.append(check_text("serial_pattern", str(serial), check))
    if spec.serial_unique:
        out.append(_claim(ctx, serial))
    return out


def _claim(ctx: StepContext, serial: int) -> Measurement:
    if ctx.registry is None:
        raise StepNotAvailable("serial_unique needs a results database (run with one, e.g. --db)")
    refusal = ctx.registry.claim_serial(ctx.plan.product, serial, ctx.run_id, ctx.station)
    expected = f"not passed before for product {ctx.plan.product!r}"
    if refusal is None:
        return Measurement("serial_unique", serial, Verdict.PASS, expected=expected)
    return Measurement("serial_unique", serial, Verdict.FAIL, expected=expected, detail=refusal)


# --- measure --------------------------------------------------------------------------------------


def measure_step(ctx: StepContext) -> StepOutput:
    """Read each limited quantity and judge it (cell quantities give one measurement per cell)."""
    spec = ctx.step.spec
    assert isinstance(spec, MeasureSpec)
    out: list[Measurement] = []
    for limit in spec.limits:
        ctx.checkpoint()
        for name, value in QUANTITY_READERS[limit.quantity](ctx):
            out.append(check_limit(name, value, limit))
    return StepOutput(tuple(out))


def _cells(ctx: StepContext) -> list[int]:
    """Cell voltages 1..N in mV (read once per step)."""
    cached = ctx.cache.get("cells")
    if cached is not None:
        return list(cached)
    count = ctx.plan.pack.cells
    if count > len(CELL_VOLTAGE_CODES):
        raise StepNotAvailable(
            f"the plan has {count} cells but only CellVoltage1..{len(CELL_VOLTAGE_CODES)} (0x3F..0x3C) are read"
        )
    b = ctx.battery
    values = []
    for code in CELL_VOLTAGE_CODES[:count]:
        ctx.checkpoint()
        values.append(b.transport.read_word(b.address, code, pec=b.pec))
    ctx.cache["cells"] = tuple(values)
    return values


def _signed(raw: int) -> int:
    return raw - 0x10000 if raw & 0x8000 else raw


def _capacity(ctx: StepContext, attr: str) -> int:
    """A capacity in mAh; a pack in CAPACITY_MODE (10 mWh) cannot be judged against mAh limits."""
    b = ctx.battery
    if b.capacity_mode:
        raise StepNotAvailable(
            "the pack reports capacities in 10 mWh (BatteryMode CAPACITY_MODE set); the plan's limits are in mAh"
        )
    value: int = getattr(b, attr)
    return value


def _capacity_ratio(ctx: StepContext) -> list[tuple[str, float]]:
    design = _capacity(ctx, "design_capacity")
    ctx.checkpoint()
    full = _capacity(ctx, "full_charge_capacity")
    if design <= 0:
        raise StepNotAvailable("DesignCapacity is 0: the FCC/design ratio is undefined")
    return [("capacity_ratio", round(100.0 * full / design, 2))]


def _word(attr: str) -> Callable[[StepContext], list[tuple[str, float]]]:
    def read(ctx: StepContext) -> list[tuple[str, float]]:
        return [(QUANTITY_OF_ATTR[attr], getattr(ctx.battery, attr))]

    return read


def _cap(attr: str) -> Callable[[StepContext], list[tuple[str, float]]]:
    def read(ctx: StepContext) -> list[tuple[str, float]]:
        return [(QUANTITY_OF_ATTR[attr], _capacity(ctx, attr))]

    return read


def _cell_voltages(ctx: StepContext) -> list[tuple[str, float]]:
    return [(f"cell_voltage_{i}", v) for i, v in enumerate(_cells(ctx), start=1)]


def _cell_spread(ctx: StepContext) -> list[tuple[str, float]]:
    cells = _cells(ctx)
    return [("cell_spread", max(cells) - min(cells))]


#: Battery attribute → quantity name, for quantities that are one SBS register.
QUANTITY_OF_ATTR: Mapping[str, str] = {
    "voltage": "voltage",
    "temperature": "temperature",
    "current": "current",
    "average_current": "average_current",
    "relative_state_of_charge": "relative_state_of_charge",
    "absolute_state_of_charge": "absolute_state_of_charge",
    "remaining_capacity": "remaining_capacity",
    "full_charge_capacity": "full_charge_capacity",
    "design_capacity": "design_capacity",
    "design_voltage": "design_voltage",
    "cycle_count": "cycle_count",
    "max_error": "max_error",
}

#: quantity → reader returning (measurement name, value) pairs; covers every plan QUANTITY.
QUANTITY_READERS: Mapping[str, Callable[[StepContext], list[tuple[str, float]]]] = {
    "voltage": _word("voltage"),
    "cell_voltage": _cell_voltages,
    "cell_spread": _cell_spread,
    "temperature": _word("temperature"),
    "current": _word("current"),
    "average_current": _word("average_current"),
    "relative_state_of_charge": _word("relative_state_of_charge"),
    "absolute_state_of_charge": _word("absolute_state_of_charge"),
    "remaining_capacity": _cap("remaining_capacity"),
    "full_charge_capacity": _cap("full_charge_capacity"),
    "design_capacity": _cap("design_capacity"),
    "capacity_ratio": _capacity_ratio,
    "design_voltage": _word("design_voltage"),
    "cycle_count": _word("cycle_count"),
    "max_error": _word("max_error"),
}
assert set(QUANTITY_READERS) == set(QUANTITIES), "every plan quantity needs a reader"


# --- status ---------------------------------------------------------------------------------------


def status_step(ctx: StepContext) -> StepOutput:
    """No alarm in BatteryStatus; no SafetyStatus / PFStatus bit (through the TI gauge driver)."""
    spec = ctx.step.spec
    assert isinstance(spec, StatusSpec)
    ignore = set(spec.ignore)
    out: list[Measurement] = []
    if spec.battery_status_alarms:
        ctx.checkpoint()
        out.append(_battery_status_alarms(ctx.battery.battery_status, ignore))
    if spec.safety_status or spec.pf_status:
        ctx.checkpoint()
        wanted = [r for r, on in (("SafetyStatus", spec.safety_status), ("PFStatus", spec.pf_status)) if on]
        words = gauge_status_words(ctx, wanted)
        out.extend(_clear_register(register, words, ignore) for register in wanted)
    return StepOutput(tuple(out))


def _battery_status_alarms(status: BitFields, ignore: set[str]) -> Measurement:
    alarms = [f.short for f in status.flags if f.name.endswith("_ALARM") and not {f.name, f.short} & ignore]
    detail = ", ".join(alarms)
    verdict = Verdict.FAIL if alarms else Verdict.PASS
    return Measurement("battery_status_alarms", f"0x{status.raw:04X}", verdict, expected="no alarm", detail=detail)


def _clear_register(register: str, words: Mapping[str, tuple[int, tuple[str, ...]]], ignore: set[str]) -> Measurement:
    if register not in words:
        raise StepNotAvailable(f"the gauge driver did not return {register}")
    raw, names = words[register]
    bad = [n for n in names if n not in ignore]
    name = "safety_status" if register == "SafetyStatus" else "pf_status"
    verdict = Verdict.FAIL if bad else Verdict.PASS
    return Measurement(name, f"0x{raw:08X}", verdict, expected="no flag", detail=", ".join(bad))


def gauge_status_words(ctx: StepContext, registers: Sequence[str]) -> dict[str, tuple[int, tuple[str, ...]]]:
    """``registers`` (SafetyStatus, PFStatus) as (raw, set flag names), read through the TI gauge driver.

    A SEALED gauge is unsealed with the plan's keys for the read and sealed again afterwards, so a
    check never leaves a pack less protected than it found it.

    :raises StepNotAvailable: the profile maps no such register, or no key to unseal with.
    :raises SecurityError: the key was refused.
    """
    gauge = _gauge(ctx)
    out: dict[str, tuple[int, tuple[str, ...]]] = {}
    with _unsealed(ctx, gauge, "read " + " and ".join(registers)):
        for name in registers:
            ctx.checkpoint()
            if name not in gauge.profile.status_sources:
                raise StepNotAvailable(f"chip profile {gauge.profile.name} maps no {name} register")
            decoded = gauge.status(name)
            out[name] = (decoded.raw, tuple(f.name for f in decoded.active))
    return out


# --- security -------------------------------------------------------------------------------------


def security_step(ctx: StepContext) -> StepOutput:
    """The gauge's security state (OperationStatus SEC bits, through the driver) is as expected."""
    spec = ctx.step.spec
    assert isinstance(spec, SecuritySpec)
    ctx.checkpoint()
    state = _gauge(ctx).security_state()
    if state.level is None:
        raise StepNotAvailable(f"the security state cannot be read: {state.source}")
    verdict = Verdict.PASS if state.level.value == spec.expect else Verdict.FAIL
    detail = f"read from {state.source}"
    return StepOutput((Measurement("security_state", state.level.value, verdict, expected=spec.expect, detail=detail),))


# --- program --------------------------------------------------------------------------------------


#: data-flash names of the SBS identity words (bqStudio export of a bq40z50-R1, the data-flash
#: source the bq40z50 profile cites: Hao-Chunlin/Gas-Gauge-Based-on-BQ40Z50 bq4050_user_config.gg.csv).
#: Writable only where the chip profile publishes their address.
MANUFACTURE_DATE_KEY = "SBS Configuration:Data:Manufacture Date"
SERIAL_NUMBER_KEY = "SBS Configuration:Data:Serial Number"


def program_step(ctx: StepContext) -> StepOutput:
    """Write the golden image and verify it, set date and serial, seal — through the TI gauge driver.

    Nothing after a failed image write is done: the pack is not sealed with a wrong configuration.
    """
    spec = ctx.step.spec
    assert isinstance(spec, ProgramSpec)
    gauge = _gauge(ctx)
    out: list[Measurement] = []
    if spec.image is not None or spec.manufacture_date != "keep" or spec.serial != "keep":
        _unseal_for_writes(ctx, gauge)
        df = DataFlash(gauge)
        if spec.image is not None:
            out.extend(_write_image(ctx, df, spec.image, spec.verify))
            if not all(m.passed for m in out):
                return StepOutput(tuple(out), "not sealed: the golden image did not verify")
        if spec.manufacture_date == "today":
            out.append(_program_date(ctx, df))
        if spec.serial == "allocate":
            out.append(_program_serial(ctx, df, spec))
    if spec.seal:
        ctx.checkpoint()
        state = seal(gauge)
        out.append(Measurement("sealed", str(state), Verdict.PASS if state.sealed else Verdict.FAIL, expected="SEALED"))
    return StepOutput(tuple(out))


def _unseal_for_writes(ctx: StepContext, gauge: Gauge) -> None:
    """Unseal for programming (unseal itself sends nothing to a gauge that is not SEALED)."""
    ctx.checkpoint()
    if ctx.plan.keys is KeySource.NONE:
        if gauge.security_state().sealed:
            raise StepNotAvailable("the gauge is SEALED and the plan has keys = 'none': cannot program it")
        return
    unseal(gauge, _key(ctx, 0))


def _write_image(ctx: StepContext, df: DataFlash, image: Path, verify: bool) -> list[Measurement]:
    """Program the golden image; with ``verify`` read every entry back and compare (our image,
    .gg.csv) or rely on the FlashStream file's own compare lines, of which there must be some.

    Only the entries that differ are written (each read back by the driver), so a re-run after an
    abort finishes the job; there is no journal or backup file per pack.
    """

    def progress(done: int, total: int, what: str) -> None:
        ctx.checkpoint()

    if image_kind(image) == "flashstream":
        try:
            return _run_flashstream(df, image, verify, progress)
        except VerifyError as exc:
            return [_verify_failed(image, exc)]
    values, skipped = _image_values(df, image)
    plan = df.diff(values, str(image))
    try:
        for change in plan.changes:
            ctx.checkpoint()
            df.write(change.key, change.new)
    except VerifyError as exc:
        return [_verify_failed(image, exc)]
    out = [_image_written(image, len(plan.changes), (*plan.skipped, *skipped))]
    if verify:
        ctx.checkpoint()
        out.append(_image_verified(image, df.diff(values, str(image))))
    return out


def _image_values(df: DataFlash, image: Path) -> tuple[dict[str, DFValue], tuple[tuple[str, str], ...]]:
    """Target values of a golden image, and the rows this chip profile cannot take (``.gg.csv``)."""
    if image_kind(image) == "gg":
        imported = ggcsv.import_gg(ggcsv.read_gg(image), df.profile, strict=False)
        unknown = tuple((row.key, f"not in the {df.profile.name} data-flash map") for row in imported.unknown)
        return dict(imported.values), unknown
    return dict(load_image(image, df.profile).values), ()


def _verify_failed(image: Path, exc: VerifyError) -> Measurement:
    return Measurement("image_verify", None, Verdict.FAIL, expected=f"{image.name} read back", detail=str(exc))


def _run_flashstream(
    df: DataFlash, image: Path, verify: bool, progress: Callable[[int, int, str], None]
) -> list[Measurement]:
    result = df.run_flashstream(image, progress=progress)
    out = [Measurement("image_write", result.writes, Verdict.PASS, "writes", expected=f"{image.name} run")]
    if verify:
        ok = result.compares > 0
        detail = "" if ok else "the FlashStream file has no SCW/SCL compare lines: nothing was verified"
        verdict = Verdict.PASS if ok else Verdict.FAIL
        out.append(
            Measurement("image_verify", result.compares, verdict, "compares", expected="all match", detail=detail)
        )
    return out


def _image_written(image: Path, written: int, skipped: tuple[tuple[str, str], ...]) -> Measurement:
    """Entries written; an entry the chip profile cannot write fails the step (the pack would not be
    configured as the golden image says)."""
    detail = "; ".join(f"{key}: {why}" for key, why in skipped)
    verdict = Verdict.FAIL if skipped else Verdict.PASS
    expected = f"every entry of {image.name} written"
    return Measurement("image_write", written, verdict, "entries", expected=expected, detail=detail)


def _image_verified(image: Path, plan: ImportPlan) -> Measurement:
    differ = [f"{c.key}: pack {c.old!r}, image {c.new!r}" for c in plan.changes]
    verdict = Verdict.FAIL if differ else Verdict.PASS
    return Measurement(
        "image_verify",
        len(plan.unchanged),
        verdict,
        "entries",
        expected=f"every entry equals {image.name}",
        detail="; ".join(differ),
    )


def _program_identity_word(ctx: StepContext, df: DataFlash, key: str, value: int) -> None:
    """Write one identity word through data flash, or say why the chip profile does not allow it."""
    ctx.checkpoint()
    try:
        entry = df.entry(key)
    except SmartBattError:
        raise StepNotAvailable(
            f"chip profile {df.profile.name} has no data-flash entry {key!r}: no public source gives its "
            "address, so it cannot be programmed"
        ) from None
    if entry.address is None:
        raise StepNotAvailable(f"{key}: chip profile {df.profile.name} publishes no address for it")
    df.write(key, value)


def _program_date(ctx: StepContext, df: DataFlash) -> Measurement:
    today = ctx.today()
    _program_identity_word(ctx, df, MANUFACTURE_DATE_KEY, encode_date(today))
    back = ctx.battery.manufacture_date
    ctx.pack_info["manufacture_date"] = back.isoformat() if back else None
    verdict = Verdict.PASS if back == today else Verdict.FAIL
    value = back.isoformat() if back else None
    return Measurement("manufacture_date_programmed", value, verdict, expected=today.isoformat())


def _program_serial(ctx: StepContext, df: DataFlash, spec: ProgramSpec) -> Measurement:
    if ctx.registry is None:
        raise StepNotAvailable("serial = 'allocate' needs a results database (run with one, e.g. --db)")
    serial = ctx.registry.allocate_serial(ctx.plan.product, spec.serial_min, spec.serial_max, ctx.run_id, ctx.station)
    _program_identity_word(ctx, df, SERIAL_NUMBER_KEY, serial)
    back = ctx.battery.serial_number
    ctx.pack_info["serial"] = back
    verdict = Verdict.PASS if back == serial else Verdict.FAIL
    return Measurement("serial_programmed", back, verdict, expected=str(serial))


# --- custom Python --------------------------------------------------------------------------------


def python_step(ctx: StepContext) -> StepOutput:
    """Call ``function(battery, results, **params)``.

    The function returns True/None (pass), False (fail), a :class:`Measurement`, or an iterable of
    them; an ``AssertionError`` is a failure with its message; any other exception is an error.
    """
    spec = ctx.step.spec
    assert isinstance(spec, PythonSpec) and spec.callable is not None
    try:
        returned = spec.callable(ctx.battery, tuple(ctx.results), **dict(spec.params))
    except AssertionError as exc:
        detail = str(exc) or "assertion failed"
        return StepOutput((Measurement(ctx.step.id, None, Verdict.FAIL, expected="pass", detail=detail),))
    return StepOutput(_python_measurements(ctx.step.id, returned))


def _python_measurements(step_id: str, returned: Any) -> tuple[Measurement, ...]:
    if returned is None or returned is True:
        return (Measurement(step_id, "pass", Verdict.PASS, expected="pass"),)
    if returned is False:
        return (Measurement(step_id, "fail", Verdict.FAIL, expected="pass"),)
    if isinstance(returned, Measurement):
        return (returned,)
    if isinstance(returned, Iterable) and not isinstance(returned, str | bytes):
        items = tuple(returned)
        if items and all(isinstance(m, Measurement) for m in items):
            return items
    raise SmartBattError(
        f"custom step {step_id!r} returned {type(returned).__name__}; "
        "return True/False/None, a Measurement or a list of Measurements"
    )


# --- the TI gauge driver -------------------------------------------------------------------------


def _gauge(ctx: StepContext) -> Gauge:
    """The TI gauge driver on this step's battery, with the plan's chip profile (cached per step).

    Its waits (MAC delays, key confirmation, data-flash write delays) stop at once when the runner
    cancels the step.
    """
    cached = ctx.cache.get("gauge")
    if isinstance(cached, Gauge):
        return cached

    def sleep(seconds: float) -> None:
        ctx.checkpoint()
        if ctx.sleep is not None:
            ctx.sleep(seconds)
        elif ctx.cancel.wait(seconds):
            raise StepCancelled()

    gauge = Gauge(ctx.battery, ctx.plan.pack.profile, sleep=sleep)
    ctx.cache["gauge"] = gauge
    return gauge


def _key(ctx: StepContext, which: int) -> Key | None:
    """The station's key (0 = unseal, 1 = full access); None = the profile's published default.

    :raises StepNotAvailable: ``keys = "env"`` and the variable is not set (never fall back to a
        default key the line did not ask for).
    """
    words = ctx.keys()[which]
    if words is None and ctx.plan.keys is KeySource.ENV:
        name = UNSEAL_KEY_ENV if which == 0 else FULL_ACCESS_KEY_ENV
        raise StepNotAvailable(f"the plan takes its keys from the environment but {name} is not set")
    return None if words is None else Key(*words)


@contextlib.contextmanager
def _unsealed(ctx: StepContext, gauge: Gauge, action: str) -> Iterator[None]:
    """Unseal for the duration of ``action`` if the gauge is SEALED; seal it again afterwards.

    After a bus failure no seal is attempted (the bus is gone); the run aborts and the pack is
    re-tested.
    """
    state = gauge.security_state()
    if not state.sealed:
        yield
        return
    if ctx.plan.keys is KeySource.NONE:
        raise StepNotAvailable(f"the gauge is SEALED and the plan has keys = 'none': cannot {action}")
    unseal(gauge, _key(ctx, 0))
    try:
        yield
    except TransportError:
        raise
    except BaseException:
        seal(gauge)
        raise
    seal(gauge)


# --- dispatch -------------------------------------------------------------------------------------

STEP_FUNCTIONS: Mapping[StepKind, Callable[[StepContext], StepOutput]] = {
    StepKind.IDENTITY: identity_step,
    StepKind.MEASURE: measure_step,
    StepKind.STATUS: status_step,
    StepKind.SECURITY: security_step,
    StepKind.PROGRAM: program_step,
    StepKind.PYTHON: python_step,
}


def run_step(ctx: StepContext) -> StepOutput:
    """Run the step ``ctx.step`` (dispatch on its kind)."""
    return STEP_FUNCTIONS[ctx.step.kind](ctx)
