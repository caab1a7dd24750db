"""Reports of end-of-line runs: JUnit XML and CSV per run, an HTML report per production lot.

* **JUnit XML** (one file per run) for the line's MES / CI-style dashboards: one ``testsuite`` per
  run (properties: serial, station, operator, lot, plan hash), one ``testcase`` per step; a failed
  step carries a ``failure`` whose message names the value and its limits, an errored, timed-out
  or aborted step an ``error``, a skipped step ``skipped``. The layout is the de-facto schema
  Jenkins and GitLab read (``testsuites/testsuite/testcase`` with ``failure``/``error``/``skipped``).
* **CSV** (one file per run): one row per measurement (a step without measurements gets one row),
  every row repeating the run's identity so files can be concatenated.
* **HTML** (one self-contained file): per lot the yield (first pass and final, per pack), the
  failures by step, and histograms of key measurements (cell spread, capacity, voltage) with their
  limits, drawn as inline SVG from ``numpy.histogram`` — no plotting library needed.
"""

from __future__ import annotations

import csv
import datetime
import html
import io
import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from smartbatt.factory.runner import Outcome, RunResult, StepStatus

__all__ = [
    "CSV_COLUMNS",
    "DEFAULT_HISTOGRAMS",
    "LotSummary",
    "csv_text",
    "html_report",
    "junit_xml",
    "report_file_name",
    "summarize_lot",
    "svg_bars",
    "svg_histogram",
    "write_csv",
    "write_junit",
]

#: measurements drawn as histograms in the lot report: (name, title).
DEFAULT_HISTOGRAMS: tuple[tuple[str, str], ...] = (
    ("cell_spread", "Cell spread"),
    ("full_charge_capacity", "Full charge capacity"),
    ("capacity_ratio", "Capacity (FCC / design)"),
    ("voltage", "Pack voltage"),
)

CSV_COLUMNS: tuple[str, ...] = (
    "run_id",
    "started_at",
    "station",
    "operator",
    "lot",
    "plan",
    "plan_sha256",
    "product",
    "serial",
    "device_name",
    "outcome",
    "step",
    "step_status",
    "measurement",
    "value",
    "unit",
    "low",
    "high",
    "expected",
    "verdict",
    "detail",
)


def report_file_name(result: RunResult, suffix: str) -> str:
    """``20261121T101502Z_EOL-1_4660_1a2b3c4d.xml``: sortable, unique, safe on every file system."""
    station = re.sub(r"[^A-Za-z0-9_.-]+", "_", result.station) or "station"
    serial = str(result.serial) if result.serial is not None else "unknown"
    return f"{result.started_at:%Y%m%dT%H%M%SZ}_{station}_{serial}_{result.run_id[:8]}{suffix}"


# --- JUnit ----------------------------------------------------------------------------------------


def _counts(result: RunResult) -> dict[str, int]:
    statuses = [s.status for s in result.steps]
    return {
        "tests": len(statuses),
        "failures": statuses.count(StepStatus.FAIL),
        "errors": sum(s in (StepStatus.ERROR, StepStatus.TIMEOUT, StepStatus.ABORTED) for s in statuses),
        "skipped": statuses.count(StepStatus.SKIPPED),
    }


def junit_xml(result: RunResult) -> str:
    """The run as a JUnit XML document (UTF-8 text with an XML declaration)."""
    counts = {k: str(v) for k, v in _counts(result).items()}
    time_s = f"{result.duration_s:.3f}"
    root = ET.Element("testsuites", attrib={"name": "smartbatt eol", "time": time_s, **counts})
    suite = ET.SubElement(
        root,
        "testsuite",
        attrib={
            "name": result.plan_name,
            "id": result.run_id,
            "hostname": result.station,
            "timestamp": result.started_at.strftime("%Y-%m-%dT%H:%M:%S"),
            "time": time_s,
            **counts,
        },
    )
    props = ET.SubElement(suite, "properties")
    for name, value in _properties(result):
        ET.SubElement(props, "property", name=name, value=value)
    classname = f"{result.plan_name}.{result.serial if result.serial is not None else 'unknown'}"
    for step in result.steps:
        case = ET.SubElement(suite, "testcase", classname=classname, name=step.step_id, time=f"{step.duration_s:.3f}")
        _junit_status(case, step.status, step.problem())
        if step.measurements:
            out = ET.SubElement(case, "system-out")
            out.text = "\n".join(m.summary() for m in step.measurements)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _properties(result: RunResult) -> list[tuple[str, str]]:
    return [
        ("outcome", result.outcome.value),
        ("serial", "" if result.serial is None else str(result.serial)),
        ("device_name", result.device_name),
        ("product", result.product),
        ("station", result.station),
        ("operator", result.operator),
        ("lot", result.lot),
        ("plan_title", result.plan_title),
        ("plan_sha256", result.plan_hash),
        ("run_id", result.run_id),
        ("message", result.message),
    ]


