"""The end-of-line runner against emulated packs: good packs pass, each bad pack fails for its reason,
and nothing but a complete, all-pass run is ever PASS."""

from __future__ import annotations

import datetime
import signal
import threading
from pathlib import Path
from typing import Any

import pytest

from smartbatt.errors import AdapterGone
from smartbatt.factory.plan import Plan, load_plan
from smartbatt.factory.results_db import ResultsDb
from smartbatt.factory.runner import (
    INTERRUPTED,
    Outcome,
    RunResult,
    StepFinished,
    StepStarted,
    StepStatus,
    run_plan,
    wait_for_pack,
    wait_for_removal,
)
from smartbatt.factory.steps import Measurement, Verdict
from smartbatt.sbs.battery import Battery
from smartbatt.transports import open_transport
from smartbatt.transports.txlog import TransactionRecord
from tests.factory_packs import DATA, TODAY, Pack, clock, make_pack

CHECK_PLAN = DATA / "check_4s.toml"


@pytest.fixture
def plan() -> Plan:
    return load_plan(CHECK_PLAN)


@pytest.fixture
def db(tmp_path: Path):
    with ResultsDb.open(tmp_path / "eol.sqlite") as database:
        yield database


def run(plan: Plan, pack: Pack, db: ResultsDb | None = None, **kw: Any) -> RunResult:
    return run_plan(plan, Battery(pack.transport), station="EOL-1", operator="ana", results_db=db, clock=clock, **kw)


def step(result: RunResult, step_id: str):
    return next(s for s in result.steps if s.step_id == step_id)


def failing(result: RunResult, step_id: str) -> dict[str, Measurement]:
    return {m.name: m for m in step(result, step_id).failures}


# --- good packs ----------------------------------------------------------------------------------


def test_a_good_sealed_pack_passes_and_is_recorded(plan: Plan, db: ResultsDb) -> None:
    with make_pack(security="sealed") as pack:
        result = run(plan, pack, db)
    assert result.outcome is Outcome.PASS, result.message
    assert [s.status for s in result.steps] == [StepStatus.PASS] * 4
    assert result.serial == 1234 and result.device_name == "EMU-4S5000"
    assert result.station == "EOL-1" and result.operator == "ana" and result.plan_hash == plan.sha256
    cells = [m for m in step(result, "voltages").measurements if m.name.startswith("cell_voltage_")]
    assert len(cells) == 4 and all(3000 <= float(m.value or 0) <= 4200 for m in cells)
    assert result.transactions and result.bus_time_s and result.bus_time_s > 0
    assert db.load_run(result.run_id) == result


def test_status_check_of_a_sealed_pack_unseals_for_the_read_and_seals_again(plan: Plan) -> None:
    with make_pack(security="sealed") as pack:
        result = run(plan, pack, ResultsDb.open(":memory:"))
        assert result.passed
        assert pack.gauge.security.name == "SEALED"  # left as it was found


def test_progress_events_come_in_step_order(plan: Plan, db: ResultsDb) -> None:
    events: list[object] = []
    with make_pack(security="sealed") as pack:
        run(plan, pack, db, on_event=events.append)
    started = [e.step.id for e in events if isinstance(e, StepStarted)]
    finished = [e.result.step_id for e in events if isinstance(e, StepFinished)]
    assert started == finished == ["identity", "voltages", "flags", "sealed"]


# --- bad packs fail with the right reason --------------------------------------------------------


def test_a_permanent_failure_fails_the_flags_step(plan: Plan, db: ResultsDb) -> None:
    with make_pack(security="sealed") as pack:
        pack.latch_permanent_failure()
        result = run(plan, pack, db)
    assert result.outcome is Outcome.FAIL
    assert result.first_problem() is step(result, "flags")
    bad = failing(result, "flags")
    assert bad["pf_status"].detail == "SOV" and bad["pf_status"].value == "0x00000002"
    assert step(result, "sealed").status is StepStatus.SKIPPED


