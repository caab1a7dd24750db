"""Reports render and parse: JUnit XML per run, CSV per run, the HTML lot report with its SVG charts."""

from __future__ import annotations

import csv
import datetime
import io
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

from smartbatt.factory.report import (
    CSV_COLUMNS,
    csv_text,
    html_report,
    junit_xml,
    report_file_name,
    summarize_lot,
    svg_bars,
    svg_histogram,
    write_csv,
    write_junit,
)
from smartbatt.factory.runner import Outcome, RunResult, StepStatus
from tests.factory_packs import T0, make_result

SVG = "{http://www.w3.org/2000/svg}"


def test_junit_has_one_testcase_per_step_with_failure_details() -> None:
    result = make_result("r1", outcome=Outcome.FAIL, spread=31, serial=4660)
    root = ET.fromstring(junit_xml(result))
    assert root.tag == "testsuites" and root.get("failures") == "1" and root.get("skipped") == "1"
    suite = root.find("testsuite")
    assert suite is not None and suite.get("hostname") == "EOL-1" and suite.get("tests") == "2"
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["serial"] == "4660" and props["plan_sha256"] == "ab" * 32 and props["outcome"] == "fail"
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == ["voltages", "sealed"]
    failure = cases[0].find("failure")
    assert failure is not None and "cell_spread = 31 mV (limit ≤ 20 mV): FAIL" in (failure.get("message") or "")
    assert cases[1].find("skipped") is not None
    out = cases[0].find("system-out")
    assert out is not None and "voltage = 15000 mV (limit 12000..16800 mV): PASS" in (out.text or "")


def test_junit_marks_errors_and_aborts_as_errors() -> None:
    result = make_result("r2")
    aborted = result.steps[0].__class__(
        "voltages", "measure", "Voltages", StepStatus.ABORTED, (), T0, 0.1, "bus or adapter failure: BusBusy"
    )
    result = result.__class__(**{**result.__dict__, "steps": (aborted,), "outcome": Outcome.ABORTED})
    case = ET.fromstring(junit_xml(result)).find("testsuite/testcase")
    assert case is not None
    error = case.find("error")
    assert error is not None and error.get("type") == "aborted" and "BusBusy" in (error.get("message") or "")


def test_csv_has_a_row_per_measurement_and_per_empty_step() -> None:
    result = make_result("r3", outcome=Outcome.FAIL, spread=31)
    rows = list(csv.DictReader(io.StringIO(csv_text(result))))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [r["measurement"] for r in rows] == [
        "voltage",
        "cell_spread",
        "temperature",
        "device_name",
        "manufacture_date",
        "",
    ]
    spread = rows[1]
    assert (spread["value"], spread["unit"], spread["low"], spread["high"], spread["verdict"]) == (
        "31",
        "mV",
        "",
        "20",
        "fail",
    )
    assert rows[-1]["step_status"] == "skipped" and rows[-1]["detail"].startswith("not run")


def test_files_are_named_uniquely_and_written(tmp_path: Path) -> None:
    result = make_result("0123456789abcdef", serial=None, station="Line 2/EOL")
    assert report_file_name(result, ".xml") == "20261121T080000Z_Line_2_EOL_unknown_01234567.xml"
    assert write_junit(result, tmp_path / "j").read_text(encoding="utf-8").startswith("<?xml")
    assert write_csv(result, tmp_path / "c").read_text(encoding="utf-8").startswith("run_id,")


def lot_runs() -> list[RunResult]:
    runs = []
    t = T0
    for i in range(10):  # lot A: 10 packs; packs 3 and 7 fail first, 3 passes on retest
        t += datetime.timedelta(minutes=5)
        outcome = Outcome.FAIL if i in (3, 7) else Outcome.PASS
        runs.append(
            make_result(
                f"a{i}", serial=i, lot="A", started=t, outcome=outcome, spread=30 if outcome is Outcome.FAIL else 5 + i
            )
        )
    runs.append(make_result("a3-retest", serial=3, lot="A", started=t + datetime.timedelta(hours=1), spread=9))
    runs.append(make_result("b0", serial=100, lot="B", started=t, outcome=Outcome.ABORTED))
    return runs


def test_lot_yield_counts_packs_not_runs() -> None:
    runs = [r for r in lot_runs() if r.lot == "A"]
    summary = summarize_lot("A", runs)
    assert (summary.runs, summary.packs, summary.first_pass, summary.passed) == (11, 10, 8, 9)
    assert summary.first_pass_yield == 0.8 and summary.final_yield == 0.9
    assert summary.failures_by_step == (("voltages", 2),)


class Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.lots: list[str] = []
        self.svgs = 0
        self.cells: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "section":
            self.lots.append(dict(attrs)["data-lot"] or "")
        if tag == "svg":
            self.svgs += 1

    def handle_data(self, data: str) -> None:
        if data.strip():
            self.cells.append(data.strip())


def test_html_report_renders_lots_yields_failures_and_histograms() -> None:
    text = html_report(lot_runs(), since=T0, source="eol.sqlite")
    parser = Collector()
    parser.feed(text)
    assert parser.lots == ["A", "B"]
    assert "First-pass yield" in parser.cells and "80.0 %" in parser.cells and "90.0 %" in parser.cells
    assert parser.svgs >= 4  # failures chart + cell spread + voltage for A, failures chart for B
    svgs = re.findall(r"<svg.*?</svg>", text, flags=re.S)
    for svg in svgs:
        root = ET.fromstring(svg)  # every chart is well-formed SVG
        assert root.tag == f"{SVG}svg"
    spread = next(ET.fromstring(s) for s in svgs if "Cell spread" in s)
    bars = spread.findall(f"{SVG}rect")
    counts = [int(b.findtext(f"{SVG}title", "").rsplit(": ", 1)[1]) for b in bars]
    assert sum(counts) == 11  # every judged run of lot A, once
    assert any("max 20" in (t.text or "") for t in spread.iter(f"{SVG}text"))  # the limit line


def test_empty_period_and_empty_histogram() -> None:
    assert "No runs in this period." in html_report([])
    assert "no data" in svg_histogram([], title="x")
    assert "no failures" in svg_bars([], title="y")
    one = ET.fromstring(svg_histogram([5.0, 5.0, 5.0], title="flat", unit="mV", high=20))
    assert len(one.findall(f"{SVG}rect")) == 1
