"""Host-side alarm rules and the gauge's own flags, as :class:`~smartbatt.monitor.sample.Event` records.

An :class:`AlarmEngine` takes :class:`~smartbatt.monitor.sample.Sample` records (from a
:class:`~smartbatt.monitor.sample.SampleBus`, a replay, or a test) and raises events for:

* limits from an :class:`AlarmLimits` file, each with warning / alarm / critical tiers,
  hysteresis and a debounce delay: cell over/under-voltage, charge and discharge over-current,
  over/under-temperature (always, and tighter ones while charging), cell imbalance;
* thermal-runaway precursors: temperature rising faster than the load explains (measured dT/dt
  against I²·R/C of a lumped thermal model), and a sudden cell-voltage drop at rest (an internal
  short) measured against the other cells so common relaxation cancels;
* sensor faults: *stale* (a value identical to the bit for too long while the current changes)
  and *stuck* (pinned outside the physically possible range: open or shorted thermistor, open
  cell tap); an implausible reading is not used for the limit rules;
* lost communication (no readable sample for longer than a timeout);
* gauge flags: BatteryStatus alarm bits and any set bit of SafetyAlert, SafetyStatus, PFAlert,
  PFStatus, named by ``bit_names`` (the chip profile's flag map) or ``bit N``.

All timing uses the samples' own times, so a replay at any speed raises the same events.
An event is *latched* (by default): it stays standing after its condition clears until
:meth:`AlarmEngine.acknowledge` is called. Each change of an event (raised, cleared,
acknowledged) is published as a new version with the same id.

Limits files are TOML (``alarm_limits/*.toml``, ``schema_version = 1``), validated all-or-nothing;
any error is one :class:`~smartbatt.errors.ProfileError` naming the file and key.
"""

from __future__ import annotations

import fnmatch
import itertools
import json
import math
import statistics
import threading
import time
import tomllib
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from smartbatt.errors import ProfileError, UnknownEvent
from smartbatt.monitor.sample import Event, Sample, SampleBus, Severity, Subscription, cell_channels

#: limits-file format version this module reads and writes.
LIMITS_SCHEMA_VERSION = 1

#: BatteryStatus (SBS 0x16) alarm bits (SBS 1.1 §5.1.21; ../shared/reference/sbs.md §3).
BATTERY_STATUS_ALARMS: Mapping[str, int] = MappingProxyType(
    {"OCA": 15, "TCA": 14, "OTA": 12, "TDA": 11, "RCA": 9, "RTA": 8}
)
_BATTERY_STATUS_LABELS = {
    "OCA": "over-charged alarm",
    "TCA": "terminate-charge alarm",
    "OTA": "over-temperature alarm",
    "TDA": "terminate-discharge alarm",
    "RCA": "remaining-capacity alarm",
    "RTA": "remaining-time alarm",
}
#: status words whose every set bit is an event when configured (ti_gauges.md §5.1, §5.2).
FLAG_WORDS = ("SafetyAlert", "SafetyStatus", "PFAlert", "PFStatus")
_WORD_BITS = 32


# --- limits schema ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Threshold:
    """A limit with up to three tiers. ``over`` rules trip above, ``under`` rules below."""

    warning: float | None = None
    alarm: float | None = None
    critical: float | None = None
    #: how far back past the limit the value must come to clear (same unit), ≥ 0.
    hysteresis: float = 0.0
    #: the condition must last this long before the event is raised, s.
    delay_s: float = 0.0
    #: None = the file's ``latch`` default.
    latch: bool | None = None

    def tiers(self) -> list[tuple[Severity, float]]:
        out = []
        for sev, value in ((Severity.WARNING, self.warning), (Severity.ALARM, self.alarm),
                           (Severity.CRITICAL, self.critical)):  # fmt: skip
            if value is not None:
                out.append((sev, value))
        return out


@dataclass(frozen=True)
class Conditions:
    """When the pack counts as resting or charging."""

    #: |Current| below this: at rest, A.
    rest_current_a: float = 0.2
    #: Current above this: charging, A (SBS sign: positive = charge).
    charge_current_a: float = 0.1


@dataclass(frozen=True)
class ImbalanceLimit(Threshold):
    #: evaluate only at rest (under load, resistance spread widens the spread).
    rest_only: bool = False


@dataclass(frozen=True)
class RunawayLimit:
    """Temperature rising faster than the load explains.

    Expected heating of one series cell (group): dT/dt = I²·R / C − G·(T − T_amb) / C, with I²
    averaged over the window. The alarm trips when the measured slope (least squares over
    ``window_s``) exceeds the expected one by ``margin_k_per_min`` for ``delay_s``.
    """

    severity: Severity = Severity.CRITICAL
    #: effective heat-generating resistance of one series cell, Ω (R0 plus polarisation; err high).
    cell_resistance_ohm: float = 0.03
    #: heat capacity of one series cell, J/K (err low: both make the model expect more heat).
    cell_heat_capacity_j_per_k: float = 90.0
    #: conductance to ambient, W/K; 0 = ignore cooling (expects more heating: fewer false alarms).
    cell_conductance_w_per_k: float = 0.0
    ambient_c: float = 25.0
    window_s: float = 30.0
    margin_k_per_min: float = 2.0
    delay_s: float = 20.0
    latch: bool | None = None


