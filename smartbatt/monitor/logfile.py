"""The CSV measurement log the estimator replays and the fitter reads.

Format: a header line, then one sample per line, comma separated. Columns (names matched without
regard to case; order free; other columns ignored):

=================  ========  ==========================================================
``time_s``         required  seconds, strictly increasing
``voltage_V``      required  pack (or cell) terminal voltage, V
``current_A``      required  A, **positive = charging** (SBS 1.1 ``Current()``, sbs.md §1)
``temperature_C``  optional  cell temperature, °C (absent: the model's reference temperature)
``rsoc_pct``       optional  the gauge's RelativeStateOfCharge, % (compared with our SOC)
``fcc_mah``        optional  the gauge's FullChargeCapacity, mAh (compared with our capacity)
=================  ========  ==========================================================

Bad rows are never silently used. A row is bad when it has too few fields, a field that is not
a number, a NaN or infinite value, a time not after the previous good row's time, or when it
follows a gap longer than ``max_gap_s``. By default any bad row raises :class:`LogError`, which
lists every bad line number. With ``skip_bad=True`` the reader drops the bad rows instead and
reports them in :attr:`LogData.bad_rows`; a row after a gap is then kept (its own values are
fine) and marked in :attr:`LogData.gap_before` so the estimator can widen its uncertainty across
the gap instead of pretending the current during the gap was known.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from smartbatt.errors import SmartBattError

FloatArray = npt.NDArray[np.float64]

#: column names as written; the reader matches them without regard to case.
TIME, VOLTAGE, CURRENT, TEMPERATURE = "time_s", "voltage_V", "current_A", "temperature_C"
GAUGE_RSOC, GAUGE_FCC = "rsoc_pct", "fcc_mah"
REQUIRED = (TIME, VOLTAGE, CURRENT)
OPTIONAL = (TEMPERATURE, GAUGE_RSOC, GAUGE_FCC)

#: default longest allowed step between two samples, s.
DEFAULT_MAX_GAP_S = 60.0

#: how many bad lines an error message names before it says "and N more".
_SHOWN = 8


@dataclass(frozen=True)
class BadRow:
    """One rejected line of a log."""

    #: 1-based line number in the file (the header is line 1).
    line: int
    #: why it was rejected.
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


class LogError(SmartBattError, ValueError):
    """A log file cannot be used: unreadable, missing columns, or bad rows.

    :ivar file: the file name.
    :ivar bad_rows: every rejected line, in file order.
    """

    def __init__(self, file: str, reason: str, bad_rows: Sequence[BadRow] = ()) -> None:
        rows = list(bad_rows)
        text = f"{file}: {reason}"
        if rows:
            shown = "; ".join(str(r) for r in rows[:_SHOWN])
            more = f"; and {len(rows) - _SHOWN} more" if len(rows) > _SHOWN else ""
            text += f": {shown}{more}"
        super().__init__(text)
        self.file = file
        self.reason = reason
        self.bad_rows = tuple(rows)


@dataclass(frozen=True)
class LogData:
    """A validated log as arrays of equal length (only good rows)."""

    file: str
    time_s: FloatArray
    voltage_v: FloatArray
    current_a: FloatArray
    #: °C; filled with NaN when the log had no temperature column (see :attr:`has_temperature`).
    temperature_c: FloatArray
    #: 1-based source line of each sample.
    line: npt.NDArray[np.int64]
    #: True where a gap longer than the limit precedes the sample (only with ``skip_bad``).
    gap_before: npt.NDArray[np.bool_]
    has_temperature: bool = True
    #: optional gauge columns (``rsoc_pct``, ``fcc_mah``) present in the file.
    gauge: Mapping[str, FloatArray] = field(default_factory=dict)
    #: rows that were dropped (``skip_bad``) or gaps that were bridged.
    bad_rows: tuple[BadRow, ...] = ()

    def __len__(self) -> int:
        return int(self.time_s.size)


def _header_map(header: Sequence[str], file: str) -> dict[str, int]:
    lower = [h.strip().lower() for h in header]
    columns: dict[str, int] = {}
    for name in (*REQUIRED, *OPTIONAL):
        if name.lower() in lower:
            columns[name] = lower.index(name.lower())
    missing = [n for n in REQUIRED if n not in columns]
    if missing:
        raise LogError(file, f"missing column(s) {', '.join(missing)} (header: {','.join(header)})")
    return columns


def _parse_row(row: Sequence[str], columns: Mapping[str, int]) -> tuple[dict[str, float], str]:
    values: dict[str, float] = {}
    for name, index in columns.items():
        if index >= len(row):
            return values, f"has {len(row)} fields, column {name} is field {index + 1}"
        text = row[index].strip()
        try:
            value = float(text)
        except ValueError:
            return values, f"{name} {text!r} is not a number"
        if not math.isfinite(value):
            return values, f"{name} is {text}"
        values[name] = value
    return values, ""


def read_log(path: str | Path, *, skip_bad: bool = False, max_gap_s: float = DEFAULT_MAX_GAP_S) -> LogData:
    """Read and validate a CSV log.

    :param skip_bad: drop bad rows (reported in :attr:`LogData.bad_rows`) instead of failing.
    :param max_gap_s: longest step between consecutive samples, s (> 0).
    :raises LogError: unreadable file, missing columns, no usable rows, or (without
        ``skip_bad``) any bad row — the error lists their line numbers.
    """
    name = str(path)
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            return _read(csv.reader(handle), name, skip_bad=skip_bad, max_gap_s=max_gap_s)
    except OSError as exc:
        raise LogError(name, f"cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise LogError(name, "not a UTF-8 text file") from None
    except csv.Error as exc:
        raise LogError(name, f"not a CSV file: {exc}") from None


def _read(rows: Iterator[list[str]], file: str, *, skip_bad: bool, max_gap_s: float) -> LogData:
    header = next(rows, None)
    if header is None:
        raise LogError(file, "empty file")
    columns = _header_map(header, file)
    good: dict[str, list[float]] = {name: [] for name in columns}
    lines: list[int] = []
    gaps: list[bool] = []
    bad: list[BadRow] = []
    last_time: float | None = None
    for number, row in enumerate(rows, start=2):
        if not row or all(not cell.strip() for cell in row):
            continue
        values, reason = _parse_row(row, columns)
        gap = False
        if not reason and last_time is not None:
            step = values[TIME] - last_time
            if step <= 0:
                reason = f"time {values[TIME]:g} s is not after the previous sample's {last_time:g} s"
            elif step > max_gap_s:
                gap = True
                bad.append(BadRow(number, f"gap of {step:g} s before this sample (limit {max_gap_s:g} s)"))
        if reason:
            bad.append(BadRow(number, reason))
            continue
        last_time = values[TIME]
        for key, value in values.items():
            good[key].append(value)
        lines.append(number)
        gaps.append(gap)
    if bad and not skip_bad:
        raise LogError(file, f"{len(bad)} bad row(s)", bad)
    if len(lines) < 2:
        raise LogError(file, f"needs at least 2 good samples, has {len(lines)}", bad)
    n = len(lines)
    has_t = TEMPERATURE in columns
    return LogData(
        file=file,
        time_s=np.asarray(good[TIME], dtype=np.float64),
        voltage_v=np.asarray(good[VOLTAGE], dtype=np.float64),
        current_a=np.asarray(good[CURRENT], dtype=np.float64),
        temperature_c=np.asarray(good[TEMPERATURE], dtype=np.float64) if has_t else np.full(n, np.nan),
        line=np.asarray(lines, dtype=np.int64),
        gap_before=np.asarray(gaps, dtype=np.bool_),
        has_temperature=has_t,
        gauge={k: np.asarray(good[k], dtype=np.float64) for k in (GAUGE_RSOC, GAUGE_FCC) if k in columns},
        bad_rows=tuple(bad),
    )


def write_csv(path: str | Path, columns: Mapping[str, Iterable[float]], *, precision: int = 6) -> None:
    """Write equal-length columns as CSV with a header (numbers to ``precision`` significant digits).

    :raises LogError: if the columns differ in length or the file cannot be written.
    """
    name = str(path)
    data = {key: list(values) for key, values in columns.items()}
    lengths = {len(v) for v in data.values()}
    if len(lengths) > 1:
        raise LogError(name, f"columns differ in length: { {k: len(v) for k, v in data.items()} }")
    try:
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(list(data))
            for row in zip(*data.values(), strict=True):
                writer.writerow([_fmt(v, precision) for v in row])
    except OSError as exc:
        raise LogError(name, f"cannot write: {exc.strerror or exc}") from None


def _fmt(value: float, precision: int) -> str:
    if isinstance(value, bool | np.bool_):
        return "1" if value else "0"
    return f"{float(value):.{precision}g}"


def write_log(
    path: str | Path,
    time_s: Sequence[float] | FloatArray,
    voltage_v: Sequence[float] | FloatArray,
    current_a: Sequence[float] | FloatArray,
    temperature_c: Sequence[float] | FloatArray | None = None,
) -> None:
    """Write a log in the input format (``time_s, voltage_V, current_A[, temperature_C]``).

    :raises LogError: if the columns differ in length or the file cannot be written.
    """
    columns: dict[str, Iterable[float]] = {TIME: time_s, VOLTAGE: voltage_v, CURRENT: current_a}
    if temperature_c is not None:
        columns[TEMPERATURE] = temperature_c
    write_csv(path, columns, precision=9)