def _junit_status(case: ET.Element, status: StepStatus, problem: str) -> None:
    if status is StepStatus.FAIL:
        ET.SubElement(case, "failure", message=problem, type="limit").text = problem
    elif status in (StepStatus.ERROR, StepStatus.TIMEOUT, StepStatus.ABORTED):
        ET.SubElement(case, "error", message=problem, type=status.value).text = problem
    elif status is StepStatus.SKIPPED:
        ET.SubElement(case, "skipped", message=problem)


def write_junit(result: RunResult, directory: str | Path) -> Path:
    """Write the run's JUnit XML into ``directory`` (created if needed); returns the file."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / report_file_name(result, ".xml")
    path.write_text(junit_xml(result), encoding="utf-8")
    return path


# --- CSV ------------------------------------------------------------------------------------------


def _num_text(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def csv_text(result: RunResult) -> str:
    """The run's measurements as CSV text (header + one row per measurement)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    head = [
        result.run_id,
        result.started_at.isoformat(),
        result.station,
        result.operator,
        result.lot,
        result.plan_name,
        result.plan_hash,
        result.product,
        "" if result.serial is None else result.serial,
        result.device_name,
        result.outcome.value,
    ]
    for step in result.steps:
        if not step.measurements:
            writer.writerow([*head, step.step_id, step.status.value, "", "", "", "", "", "", "", step.message])
        for m in step.measurements:
            writer.writerow(
                [
                    *head,
                    step.step_id,
                    step.status.value,
                    m.name,
                    "" if m.value is None else m.value,
                    m.unit,
                    _num_text(m.low),
                    _num_text(m.high),
                    m.expected,
                    m.verdict.value,
                    m.detail,
                ]
            )
    return buffer.getvalue()


