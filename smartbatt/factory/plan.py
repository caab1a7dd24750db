"""End-of-line test plans as data: load a TOML (or YAML) plan file into frozen, validated records.

A plan is a list of steps, each of one kind (:class:`StepKind`): check the identity, measure with
limits, check the status flags, check the security state, program the pack, or run a custom
Python function. Rules (the profile loader's, STYLE.md §4):

* The file starts with ``schema_version``; the loader reads exactly :data:`SCHEMA_VERSION`.
* Values are read as plain strings, numbers and booleans and converted by the typed readers
  below; an unknown key is an error, so a typo never silently drops a limit.
* Every failure is one :class:`PlanError` naming the file, the dotted key path and the reason
  (``eol_drone_4s.toml: steps[1].limits.cell_spread.max: expected a number, got str '30'``).
* Nothing is half-loaded: the plan is built only after every step validated.

Limits carry their unit, and the unit must be the one the measured quantity has
(:data:`QUANTITIES`), so a plan that says ``unit = "V"`` for a value read in mV fails on load
instead of passing every pack.

The plan's :attr:`Plan.sha256` covers the plan file and every file it references (golden image,
custom Python step), so a result record names exactly what the pack was tested against.
"""

from __future__ import annotations

import enum
import hashlib
import importlib
import importlib.util
import math
import re
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Self, TypeVar

from smartbatt.datafile import TableReader
from smartbatt.errors import ProfileError, SmartBattError

__all__ = [
    "QUANTITIES",
    "SCHEMA_VERSION",
    "IdentitySpec",
    "KeySource",
    "Limit",
    "MeasureSpec",
    "Plan",
    "PlanError",
    "PresenceSpec",
    "ProgramSpec",
    "PythonSpec",
    "Quantity",
    "SecuritySpec",
    "StatusSpec",
    "Step",
    "StepKind",
    "TextCheck",
    "load_plan",
    "parse_plan",
]

#: the plan schema this loader reads.
SCHEMA_VERSION = 1
#: cell-voltage registers a measure step reads (CellVoltage1..4, ti_gauges.md §2).
MAX_CELL_REGISTERS = 4

T = TypeVar("T")

_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,47}$")
_FUNCTION_RE = re.compile(r"^(?P<where>[^:]+):(?P<name>[A-Za-z_][A-Za-z0-9_]*)$")


class PlanError(SmartBattError):
    """A test plan file is invalid.

    :ivar file: the plan file name as given.
    :ivar key_path: dotted path of the offending key (``steps[2].limits.voltage.min``), or empty.
    :ivar reason: what is wrong.
    """

    def __init__(self, file: str, key_path: str, reason: str) -> None:
        super().__init__(f"{file}: {key_path}: {reason}" if key_path else f"{file}: {reason}")
        self.file = file
        self.key_path = key_path
        self.reason = reason


# --- the quantity catalogue ---------------------------------------------------------------------


@dataclass(frozen=True)
class Quantity:
    """A measurable value a ``measure`` step can put limits on."""

    name: str
    #: unit the value is measured in; a limit must state the same unit.
    unit: str
    label: str
    description: str
    #: one measurement per cell (``cell_voltage_1`` … ``cell_voltage_N``).
    per_cell: bool = False