@dataclass(frozen=True)
class CellDropLimit:
    """A cell's voltage falling at rest, relative to the median of the others (internal short)."""

    severity: Severity = Severity.CRITICAL
    #: drop within ``window_s`` that trips, mV.
    drop_mv: float = 20.0
    window_s: float = 10.0
    #: rest needed before watching, s (relaxation after load is largest at first).
    settle_s: float = 60.0
    latch: bool | None = None


@dataclass(frozen=True)
class StaleLimit:
    """A value identical to the bit for ``duration_s`` while the current moves."""

    severity: Severity = Severity.WARNING
    #: channel names or glob patterns (``CellVoltage*``).
    channels: tuple[str, ...] = ("Voltage", "Temperature*", "CellVoltage*")
    #: for electrical channels (a changing current moves them through the IR drop), s.
    duration_s: float = 60.0
    #: for Temperature* channels, s: longer, because at thermal equilibrium (heating = cooling,
    #: e.g. a steady hover) a temperature legitimately holds to 0.1 K while the current wobbles.
    temperature_duration_s: float = 300.0
    #: Current must span at least this much meanwhile, A. (Current itself is never judged:
    #: a constant-current charger or load legitimately holds it to the bit while V moves.)
    min_current_change_a: float = 1.0
    latch: bool | None = None


@dataclass(frozen=True)
class StuckLimit:
    """A reading outside the physically possible range (sensor open, shorted or pinned at a rail)."""

    severity: Severity = Severity.ALARM
    delay_s: float = 5.0
    #: plausible Temperature* range, °C.
    temperature_c: tuple[float, float] = (-40.0, 120.0)
    #: plausible CellVoltage* range, V.
    cell_voltage_v: tuple[float, float] = (0.5, 5.0)
    latch: bool | None = None


@dataclass(frozen=True)
class LinkLimit:
    """No readable sample for longer than ``timeout_s``."""

    severity: Severity = Severity.ALARM
    timeout_s: float = 5.0
    latch: bool | None = None


@dataclass(frozen=True)
class GaugeFlagLimits:
    """Severities of gauge flags; a word or bit not listed raises nothing."""

    #: BatteryStatus bit name (OCA, TCA, OTA, TDA, RCA, RTA) → severity.
    battery_status: Mapping[str, Severity] = field(default_factory=lambda: MappingProxyType({}))
    #: status word (SafetyAlert, SafetyStatus, PFAlert, PFStatus, …) → severity of any set bit.
    words: Mapping[str, Severity] = field(default_factory=lambda: MappingProxyType({}))
    latch: bool | None = None


@dataclass(frozen=True)
class AlarmLimits:
    """Everything a limits file says. A rule set to None is off."""

    name: str = "unnamed"
    description: str = ""
    chemistry: str = ""
    cells: int | None = None
    #: default latching of every rule.
    latch: bool = True
    conditions: Conditions = field(default_factory=Conditions)
    #: V per cell.
    cell_over_voltage: Threshold | None = None
    cell_under_voltage: Threshold | None = None
    #: A, Current > limit.
    charge_over_current: Threshold | None = None
    #: A, −Current > limit.
    discharge_over_current: Threshold | None = None
    #: °C, any current.
    over_temperature: Threshold | None = None
    under_temperature: Threshold | None = None
    #: °C, only while charging.
    charge_over_temperature: Threshold | None = None
    charge_under_temperature: Threshold | None = None
    #: mV, max − min cell.
    cell_imbalance: ImbalanceLimit | None = None
    runaway_heating: RunawayLimit | None = None
    cell_voltage_drop: CellDropLimit | None = None
    sensor_stale: StaleLimit | None = None
    sensor_stuck: StuckLimit | None = None
    lost_communication: LinkLimit | None = None
    gauge_flags: GaugeFlagLimits | None = None


#: threshold rules: section → (direction, unit, label)
_THRESHOLD_RULES: dict[str, tuple[str, str, str]] = {
    "cell_over_voltage": ("over", "V", "cell over-voltage"),
    "cell_under_voltage": ("under", "V", "cell under-voltage"),
    "charge_over_current": ("over", "A", "charge over-current"),
    "discharge_over_current": ("over", "A", "discharge over-current"),
    "over_temperature": ("over", "°C", "over-temperature"),
    "under_temperature": ("under", "°C", "under-temperature"),
    "charge_over_temperature": ("over", "°C", "over-temperature while charging"),
    "charge_under_temperature": ("under", "°C", "under-temperature while charging"),
    "cell_imbalance": ("over", "mV", "cell imbalance"),
}


# --- limits file: load ---------------------------------------------------------------------------


