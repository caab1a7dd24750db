"""Test plans as data: the examples load, every mistake is one PlanError naming file, key and reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from smartbatt.errors import SmartBattError
from smartbatt.factory.plan import (
    QUANTITIES,
    IdentitySpec,
    KeySource,
    MeasureSpec,
    PlanError,
    ProgramSpec,
    StepKind,
    load_plan,
    parse_plan,
)
from smartbatt.factory.steps import QUANTITY_READERS
from tests.factory_packs import DATA, EXAMPLES

BASE = """schema_version = 1
name = "t"
pack = { profile = "bq40z50", cells = 4 }
"""


def write(tmp_path: Path, text: str, name: str = "plan.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def error(tmp_path: Path, text: str) -> PlanError:
    with pytest.raises(PlanError) as info:
        load_plan(write(tmp_path, text))
    assert isinstance(info.value, SmartBattError)
    return info.value


@pytest.mark.parametrize("name", ["eol_drone_4s.toml", "eol_laptop_3s.toml"])
def test_the_example_plans_load(name: str) -> None:
    plan = load_plan(EXAMPLES / name)
    kinds = {s.kind for s in plan.steps}
    assert {StepKind.IDENTITY, StepKind.MEASURE, StepKind.STATUS, StepKind.PROGRAM, StepKind.SECURITY} <= kinds
    program = next(s.spec for s in plan.steps if isinstance(s.spec, ProgramSpec))
    assert program.image is not None and program.image.is_file() and program.seal and program.verify
    assert plan.keys is KeySource.DEFAULT and len(plan.sha256) == 64


def test_drone_plan_limits_are_read_as_written() -> None:
    plan = load_plan(EXAMPLES / "eol_drone_4s.toml")
    spec = plan.step("cells-in").spec
    assert isinstance(spec, MeasureSpec)
    limits = {lim.quantity: lim for lim in spec.limits}
    assert (limits["cell_voltage"].low, limits["cell_voltage"].high, limits["cell_voltage"].unit) == (3000, 4200, "mV")
    assert limits["cell_spread"].low is None and limits["cell_spread"].high == 20
    identity = plan.step("identity").spec
    assert isinstance(identity, IdentitySpec) and identity.serial_unique
    assert identity.manufacture_date_max_age_days == 30


def test_every_quantity_has_a_reader() -> None:
    assert set(QUANTITY_READERS) == set(QUANTITIES)


@pytest.mark.parametrize(
    ("snippet", "key", "reason"),
    [
        (
            '[[steps]]\nid = "a"\nkind = "measure"\nlimits.voltage = { min = "12000", unit = "mV" }\n',
            "steps[0].limits.voltage.min",
            "expected a number, got str",
        ),
        (
            '[[steps]]\nid = "a"\nkind = "measure"\nlimits.voltage = { min = 12, unit = "V" }\n',
            "steps[0].limits.voltage.unit",
            "measured in 'mV', not 'V'",
        ),
        (
            '[[steps]]\nid = "a"\nkind = "measure"\nlimits.volts = { min = 12, unit = "V" }\n',
            "steps[0].limits.volts",
            "unknown quantity",
        ),
        (
            '[[steps]]\nid = "a"\nkind = "measure"\nlimits.voltage = { min = 9, max = 8, unit = "mV" }\n',
            "steps[0].limits.voltage.max",
            "below min",
        ),
        (
            '[[steps]]\nid = "a"\nkind = "measure"\nlimits.voltage = { unit = "mV" }\n',
            "steps[0].limits.voltage",
            "give min, max or both",
        ),
        (
            '[[steps]]\nid = "a"\nkind = "measure"\nlimit.voltage = { min = 1, unit = "mV" }\n',
            "steps[0].limit",
            "unknown key",
        ),
        ('[[steps]]\nid = "a"\nkind = "weigh"\n', "steps[0].kind", "expected one of"),
        ('[[steps]]\nid = "a"\n', "steps[0].kind", "missing"),
        ('[[steps]]\nid = "Bad Id"\nkind = "status"\n', "steps[0].id", "not a step id"),
        ('[[steps]]\nid = "a"\nkind = "status"\n[[steps]]\nid = "a"\nkind = "status"\n', "steps[1].id", "unique"),
        (
            '[[steps]]\nid = "a"\nkind = "identity"\ndevice_name_pattern = "(["\n',
            "steps[0].device_name_pattern",
            "regular expression",
        ),
        ('[[steps]]\nid = "a"\nkind = "identity"\n', "steps[0]", "must check something"),
        ('[[steps]]\nid = "a"\nkind = "identity"\nserial_min = 9\nserial_max = 8\n', "steps[0].serial_max", "below"),
        ('[[steps]]\nid = "a"\nkind = "security"\nexpect = "locked"\n', "steps[0].expect", "sealed"),
        ('[[steps]]\nid = "a"\nkind = "program"\nimage = "missing.json"\n', "steps[0].image", "not found"),
        ('[[steps]]\nid = "a"\nkind = "program"\n', "steps[0]", "must do something"),
        ('[[steps]]\nid = "a"\nkind = "python"\nfunction = "nowhere.py:f"\n', "steps[0].function", "not found"),
        ('[[steps]]\nid = "a"\nkind = "python"\nfunction = "f"\n', "steps[0].function", "file.py:function"),
        ('[[steps]]\nid = "a"\nkind = "status"\ntimeout_s = 0\n', "steps[0].timeout_s", "outside"),
        ("steps = []\n", "steps", "at least one step"),
        ('colour = "red"\n[[steps]]\nid = "a"\nkind = "status"\n', "colour", "unknown key"),
        ('[security]\nkeys = "plaintext"\n[[steps]]\nid = "a"\nkind = "status"\n', "security.keys", "expected one of"),
    ],
)
def test_mistakes_name_the_key_and_the_reason(tmp_path: Path, snippet: str, key: str, reason: str) -> None:
    exc = error(tmp_path, BASE + snippet)
    assert exc.file.endswith("plan.toml") and exc.key_path == key
    assert reason in exc.reason, exc.reason
    assert str(exc).startswith(f"{exc.file}: {key}: ")


def test_schema_version_is_checked(tmp_path: Path) -> None:
    exc = error(
        tmp_path, BASE.replace("schema_version = 1", "schema_version = 2") + '[[steps]]\nid="a"\nkind="status"\n'
    )
    assert exc.key_path == "schema_version" and "schema 1" in exc.reason
    exc = error(tmp_path, BASE.replace("schema_version = 1\n", "") + '[[steps]]\nid="a"\nkind="status"\n')
    assert exc.key_path == "schema_version" and exc.reason == "missing"


def test_unknown_chip_profile_and_too_many_cells(tmp_path: Path) -> None:
    exc = error(tmp_path, BASE.replace('"bq40z50"', '"bq99"') + '[[steps]]\nid="a"\nkind="status"\n')
    assert exc.key_path == "pack.profile"
    text = BASE.replace("cells = 4", "cells = 6") + '[[steps]]\nid="a"\nkind="measure"\n'
    exc = error(tmp_path, text + 'limits.cell_spread = { max = 20, unit = "mV" }\n')
    assert exc.key_path == "steps[0].limits" and "6 cells" in exc.reason


def test_syntax_errors_and_unreadable_files(tmp_path: Path) -> None:
    assert "not valid TOML" in error(tmp_path, "name = = 1\n").reason
    with pytest.raises(PlanError, match="cannot read"):
        load_plan(tmp_path / "absent.toml")
    (tmp_path / "bin.toml").write_bytes(b"\xff\xfe")
    with pytest.raises(PlanError, match="UTF-8"):
        load_plan(tmp_path / "bin.toml")


def test_a_broken_golden_image_is_refused_on_load(tmp_path: Path) -> None:
    (tmp_path / "golden.json").write_text('{"format": "smartbatt-dataflash-image", "version": 1, "profile": "bq4050"}')
    exc = error(tmp_path, BASE + '[[steps]]\nid = "p"\nkind = "program"\nimage = "golden.json"\n')
    assert exc.key_path == "steps[0].image" and "bq4050" in exc.reason
    (tmp_path / "golden.df.fs").write_text("SWB: 17 44 00\n")
    exc = error(tmp_path, BASE + '[[steps]]\nid = "p"\nkind = "program"\nimage = "golden.df.fs"\n')
    assert exc.key_path == "steps[0].image" and "read address" in exc.reason


def test_a_python_step_that_cannot_import_is_a_plan_error(tmp_path: Path) -> None:
    (tmp_path / "checks.py").write_text("import does_not_exist_anywhere\n")
    exc = error(tmp_path, BASE + '[[steps]]\nid = "c"\nkind = "python"\nfunction = "checks.py:f"\n')
    assert "ModuleNotFoundError" in exc.reason
    (tmp_path / "checks.py").write_text("x = 1\n")
    exc = error(tmp_path, BASE + '[[steps]]\nid = "c"\nkind = "python"\nfunction = "checks.py:f"\n')
    assert "no function 'f'" in exc.reason


def test_yaml_plans_read_like_toml(tmp_path: Path) -> None:
    pytest.importorskip("yaml")
    text = """schema_version: 1
