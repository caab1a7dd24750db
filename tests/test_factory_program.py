"""The program step and the two example plans end to end: the golden image is written and verified,
the pack sealed, and both example plans pass on good emulated packs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from smartbatt.factory.plan import load_plan
from smartbatt.factory.results_db import ResultsDb
from smartbatt.factory.runner import Outcome, RunResult, StepStatus, run_plan
from smartbatt.gauge.dataflash import DataFlash
from smartbatt.gauge.gauge import Gauge
from smartbatt.gauge.security import unseal
from smartbatt.sbs.battery import Battery
from tests.factory_packs import EXAMPLES, Pack, clock, make_pack

DRONE = EXAMPLES / "eol_drone_4s.toml"
LAPTOP = EXAMPLES / "eol_laptop_3s.toml"
DRONE_PACK: dict[str, Any] = {"cells": 4, "chemistry": "lco", "capacity": 5000, "soc": 0.25, "security": "sealed"}
LAPTOP_PACK: dict[str, Any] = {"cells": 3, "chemistry": "nmc", "capacity": 5800, "soc": 0.4, "security": "sealed"}

#: the golden values (public bqStudio export of a bq40z50-R1; see examples/golden/)
GOLDEN = {
    "Calibration:Voltage:Cell Gain": 12173,
    "Calibration:Voltage:Pack Gain": 49615,
    "Calibration:Voltage:BAT Gain": 49222,
    "Calibration:Temperature:External1 Temp Offset": 0.1,
    "Settings:Protection:Enabled Protections A": 0xFF,
}


@pytest.fixture
def db(tmp_path: Path):
    with ResultsDb.open(tmp_path / "eol.sqlite") as database:
        yield database


def run(plan_file: Path, pack: Pack, db: ResultsDb) -> tuple[RunResult, list[float]]:
    waits: list[float] = []
    result = run_plan(
        load_plan(plan_file), Battery(pack.transport), station="EOL-1", results_db=db, clock=clock, sleep=waits.append
    )
    return result, waits


def dataflash_of(pack: Pack) -> dict[str, object]:
    """The pack's data flash read by an independent path (the emulator's memory)."""
    memory = pack.gauge.dataflash
    assert memory is not None
    profile = pack.gauge.chip
    out: dict[str, object] = {}
    for key in GOLDEN:
        entry = profile.df_entry(key)
        assert entry.address is not None
        out[key] = entry.decode(memory.read(entry.address, entry.size))
    return out


def test_the_drone_example_passes_writes_and_verifies_the_golden_image(db: ResultsDb) -> None:
    with make_pack(**DRONE_PACK) as pack:
        assert dataflash_of(pack) != GOLDEN
        result, waits = run(DRONE, pack, db)
        assert result.outcome is Outcome.PASS, result.message
        assert dataflash_of(pack) == GOLDEN  # what the gauge holds now, not what the tool believes
        assert pack.gauge.security.name == "SEALED"
    program = next(s for s in result.steps if s.step_id == "program")
    by_name = {m.name: m for m in program.measurements}
    assert by_name["image_write"].value == 4  # the four entries that differed; the rest already matched
    assert by_name["image_verify"].value == 8 and by_name["image_verify"].passed
    assert by_name["sealed"].value == "SEALED"
    assert waits and all(w == pytest.approx(0.1) for w in waits)  # the profile's 100 ms after each write


def test_the_laptop_example_runs_its_flashstream_image_with_compares(db: ResultsDb) -> None:
    with make_pack(device_name="EMU-3S5800", **LAPTOP_PACK) as pack:
        result, _ = run(LAPTOP, pack, db)
        assert result.outcome is Outcome.PASS, result.message
        assert dataflash_of(pack) == GOLDEN
    program = {m.name: m for s in result.steps if s.step_id == "program" for m in s.measurements}
    assert program["image_write"].value == 4 and program["image_verify"].value == 2


def test_a_golden_image_that_does_not_read_back_fails_and_the_pack_is_not_sealed(db: ResultsDb) -> None:
    """A gauge that drops a data-flash write: the driver's read-back catches it, the step fails."""
    with make_pack(**DRONE_PACK) as pack:
        memory = pack.gauge.dataflash
        assert memory is not None
        original = memory.write

        def lossy(address: int, data: bytes) -> bool:
            if address == 0x4000:
                return True  # worn flash: the block is acknowledged but not stored
            return original(address, data)

        memory.write = lossy  # type: ignore[method-assign]
        result, _ = run(DRONE, pack, db)
        assert pack.gauge.security.name != "SEALED"
    assert result.outcome is Outcome.FAIL
    program = next(s for s in result.steps if s.step_id == "program")
    assert program.status is StepStatus.FAIL and program.message.startswith("not sealed")
    verify = program.failures[0]
    assert verify.name == "image_verify" and "read back" in verify.detail


