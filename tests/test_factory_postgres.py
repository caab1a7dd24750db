"""The results database on a real PostgreSQL server: schema created and migrated by the tool, and two
stations testing packs at the same time lose nothing and never pass one serial twice."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from smartbatt.factory.plan import load_plan
from smartbatt.factory.results_db import SCHEMA_VERSION, ResultsDb
from smartbatt.factory.runner import Outcome, RunResult, run_plan
from smartbatt.sbs.battery import Battery
from tests.factory_packs import DATA, clock, make_pack, make_result, run_cli
from tests.postgres_server import PostgresServer, postgres

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresServer]:
    with postgres() as pg:
        yield pg


@pytest.fixture
def url(server: PostgresServer, request: pytest.FixtureRequest) -> str:
    return server.create_database(request.node.name.lower().replace("[", "_").replace("]", "")[:60])


def test_schema_is_created_and_a_run_round_trips(url: str) -> None:
    with ResultsDb.open(url) as db:
        assert db.dialect == "postgresql" and db.schema_version() == SCHEMA_VERSION
        result = make_result("pg-1", outcome=Outcome.FAIL, spread=40)
        db.record(result)
        assert db.load_run("pg-1") == result
    with ResultsDb.open(url) as again:  # reopening migrates nothing and keeps everything
        assert again.count_runs() == 1


def test_a_version_1_database_is_migrated(url: str) -> None:
    with ResultsDb.open(url, schema_version=1) as old:
        assert old.schema_version() == 1
    with ResultsDb.open(url) as db:
        assert db.schema_version() == SCHEMA_VERSION
        db.record(make_result("after-migration", lot="L7"))
        assert [r.lot for r in db.runs(lot="L7")] == ["L7"]


def test_stations_starting_together_migrate_once(url: str) -> None:
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def start() -> None:
        try:
            barrier.wait(5)
            ResultsDb.open(url).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    with ResultsDb.open(url) as db:
        assert db.schema_version() == SCHEMA_VERSION


def test_two_stations_testing_at_once_lose_nothing(url: str) -> None:
    """Two stations, each its own connection and its own packs, run the check plan concurrently.
    Every run is stored whole; the one serial both stations see passes exactly once."""
    plan = load_plan(DATA / "check_4s.toml")
    packs = 12
    barrier = threading.Barrier(2)
    results: dict[str, list[RunResult]] = {"A": [], "B": []}
    errors: list[BaseException] = []

    def station(name: str, first_serial: int) -> None:
        try:
            with ResultsDb.open(url) as db:
                barrier.wait(10)
                for i in range(packs):
                    # every 4th pack of both stations carries the same serial: a duplicate on the line
                    serial = 9000 + i if i % 4 == 0 else first_serial + i
                    with make_pack(security="sealed", serial=serial, seed=i) as pack:
                        results[name].append(
                            run_plan(plan, Battery(pack.transport), station=name, results_db=db, clock=clock)
                        )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=station, args=args) for args in (("A", 1000), ("B", 2000))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    every = results["A"] + results["B"]
    with ResultsDb.open(url) as db:
        stored = {r.run_id: r for r in db.runs()}
    assert len(stored) == 2 * packs
    assert all(stored[r.run_id] == r for r in every)  # every step and measurement, as run
    for serial in (9000, 9004, 9008):
        outcomes = sorted(r.outcome.value for r in every if r.serial == serial)
        assert outcomes == ["fail", "pass"], (serial, outcomes)
    assert sum(r.passed for r in every) == 2 * packs - 3


def test_serial_allocation_is_atomic_across_connections(url: str) -> None:
    barrier = threading.Barrier(2)
    got: list[int] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def station(name: str) -> None:
        try:
            with ResultsDb.open(url) as db:
                barrier.wait(10)
                for i in range(30):
                    serial = db.allocate_serial("P", 100, 999, f"{name}{i}", name)
                    with lock:
                        got.append(serial)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=station, args=(n,)) for n in "AB"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert sorted(got) == list(range(100, 160))


def test_cli_run_records_into_postgres(url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = run_cli(["eol", "run", str(DATA / "check_4s.toml"), "--station", "PG-1", "--db", url], security="sealed")
    assert code == 0, capsys.readouterr().err
    with ResultsDb.open(url) as db:
        assert [r.station for r in db.runs()] == ["PG-1"]