def write_csv(result: RunResult, directory: str | Path) -> Path:
    """Write the run's CSV into ``directory`` (created if needed); returns the file."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / report_file_name(result, ".csv")
    path.write_text(csv_text(result), encoding="utf-8", newline="")
    return path


# --- lot statistics -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LotSummary:
    """Yield and failure figures of one lot."""

    lot: str
    runs: int
    #: distinct packs (product + serial; a run without a serial counts as its own pack).
    packs: int
    #: packs whose first judged run passed / packs with any passing run.
    first_pass: int
    passed: int
    failed_runs: int
    error_runs: int
    aborted_runs: int
    #: step id → number of runs whose first problem was in that step.
    failures_by_step: tuple[tuple[str, int], ...]

    @property
    def first_pass_yield(self) -> float:
        return self.first_pass / self.packs if self.packs else 0.0

    @property
    def final_yield(self) -> float:
        return self.passed / self.packs if self.packs else 0.0


def summarize_lot(lot: str, runs: Sequence[RunResult]) -> LotSummary:
    """Yields and failures of ``runs`` (one lot). Aborted runs never judge a pack."""
    by_pack: dict[tuple[str, str], list[RunResult]] = {}
    for r in sorted(runs, key=lambda r: r.started_at):
        key = (r.product, str(r.serial) if r.serial is not None else f"run:{r.run_id}")
        by_pack.setdefault(key, []).append(r)
    first_pass = passed = 0
    for pack_runs in by_pack.values():
        judged = [r for r in pack_runs if r.outcome is not Outcome.ABORTED]
        first_pass += bool(judged) and judged[0].passed
        passed += any(r.passed for r in pack_runs)
    failures: Counter[str] = Counter()
    for r in runs:
        problem = r.first_problem()
        if problem is not None and r.outcome is not Outcome.PASS:
            failures[problem.step_id] += 1
    outcomes = Counter(r.outcome for r in runs)
    return LotSummary(
        lot=lot,
        runs=len(runs),
        packs=len(by_pack),
        first_pass=first_pass,
        passed=passed,
        failed_runs=outcomes[Outcome.FAIL],
        error_runs=outcomes[Outcome.ERROR],
        aborted_runs=outcomes[Outcome.ABORTED],
        failures_by_step=tuple(failures.most_common()),
    )


def _values(runs: Iterable[RunResult], name: str) -> tuple[list[float], float | None, float | None, str]:
    """Numeric values of measurement ``name`` in judged runs, the most common limits and the unit."""
    values: list[float] = []
    limits: Counter[tuple[float | None, float | None]] = Counter()
    unit = ""
    for r in runs:
        if r.outcome is Outcome.ABORTED:
            continue
        m = r.measurement(name)
        if m is None or isinstance(m.value, bool) or not isinstance(m.value, int | float):
            continue
        values.append(float(m.value))
        limits[(m.low, m.high)] += 1
        unit = m.unit
    low, high = limits.most_common(1)[0][0] if limits else (None, None)
    return values, low, high, unit


# --- SVG ------------------------------------------------------------------------------------------

_SVG_NS = "http://www.w3.org/2000/svg"
_FONT = 'font-family="sans-serif" font-size="11"'


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def svg_histogram(
    values: Sequence[float],
    *,
    title: str,
    unit: str = "",
    low: float | None = None,
    high: float | None = None,
    bins: int = 20,
    width: int = 480,
    height: int = 220,
) -> str:
    """A histogram as an inline SVG element, with the limits drawn as red dashed lines."""
    head = f'<svg xmlns="{_SVG_NS}" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">'
    parts = [head, f"<title>{html.escape(title)}</title>"]
    parts.append(f'<text x="8" y="14" {_FONT} font-weight="bold">{html.escape(title)} ({len(values)} packs)</text>')
    if not values:
        parts.append(f'<text x="8" y="40" {_FONT}>no data</text></svg>')
        return "".join(parts)
    data = np.asarray(values, dtype=float)
    lo, hi = _span(data, low, high)
    counts, edges = np.histogram(data, bins=bins, range=(lo, hi))
    left, right, top, bottom = 40.0, width - 10.0, 24.0, height - 30.0

    def x_of(v: float) -> float:
        return left + (v - lo) / (hi - lo) * (right - left)

    peak = max(int(counts.max()), 1)
    for count, e0, e1 in zip(counts, edges[:-1], edges[1:], strict=True):
        if count:
            h = (bottom - top) * int(count) / peak
            parts.append(
                f'<rect x="{x_of(e0):.1f}" y="{bottom - h:.1f}" width="{max(x_of(e1) - x_of(e0) - 1, 1):.1f}" '
                f'height="{h:.1f}" fill="#4a7ebb"><title>{_fmt(e0)}–{_fmt(e1)} {html.escape(unit)}: '
                f"{int(count)}</title></rect>"
            )
    parts.append(f'<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#333"/>')
    parts.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{bottom}" stroke="#333"/>')
    parts.append(f'<text x="{left - 4}" y="{top + 8}" {_FONT} text-anchor="end">{peak}</text>')
    parts.append(f'<text x="{left - 4}" y="{bottom}" {_FONT} text-anchor="end">0</text>')
    for v in (lo, (lo + hi) / 2, hi):
        parts.append(f'<text x="{x_of(v):.1f}" y="{bottom + 14}" {_FONT} text-anchor="middle">{_fmt(v)}</text>')
    parts.append(f'<text x="{right}" y="{bottom + 27}" {_FONT} text-anchor="end">{html.escape(unit)}</text>')
    for label, limit in (("min", low), ("max", high)):
        if limit is not None:
            x = x_of(limit)
            parts.append(
                f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{bottom}" stroke="#c0392b" stroke-dasharray="4 3"/>'
                f'<text x="{x + 3:.1f}" y="{top + 10}" {_FONT} fill="#c0392b">{label} {_fmt(limit)}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def _span(data: np.ndarray, low: float | None, high: float | None) -> tuple[float, float]:
    """Histogram range: the data and the limits, padded; never empty."""
    points = [float(data.min()), float(data.max()), *(v for v in (low, high) if v is not None)]
    lo, hi = min(points), max(points)
    pad = (hi - lo) * 0.05 or max(abs(lo) * 0.01, 1.0)
    return lo - pad, hi + pad


def svg_bars(items: Sequence[tuple[str, int]], *, title: str, width: int = 480) -> str:
    """A horizontal bar chart (failures by step) as an inline SVG element."""
    row = 20
    height = 24 + row * max(len(items), 1)
    parts = [
        f'<svg xmlns="{_SVG_NS}" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">',
        f"<title>{html.escape(title)}</title>",
        f'<text x="8" y="14" {_FONT} font-weight="bold">{html.escape(title)}</text>',
    ]
    if not items:
        parts.append(f'<text x="8" y="36" {_FONT}>no failures</text></svg>')
        return "".join(parts)
    peak = max(n for _, n in items)
    label_w, right = 160.0, width - 40.0
    for i, (name, n) in enumerate(items):
        y = 22 + i * row
        w = (right - label_w) * n / peak
        parts.append(f'<text x="{label_w - 6}" y="{y + 13}" {_FONT} text-anchor="end">{html.escape(name)}</text>')
        parts.append(f'<rect x="{label_w}" y="{y + 2}" width="{w:.1f}" height="{row - 6}" fill="#c0392b"/>')
        parts.append(f'<text x="{label_w + w + 4:.1f}" y="{y + 13}" {_FONT}>{n}</text>')
    parts.append("</svg>")
    return "".join(parts)


# --- HTML -----------------------------------------------------------------------------------------

_CSS = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1em; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
section.lot { border-top: 2px solid #4a7ebb; margin-top: 2em; }
.charts svg { margin: 0.5em 1em 0.5em 0; vertical-align: top; }
.pass { color: #1e7e34; } .fail { color: #c0392b; }
"""