def test_a_cell_imbalance_fails_on_cell_spread(plan: Plan, db: ResultsDb) -> None:
    with make_pack(security="sealed", soc_spread=0.12) as pack:
        result = run(plan, pack, db)
    assert result.outcome is Outcome.FAIL
    bad = failing(result, "voltages")
    assert list(bad) == ["cell_spread"]
    spread = bad["cell_spread"]
    assert isinstance(spread.value, int) and spread.value > 25 and spread.high == 25 and spread.unit == "mV"
    assert "cell_spread" in result.message and "≤ 25 mV" in result.message


def test_an_unsealed_pack_fails_the_security_step(plan: Plan, db: ResultsDb) -> None:
    with make_pack(security="unsealed") as pack:
        result = run(plan, pack, db)
    assert result.outcome is Outcome.FAIL
    assert result.first_problem() is step(result, "sealed")
    assert failing(result, "sealed")["security_state"].value == "unsealed"


def test_a_stale_manufacture_date_fails_identity(plan: Plan, db: ResultsDb) -> None:
    with make_pack(security="sealed", made=TODAY - datetime.timedelta(days=400)) as pack:
        result = run(plan, pack, db)
    assert result.outcome is Outcome.FAIL
    date = failing(result, "identity")["manufacture_date"]
    assert date.detail == "400 days old"
    assert all(s.status is StepStatus.SKIPPED for s in result.steps[1:])


def test_a_date_in_the_future_fails_identity(plan: Plan, db: ResultsDb) -> None:
    with make_pack(security="sealed", made=TODAY + datetime.timedelta(days=3)) as pack:
        result = run(plan, pack, db)
    assert failing(result, "identity")["manufacture_date"].detail == "3 days in the future"


def test_a_duplicate_serial_fails_and_names_the_earlier_pass(plan: Plan, db: ResultsDb) -> None:
    with make_pack(security="sealed", serial=777) as first:
        assert run(plan, first, db).passed
    with make_pack(security="sealed", serial=777, seed=9) as second:
        result = run(plan, second, db)
    assert result.outcome is Outcome.FAIL
    dup = failing(result, "identity")["serial_unique"]
    assert dup.value == 777 and "already passed on station EOL-1" in dup.detail


def test_a_failed_pack_releases_its_serial_for_a_retest(plan: Plan, db: ResultsDb) -> None:
    with make_pack(security="unsealed", serial=778) as pack:
        assert run(plan, pack, db).outcome is Outcome.FAIL  # fails at the last step, after the claim
    with make_pack(security="sealed", serial=778) as pack:
        assert run(plan, pack, db).passed


def test_serial_out_of_range_fails(plan: Plan, db: ResultsDb) -> None:
    with make_pack(security="sealed", serial=61000) as pack:
        result = run(plan, pack, db)
    assert failing(result, "identity")["serial_number"].high == 60000


def test_wrong_device_name_fails_with_what_was_expected(plan: Plan, db: ResultsDb) -> None:
    with make_pack(security="sealed", device_name="EMU-4S2200") as pack:
        result = run(plan, pack, db)
    name = failing(result, "identity")["device_name"]
    assert name.value == "EMU-4S2200" and name.expected == "= 'EMU-4S5000'"


# --- never a PASS: errors, aborts, timeouts, skips -----------------------------------------------


def test_serial_uniqueness_without_a_database_is_an_error_not_a_pass(plan: Plan) -> None:
    with make_pack(security="sealed") as pack:
        result = run(plan, pack, None)
    assert result.outcome is Outcome.ERROR
    assert step(result, "identity").status is StepStatus.ERROR
    assert "needs a results database" in result.message


def _fault_after(pack: Pack, transactions: int, fault: str) -> None:
    """Inject a wire fault after ``transactions`` more transactions (from the transaction log)."""
    seen = [0]

    def listener(record: TransactionRecord) -> None:
        seen[0] += 1
        if seen[0] == transactions:
            if fault == "stuck":
                pack.transport.faults.stuck = True
            else:
                pack.transport.close()

    pack.transport.add_listener(listener)