#: Everything a ``measure`` step can limit. Units are the SBS units (sbs.md §1) with
#: CAPACITY_MODE clear; capacities of a pack reporting in 10 mWh are an error, not a conversion.
QUANTITIES: Mapping[str, Quantity] = MappingProxyType(
    {
        q.name: q
        for q in (
            Quantity("voltage", "mV", "Pack voltage", "SBS Voltage (0x09)."),
            Quantity(
                "cell_voltage",
                "mV",
                "Cell voltage",
                "Each cell: CellVoltage1..4 at 0x3F..0x3C (TI bq40z, ti_gauges.md §2).",
                per_cell=True,
            ),
            Quantity("cell_spread", "mV", "Cell spread", "Highest minus lowest cell voltage."),
            Quantity("temperature", "°C", "Temperature", "SBS Temperature (0x08), 0.1 K converted to °C."),
            Quantity("current", "mA", "Current", "SBS Current (0x0A); positive = charging."),
            Quantity("average_current", "mA", "Average current", "SBS AverageCurrent (0x0B), one-minute average."),
            Quantity("relative_state_of_charge", "%", "Relative SoC", "SBS RelativeStateOfCharge (0x0D)."),
            Quantity("absolute_state_of_charge", "%", "Absolute SoC", "SBS AbsoluteStateOfCharge (0x0E)."),
            Quantity("remaining_capacity", "mAh", "Remaining capacity", "SBS RemainingCapacity (0x0F)."),
            Quantity("full_charge_capacity", "mAh", "Full charge capacity", "SBS FullChargeCapacity (0x10)."),
            Quantity("design_capacity", "mAh", "Design capacity", "SBS DesignCapacity (0x18)."),
            Quantity(
                "capacity_ratio",
                "%",
                "FCC / design",
                "FullChargeCapacity as a share of DesignCapacity (0x10 / 0x18 × 100).",
            ),
            Quantity("design_voltage", "mV", "Design voltage", "SBS DesignVoltage (0x19)."),
            Quantity("cycle_count", "cycles", "Cycle count", "SBS CycleCount (0x17)."),
            Quantity("max_error", "%", "Max error", "SBS MaxError (0x0C): uncertainty of the SoC estimate."),
        )
    }
)


# --- plan records -------------------------------------------------------------------------------


class StepKind(enum.StrEnum):
    """What a step does."""

    IDENTITY = "identity"
    MEASURE = "measure"
    STATUS = "status"
    SECURITY = "security"
    PROGRAM = "program"
    PYTHON = "python"

    @property
    def writes(self) -> bool:
        """True for steps that change the pack (never run after a failure)."""
        return self in (StepKind.PROGRAM, StepKind.PYTHON)


class KeySource(enum.StrEnum):
    """Where the unseal / full-access keys come from (never from the plan file itself)."""

    #: the chip profile's published default keys (a pack still on TI's defaults).
    DEFAULT = "default"
    #: ``SMARTBATT_UNSEAL_KEY`` / ``SMARTBATT_FULL_ACCESS_KEY`` (``0x0414,0x3672``).
    ENV = "env"
    #: none: the station works sealed (status details and programming are unavailable).
    NONE = "none"


@dataclass(frozen=True)
class Limit:
    """Limits of one quantity: ``low ≤ value ≤ high`` (either side may be open)."""

    quantity: str
    unit: str
    low: float | None = None
    high: float | None = None

    def check(self, value: float) -> bool:
        """Whether ``value`` is within the limits (NaN never is)."""
        if math.isnan(value):
            return False
        return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)

    def text(self) -> str:
        """``3700..4100 mV``, ``≤ 30 mV``, ``≥ 95 %``."""
        unit = f" {self.unit}" if self.unit else ""
        if self.low is not None and self.high is not None:
            return f"{_num(self.low)}..{_num(self.high)}{unit}"
        if self.high is not None:
            return f"≤ {_num(self.high)}{unit}"
        return f"≥ {_num(self.low or 0.0)}{unit}"


def _num(value: float) -> str:
    return f"{value:g}"


@dataclass(frozen=True)
class TextCheck:
    """A text register checked for an exact value or against a regular expression."""

    exact: str | None = None
    pattern: str | None = None

    def matches(self, text: str) -> bool:
        if self.exact is not None:
            return text == self.exact
        assert self.pattern is not None
        return re.search(self.pattern, text) is not None

    def text(self) -> str:
        return f"= {self.exact!r}" if self.exact is not None else f"~ /{self.pattern}/"


@dataclass(frozen=True)
class IdentitySpec:
    """Checks of the identity registers (SBS 0x1B, 0x1C, 0x20–0x22)."""

    device_name: TextCheck | None = None
    manufacturer_name: TextCheck | None = None
    device_chemistry: TextCheck | None = None
    #: ManufactureDate must be within this many days before today (and not in the future).
    manufacture_date_max_age_days: int | None = None
    #: SerialNumber limits (the SBS serial is a 16-bit number).
    serial_min: int | None = None
    serial_max: int | None = None
    #: regular expression the decimal serial must match.
    serial_pattern: str | None = None
    #: the serial must not have passed before (atomic claim in the results database).
    serial_unique: bool = False


