"""``smartbatt eol``: exit codes, the verdict display, JSON, JUnit/CSV files, the station loop, reports."""

from __future__ import annotations

import csv
import datetime
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from smartbatt.factory.results_db import ResultsDb, ResultsDbError
from smartbatt.factory.runner import Outcome
from smartbatt.transports.txlog import TransactionRecord
from tests.factory_packs import DATA, Pack, make_pack, run_cli

PLAN = str(DATA / "check_4s.toml")


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "eol.sqlite")


def test_a_good_pack_exits_0_shows_pass_and_is_recorded(db_path: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = run_cli(["eol", "run", PLAN, "--station", "EOL-1", "--operator", "ana", "--db", db_path], security="sealed")
    out = capsys.readouterr().out
    assert code == 0
    assert "████ " in out and "Pack serial 1234" in out  # the block-letter banner
    with ResultsDb.open(db_path) as db:
        (run,) = db.runs()
    assert run.outcome is Outcome.PASS and run.station == "EOL-1" and run.operator == "ana"


def test_a_failing_pack_exits_1_and_shows_step_value_and_limit(
    db_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run_cli(["eol", "run", PLAN, "--station", "EOL-1", "--db", db_path], security="sealed", soc_spread=0.12)
    out = capsys.readouterr().out
    assert code == 1
    assert "Step: Voltages (voltages) — FAIL" in out
    assert "cell_spread: 238 mV   limit ≤ 25 mV" in out


def test_json_goes_to_stdout_and_the_display_to_stderr(db_path: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = run_cli(["eol", "run", PLAN, "--station", "S", "--db", db_path, "--json"], security="unsealed")
    captured = capsys.readouterr()
    assert code == 1
    record = json.loads(captured.out)
    assert record["outcome"] == "fail" and record["failed_step"] == "sealed" and record["serial"] == 1234
    assert "Waiting for a pack" in captured.err


def test_junit_and_csv_files_per_run(db_path: str, tmp_path: Path) -> None:
    code = run_cli(
        [
            "eol",
            "run",
            PLAN,
            "--station",
            "S",
            "--db",
            db_path,
            "--junit",
            str(tmp_path / "j"),
            "--csv",
            str(tmp_path / "c"),
        ],
        security="sealed",
        soc_spread=0.12,
    )
    assert code == 1
    (xml_file,) = (tmp_path / "j").iterdir()
    suite = ET.parse(xml_file).getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "1" and suite.get("skipped") == "2"
    (csv_file,) = (tmp_path / "c").iterdir()
    rows = list(csv.DictReader(csv_file.open(encoding="utf-8")))
    spread = next(r for r in rows if r["measurement"] == "cell_spread")
    assert spread["verdict"] == "fail" and spread["high"] == "25" and spread["unit"] == "mV"


def test_a_bad_plan_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('schema_version = 1\nname = "b"\n[[steps]]\nid = "a"\nkind = "weigh"\n')
    code = run_cli(["eol", "run", str(bad), "--station", "S", "--db", str(tmp_path / "x.sqlite")])
    err = capsys.readouterr().err
    assert code == 2 and "steps[0].kind" in err and err.count("\n") == 1


def test_missing_station_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["eol", "run", PLAN]) == 2
    assert "--station" in capsys.readouterr().err


def test_no_pack_on_the_station_exits_3(db_path: str, capsys: pytest.CaptureFixture[str]) -> None:
    pack = make_pack()
    pack.transport.faults.nack_rate = 1.0
    code = run_cli(["eol", "run", PLAN, "--station", "S", "--db", db_path, "--wait", "0.05"], pack=pack)
    assert code == 3 and "No pack answered at 0x0B" in capsys.readouterr().out


def test_an_adapter_fault_mid_plan_exits_3_with_an_aborted_record(db_path: str) -> None:
    pack = make_pack(security="sealed", made=datetime.date.today())
    seen = [0]

    def unplug(record: TransactionRecord) -> None:
        seen[0] += 1
        if seen[0] == 12:
            pack.transport.faults.stuck = True

    pack.transport.add_listener(unplug)
    assert run_cli(["eol", "run", PLAN, "--station", "S", "--db", db_path], pack=pack) == 3
    with ResultsDb.open(db_path) as db:
        (run,) = db.runs()
    assert run.outcome is Outcome.ABORTED


class Operator:
    """Lifts the pack off the station after each run and puts the next one on (new serial)."""

    def __init__(self, pack: Pack) -> None:
        self.pack = pack
        self.in_run = False
        self.silent_probes = 0

    def __call__(self, record: TransactionRecord) -> None:
        probe = record.command == 0x09 and not record.pec
        if not probe:
            self.in_run = True
            return
        if record.attempt != 1:
            return
        faults = self.pack.transport.faults
        if self.in_run:  # the first presence probe after a run: the operator lifts the pack
            self.in_run = False
            faults.nack_rate = 1.0
            self.silent_probes = 0
        elif faults.nack_rate:
            self.silent_probes += 1
            if self.silent_probes == 4:  # removal seen; the next pack goes on
                self.pack.gauge.identity.serial_number += 1
                faults.nack_rate = 0.0


def test_the_station_loop_waits_for_removal_and_tests_the_next_pack(
    db_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    pack = make_pack(security="sealed", made=datetime.date.today())
    pack.transport.add_listener(Operator(pack))
    code = run_cli(
        ["eol", "run", PLAN, "--station", "S", "--db", db_path, "--loop", "--count", "3", "--json"], pack=pack
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    records = [json.loads(line) for line in captured.out.splitlines()]
    assert [r["serial"] for r in records] == [1234, 1235, 1236]
    assert captured.err.count("Remove the pack") == 2
    with ResultsDb.open(db_path) as db:
        assert [r.serial for r in db.runs()] == [1234, 1235, 1236]


def test_the_loop_exit_code_is_the_worst_outcome(db_path: str) -> None:
    pack = make_pack(security="unsealed", made=datetime.date.today())
    pack.transport.add_listener(Operator(pack))
    assert run_cli(["eol", "run", PLAN, "--station", "S", "--db", db_path, "--count", "2"], pack=pack) == 1


def test_report_writes_an_html_lot_report(db_path: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_cli(["eol", "run", PLAN, "--station", "S", "--db", db_path, "--lot", "L1"], security="sealed")
    run_cli(["eol", "run", PLAN, "--station", "S", "--db", db_path, "--lot", "L1"], security="sealed", serial=99)
    out = tmp_path / "r" / "report.html"
    since = (datetime.date.today() - datetime.timedelta(days=1)).isoformat()
    code = run_cli(["eol", "report", "--since", since, "--db", db_path, "-o", str(out)])
    assert code == 0 and "2 runs in 1 lots" in capsys.readouterr().out
    text = out.read_text(encoding="utf-8")
    assert 'data-lot="L1"' in text and "<svg" in text


def test_report_usage_errors(db_path: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["eol", "report", "--since", "yesterday", "--db", db_path]) == 2
    assert run_cli(["eol", "report", "--since", "2026-11-02", "--until", "2026-11-01", "--db", db_path]) == 2


def test_check_lists_the_plan(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["eol", "check", PLAN]) == 0
    out = capsys.readouterr().out
    assert "plan OK" in out and "2. voltages [measure] Voltages" in out


def test_a_database_failure_still_writes_the_files_and_exits_3(
    db_path: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(self: ResultsDb, result: object) -> None:
        raise ResultsDbError("results database: disk full", run_result=result)  # type: ignore[arg-type]

    monkeypatch.setattr(ResultsDb, "record", refuse)
    code = run_cli(
        ["eol", "run", PLAN, "--station", "S", "--db", db_path, "--junit", str(tmp_path / "j"), "--json"],
        security="sealed",
    )
    captured = capsys.readouterr()
    assert code == 3 and "disk full" in captured.err
    assert json.loads(captured.out)["outcome"] == "pass"
    assert len(list((tmp_path / "j").iterdir())) == 1