@pytest.mark.parametrize(("fault", "error"), [("stuck", "BusBusy"), ("unplug", "AdapterGone")])
def test_an_adapter_fault_mid_plan_records_an_aborted_run(plan: Plan, db: ResultsDb, fault: str, error: str) -> None:
    with make_pack(security="sealed") as pack:
        _fault_after(pack, 8, fault)  # during the measure step
        result = run(plan, pack, db)
    assert result.outcome is Outcome.ABORTED
    aborted = step(result, "voltages")
    assert aborted.status is StepStatus.ABORTED and error in aborted.message
    assert step(result, "identity").status is StepStatus.PASS
    assert [s.status for s in result.steps[2:]] == [StepStatus.SKIPPED] * 2
    stored = db.load_run(result.run_id)
    assert stored.outcome is Outcome.ABORTED and stored.steps[1].status is StepStatus.ABORTED


def test_an_aborted_run_releases_its_serial_claim(plan: Plan, db: ResultsDb) -> None:
    with make_pack(security="sealed", serial=4242) as pack:
        _fault_after(pack, 8, "stuck")
        assert run(plan, pack, db).outcome is Outcome.ABORTED
    with make_pack(security="sealed", serial=4242) as pack:
        assert run(plan, pack, db).passed


def test_a_pack_that_vanishes_mid_plan_is_aborted(plan: Plan, db: ResultsDb) -> None:
    """Every transaction NACKed at the address: the pack was pulled off the station."""
    with make_pack(security="sealed") as pack:
        seen = [0]

        def pull(record: TransactionRecord) -> None:
            seen[0] += 1
            if seen[0] == 8:
                pack.transport.faults.nack_rate = 1.0

        pack.transport.add_listener(pull)
        result = run(plan, pack, db)
    assert result.outcome is Outcome.ABORTED
    assert "NoAcknowledge" in step(result, "voltages").message


def _custom_plan(tmp_path: Path, body: str, function: str, extra: str = "") -> Plan:
    (tmp_path / "checks.py").write_text(body, encoding="utf-8")
    (tmp_path / "plan.toml").write_text(
        f"""schema_version = 1
name = "custom"
{extra}
[pack]
profile = "bq40z50"
[[steps]]
id = "first"
kind = "measure"
limits.voltage = {{ min = 1000, unit = "mV" }}
[[steps]]
id = "custom"
kind = "python"
function = "checks.py:{function}"
timeout_s = 0.2
[[steps]]
id = "last"
kind = "measure"
limits.voltage = {{ min = 1000, unit = "mV" }}
""",
        encoding="utf-8",
    )
    return load_plan(tmp_path / "plan.toml")


def test_ctrl_c_mid_plan_records_an_aborted_interrupted_run(tmp_path: Path, db: ResultsDb) -> None:
    body = (
        "import signal, threading\n"
        "def interrupt(battery, results):\n"
        "    signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)\n"
        "    return True\n"
    )
    plan = _custom_plan(tmp_path, body, "interrupt")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with make_pack(security="sealed") as pack:
        result = run(plan, pack, db)
    assert result.outcome is Outcome.ABORTED and result.interrupted
    assert step(result, "custom").status is StepStatus.ABORTED and step(result, "custom").message == INTERRUPTED
    assert step(result, "last").status is StepStatus.SKIPPED
    assert db.load_run(result.run_id).interrupted


def test_ctrl_c_in_a_progress_callback_still_aborts(plan: Plan, db: ResultsDb) -> None:
    def callback(event: object) -> None:
        if isinstance(event, StepFinished) and event.result.step_id == "sealed":
            raise KeyboardInterrupt

    with make_pack(security="sealed") as pack:
        result = run(plan, pack, db, on_event=callback)
    assert result.outcome is Outcome.ABORTED and result.interrupted  # every step passed: still no PASS


