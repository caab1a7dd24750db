"""The SQLite results database: full round trip, schema migrations, serial claims, concurrent writers."""

from __future__ import annotations

import datetime
import sqlite3
import threading
from pathlib import Path

import pytest

from smartbatt.factory.results_db import SCHEMA_VERSION, STALE_CLAIM_S, ResultsDb, ResultsDbError, redact
from smartbatt.factory.runner import Outcome
from smartbatt.factory.steps import Verdict
from tests.factory_packs import T0, make_result


@pytest.fixture
def db(tmp_path: Path):
    with ResultsDb.open(tmp_path / "eol.sqlite") as database:
        yield database


def test_a_run_round_trips_with_every_measurement_and_type(db: ResultsDb) -> None:
    result = make_result("r1", outcome=Outcome.FAIL, spread=31)
    db.record(result)
    back = db.load_run("r1")
    assert back == result
    spread = back.steps[0].measurements[1]
    assert (
        isinstance(spread.value, int) and spread.value == 31 and spread.high == 20.0 and spread.verdict is Verdict.FAIL
    )
    assert back.steps[0].measurements[4].value is None


def test_runs_are_selected_by_time_lot_and_serial(db: ResultsDb) -> None:
    for i in range(4):
        db.record(make_result(f"r{i}", serial=i, lot="a" if i < 2 else "b", started=T0 + datetime.timedelta(hours=i)))
    assert [r.run_id for r in db.runs(T0 + datetime.timedelta(hours=1))] == ["r1", "r2", "r3"]
    assert [r.run_id for r in db.runs(T0, T0 + datetime.timedelta(hours=2))] == ["r0", "r1"]
    assert [r.run_id for r in db.runs(lot="b")] == ["r2", "r3"]
    assert [r.run_id for r in db.runs(serial=1)] == ["r1"]
    assert db.count_runs() == 4


def test_a_run_id_is_stored_once(db: ResultsDb) -> None:
    db.record(make_result("same"))
    with pytest.raises(ResultsDbError) as info:
        db.record(make_result("same"))
    assert info.value.run_result is not None and info.value.run_result.run_id == "same"
    assert db.count_runs() == 1  # the failed transaction left nothing behind


def test_unknown_run_is_an_error(db: ResultsDb) -> None:
    with pytest.raises(ResultsDbError, match="no run"):
        db.load_run("nope")


# --- serials --------------------------------------------------------------------------------------


def test_claims_are_exclusive_until_the_run_ends(db: ResultsDb) -> None:
    assert db.claim_serial("P", 5, "run-a", "EOL-1") is None
    assert db.claim_serial("P", 5, "run-a", "EOL-1") is None  # the same run again: fine
    refusal = db.claim_serial("P", 5, "run-b", "EOL-2")
    assert refusal is not None and "being tested on station EOL-1" in refusal
    assert db.claim_serial("Q", 5, "run-b", "EOL-2") is None  # serials are per product


def test_a_pass_keeps_the_claim_and_a_failure_releases_it(db: ResultsDb) -> None:
    db.claim_serial("EMU-4S5000", 100, "fail-run", "EOL-1")
    db.record(make_result("fail-run", serial=100, outcome=Outcome.FAIL))
    assert db.claim_serial("EMU-4S5000", 100, "pass-run", "EOL-1") is None
    db.record(make_result("pass-run", serial=100))
    refusal = db.claim_serial("EMU-4S5000", 100, "third", "EOL-2")
    assert refusal is not None and "already passed on station EOL-1" in refusal


def test_a_passed_serial_is_registered_even_without_a_claim(db: ResultsDb) -> None:
    db.record(make_result("p", serial=42))
    assert db.claim_serial("EMU-4S5000", 42, "other", "EOL-2") is not None


def test_a_stale_pending_claim_can_be_taken_over(db: ResultsDb, tmp_path: Path) -> None:
    db.claim_serial("P", 9, "crashed", "EOL-1")
    old = (datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=STALE_CLAIM_S + 60)).isoformat()
    with sqlite3.connect(tmp_path / "eol.sqlite") as raw:
        raw.execute("UPDATE serial_claims SET claimed_at = ? WHERE run_id = 'crashed'", (old,))
    assert db.claim_serial("P", 9, "new", "EOL-2") is None