class _Reader:
    """Typed access to one TOML table; remembers which keys were used, so the rest are errors."""

    def __init__(self, file: str, path: str, table: Any) -> None:
        if not isinstance(table, dict):
            raise ProfileError(file, path, f"must be a table, not {type(table).__name__}")
        self.file, self.path, self.table = file, path, table
        self.used: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def error(self, name: str, reason: str) -> ProfileError:
        return ProfileError(self.file, self.key(name), reason)

    def has(self, name: str) -> bool:
        return name in self.table

    def raw(self, name: str) -> Any:
        self.used.add(name)
        return self.table[name]

    def number(
        self, name: str, default: float | None = None, *, low: float = -math.inf, high: float = math.inf
    ) -> float | None:
        if name not in self.table:
            return default
        value = self.raw(name)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise self.error(name, f"must be a finite number, not {value!r}")
        if not low <= value <= high:
            raise self.error(name, f"must be in {low:g}..{high:g}, not {value!r}")
        return float(value)

    def req_number(self, name: str, default: float, *, low: float = -math.inf, high: float = math.inf) -> float:
        value = self.number(name, default, low=low, high=high)
        assert value is not None
        return value

    def boolean(self, name: str, default: bool | None) -> bool | None:
        if name not in self.table:
            return default
        value = self.raw(name)
        if not isinstance(value, bool):
            raise self.error(name, f"must be true or false, not {value!r}")
        return value

    def text(self, name: str, default: str) -> str:
        if name not in self.table:
            return default
        value = self.raw(name)
        if not isinstance(value, str):
            raise self.error(name, f"must be a string, not {value!r}")
        return value

    def severity(self, name: str, default: Severity) -> Severity:
        if name not in self.table:
            return default
        value = self.raw(name)
        if not isinstance(value, str):
            raise self.error(name, f"must be a severity string, not {value!r}")
        try:
            return Severity.parse(value)
        except ValueError as exc:
            raise self.error(name, str(exc)) from None

    def pair(self, name: str, default: tuple[float, float]) -> tuple[float, float]:
        if name not in self.table:
            return default
        value = self.raw(name)
        if (
            not isinstance(value, list)
            or len(value) != 2
            or any(isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) for v in value)
        ):
            raise self.error(name, f"must be [low, high] numbers, not {value!r}")
        low, high = float(value[0]), float(value[1])
        if not low < high:
            raise self.error(name, f"low must be below high, not {value!r}")
        return low, high

    def strings(self, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
        if name not in self.table:
            return default
        value = self.raw(name)
        if not isinstance(value, list) or not value or any(not isinstance(v, str) or not v for v in value):
            raise self.error(name, f"must be a non-empty list of names, not {value!r}")
        return tuple(value)

    def finish(self) -> None:
        unknown = sorted(set(self.table) - self.used)
        if unknown:
            raise self.error(unknown[0], "unknown key")


def _threshold(r: _Reader, direction: str, cls: type[Threshold] = Threshold, **extra: Any) -> Threshold:
    tiers = {name: r.number(name) for name in ("warning", "alarm", "critical")}
    given = [(name, v) for name, v in tiers.items() if v is not None]
    if not given:
        raise ProfileError(r.file, r.path, "needs at least one of warning, alarm, critical")
    for (n1, v1), (n2, v2) in itertools.pairwise(given):
        if (direction == "over" and v2 < v1) or (direction == "under" and v2 > v1):
            word = "above" if direction == "over" else "below"
            raise r.error(n2, f"{n2} ({v2:g}) must be {word} or equal to {n1} ({v1:g})")
    return cls(
        warning=tiers["warning"],
        alarm=tiers["alarm"],
        critical=tiers["critical"],
        hysteresis=r.req_number("hysteresis", 0.0, low=0.0),
        delay_s=r.req_number("delay_s", 0.0, low=0.0, high=86400.0),
        latch=r.boolean("latch", None),
        **extra,
    )


def _section(data: dict[str, Any], file: str, name: str) -> _Reader | None:
    if name not in data:
        return None
    return _Reader(file, name, data.pop(name))


def parse_limits(data: Mapping[str, Any], file: str = "<limits>") -> AlarmLimits:
    """Build :class:`AlarmLimits` from a parsed TOML document. :raises ProfileError: naming the key."""
    doc = dict(data)
    top = _Reader(file, "", {k: v for k, v in doc.items() if not isinstance(v, dict)})
    tables = {k: v for k, v in doc.items() if isinstance(v, dict)}
    if not top.has("schema_version"):
        raise ProfileError(file, "schema_version", "missing (this reader understands 1)")
    version = top.raw("schema_version")
    if version != LIMITS_SCHEMA_VERSION or isinstance(version, bool):
        raise ProfileError(file, "schema_version", f"unsupported version {version!r} (this reader understands 1)")
    cells = top.number("cells", None, low=1, high=64)
    limits: dict[str, Any] = {
        "name": top.text("name", Path(file).stem),
        "description": top.text("description", ""),
        "chemistry": top.text("chemistry", ""),
        "cells": None if cells is None else int(cells),
        "latch": top.boolean("latch", True),
    }
    top.finish()
    if (r := _section(tables, file, "conditions")) is not None:
        limits["conditions"] = Conditions(
            rest_current_a=r.req_number("rest_current_a", 0.2, low=0.0),
            charge_current_a=r.req_number("charge_current_a", 0.1, low=0.0),
        )
        r.finish()
    for name, (direction, _, _) in _THRESHOLD_RULES.items():
        if (r := _section(tables, file, name)) is None:
            continue
        if name == "cell_imbalance":
            limits[name] = _threshold(r, direction, ImbalanceLimit, rest_only=bool(r.boolean("rest_only", False)))
        else:
            limits[name] = _threshold(r, direction)
        r.finish()
    if (r := _section(tables, file, "runaway_heating")) is not None:
        d = RunawayLimit()
        limits["runaway_heating"] = RunawayLimit(
            severity=r.severity("severity", d.severity),
            cell_resistance_ohm=r.req_number("cell_resistance_ohm", d.cell_resistance_ohm, low=0.0, high=10.0),
            cell_heat_capacity_j_per_k=r.req_number(
                "cell_heat_capacity_j_per_k", d.cell_heat_capacity_j_per_k, low=1e-3, high=1e6
            ),
            cell_conductance_w_per_k=r.req_number("cell_conductance_w_per_k", 0.0, low=0.0, high=1e3),
            ambient_c=r.req_number("ambient_c", d.ambient_c, low=-60.0, high=100.0),
            window_s=r.req_number("window_s", d.window_s, low=2.0, high=3600.0),
            margin_k_per_min=r.req_number("margin_k_per_min", d.margin_k_per_min, low=0.0),
            delay_s=r.req_number("delay_s", d.delay_s, low=0.0, high=3600.0),
            latch=r.boolean("latch", None),
        )
        r.finish()
    if (r := _section(tables, file, "cell_voltage_drop")) is not None:
        c = CellDropLimit()
        limits["cell_voltage_drop"] = CellDropLimit(
            severity=r.severity("severity", c.severity),
            drop_mv=r.req_number("drop_mv", c.drop_mv, low=0.1),
            window_s=r.req_number("window_s", c.window_s, low=1.0, high=3600.0),
            settle_s=r.req_number("settle_s", c.settle_s, low=0.0, high=86400.0),
            latch=r.boolean("latch", None),
        )
        r.finish()
    if (r := _section(tables, file, "sensor_stale")) is not None:
        s = StaleLimit()
        limits["sensor_stale"] = StaleLimit(
            severity=r.severity("severity", s.severity),
            channels=r.strings("channels", s.channels),
            duration_s=r.req_number("duration_s", s.duration_s, low=1.0),
            temperature_duration_s=r.req_number("temperature_duration_s", s.temperature_duration_s, low=1.0),
            min_current_change_a=r.req_number("min_current_change_a", s.min_current_change_a, low=0.0),
            latch=r.boolean("latch", None),
        )
        r.finish()
    if (r := _section(tables, file, "sensor_stuck")) is not None:
        k = StuckLimit()
        limits["sensor_stuck"] = StuckLimit(
            severity=r.severity("severity", k.severity),
            delay_s=r.req_number("delay_s", k.delay_s, low=0.0),
            temperature_c=r.pair("temperature_c", k.temperature_c),
            cell_voltage_v=r.pair("cell_voltage_v", k.cell_voltage_v),
            latch=r.boolean("latch", None),
        )
        r.finish()
    if (r := _section(tables, file, "lost_communication")) is not None:
        limits["lost_communication"] = LinkLimit(
            severity=r.severity("severity", Severity.ALARM),
            timeout_s=r.req_number("timeout_s", 5.0, low=0.1, high=86400.0),
            latch=r.boolean("latch", None),
        )
        r.finish()
    if (r := _section(tables, file, "gauge_flags")) is not None:
        limits["gauge_flags"] = _gauge_flags(r)
    if tables:
        name = sorted(tables)[0]
        raise ProfileError(file, name, "unknown section")
    return AlarmLimits(**limits)


def _gauge_flags(r: _Reader) -> GaugeFlagLimits:
    latch = r.boolean("latch", None)
    bs: dict[str, Severity] = {}
    if r.has("BatteryStatus"):
        sub = _Reader(r.file, r.key("BatteryStatus"), r.raw("BatteryStatus"))
        for bit in BATTERY_STATUS_ALARMS:
            if sub.has(bit):
                bs[bit] = sub.severity(bit, Severity.ALARM)
        sub.finish()
    words: dict[str, Severity] = {}
    for name in list(r.table):
        if name in r.used:
            continue
        if not name.isidentifier():
            raise r.error(name, "unknown key")
        words[name] = r.severity(name, Severity.ALARM)
    return GaugeFlagLimits(MappingProxyType(bs), MappingProxyType(words), latch)


def read_limits_text(text: str, file: str = "<limits>") -> AlarmLimits:
    """Parse limits from TOML text. :raises ProfileError: bad TOML or a bad value."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(file, "", f"not valid TOML: {exc}") from None
    return parse_limits(data, file)


def limits_dir() -> Path:
    """The directory of the limits files shipped with smartbatt."""
    return Path(str(resources.files("smartbatt.monitor") / "alarm_limits"))


def available_limits() -> list[str]:
    """Names of the shipped limits files (``default``, ``drone-4s-lipo``, …)."""
    return sorted(p.stem for p in limits_dir().glob("*.toml"))


def load_limits(source: str | Path = "default") -> AlarmLimits:
    """Load a limits file by path, or a shipped one by name (``drone-4s-lipo``).

    :raises ProfileError: unknown name, unreadable file, invalid content (naming the key).
    """
    path = Path(source)
    if path.suffix != ".toml" and path.parent == Path(".") and not path.exists():
        path = limits_dir() / f"{source}.toml"
        if not path.exists():
            raise ProfileError(str(source), "", f"no such limits file; shipped: {', '.join(available_limits())}")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProfileError(str(path), "", f"cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ProfileError(str(path), "", f"not UTF-8 text: {exc}") from None
    return read_limits_text(text, str(path))


# --- limits file: save -----------------------------------------------------------------------------


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Severity):
        return json.dumps(value.name.lower())
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} to TOML")  # pragma: no cover - schema types only


def dump_limits(limits: AlarmLimits) -> str:
    """TOML text that :func:`read_limits_text` reads back to an equal :class:`AlarmLimits`."""
    lines = [
        "# smartbatt alarm limits (written by smartbatt; see smartbatt/monitor/alarm_limits/default.toml",
        "# for the meaning and unit of every key)",
        f"schema_version = {LIMITS_SCHEMA_VERSION}",
    ]
    for key in ("name", "description", "chemistry", "cells", "latch"):
        value = getattr(limits, key)
        if value is not None:
            lines.append(f"{key} = {_toml_value(value)}")
    for f in fields(limits):
        value = getattr(limits, f.name)
        if f.name in ("name", "description", "chemistry", "cells", "latch") or value is None:
            continue
        lines.append("")
        lines.append(f"[{f.name}]")
        if isinstance(value, GaugeFlagLimits):
            if value.latch is not None:
                lines.append(f"latch = {_toml_value(value.latch)}")
            for word, sev in value.words.items():
                lines.append(f"{word} = {_toml_value(sev)}")
            if value.battery_status:
                lines.append("")
                lines.append(f"[{f.name}.BatteryStatus]")
                for bit, sev in value.battery_status.items():
                    lines.append(f"{bit} = {_toml_value(sev)}")
            continue
        for sub in fields(value):
            item = getattr(value, sub.name)
            if item is not None:
                lines.append(f"{sub.name} = {_toml_value(item)}")
    return "\n".join(lines) + "\n"


def save_limits(limits: AlarmLimits, path: str | Path) -> None:
    """Write ``limits`` as TOML. :raises ProfileError: the file cannot be written."""
    try:
        Path(path).write_text(dump_limits(limits), encoding="utf-8")
    except OSError as exc:
        raise ProfileError(str(path), "", f"cannot write: {exc.strerror or exc}") from None


# --- the engine ------------------------------------------------------------------------------------


@dataclass
class _Tracker:
    """Debounce state and current event of one alarm instance (rule × source × tier)."""

    pending_since: float | None = None
    event: Event | None = None


@dataclass
class _StaleState:
    value: float
    since: float
    ref_min: float = math.inf
    ref_max: float = -math.inf

    def see(self, ref: float | None) -> None:
        if ref is not None:
            self.ref_min = min(self.ref_min, ref)
            self.ref_max = max(self.ref_max, ref)


class AlarmEngine:
    """Evaluates samples against limits and gauge flags; keeps the event log.

    :param limits: the rules (see :func:`load_limits`).
    :param bit_names: status word → bit → name, e.g. the chip profile's
        ``{"SafetyStatus": {12: "OTC"}}``; unnamed bits are called ``bitN``.
    :param on_event: called (on the feeding thread) with each new event version.
    :param first_id: id of the first event (continue a stored session's numbering).
    :param log_size: how many events the in-memory log keeps (standing ones are never dropped).
    :param clock: wall clock for acknowledgements and :meth:`check`, unix s.

    Thread-safe: feed from a bus dispatcher, acknowledge from a GUI thread.
    """

    def __init__(
        self,
        limits: AlarmLimits,
        *,
        bit_names: Mapping[str, Mapping[int, str]] | None = None,
        on_event: Callable[[Event], None] | None = None,
        first_id: int = 1,
        log_size: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.limits = limits
        self.bit_names = {word: dict(bits) for word, bits in (bit_names or {}).items()}
        self.on_event = on_event
        self.log_size = log_size
        self.clock = clock
        self._next_id = first_id
        self._lock = threading.RLock()
        self._trackers: dict[tuple[str, ...], _Tracker] = {}
        self._log: dict[int, Event] = {}
        self._out: list[Event] = []
        self._bus: SampleBus | None = None
        self._session: int | None = None
        # per-rule history
        self._heat: deque[tuple[float, float, float]] = deque()
        self._rest_since: float | None = None
        self._rest_cells: deque[tuple[float, dict[str, float]]] = deque()
        self._stale: dict[str, _StaleState] = {}
        self._last_ok: float | None = None
        self._last_seen: float | None = None

    # public API -------------------------------------------------------------------------------

    def attach(self, bus: SampleBus) -> Subscription:
        """Evaluate every sample published on ``bus`` and publish the events back on it."""
        self._bus = bus
        return bus.subscribe(self._on_sample, name="alarms", accept=(Sample,))

    def _on_sample(self, sample: Sample) -> None:
        self.feed(sample)

    def feed(self, sample: Sample) -> list[Event]:
        """Evaluate one sample. Returns the event versions it produced (also published)."""
        with self._lock:
            self._session = sample.session_id
            self._evaluate(sample)
            return self._emit()

    __call__ = feed

    def check(self, now: float | None = None) -> list[Event]:
        """Time-based rules without a sample (lost communication): call it from a timer."""
        with self._lock:
            self._check_link(self.clock() if now is None else now, None)
            return self._emit()

    def acknowledge(self, event_id: int, when: float | None = None) -> Event:
        """Acknowledge an event; a cleared latched event then stops standing.

        :raises UnknownEvent: no such event id.
        """
        with self._lock:
            event = self._log.get(event_id)
            if event is None:
                raise UnknownEvent(f"no event with id {event_id}")
            if not event.acknowledged:
                event = event.with_ack(self.clock() if when is None else when)
                self._record(event)
                for tracker in self._trackers.values():
                    if tracker.event is not None and tracker.event.id == event_id:
                        tracker.event = event if event.standing else None
            self._emit()
            return event

    def acknowledge_all(self, when: float | None = None) -> list[Event]:
        """Acknowledge every standing event; returns the new versions."""
        with self._lock:
            ids = [e.id for e in self.standing() if not e.acknowledged]
            return [self.acknowledge(i, when) for i in ids]

    def standing(self) -> list[Event]:
        """Events to show the operator: active, or latched and not acknowledged; oldest first."""
        with self._lock:
            return [e for e in self._log.values() if e.standing]

    @property
    def log(self) -> list[Event]:
        """The latest version of every event kept, oldest first."""
        with self._lock:
            return list(self._log.values())

    # machinery ---------------------------------------------------------------------------------

    def _record(self, event: Event) -> None:
        self._log[event.id] = event
        self._out.append(event)
        if len(self._log) > self.log_size:
            for old_id in [i for i, e in self._log.items() if not e.standing][: len(self._log) - self.log_size]:
                del self._log[old_id]

    def _emit(self) -> list[Event]:
        out, self._out = self._out, []
        for event in out:
            if self.on_event is not None:
                self.on_event(event)
            if self._bus is not None and not self._bus.closed:
                self._bus.publish(event)
        return out

    def _step(self, key: tuple[str, ...], t: float, tripped: bool, held: bool, delay_s: float = 0.0) -> bool:
        """Advance one alarm instance (debounce, re-raise, clear).

        ``tripped``: beyond the limit; ``held``: still beyond it less the hysteresis. Returns True
        when the caller must raise a new event with :meth:`_raise`.
        """
        tracker = self._trackers.setdefault(key, _Tracker())
        event = tracker.event
        active = event is not None and event.active
        if held if active else tripped:
            if active:
                return False
            if tracker.pending_since is None:
                tracker.pending_since = t
            if t - tracker.pending_since < delay_s:
                return False
            tracker.pending_since = None
            if event is None:
                return True
            tracker.event = replace(event, cleared=None)  # latched, unacknowledged and back again
            self._record(tracker.event)
            return False
        tracker.pending_since = None
        if active and event is not None:
            tracker.event = event.with_clear(t)
            self._record(tracker.event)
            if not tracker.event.standing:
                tracker.event = None
        return False

    def _raise(
        self,
        key: tuple[str, ...],
        t: float,
        severity: Severity,
        source: str,
        code: str,
        message: str,
        value: float,
        limit: float,
        latch: bool | None,
    ) -> None:
        event = Event(
            id=self._next_id,
            time=t,
            severity=severity,
            source=source,
            code=code,
            message=message,
            value=value,
            limit=limit,
            latched=self.limits.latch if latch is None else latch,
            session_id=self._session,
        )
        self._next_id += 1
        self._trackers[key].event = event
        self._record(event)

    # rules -------------------------------------------------------------------------------------

    def _evaluate(self, s: Sample) -> None:
        t, lim = s.time, self.limits
        self._check_flags(s)
        if not self._check_link(t, s):
            return
        plausible = self._check_stuck(s)
        current = s.get("Current")
        cells = {n: v for n in cell_channels(plausible) if (v := s.get(n)) is not None}
        for name, v in cells.items():
            self._threshold("cell_over_voltage", lim.cell_over_voltage, name, v, t)
            self._threshold("cell_under_voltage", lim.cell_under_voltage, name, v, t)
        if current is not None:
            self._threshold("charge_over_current", lim.charge_over_current, "Current", current, t)
            self._threshold("discharge_over_current", lim.discharge_over_current, "Current", -current, t)
        charging = current is not None and current > lim.conditions.charge_current_a
        resting = current is not None and abs(current) < lim.conditions.rest_current_a
        temps = {n: v for n in sorted(plausible) if n.startswith("Temperature") and (v := s.get(n)) is not None}
        for name, v in temps.items():
            self._threshold("over_temperature", lim.over_temperature, name, v, t)
            self._threshold("under_temperature", lim.under_temperature, name, v, t)
            self._threshold("charge_over_temperature", lim.charge_over_temperature, name, v, t, charging)
            self._threshold("charge_under_temperature", lim.charge_under_temperature, name, v, t, charging)
        if lim.cell_imbalance is not None and len(cells) >= 2:
            spread_mv = (max(cells.values()) - min(cells.values())) * 1000.0
            enabled = resting or not lim.cell_imbalance.rest_only
            self._threshold("cell_imbalance", lim.cell_imbalance, "cells", spread_mv, t, enabled)
        self._check_runaway(t, max(temps.values()) if temps else None, current)
        self._check_cell_drop(t, cells, resting)
        self._check_stale(s, current)

    def _threshold(
        self, rule: str, limit: Threshold | None, source: str, value: float, t: float, enabled: bool = True
    ) -> None:
        """Every tier of one threshold rule for one source; ``enabled=False`` clears them."""
        if limit is None:
            return
        direction, unit, label = _THRESHOLD_RULES[rule]
        for severity, level in limit.tiers():
            if direction == "over":
                tripped, held, word = value > level, value > level - limit.hysteresis, "above"
            else:
                tripped, held, word = value < level, value < level + limit.hysteresis, "below"
            key = (rule, source, severity.name)
            if self._step(key, t, enabled and tripped, enabled and held, limit.delay_s):
                message = f"{source}: {label} {value:.4g} {unit} {word} {level:g} {unit}"
                self._raise(key, t, severity, source, rule, message, value, level, limit.latch)

    def _check_link(self, t: float, s: Sample | None) -> bool:
        """Lost communication. Returns True when ``s`` carries readings."""
        rule = self.limits.lost_communication
        good = s is not None and any(math.isfinite(v) for v in s.values.values())
        previous = self._last_seen
        if s is not None:
            self._last_seen = t
        if good:
            if rule is not None and previous is not None and t - previous > rule.timeout_s:
                # a silent gap that no check() call saw: log the outage after the fact
                self._link_step(rule, previous + rule.timeout_s, True, t - previous)
            self._last_ok = t
            if rule is not None:
                self._link_step(rule, t, False, 0.0)
            return True
        if self._last_ok is None:
            self._last_ok = t  # count silence from the first contact attempt
        if rule is not None:
            silent = t - self._last_ok
            self._link_step(rule, t, silent > rule.timeout_s, silent)
        return False

    def _link_step(self, rule: LinkLimit, t: float, down: bool, silent: float) -> None:
        key = ("lost_communication", "link")
        if self._step(key, t, down, down):
            message = f"no readable sample for {silent:.1f} s (limit {rule.timeout_s:g} s)"
            self._raise(
                key, t, rule.severity, "link", "lost_communication", message, silent, rule.timeout_s, rule.latch
            )

    def _check_stuck(self, s: Sample) -> set[str]:
        """Sensors pinned outside the possible range. Returns the channels that read plausibly."""
        rule = self.limits.sensor_stuck
        plausible = set()
        for name, v in s.values.items():
            if not math.isfinite(v):
                continue
            if rule is None or not name.startswith(("Temperature", "CellVoltage")):
                plausible.add(name)
                continue
            low, high = rule.temperature_c if name.startswith("Temperature") else rule.cell_voltage_v
            bad = not low <= v <= high
            if not bad:
                plausible.add(name)
            key = ("sensor_stuck", name)
            if self._step(key, s.time, bad, bad, rule.delay_s):
                unit = "°C" if name.startswith("Temperature") else "V"
                message = (
                    f"{name} reads {v:g} {unit}, outside the possible {low:g}..{high:g} {unit}: "
                    "sensor open, shorted or stuck at a rail"
                )
                limit = low if v < low else high
                self._raise(key, s.time, rule.severity, name, "sensor_stuck", message, v, limit, rule.latch)
        return plausible

    def _check_runaway(self, t: float, temp: float | None, current: float | None) -> None:
        """Measured dT/dt (least squares over the window) against the lumped model's I²·R/C."""
        rule = self.limits.runaway_heating
        if rule is None:
            return
        key = ("runaway_heating", "Temperature")
        if temp is None or current is None:
            self._heat.clear()
        else:
            self._heat.append((t, temp, current))
        while self._heat and self._heat[0][0] < t - rule.window_s:
            self._heat.popleft()
        if len(self._heat) < 5 or self._heat[-1][0] - self._heat[0][0] < 0.8 * rule.window_s:
            self._step(key, t, False, False)  # not enough history: no verdict
            return
        arr = np.asarray(self._heat, dtype=np.float64)
        temps, amps = arr[:, 1], arr[:, 2]
        slope = float(np.polyfit(arr[:, 0] - arr[0, 0], temps, 1)[0])  # K/s
        c = rule.cell_heat_capacity_j_per_k
        expected = float(np.mean(amps * amps)) * rule.cell_resistance_ohm / c
        if rule.cell_conductance_w_per_k > 0:
            expected -= rule.cell_conductance_w_per_k * (float(np.mean(temps)) - rule.ambient_c) / c
        expected = max(expected, 0.0)
        margin = rule.margin_k_per_min / 60.0
        if self._step(key, t, slope > expected + margin, slope > expected + margin / 2, rule.delay_s):
            message = (
                f"temperature rising {slope * 60:.2f} K/min, load explains {expected * 60:.2f} K/min: "
                "possible thermal-runaway precursor"
            )
            limit = (expected + margin) * 60.0
            self._raise(key, t, rule.severity, "Temperature", "runaway_heating", message, slope * 60, limit, rule.latch)

    def _check_cell_drop(self, t: float, cells: dict[str, float], resting: bool) -> None:
        """At rest (after settling), each cell's fall over the window minus the others' median fall."""
        rule = self.limits.cell_voltage_drop
        if rule is None:
            return
        if not resting or not cells:
            self._rest_since = None
            self._rest_cells.clear()
        else:
            if self._rest_since is None:
                self._rest_since = t
            self._rest_cells.append((t, cells))
            while len(self._rest_cells) > 1 and self._rest_cells[1][0] <= t - rule.window_s:
                self._rest_cells.popleft()
        drops: dict[str, float] = {}
        if self._rest_since is not None:
            t_ref, ref = self._rest_cells[0]
            watching = t_ref - self._rest_since >= rule.settle_s and t - t_ref >= 0.5 * rule.window_s
            if watching and ref.keys() == cells.keys():
                raw = {name: (ref[name] - v) * 1000.0 for name, v in cells.items()}
                for name, d in raw.items():
                    others = [x for n, x in raw.items() if n != name]
                    drops[name] = d - statistics.median(others) if others else d
        sources = set(drops) | {k[1] for k in self._trackers if k[0] == "cell_voltage_drop"}
        for name in sorted(sources):
            d = drops.get(name, 0.0)
            key = ("cell_voltage_drop", name)
            if self._step(key, t, d > rule.drop_mv, d > rule.drop_mv / 2):
                message = (
                    f"{name} fell {d:.1f} mV more than the other cells within {rule.window_s:g} s at rest: "
                    "possible internal short"
                )
                self._raise(key, t, rule.severity, name, "cell_voltage_drop", message, d, rule.drop_mv, rule.latch)

    def _check_stale(self, s: Sample, current: float | None) -> None:
        """A value identical to the bit for too long while the current moves."""
        rule = self.limits.sensor_stale
        if rule is None:
            return
        for name, v in s.values.items():
            if (
                name == "Current"
                or not math.isfinite(v)
                or not any(fnmatch.fnmatchcase(name, p) for p in rule.channels)
            ):
                continue
            state = self._stale.get(name)
            if state is None or v != state.value:
                state = self._stale[name] = _StaleState(v, s.time)
            state.see(current)
            frozen, moved = s.time - state.since, state.ref_max - state.ref_min
            duration = rule.temperature_duration_s if name.startswith("Temperature") else rule.duration_s
            bad = frozen >= duration and moved >= rule.min_current_change_a
            key = ("sensor_stale", name)
            if self._step(key, s.time, bad, bad):
                message = (
                    f"{name} has read exactly {v:g} for {frozen:.0f} s while Current moved {moved:.3g} A: not updating"
                )
                self._raise(key, s.time, rule.severity, name, "sensor_stale", message, frozen, duration, rule.latch)

    def _check_flags(self, s: Sample) -> None:
        """BatteryStatus alarm bits and every set bit of the configured status words."""
        rule = self.limits.gauge_flags
        if rule is None:
            return
        for word, raw in s.status.items():
            if word == "BatteryStatus":
                bits = [(BATTERY_STATUS_ALARMS[n], n, sev) for n, sev in rule.battery_status.items()]
            elif word in rule.words:
                bits = [(b, self._bit_name(word, b), rule.words[word]) for b in range(_WORD_BITS)]
            else:
                continue
            for bit, name, severity in bits:
                key = ("flag", word, str(bit))
                on = bool(raw >> bit & 1)
                if not on and key not in self._trackers:
                    continue
                if self._step(key, s.time, on, on):
                    label = f" ({_BATTERY_STATUS_LABELS[name]})" if word == "BatteryStatus" else ""
                    message = f"gauge flag {word}.{name} set{label} (0x{raw:04X})"
                    self._raise(
                        key, s.time, severity, word, f"{word}.{name}", message, float(raw), math.nan, rule.latch
                    )

    def _bit_name(self, word: str, bit: int) -> str:
        return self.bit_names.get(word, {}).get(bit, f"bit{bit}")


def events_summary(events: Iterable[Event]) -> list[tuple[str, str, str]]:
    """``(code, source, severity)`` of each event: the compact form tests and logs compare."""
    return [(e.code, e.source, e.severity.name.lower()) for e in events]