def test_a_step_past_its_time_limit_times_out_and_the_run_is_not_a_pass(tmp_path: Path, db: ResultsDb) -> None:
    body = (
        "import threading\n"
        "RELEASE = threading.Event()\n"
        "def slow(battery, results):\n"
        "    RELEASE.wait(0.4)\n"  # hangs past its 0.2 s limit, stops within the grace period
        "    return True\n"
    )
    plan = _custom_plan(tmp_path, body, "slow")
    with make_pack(security="sealed") as pack:
        result = run(plan, pack, db)
    custom = step(result, "custom")
    assert custom.status is StepStatus.TIMEOUT and "0.2 s" in custom.message
    assert result.outcome is Outcome.ERROR
    assert step(result, "last").status is StepStatus.SKIPPED


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ("def f(battery, results):\n    return battery.voltage > 1000\n", StepStatus.PASS, ""),
        ("def f(battery, results):\n    return False\n", StepStatus.FAIL, ""),
        (
            "def f(battery, results):\n    assert battery.voltage < 10, 'pack too high'\n",
            StepStatus.FAIL,
            "pack too high",
        ),
        ("def f(battery, results):\n    raise ValueError('bug')\n", StepStatus.ERROR, "ValueError: bug"),
        ("def f(battery, results):\n    return 'yes'\n", StepStatus.ERROR, "returned str"),
    ],
)
def test_custom_python_steps(tmp_path: Path, db: ResultsDb, body: str, status: StepStatus, detail: str) -> None:
    plan = _custom_plan(tmp_path, body, "f")
    with make_pack(security="sealed") as pack:
        result = run(plan, pack, db)
    custom = step(result, "custom")
    assert custom.status is status
    assert detail in custom.message or any(detail in m.detail for m in custom.measurements)
    assert (result.outcome is Outcome.PASS) == (status is StepStatus.PASS)


def test_a_custom_step_gets_the_battery_the_results_so_far_and_its_params(tmp_path: Path, db: ResultsDb) -> None:
    body = (
        "from smartbatt.factory.steps import Measurement, Verdict\n"
        "def f(battery, results, minimum):\n"
        "    assert [r.step_id for r in results] == ['first']\n"
        "    v = battery.voltage\n"
        "    return [Measurement('pack_mv', v, Verdict.PASS if v >= minimum else Verdict.FAIL, 'mV', minimum)]\n"
    )
    (tmp_path / "checks.py").write_text(body, encoding="utf-8")
    plan = _custom_plan(tmp_path, body, "f")
    text = (
        (tmp_path / "plan.toml").read_text().replace("timeout_s = 0.2", "timeout_s = 5\nparams = { minimum = 20000 }")
    )
    (tmp_path / "plan.toml").write_text(text)
    plan = load_plan(tmp_path / "plan.toml")
    with make_pack(security="sealed") as pack:
        result = run(plan, pack, db)
    m = step(result, "custom").measurements[0]
    assert m.name == "pack_mv" and m.low == 20000 and m.verdict is Verdict.FAIL


def test_a_command_the_gauge_refuses_is_a_step_error_not_an_abort(tmp_path: Path, db: ResultsDb) -> None:
    """A plain SBS gauge NACKs the TI cell-voltage command byte: the pack is wrong, the bus is fine."""
    (tmp_path / "plan.toml").write_text(
        'schema_version = 1\nname = "cells"\n[pack]\nprofile = "generic-sbs"\ncells = 3\n'
        '[[steps]]\nid = "cells"\nkind = "measure"\nlimits.cell_voltage = { min = 3000, unit = "mV" }\n'
    )
    plan = load_plan(tmp_path / "plan.toml")
    with open_transport("emulated:generic-sbs?speed=0&cells=3") as t:
        result = run_plan(plan, Battery(t), station="S", results_db=db, clock=clock)
    assert result.outcome is Outcome.ERROR
    assert step(result, "cells").status is StepStatus.ERROR and "byte 1" in step(result, "cells").message


def test_with_stop_on_fail_off_checks_go_on_but_writes_do_not(tmp_path: Path, db: ResultsDb) -> None:
    plan = _custom_plan(tmp_path, "def f(battery, results):\n    return True\n", "f", extra="stop_on_fail = false")
    text = (tmp_path / "plan.toml").read_text().replace("min = 1000, unit", "min = 99000, unit", 1)
    (tmp_path / "plan.toml").write_text(text)
    plan = load_plan(tmp_path / "plan.toml")
    with make_pack(security="sealed") as pack:
        result = run(plan, pack, db)
    assert [s.status for s in result.steps] == [StepStatus.FAIL, StepStatus.SKIPPED, StepStatus.PASS]
    assert "changes the pack" in step(result, "custom").message
    assert result.outcome is Outcome.FAIL


def test_a_station_name_is_required(plan: Plan) -> None:
    with make_pack() as pack, pytest.raises(ValueError, match="station"):
        run_plan(plan, Battery(pack.transport), station=" ")