@dataclass(frozen=True)
class MeasureSpec:
    limits: tuple[Limit, ...]


@dataclass(frozen=True)
class StatusSpec:
    """Which status words must be clear."""

    #: no alarm bit in BatteryStatus (0x16): OCA, TCA, OTA, TDA, RCA, RTA (sbs.md §3).
    battery_status_alarms: bool = True
    #: no SafetyStatus bit (TI; read through the gauge driver).
    safety_status: bool = True
    #: no PFStatus bit (TI; read through the gauge driver).
    pf_status: bool = True
    #: flag names that may be set without failing (e.g. ``["RCA"]`` for a pack shipped empty).
    ignore: tuple[str, ...] = ()


@dataclass(frozen=True)
class SecuritySpec:
    #: ``sealed``, ``unsealed`` or ``full_access``.
    expect: str = "sealed"


@dataclass(frozen=True)
class ProgramSpec:
    """Programming: golden image, identity, sealing — each part optional."""

    #: data-flash golden image (our image format, a FlashStream ``.fs`` or a ``.gg.csv``), or None.
    image: Path | None = None
    #: read the image back and compare after writing.
    verify: bool = True
    #: ``today`` (the station's UTC date), ``keep``.
    manufacture_date: str = "keep"
    #: ``allocate`` (next free serial from the results database), ``keep``.
    serial: str = "keep"
    serial_min: int = 1
    serial_max: int = 0xFFFF
    #: seal the pack at the end of the step.
    seal: bool = False


@dataclass(frozen=True)
class PythonSpec:
    """A custom step: ``function(battery, results, **params)``."""

    #: ``file.py:name`` (relative to the plan) or ``package.module:name``.
    function: str
    params: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    #: the resolved function (loaded when the plan is loaded).
    callable: Callable[..., Any] | None = field(default=None, compare=False, repr=False)


StepSpec = IdentitySpec | MeasureSpec | StatusSpec | SecuritySpec | ProgramSpec | PythonSpec


@dataclass(frozen=True)
class Step:
    #: unique id within the plan (``[a-z0-9][a-z0-9_-]*``); the JUnit test-case name.
    id: str
    kind: StepKind
    title: str
    #: wall-clock limit of the step, seconds.
    timeout_s: float
    spec: StepSpec


@dataclass(frozen=True)
class PackSpec:
    """What pack the plan is for."""

    #: chip profile (``bq40z50``, ``generic-sbs``): status bit names, data flash, security.
    profile: str = "generic-sbs"
    #: series cells: how many CellVoltage registers a ``cell_voltage`` limit reads.
    cells: int = 4
    #: SMBus address of the gauge.
    address: int = 0x0B


@dataclass(frozen=True)
class PresenceSpec:
    """How the station sees a pack arrive and leave (polling; all times in seconds)."""

    #: give up waiting for a pack after this long (single runs; ``--loop`` waits forever).
    insert_timeout_s: float = 300.0
    #: give up waiting for the pack to be removed after this long.
    removal_timeout_s: float = 300.0
    poll_interval_s: float = 0.25
    #: consecutive answers (or silences) that count as inserted (or removed): contact bounce.
    settle_reads: int = 3


@dataclass(frozen=True)
class Plan:
    """A loaded, validated end-of-line test plan."""

    name: str
    title: str
    description: str
    #: serial-number scope: serials are unique per product (defaults to the plan name).
    product: str
    pack: PackSpec
    presence: PresenceSpec
    keys: KeySource
    #: stop at the first failing step (the rest are recorded as skipped).
    stop_on_fail: bool
    steps: tuple[Step, ...]
    #: SHA-256 (hex) of the plan file and every file it references.
    sha256: str
    #: the file it was loaded from, or None for a plan built in code.
    file: Path | None = None

    def step(self, step_id: str) -> Step:
        """The step with this id. :raises KeyError: no such step."""
        for s in self.steps:
            if s.id == step_id:
                return s
        raise KeyError(step_id)


# --- typed reading ------------------------------------------------------------------------------