def test_a_flashstream_compare_mismatch_fails_the_step(tmp_path: Path, db: ResultsDb) -> None:
    shutil.copytree(EXAMPLES / "golden", tmp_path / "golden")
    fs = tmp_path / "golden" / "laptop_3s_bq40z50.df.fs"
    text = fs.read_text().replace("SCL: 16 44 22 00 40 8D", "SCL: 16 44 22 00 40 8E", 1)
    fs.write_text(text)
    shutil.copy(LAPTOP, tmp_path / "plan.toml")
    with make_pack(device_name="EMU-3S5800", **LAPTOP_PACK) as pack:
        result, _ = run(tmp_path / "plan.toml", pack, db)
    failure = next(s for s in result.steps if s.step_id == "program").failures[0]
    assert failure.name == "image_verify" and "SCL" in failure.detail
    assert result.plan_hash != load_plan(LAPTOP).sha256  # the edited image changed the plan hash


def test_an_adapter_fault_during_the_image_write_aborts_the_run(db: ResultsDb) -> None:
    with make_pack(**DRONE_PACK) as pack:

        def unplug(address: int, data: bytes) -> bool:
            pack.transport.faults.stuck = True  # the adapter is pulled during the first block write
            return True

        memory = pack.gauge.dataflash
        assert memory is not None
        memory.write = unplug  # type: ignore[method-assign]
        result, _ = run(DRONE, pack, db)
    assert result.outcome is Outcome.ABORTED
    program = next(s for s in result.steps if s.step_id == "program")
    assert program.status is StepStatus.ABORTED and "BusBusy" in program.message
    assert db.load_run(result.run_id).outcome is Outcome.ABORTED


def test_date_and_serial_programming_needs_a_published_address(tmp_path: Path, db: ResultsDb) -> None:
    (tmp_path / "plan.toml").write_text(
        'schema_version = 1\nname = "prog"\n[pack]\nprofile = "bq40z50"\n'
        '[[steps]]\nid = "program"\nkind = "program"\nmanufacture_date = "today"\n'
    )
    with make_pack(**DRONE_PACK) as pack:
        result = run_plan(load_plan(tmp_path / "plan.toml"), Battery(pack.transport), station="S", results_db=db)
    step = result.steps[0]
    assert result.outcome is Outcome.ERROR and step.status is StepStatus.ERROR
    assert "SBS Configuration:Data:Manufacture Date" in step.message and "address" in step.message


def test_a_gg_csv_image_with_rows_the_profile_cannot_write_fails(tmp_path: Path, db: ResultsDb) -> None:
    """Every row of a golden image must reach the pack; a bq40z50 .gg.csv has rows without a known address."""
    with make_pack(**DRONE_PACK) as pack:
        gauge = Gauge(Battery(pack.transport), "bq40z50", sleep=lambda s: None)
        unseal(gauge)
        DataFlash(gauge).export_gg(tmp_path / "golden.gg.csv")
    text = (tmp_path / "golden.gg.csv").read_text()
    text += '"Protections","CUV","Threshold","2800","mV"\n'
    (tmp_path / "golden.gg.csv").write_text(text)
    (tmp_path / "plan.toml").write_text(
        'schema_version = 1\nname = "gg"\n[pack]\nprofile = "bq40z50"\n'
        '[[steps]]\nid = "program"\nkind = "program"\nimage = "golden.gg.csv"\n'
    )
    with make_pack(**DRONE_PACK) as pack:
        result = run_plan(
            load_plan(tmp_path / "plan.toml"), Battery(pack.transport), station="S", results_db=db, sleep=lambda s: None
        )
    written = {m.name: m for m in result.steps[0].measurements}["image_write"]
    assert not written.passed and "Protections:CUV:Threshold" in written.detail


def test_example_golden_image_is_our_format_for_the_plan_chip() -> None:
    doc = json.loads((EXAMPLES / "golden" / "drone_4s_bq40z50.json").read_text())
    assert doc["format"] == "smartbatt-dataflash-image" and doc["profile"] == "bq40z50"
    values = {e["key"]: e["value"] for e in doc["entries"]}
    assert {k: values[k] for k in GOLDEN} == GOLDEN