def _pct(value: float) -> str:
    return f"{100.0 * value:.1f} %"


def html_report(
    runs: Sequence[RunResult],
    *,
    since: datetime.datetime | None = None,
    until: datetime.datetime | None = None,
    source: str = "",
    histograms: Sequence[tuple[str, str]] = DEFAULT_HISTOGRAMS,
    generated: datetime.datetime | None = None,
) -> str:
    """A self-contained HTML lot report of ``runs`` (grouped by lot, lots in order of first run)."""
    lots: dict[str, list[RunResult]] = {}
    for r in sorted(runs, key=lambda r: r.started_at):
        lots.setdefault(r.lot, []).append(r)
    now = generated or datetime.datetime.now(datetime.UTC)
    period = f"{since.isoformat() if since else 'start'} – {until.isoformat() if until else 'now'}"
    body = [
        "<h1>End-of-line report</h1>",
        f"<p>Period (UTC): {html.escape(period)}. Runs: {len(runs)}. Lots: {len(lots)}. "
        f"Generated {html.escape(now.strftime('%Y-%m-%d %H:%M UTC'))}"
        + (f" from {html.escape(source)}" if source else "")
        + ".</p>",
    ]
    if not lots:
        body.append("<p>No runs in this period.</p>")
    for lot, lot_runs in lots.items():
        body.append(_lot_section(summarize_lot(lot, lot_runs), lot_runs, histograms))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"/>'
        f"<title>End-of-line report</title><style>{_CSS}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def _lot_section(s: LotSummary, runs: Sequence[RunResult], histograms: Sequence[tuple[str, str]]) -> str:
    plans = sorted({f"{r.plan_name} ({r.plan_hash[:12]})" for r in runs})
    stations = sorted({r.station for r in runs})
    rows = [
        ("Runs", str(s.runs)),
        ("Packs", str(s.packs)),
        ("Passed packs", str(s.passed)),
        ("First-pass yield", _pct(s.first_pass_yield)),
        ("Final yield", _pct(s.final_yield)),
        ("Failed runs", str(s.failed_runs)),
        ("Error runs", str(s.error_runs)),
        ("Aborted runs", str(s.aborted_runs)),
    ]
    table = "".join(f"<tr><th>{k}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    failures = "".join(f"<tr><td>{html.escape(step)}</td><td>{n}</td></tr>" for step, n in s.failures_by_step)
    charts = [svg_bars(s.failures_by_step, title="Failures by step")]
    for name, title in histograms:
        values, low, high, unit = _values(runs, name)
        if values:
            charts.append(svg_histogram(values, title=title, unit=unit, low=low, high=high))
    return (
        f'<section class="lot" data-lot="{html.escape(s.lot)}">'
        f"<h2>Lot {html.escape(s.lot)}</h2>"
        f"<p>Plans: {html.escape(', '.join(plans))}. Stations: {html.escape(', '.join(stations))}.</p>"
        f'<table class="summary">{table}</table>'
        "<h3>Failures by step</h3>"
        f'<table class="failures"><tr><th>Step</th><th>Runs</th></tr>{failures}</table>'
        f'<div class="charts">{"".join(charts)}</div>'
        "</section>"
    )