class _Reader(TableReader):
    """A table of the plan file plus its key path; typed getters raise :class:`PlanError`."""

    hex_ranges = False

    def error(self, file: str, key_path: str, reason: str) -> SmartBattError:
        return PlanError(file, key_path, reason)

    def opt_str(self, name: str, *, required: bool = False, nonempty: bool = True) -> str | None:
        """Plan strings (names, patterns, paths) are never meaningfully empty."""
        return super().opt_str(name, required=required, nonempty=nonempty)

    def tables(self, name: str) -> Iterator[Self]:
        """The plan's ``[[steps]]``: required, and at least one."""
        v = self.get(name, True)
        if not isinstance(v, list) or not all(isinstance(x, dict) for x in v):
            raise self.fail(name, "expected an array of tables ([[steps]])")
        if not v:
            raise self.fail(name, "a plan needs at least one step")
        yield from super().tables(name)


# --- loading --------------------------------------------------------------------------------------


def load_plan(path: str | Path) -> Plan:
    """Load and validate a plan file (``.toml``, or ``.yaml``/``.yml`` when PyYAML is installed).

    :raises PlanError: unreadable file, syntax error, unknown key, wrong type, value out of range,
        missing referenced file, unknown chip profile, or a custom function that cannot be loaded.
    """
    file = Path(path)
    label = str(path)
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise PlanError(label, "", f"cannot read: {exc.strerror or exc}") from None
    data = _parse_text(raw, label, file.suffix.lower())
    return parse_plan(data, file=label, base_dir=file.parent, source_bytes=raw, path=file)


def _parse_text(raw: bytes, label: str, suffix: str) -> Mapping[str, Any]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PlanError(label, "", f"not UTF-8 text (byte {exc.start})") from None
    if suffix in (".yaml", ".yml"):
        return _parse_yaml(text, label)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PlanError(label, "", f"not valid TOML: {exc}") from None


