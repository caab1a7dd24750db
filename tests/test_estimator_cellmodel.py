"""CellModel: equations, temperature/current dependence, JSON round trip and validation on load."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from smartbatt.errors import ProfileError, SmartBattError
from smartbatt.monitor.cellmodel import SCHEMA_VERSION, CellModel, ModelError


def simple_model(**kw: Any) -> CellModel:
    """A small hand-written NMC-like model (not fitted)."""
    base: dict[str, Any] = {
        "capacity_ah": 3.0,
        "ocv_soc": (0.0, 0.1, 0.5, 0.9, 1.0),
        "ocv_v": (3.0, 3.45, 3.7, 4.05, 4.2),
        "r_soc": (0.2, 0.8),
        "r0_ohm": (0.020, 0.016),
        "r1_ohm": (0.010, 0.010),
        "c1_f": (3000.0, 3000.0),
        "r2_ohm": (0.015, 0.015),
        "c2_f": (40000.0, 40000.0),
        "v_min_v": 3.0,
        "v_max_v": 4.2,
        "i_discharge_max_a": 9.0,
        "i_charge_max_a": 3.0,
        "r0_activation_k": 2400.0,
        "rc_activation_k": 4200.0,
        "r0_current_coeff": 0.1,
        "name": "test cell",
    }
    base.update(kw)
    return CellModel(**base)


def test_equations() -> None:
    m = simple_model()
    assert m.ocv(0.5) == pytest.approx(3.7)
    assert m.ocv(0.3) == pytest.approx((3.45 + 3.7) / 2)
    assert m.soc_from_ocv(m.ocv(0.37)) == pytest.approx(0.37)
    assert m.soc_from_ocv(5.0) == 1.0 and m.soc_from_ocv(1.0) == 0.0
    assert m.ocv(-0.1) < m.ocv(0.0) == 3.0  # linear continuation outside the table
    assert m.ocv_slope(0.3) == pytest.approx((3.7 - 3.45) / 0.4)
    r1, tau1, r2, tau2 = m.rc(0.5)
    assert (r1, tau1, r2, tau2) == pytest.approx((0.010, 30.0, 0.015, 600.0))
    assert m.r0(0.5) == pytest.approx(0.018)
    v = m.terminal_voltage(0.5, 0.01, 0.02, -3.0)
    assert v == pytest.approx(3.7 + 0.03 - 3.0 * m.r0(0.5, None, -3.0))
    assert m.dc_resistance(0.5) == pytest.approx(0.018 + 0.025)


def test_hot_cells_have_less_resistance_and_current_lowers_r0_mildly() -> None:
    m = simple_model()
    assert m.r0(0.5, 45.0) < m.r0(0.5, 25.0) < m.r0(0.5, 0.0)
    assert m.r0(0.5, 45.0) == pytest.approx(0.018 * math.exp(2400 * (1 / 318.15 - 1 / 298.15)))
    assert m.rc(0.5, 45.0)[0] < m.rc(0.5, 25.0)[0]
    assert m.rc(0.5, 45.0)[1] == m.rc(0.5, 25.0)[1]  # τ stays
    assert m.r0(0.5, 25.0, 6.0) == pytest.approx(0.018 * math.exp(-0.1 * 2.0))
    assert m.r0(0.5, 25.0, -6.0) == m.r0(0.5, 25.0, 6.0)


def test_entropic_term() -> None:
    m = simple_model(docv_dt_v_per_k=(0.0001,) * 5)
    assert m.ocv(0.5, 35.0) == pytest.approx(3.7 + 0.001)
    assert m.soc_from_ocv(m.ocv(0.42, 35.0), 35.0) == pytest.approx(0.42, abs=1e-6)


def test_json_round_trip(tmp_path: Path) -> None:
    m = simple_model(docv_dt_v_per_k=(0.0,) * 5, fit_rms_mv=2.5, fit_max_mv=9.0, chemistry="nmc")
    path = tmp_path / "cell.json"
    m.save(path)
    data = json.loads(path.read_text())
    assert next(iter(data)) == "schema_version" and data["schema_version"] == SCHEMA_VERSION
    assert CellModel.load(path) == m
    assert m.with_capacity(2.0).capacity_ah == 2.0


def _write(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    ("edit", "key", "reason"),
    [
        (lambda d: d.update(schema_version=2), "schema_version", "reads 1"),
        (lambda d: d.update(colour="red"), "colour", "unknown key"),
        (lambda d: d.pop("capacity_ah"), "capacity_ah", "missing"),
        (lambda d: d.update(capacity_ah="3"), "capacity_ah", "must be a number"),
        (lambda d: d.update(capacity_ah=0), "capacity_ah", "positive"),
        (lambda d: d["ocv"]["voltage_v"].__setitem__(2, 3.0), "ocv.voltage_v[2]", "rise strictly"),
        (lambda d: d["ocv"]["voltage_v"].pop(), "ocv.voltage_v", "4 values for 5"),
        (lambda d: d["ocv"]["soc"].__setitem__(4, 0.95), "ocv.soc", "from SOC 0 to SOC 1"),
        (lambda d: d["resistance"]["r0_ohm"].__setitem__(1, 0.0), "resistance.r0_ohm[1]", "> 0"),
        (lambda d: d["resistance"]["c2_f"].append(1.0), "resistance.c2_f", "3 values for 2"),
        (lambda d: d["resistance"].update(r0_current_coeff=3.0), "resistance.r0_current_coeff", "-1.0..1.0"),
        (lambda d: d["limits"].update(v_min=4.5), "limits.v_min", "below limits.v_max"),
        (lambda d: d["limits"].pop("i_charge_max_a"), "limits.i_charge_max_a", "missing"),
        (lambda d: d.update(ocv=[1, 2]), "ocv", "must be an object"),
        (lambda d: d["fit"].update(rms_mv=True), "fit.rms_mv", "must be a number"),
    ],
)
def test_bad_files_name_the_key(tmp_path: Path, edit: Any, key: str, reason: str) -> None:
    data = simple_model(fit_rms_mv=1.0).to_dict()
    edit(data)
    path = _write(tmp_path, data)
    with pytest.raises(ModelError) as info:
        CellModel.load(path)
    err = info.value
    assert isinstance(err, ProfileError) and isinstance(err, SmartBattError)
    assert err.file == str(path)
    assert err.key_path == key
    assert reason in err.reason


def test_unreadable_and_non_json_files(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="cannot read"):
        CellModel.load(tmp_path / "missing.json")
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(ModelError, match="not valid JSON"):
        CellModel.load(tmp_path / "x.json")
    (tmp_path / "nan.json").write_text(json.dumps(simple_model().to_dict()).replace("3.0,", "NaN,", 1))
    with pytest.raises(ModelError, match="not valid JSON"):
        CellModel.load(tmp_path / "nan.json")
    (tmp_path / "bin.json").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ModelError, match="UTF-8"):
        CellModel.load(tmp_path / "bin.json")


def test_constructor_validates_too() -> None:
    with pytest.raises(ModelError, match="strictly increasing"):
        simple_model(r_soc=(0.8, 0.2))
    with pytest.raises(ModelError, match="positive number of Ah, got nan"):
        replace(simple_model(), capacity_ah=float("nan"))
    with pytest.raises(ModelError, match="not a finite number"):
        simple_model(r0_ohm=(0.02, float("inf")))
    with pytest.raises(ModelError, match="one value per OCV SOC point"):
        simple_model(docv_dt_v_per_k=(0.0,))


def test_model_error_pickles() -> None:
    import pickle

    err = ModelError("cell.json", "ocv.soc", "bad")
    back = pickle.loads(pickle.dumps(err))
    assert (back.file, back.key_path, back.reason, str(back)) == ("cell.json", "ocv.soc", "bad", str(err))