def test_run_result_json_round_trip(plan: Plan, db: ResultsDb) -> None:
    with make_pack(security="sealed", soc_spread=0.12) as pack:
        result = run(plan, pack, db)
    data = result.to_json()
    assert data["failed_step"] == "voltages" and data["outcome"] == "fail"
    assert RunResult.from_json(data) == result


# --- pack insertion and removal ------------------------------------------------------------------


def test_wait_for_pack_sees_a_present_pack_after_settling() -> None:
    with make_pack() as pack:
        before = pack.transport.transactions
        assert wait_for_pack(pack.transport, timeout_s=1.0, poll_s=0.001, settle=3)
        assert pack.transport.transactions - before == 3


def test_wait_for_pack_times_out_when_nothing_answers() -> None:
    with make_pack() as pack:
        pack.transport.faults.nack_rate = 1.0
        assert not wait_for_pack(pack.transport, timeout_s=0.05, poll_s=0.001, settle=2)


def test_wait_for_removal_needs_consecutive_silences_and_stops_on_request() -> None:
    with make_pack() as pack:
        answers = iter([True, False, True, False, False])  # contact bounce, then gone

        def toggle(record: TransactionRecord) -> None:
            pack.transport.faults.nack_rate = 0.0 if next(answers, False) else 1.0

        pack.transport.add_listener(toggle)
        assert wait_for_removal(pack.transport, timeout_s=2.0, poll_s=0.001, settle=2)
        stop = threading.Event()
        stop.set()
        pack.transport.faults.nack_rate = 0.0
        assert not wait_for_removal(pack.transport, timeout_s=None, poll_s=0.001, settle=2, stop=stop)


def test_a_bus_failure_while_waiting_is_raised_not_taken_for_an_absent_pack() -> None:
    with make_pack() as pack:
        pack.transport.close()
        with pytest.raises(AdapterGone):
            wait_for_pack(pack.transport, timeout_s=0.1, poll_s=0.001)


def _with_keys(tmp_path: Path, keys: str) -> Plan:
    text = CHECK_PLAN.read_text().replace(
        '[pack]\nprofile = "bq40z50"', f'[security]\nkeys = "{keys}"\n\n[pack]\nprofile = "bq40z50"'
    )
    (tmp_path / "plan.toml").write_text(text)
    return load_plan(tmp_path / "plan.toml")


def test_a_wrong_station_key_is_an_error_and_the_pack_stays_sealed(
    tmp_path: Path, db: ResultsDb, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMARTBATT_UNSEAL_KEY", "0x1111,0x2222")
    plan = _with_keys(tmp_path, "env")
    with make_pack(security="sealed") as pack:
        result = run(plan, pack, db)
        assert pack.gauge.security.name == "SEALED"
    flags = step(result, "flags")
    assert result.outcome is Outcome.ERROR and flags.status is StepStatus.ERROR
    assert "wrong key" in flags.message and "1111" not in flags.message  # keys never reach a record


def test_a_station_key_from_the_environment_unseals(
    tmp_path: Path, db: ResultsDb, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMARTBATT_UNSEAL_KEY", "0x0414, 0x3672")  # the emulated pack still has TI's default
    with make_pack(security="sealed") as pack:
        assert run(_with_keys(tmp_path, "env"), pack, db).passed


def test_without_keys_a_sealed_pack_cannot_show_its_pf_flags(tmp_path: Path, db: ResultsDb) -> None:
    with make_pack(security="sealed") as pack:
        result = run(_with_keys(tmp_path, "none"), pack, db)
    assert step(result, "flags").status is StepStatus.ERROR and "keys = 'none'" in result.message


def test_keys_from_an_unset_environment_never_fall_back_to_defaults(
    tmp_path: Path, db: ResultsDb, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SMARTBATT_UNSEAL_KEY", raising=False)
    with make_pack(security="sealed") as pack:
        result = run(_with_keys(tmp_path, "env"), pack, db)
        assert pack.gauge.security.name == "SEALED"
    assert step(result, "flags").status is StepStatus.ERROR and "SMARTBATT_UNSEAL_KEY is not set" in result.message
