"""Host alarm limits as an editable table (no Qt; tested as data).

The table shows the threshold rules of an :class:`~smartbatt.monitor.alarms.AlarmLimits` —
tiers, hysteresis and delay — and :func:`apply_edits` turns edited text back into limits. The
result is validated by the library itself: it is written with
:func:`~smartbatt.monitor.alarms.dump_limits` and read back with
:func:`~smartbatt.monitor.alarms.read_limits_text`, so the GUI accepts exactly what a limits file
may say (tier order, ranges) and reports the library's ``ProfileError`` naming the key.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from smartbatt.errors import ProfileError, RangeError
from smartbatt.monitor.alarms import AlarmLimits, ImbalanceLimit, Threshold, dump_limits, read_limits_text

#: threshold rules shown: field of AlarmLimits → (label, unit), in display order.
HOST_RULES: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        "cell_over_voltage": ("Cell over-voltage", "V"),
        "cell_under_voltage": ("Cell under-voltage", "V"),
        "cell_imbalance": ("Cell imbalance", "mV"),
        "charge_over_current": ("Charge over-current", "A"),
        "discharge_over_current": ("Discharge over-current", "A"),
        "over_temperature": ("Over-temperature", "°C"),
        "under_temperature": ("Under-temperature", "°C"),
        "charge_over_temperature": ("Over-temperature while charging", "°C"),
        "charge_under_temperature": ("Under-temperature while charging", "°C"),
    }
)
#: editable fields of a threshold, in column order.
FIELDS = ("warning", "alarm", "critical", "hysteresis", "delay_s")


@dataclass(frozen=True)
class LimitRow:
    """One rule as text cells (empty = not set / rule off)."""

    rule: str
    label: str
    unit: str
    cells: tuple[str, ...]


def _text(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def limit_rows(limits: AlarmLimits) -> list[LimitRow]:
    """The threshold rules of ``limits`` as text rows (rules that are off have empty cells)."""
    rows = []
    for rule, (label, unit) in HOST_RULES.items():
        th = getattr(limits, rule)
        cells = tuple(_text(getattr(th, f)) for f in FIELDS) if th is not None else ("",) * len(FIELDS)
        rows.append(LimitRow(rule, label, unit, cells))
    return rows


def _number(rule: str, field: str, text: str) -> float | None:
    t = text.strip().replace("−", "-")
    if not t:
        return None
    try:
        value = float(t)
    except ValueError:
        raise RangeError(f"{HOST_RULES[rule][0]}, {field}: {text.strip()!r} is not a number") from None
    if not math.isfinite(value):
        raise RangeError(f"{HOST_RULES[rule][0]}, {field}: not a finite number")
    return value


def apply_edits(limits: AlarmLimits, edits: Mapping[str, tuple[str, ...]]) -> AlarmLimits:
    """New limits with the rows in ``edits`` (rule → cells in :data:`FIELDS` order) replaced.

    A row with no tier set turns its rule off. The result is validated by a round trip through
    the limits-file format.

    :raises RangeError: a cell is not a number.
    :raises ProfileError: the library refuses the limits (tier order, negative hysteresis …).
    """
    changes: dict[str, Threshold | None] = {}
    for rule, cells in edits.items():
        if rule not in HOST_RULES:
            raise RangeError(f"unknown limit rule {rule!r}")
        values = {f: _number(rule, f, c) for f, c in zip(FIELDS, cells, strict=True)}
        if all(values[t] is None for t in ("warning", "alarm", "critical")):
            changes[rule] = None
            continue
        current = getattr(limits, rule)
        base = current if current is not None else _default_threshold(rule)
        changes[rule] = dataclasses.replace(
            base,
            warning=values["warning"],
            alarm=values["alarm"],
            critical=values["critical"],
            hysteresis=values["hysteresis"] if values["hysteresis"] is not None else 0.0,
            delay_s=values["delay_s"] if values["delay_s"] is not None else 0.0,
        )
    edited = dataclasses.replace(limits, **changes)  # type: ignore[arg-type]
    try:
        return read_limits_text(dump_limits(edited), f"<edited {limits.name}>")
    except ProfileError:
        raise
    except (ValueError, TypeError) as exc:  # a value the TOML writer cannot express
        raise RangeError(f"limits not valid: {exc}") from None


def _default_threshold(rule: str) -> Threshold:
    return ImbalanceLimit() if rule == "cell_imbalance" else Threshold()