def test_allocation_hands_out_each_serial_once_and_skips_used_ones(db: ResultsDb) -> None:
    db.claim_serial("P", 11, "x", "S")
    got = [db.allocate_serial("P", 10, 13, f"r{i}", "S") for i in range(3)]
    assert got == [10, 12, 13]
    with pytest.raises(ResultsDbError, match=r"no unused serial left in 10\.\.13"):
        db.allocate_serial("P", 10, 13, "r9", "S")


def test_two_sqlite_writers_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite"
    ResultsDb.open(path).close()
    barrier = threading.Barrier(2)
    serials: dict[str, list[int]] = {}
    errors: list[BaseException] = []

    def station(name: str) -> None:
        try:
            with ResultsDb.open(path) as db:
                barrier.wait(5)
                mine = serials.setdefault(name, [])
                for i in range(25):
                    serial = db.allocate_serial("P", 1, 1000, f"{name}-{i}", name)
                    mine.append(serial)
                    db.record(make_result(f"{name}-{i}", serial=serial, station=name))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=station, args=(n,)) for n in ("A", "B")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    with ResultsDb.open(path) as db:
        runs = db.runs()
        assert len(runs) == 50 and sum(len(s.measurements) for r in runs for s in r.steps) == 250
        assert sorted(serials["A"] + serials["B"]) == list(range(1, 51))


# --- schema ---------------------------------------------------------------------------------------


def test_a_version_1_database_is_migrated_without_losing_runs(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    with ResultsDb.open(path, schema_version=1) as old:
        assert old.schema_version() == 1
    with sqlite3.connect(path) as raw:  # a run written by a version-1 station
        raw.execute(
            "INSERT INTO runs (run_id, plan_name, plan_title, plan_hash, plan_file, product, station, operator, "
            "serial, device_name, started_at, finished_at, outcome, failed_step, message, bus_time_s, "
            "transactions, interrupted) "
            "VALUES ('v1', 'p', 'p', 'h', '', 'P', 'S', '', 7, 'D', ?, ?, 'pass', NULL, '', NULL, NULL, 0)",
            (T0.isoformat(), T0.isoformat()),
        )
    with ResultsDb.open(path) as db:
        assert db.schema_version() == SCHEMA_VERSION
        run = db.load_run("v1")
        assert run.serial == 7 and run.lot == ""
        db.record(make_result("v2"))
        assert db.count_runs() == 2


def test_a_newer_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.sqlite"
    ResultsDb.open(path).close()
    with sqlite3.connect(path) as raw:
        raw.execute("INSERT INTO schema_version VALUES (99, 'future', '2030-01-01T00:00:00+00:00')")
    with pytest.raises(ResultsDbError, match="schema version 99, newer"):
        ResultsDb.open(path)


def test_an_unopenable_database_is_a_typed_error(tmp_path: Path) -> None:
    (tmp_path / "dir.sqlite").mkdir()
    with pytest.raises(ResultsDbError, match="cannot open"):
        ResultsDb.open(tmp_path / "dir.sqlite")


def test_a_closed_database_refuses_work(tmp_path: Path) -> None:
    db = ResultsDb.open(tmp_path / "x.sqlite")
    db.close()
    with pytest.raises(ResultsDbError, match="closed"):
        db.count_runs()


def test_default_location_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("SMARTBATT_EOL_DB", raising=False)
    with ResultsDb.open() as db:
        assert db.label == str(tmp_path / "xdg" / "smartbatt" / "eol.sqlite")
    monkeypatch.setenv("SMARTBATT_EOL_DB", f"sqlite:{tmp_path / 'env.sqlite'}")
    with ResultsDb.open() as db:
        assert db.label.endswith("env.sqlite") and db.dialect == "sqlite"


def test_postgres_urls_are_redacted_in_messages() -> None:
    assert redact("postgresql://eol:s3cret@db.example/eol") == "postgresql://eol:***@db.example/eol"
    with pytest.raises(ResultsDbError) as info:
        ResultsDb.open("postgresql://eol:s3cret@127.0.0.1:1/eol", timeout_s=1)
    assert "s3cret" not in str(info.value)
