"""Chemistry data files: provenance of the OCV tables and validation on load."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from smartbatt.emulator.chemistry import (
    CHEMISTRIES,
    DATA_DIR,
    load_chemistry,
    load_chemistry_file,
    parse_chemistry,
)
from smartbatt.errors import ProfileError

# --- the published electrode fits the OCV tables were derived from (see the TOML headers) -------


def graphite_ocp_chen2020(x: np.ndarray) -> np.ndarray:
    """graphite_LGM50_ocp_Chen2020 (Chen et al., J. Electrochem. Soc. 167 (2020) 080534)."""
    return (
        1.9793 * np.exp(-39.3631 * x)
        + 0.2482
        - 0.0909 * np.tanh(29.8538 * (x - 0.1234))
        - 0.04478 * np.tanh(14.9159 * (x - 0.2769))
        - 0.0205 * np.tanh(30.4444 * (x - 0.6103))
    )


def nmc_ocp_chen2020(y: np.ndarray) -> np.ndarray:
    """nmc_LGM50_ocp_Chen2020."""
    return (
        -0.8090 * y
        + 4.4875
        - 0.0428 * np.tanh(18.5138 * (y - 0.5542))
        - 17.7326 * np.tanh(15.7890 * (y - 0.3117))
        + 17.5842 * np.tanh(15.9308 * (y - 0.3120))
    )


def lfp_ocp_afshar2017(y: np.ndarray) -> np.ndarray:
    """LFP_ocp_Afshar2017 (used by PyBaMM's Prada2013 set)."""
    return np.asarray(3.4077 - 0.020269 * y + 0.5 * np.exp(-150 * y) - 0.9 * np.exp(-30 * (1 - y)))


def graphite_entropy_ai2020(x: np.ndarray) -> np.ndarray:
    """graphite_entropy_Enertech_Ai2020_function, V/K."""
    num = [0.005269056, 3.299265709, -91.79325798, 1004.911008, -5812.278127, 19329.7549, -37147.8947, 38379.18127]
    num.append(-16515.05308)
    den = [1, -48.09287227, 1017.234804, -10481.80419, 59431.3, -195881.6488, 374577.3152, -385821.1607]
    den.append(165705.8597)
    numerator: np.ndarray = sum((c * x**i for i, c in enumerate(num)), np.zeros_like(x))
    denominator: np.ndarray = sum((c * x**i for i, c in enumerate(den)), np.zeros_like(x))
    return np.asarray(0.001 * numerator / denominator)


def lco_entropy_ai2020(y: np.ndarray) -> np.ndarray:
    """lico2_entropic_change_Ai2020_function, V/K."""
    p = [-3.20392657, 14.5719049, -27.9047599, 29.1744564, -17.992018, 6.54799331, -1.30382445, 0.109667298]
    return np.asarray(sum(c * y ** (7 - i) for i, c in enumerate(p)))


def _stoichiometry(name: str, soc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    derivation = tomllib.loads((DATA_DIR / f"{name}.toml").read_text(encoding="utf-8"))["ocv"]["derivation"]
    x = derivation["x_0"] + soc * (derivation["x_100"] - derivation["x_0"])
    y = derivation["y_0"] + soc * (derivation["y_100"] - derivation["y_0"])
    return x, y


@pytest.mark.parametrize(("name", "positive"), [("nmc", nmc_ocp_chen2020), ("lfp", lfp_ocp_afshar2017)])
def test_ocv_table_is_the_published_electrode_fits_over_the_stated_window(name: str, positive: Any) -> None:
    chem = load_chemistry(name)
    x, y = _stoichiometry(name, chem.soc)
    derived = positive(y) - graphite_ocp_chen2020(x)
    assert np.max(np.abs(derived - chem.ocv_v)) < 0.0015  # table rounded to 0.1 mV; window to 1e-6


@pytest.mark.parametrize("name", CHEMISTRIES)
def test_docv_dt_is_the_published_entropic_fits(name: str) -> None:
    chem = load_chemistry(name)
    x, y = _stoichiometry(name, chem.soc)
    positive = lco_entropy_ai2020(y) if name == "lco" else 0.0  # unknown for NMC811 and LFP: 0
    derived = positive - graphite_entropy_ai2020(x)
    assert np.max(np.abs(derived - chem.docv_dt_v_per_k)) < 2e-6


@pytest.mark.parametrize("name", CHEMISTRIES)
def test_shipped_chemistries_load_and_are_consistent(name: str) -> None:
    chem = load_chemistry(name)
    assert chem.name == name
    assert chem.soc_floor <= 0.0 < 1.0 <= chem.soc_ceiling
    assert chem.ocv(0.0)[()] == pytest.approx(chem.v_min, abs=0.001)
    assert chem.ocv(1.0)[()] == pytest.approx(chem.v_max, abs=0.001)
    assert chem.v_min < chem.ocv(0.5)[()] < chem.v_max
    assert chem.tau1_s < chem.tau2_s
    with pytest.raises(ValueError, match="read-only"):
        chem.ocv_v[0] = 0.0


def test_temperature_shifts_ocv_by_the_entropic_coefficient() -> None:
    chem = load_chemistry("lco")
    shift = chem.ocv(0.5, 35.0)[()] - chem.ocv(0.5, 25.0)[()]
    assert shift == pytest.approx(10 * float(np.interp(0.5, chem.soc, chem.docv_dt_v_per_k)))
    assert shift < 0  # LiCoO2 cells lose OCV when warm


def test_unknown_chemistry_name_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown chemistry"):
        load_chemistry("nicd")


# --- validation ---------------------------------------------------------------------------------


@pytest.fixture
def nmc_data() -> dict[str, Any]:
    return tomllib.loads((DATA_DIR / "nmc.toml").read_text(encoding="utf-8"))


def _fails(data: dict[str, Any], key_path: str, reason: str) -> None:
    with pytest.raises(ProfileError) as info:
        parse_chemistry("bad.toml", data)
    assert info.value.file == "bad.toml"
    assert info.value.key_path == key_path
    assert reason in info.value.reason


def test_valid_copy_parses(nmc_data: dict[str, Any]) -> None:
    assert parse_chemistry("nmc.toml", copy.deepcopy(nmc_data)).name == "nmc"


def test_wrong_schema_version_is_refused(nmc_data: dict[str, Any]) -> None:
    nmc_data["schema_version"] = 2
    _fails(nmc_data, "schema_version", "unsupported version")


def test_missing_key_is_named(nmc_data: dict[str, Any]) -> None:
    del nmc_data["resistance"]["tau2_s"]
    _fails(nmc_data, "resistance.tau2_s", "missing")


def test_unknown_key_is_refused(nmc_data: dict[str, Any]) -> None:
    nmc_data["thermal"]["specfic_heat"] = 900.0
    _fails(nmc_data, "thermal.specfic_heat", "unknown key")


def test_string_where_a_number_belongs_is_refused(nmc_data: dict[str, Any]) -> None:
    nmc_data["voltage"]["minimum"] = "2.5"
    _fails(nmc_data, "voltage.minimum", "expected a number")


def test_bool_is_not_a_number(nmc_data: dict[str, Any]) -> None:
    nmc_data["ageing"]["capacity_fade_per_cycle"] = True
    _fails(nmc_data, "ageing.capacity_fade_per_cycle", "expected a number")


def test_out_of_range_value_is_refused(nmc_data: dict[str, Any]) -> None:
    nmc_data["resistance"]["r0_ohm_ah"] = -0.01
    _fails(nmc_data, "resistance.r0_ohm_ah", "outside")


def test_non_increasing_ocv_is_refused_at_its_index(nmc_data: dict[str, Any]) -> None:
    nmc_data["ocv"]["ocv_v"][10] = nmc_data["ocv"]["ocv_v"][9]
    _fails(nmc_data, "ocv.ocv_v[10]", "strictly increasing")


def test_table_length_mismatch_is_refused(nmc_data: dict[str, Any]) -> None:
    nmc_data["ocv"]["docv_dt_mv_per_k"].pop()
    _fails(nmc_data, "ocv.docv_dt_mv_per_k", "values for")


def test_ocv_that_misses_the_cutoff_at_zero_soc_is_refused(nmc_data: dict[str, Any]) -> None:
    nmc_data["voltage"]["minimum"] = 2.7
    _fails(nmc_data, "ocv.ocv_v[2]", "not voltage.minimum")


def test_table_without_a_100_percent_point_is_refused(nmc_data: dict[str, Any]) -> None:
    soc = nmc_data["ocv"]["soc"]
    soc[soc.index(1)] = 0.995
    _fails(nmc_data, "ocv.soc", "must contain the point 1")


def test_slow_pair_faster_than_fast_pair_is_refused(nmc_data: dict[str, Any]) -> None:
    nmc_data["resistance"]["tau2_s"] = 10.0
    _fails(nmc_data, "resistance.tau2_s", "slower")


def test_nan_in_a_table_is_refused(nmc_data: dict[str, Any]) -> None:
    nmc_data["resistance"]["soc_factor"][3] = float("nan")
    _fails(nmc_data, "resistance.soc_factor[3]", "finite number")


def test_file_errors_are_profile_errors(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="cannot read"):
        load_chemistry_file(tmp_path / "nmc.toml")
    broken = tmp_path / "nmc.toml"
    broken.write_text("schema_version = [\n", encoding="utf-8")
    with pytest.raises(ProfileError, match="not valid TOML"):
        load_chemistry_file(broken)
    renamed = tmp_path / "other.toml"
    renamed.write_text((DATA_DIR / "nmc.toml").read_text(encoding="utf-8"), encoding="utf-8")
    with pytest.raises(ProfileError, match="does not match the file name"):
        load_chemistry_file(renamed)