name: y
pack: {profile: bq40z50, cells: 4}
steps:
  - id: v
    kind: measure
    limits:
      voltage: {min: 12000, max: 16800, unit: mV}
      cell_spread: {max: 20, unit: mV}
"""
    plan = load_plan(write(tmp_path, text, "plan.yaml"))
    spec = plan.steps[0].spec
    assert isinstance(spec, MeasureSpec) and [lim.quantity for lim in spec.limits] == ["voltage", "cell_spread"]
    with pytest.raises(PlanError, match="expected a number, got str"):
        load_plan(write(tmp_path, text.replace("max: 20", "max: '20'"), "bad.yaml"))


def test_the_hash_covers_referenced_files(tmp_path: Path) -> None:
    (tmp_path / "checks.py").write_text("def f(battery, results):\n    return True\n")
    path = write(tmp_path, BASE + '[[steps]]\nid = "c"\nkind = "python"\nfunction = "checks.py:f"\n')
    before = load_plan(path).sha256
    assert load_plan(path).sha256 == before
    (tmp_path / "checks.py").write_text("def f(battery, results):\n    return False\n")
    assert load_plan(path).sha256 != before


def test_parse_plan_from_data_and_defaults() -> None:
    plan = parse_plan({"schema_version": 1, "name": "d", "steps": [{"id": "s", "kind": "security"}]}, file="inline")
    assert plan.product == "d" and plan.stop_on_fail and plan.pack.profile == "generic-sbs"
    assert plan.steps[0].timeout_s == 30.0 and plan.file is None


def test_test_data_plan_loads() -> None:
    assert [s.id for s in load_plan(DATA / "check_4s.toml").steps] == ["identity", "voltages", "flags", "sealed"]