def _parse_yaml(text: str, label: str) -> Mapping[str, Any]:
    try:
        yaml: Any = importlib.import_module("yaml")  # optional: PyYAML has no type stubs here
    except ImportError:
        raise PlanError(label, "", "YAML plans need PyYAML (pip install pyyaml), or write the plan in TOML") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PlanError(label, "", f"not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise PlanError(label, "", "the top level must be a mapping")
    return data


_TOP_KEYS = {
    "schema_version",
    "name",
    "title",
    "description",
    "product",
    "stop_on_fail",
    "step_timeout_s",
    "pack",
    "presence",
    "security",
    "steps",
}


def parse_plan(
    data: Mapping[str, Any],
    *,
    file: str = "<plan>",
    base_dir: Path | None = None,
    source_bytes: bytes | None = None,
    path: Path | None = None,
) -> Plan:
    """Validate plan data (as a TOML or YAML parser returns it) and build the :class:`Plan`.

    :param base_dir: directory relative file references are resolved against (default: cwd).
    :param source_bytes: the file's bytes, hashed into :attr:`Plan.sha256` (default: the data's repr).
    :raises PlanError: see :func:`load_plan`.
    """
    r = _Reader(file, "", data)
    r.check_keys(_TOP_KEYS)
    version = r.get("schema_version", True)
    if isinstance(version, bool) or version != SCHEMA_VERSION:
        raise r.fail("schema_version", f"this smartbatt reads plan schema {SCHEMA_VERSION}, got {version!r}")
    base = base_dir if base_dir is not None else Path.cwd()
    name = r.req_str("name")
    if not _ID_RE.match(name):
        raise r.fail("name", f"{name!r} is not a plan name (lower-case letters, digits, '-' and '_', ≤ 48)")
    pack = _parse_pack(r.table("pack"), file)
    default_timeout = r.opt_float("step_timeout_s", 0.1, 3600.0) or 30.0
    refs: list[Path] = []
    steps = tuple(_parse_step(s, default_timeout, base, refs) for s in r.tables("steps"))
    _check_step_ids(steps, file)
    _check_steps_for_pack(steps, pack, file)
    security = r.table("security")
    keys = KeySource.DEFAULT
    if security is not None:
        security.check_keys({"keys"})
        keys = KeySource(security.choice("keys", tuple(k.value for k in KeySource), KeySource.DEFAULT.value))
    return Plan(
        name=name,
        title=r.opt_str("title") or name,
        description=r.opt_str("description") or "",
        product=r.opt_str("product") or name,
        pack=pack,
        presence=_parse_presence(r.table("presence")),
        keys=keys,
        stop_on_fail=r.opt_bool("stop_on_fail", True),
        steps=steps,
        sha256=_digest(source_bytes if source_bytes is not None else repr(data).encode(), refs),
        file=path,
    )


def _digest(source: bytes, refs: list[Path]) -> str:
    """SHA-256 over the plan bytes, then each referenced file's name and bytes, in plan order."""
    h = hashlib.sha256(source)
    for ref in refs:
        h.update(b"\0" + ref.name.encode() + b"\0")
        h.update(ref.read_bytes())
    return h.hexdigest()


def _check_steps_for_pack(steps: tuple[Step, ...], pack: PackSpec, file: str) -> None:
    """What only the pack makes checkable: cell registers, golden images against the chip profile."""
    for i, s in enumerate(steps):
        if isinstance(s.spec, MeasureSpec) and pack.cells > MAX_CELL_REGISTERS and _reads_cells(s.spec):
            raise PlanError(
                file,
                f"steps[{i}].limits",
                f"cell limits read CellVoltage1..{MAX_CELL_REGISTERS}; the pack has {pack.cells} cells",
            )
        if isinstance(s.spec, ProgramSpec) and s.spec.image is not None:
            _check_image(s.spec.image, pack.profile, file, f"steps[{i}].image")


def _reads_cells(spec: MeasureSpec) -> bool:
    return any(QUANTITIES[lim.quantity].per_cell or lim.quantity == "cell_spread" for lim in spec.limits)


def _check_image(image: Path, profile_name: str, file: str, key: str) -> None:
    """Parse the golden image for the plan's chip (nothing is half-checked at run time)."""
    from smartbatt.errors import FileFormatError
    from smartbatt.gauge import dataflash, ggcsv
    from smartbatt.profiles.loader import load_profile

    profile = load_profile(profile_name)
    kind = image_kind(image)
    try:
        if kind == "flashstream":
            dataflash.plan_flashstream(image, profile)
        elif kind == "gg":
            ggcsv.import_gg(ggcsv.read_gg(image), profile, strict=False)
        else:
            dataflash.load_image(image, profile)
    except FileFormatError as exc:
        raise PlanError(file, key, f"golden image: {exc}") from None


def image_kind(path: Path) -> str:
    """``flashstream`` (``.fs``), ``gg`` (``.gg.csv``/``.csv``) or ``image`` (our JSON format)."""
    name = path.name.lower()
    if name.endswith(".fs"):
        return "flashstream"
    if name.endswith(".csv"):
        return "gg"
    return "image"


def _check_step_ids(steps: tuple[Step, ...], file: str) -> None:
    seen: set[str] = set()
    for i, s in enumerate(steps):
        if s.id in seen:
            raise PlanError(file, f"steps[{i}].id", f"{s.id!r} is used by an earlier step; step ids must be unique")
        seen.add(s.id)


def _parse_pack(r: _Reader | None, file: str) -> PackSpec:
    if r is None:
        return PackSpec()
    r.check_keys({"profile", "cells", "address"})
    profile = r.opt_str("profile") or PackSpec.profile
    _check_profile(r, profile)
    return PackSpec(
        profile=profile,
        cells=r.opt_int("cells", 1, 16) or PackSpec.cells,
        address=r.opt_int("address", 0x03, 0x77) or PackSpec.address,
    )


def _check_profile(r: _Reader, name: str) -> None:
    from smartbatt.profiles.loader import load_profile

    try:
        load_profile(name)
    except ProfileError as exc:
        raise r.fail("profile", f"chip profile {name!r} cannot be loaded: {exc.reason}") from None


def _parse_presence(r: _Reader | None) -> PresenceSpec:
    if r is None:
        return PresenceSpec()
    r.check_keys({"insert_timeout_s", "removal_timeout_s", "poll_interval_s", "settle_reads"})
    d = PresenceSpec()
    return PresenceSpec(
        insert_timeout_s=_or(r.opt_float("insert_timeout_s", 0.0, 86400.0), d.insert_timeout_s),
        removal_timeout_s=_or(r.opt_float("removal_timeout_s", 0.0, 86400.0), d.removal_timeout_s),
        poll_interval_s=_or(r.opt_float("poll_interval_s", 0.001, 60.0), d.poll_interval_s),
        settle_reads=_or(r.opt_int("settle_reads", 1, 100), d.settle_reads),
    )


def _or(value: T | None, default: T) -> T:
    return default if value is None else value


_COMMON_STEP_KEYS = {"id", "kind", "title", "timeout_s"}


def _parse_step(r: _Reader, default_timeout: float, base: Path, refs: list[Path]) -> Step:
    step_id = r.req_str("id")
    if not _ID_RE.match(step_id):
        raise r.fail("id", f"{step_id!r} is not a step id (lower-case letters, digits, '-' and '_', ≤ 48)")
    kinds = tuple(k.value for k in StepKind)
    if r.get("kind") is None:
        raise r.fail("kind", f"missing (one of {', '.join(kinds)})")
    kind = StepKind(r.choice("kind", kinds, ""))
    parser, keys = _STEP_PARSERS[kind]
    r.check_keys(_COMMON_STEP_KEYS | keys)
    spec = parser(r, base, refs)
    return Step(
        id=step_id,
        kind=kind,
        title=r.opt_str("title") or step_id,
        timeout_s=_or(r.opt_float("timeout_s", 0.01, 3600.0), default_timeout),
        spec=spec,
    )


def _text_check(r: _Reader, name: str) -> TextCheck | None:
    exact = r.opt_str(name)
    pattern = r.regex(f"{name}_pattern")
    if exact is not None and pattern is not None:
        raise r.fail(f"{name}_pattern", f"give either {name} or {name}_pattern, not both")
    if exact is None and pattern is None:
        return None
    return TextCheck(exact=exact, pattern=pattern)


def _parse_identity(r: _Reader, base: Path, refs: list[Path]) -> IdentitySpec:
    spec = IdentitySpec(
        device_name=_text_check(r, "device_name"),
        manufacturer_name=_text_check(r, "manufacturer_name"),
        device_chemistry=_text_check(r, "device_chemistry"),
        manufacture_date_max_age_days=r.opt_int("manufacture_date_max_age_days", 0, 36500),
        serial_min=r.opt_int("serial_min", 0, 0xFFFF),
        serial_max=r.opt_int("serial_max", 0, 0xFFFF),
        serial_pattern=r.regex("serial_pattern"),
        serial_unique=r.opt_bool("serial_unique", False),
    )
    if spec.serial_min is not None and spec.serial_max is not None and spec.serial_min > spec.serial_max:
        raise r.fail("serial_max", f"{spec.serial_max} is below serial_min {spec.serial_min}")
    if spec == IdentitySpec():
        raise r.fail("", "an identity step must check something (device_name, serial_unique, …)")
    return spec


_IDENTITY_KEYS = {
    *(f"{n}{s}" for n in ("device_name", "manufacturer_name", "device_chemistry") for s in ("", "_pattern")),
    "manufacture_date_max_age_days",
    "serial_min",
    "serial_max",
    "serial_pattern",
    "serial_unique",
}


def _parse_measure(r: _Reader, base: Path, refs: list[Path]) -> MeasureSpec:
    table = r.table("limits", required=True)
    assert table is not None
    if not table.data:
        raise r.fail("limits", "a measure step needs at least one limit")
    return MeasureSpec(tuple(_parse_limit(table, str(name)) for name in table.data))


def _parse_limit(table: _Reader, name: str) -> Limit:
    quantity = QUANTITIES.get(name)
    if quantity is None:
        raise table.fail(name, f"unknown quantity (known: {', '.join(QUANTITIES)})")
    r = table.table(name, required=True)
    assert r is not None
    r.check_keys({"min", "max", "unit"})
    unit = r.opt_str("unit", required=True)
    if unit != quantity.unit:
        raise r.fail("unit", f"{name} is measured in {quantity.unit!r}, not {unit!r}")
    low = r.opt_float("min", -1e9, 1e9)
    high = r.opt_float("max", -1e9, 1e9)
    if low is None and high is None:
        raise r.fail("", "give min, max or both")
    if low is not None and high is not None and low > high:
        raise r.fail("max", f"{high:g} is below min {low:g}")
    return Limit(quantity=name, unit=quantity.unit, low=low, high=high)


def _parse_status(r: _Reader, base: Path, refs: list[Path]) -> StatusSpec:
    spec = StatusSpec(
        battery_status_alarms=r.opt_bool("battery_status_alarms", True),
        safety_status=r.opt_bool("safety_status", True),
        pf_status=r.opt_bool("pf_status", True),
        ignore=r.str_list("ignore"),
    )
    if not (spec.battery_status_alarms or spec.safety_status or spec.pf_status):
        raise r.fail("", "a status step must check at least one of battery_status_alarms, safety_status, pf_status")
    return spec


_SECURITY_STATES = ("sealed", "unsealed", "full_access")


def _parse_security(r: _Reader, base: Path, refs: list[Path]) -> SecuritySpec:
    return SecuritySpec(expect=r.choice("expect", _SECURITY_STATES, "sealed"))


def _parse_program(r: _Reader, base: Path, refs: list[Path]) -> ProgramSpec:
    image = None
    image_name = r.opt_str("image")
    if image_name is not None:
        image = (base / image_name).resolve()
        if not image.is_file():
            raise r.fail("image", f"golden image {image_name!r} not found (looked for {image})")
        refs.append(image)
    spec = ProgramSpec(
        image=image,
        verify=r.opt_bool("verify", True),
        manufacture_date=r.choice("manufacture_date", ("today", "keep"), "keep"),
        serial=r.choice("serial", ("allocate", "keep"), "keep"),
        serial_min=_or(r.opt_int("serial_min", 0, 0xFFFF), 1),
        serial_max=_or(r.opt_int("serial_max", 0, 0xFFFF), 0xFFFF),
        seal=r.opt_bool("seal", False),
    )
    if spec.serial_min > spec.serial_max:
        raise r.fail("serial_max", f"{spec.serial_max} is below serial_min {spec.serial_min}")
    if spec == ProgramSpec():
        raise r.fail("", "a program step must do something (image, manufacture_date, serial or seal)")
    return spec


def _parse_python(r: _Reader, base: Path, refs: list[Path]) -> PythonSpec:
    text = r.req_str("function")
    m = _FUNCTION_RE.match(text)
    if m is None:
        raise r.fail("function", f"{text!r} is not 'file.py:function' or 'package.module:function'")
    params = r.table("params")
    func = _resolve_function(r, m.group("where"), m.group("name"), base, refs)
    return PythonSpec(
        function=text,
        params=MappingProxyType(dict(params.data) if params is not None else {}),
        callable=func,
    )


def _resolve_function(r: _Reader, where: str, name: str, base: Path, refs: list[Path]) -> Callable[..., Any]:
    if where.endswith(".py"):
        source = (base / where).resolve()
        if not source.is_file():
            raise r.fail("function", f"{where!r} not found (looked for {source})")
        refs.append(source)
        spec = importlib.util.spec_from_file_location(f"smartbatt_plan_{source.stem}", source)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        loader = spec.loader
        load: Callable[[], Any] = lambda: loader.exec_module(module)  # noqa: E731
    else:
        module = None
        load = lambda: importlib.import_module(where)  # noqa: E731
    try:
        loaded = load()
    except Exception as exc:  # noqa: BLE001 - any error in user code becomes one PlanError
        raise r.fail("function", f"cannot load {where!r}: {type(exc).__name__}: {exc}") from None
    func = getattr(module if module is not None else loaded, name, None)
    if not callable(func):
        raise r.fail("function", f"{where!r} has no function {name!r}")
    result: Callable[..., Any] = func
    return result


_STEP_PARSERS: Mapping[StepKind, tuple[Callable[[_Reader, Path, list[Path]], StepSpec], set[str]]] = {
    StepKind.IDENTITY: (_parse_identity, _IDENTITY_KEYS),
    StepKind.MEASURE: (_parse_measure, {"limits"}),
    StepKind.STATUS: (_parse_status, {"battery_status_alarms", "safety_status", "pf_status", "ignore"}),
    StepKind.SECURITY: (_parse_security, {"expect"}),
    StepKind.PROGRAM: (
        _parse_program,
        {"image", "verify", "manufacture_date", "serial", "serial_min", "serial_max", "seal"},
    ),
    StepKind.PYTHON: (_parse_python, {"function", "params"}),
}
