"""Model fitting from a characterization log made by the emulator's pack physics."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from smartbatt.emulator.chemistry import load_chemistry
from smartbatt.errors import SmartBattError
from smartbatt.monitor.estimator import EstimatorConfig, run_log
from smartbatt.monitor.fitting import FitError, FitOptions, fit_model
from tests.test_estimator import (
    CAPACITY_AH,
    characterization_log,
    characterization_parts,
    drive_log,
    errors_after,
    full_discharge,
    join,
    make_log,
)


@pytest.fixture(scope="module")
def report():
    return fit_model(characterization_log(), FitOptions(name="emulated nmc", i_charge_max_a=1.5))


def test_capacity_ocv_and_resistances_match_the_emulated_cell(report) -> None:
    m = report.model
    # the C/10 capacity of the emulated cell (3 Ah nominal, a little less reachable at C/10)
    assert m.capacity_ah == pytest.approx(CAPACITY_AH, rel=0.02)
    # the OCV against the emulator chemistry's own table (smartbatt/emulator/chemistries/nmc.toml)
    chem = load_chemistry("nmc")
    for soc in (0.1, 0.3, 0.5, 0.7, 0.9):
        assert m.ocv(soc) == pytest.approx(float(np.interp(soc, chem.soc, chem.ocv_v)), abs=0.015)
    # nmc.toml: R0 = 0.045 Ω·Ah / 3 Ah = 15 mΩ, R1 = 10 mΩ (τ 30 s), R2 = 15 mΩ (τ 600 s) at 25 °C, 50 %
    assert m.r0(0.5) == pytest.approx(0.015, rel=0.15)
    r1, tau1, r2, tau2 = m.rc(0.5)
    assert r1 == pytest.approx(0.010, rel=0.25)
    assert tau1 == pytest.approx(30.0, rel=0.3)
    assert r2 == pytest.approx(0.015, rel=0.3)
    assert 300.0 < tau2 < 1200.0
    assert report.rms_mv < 5.0
    assert m.fit_rms_mv == pytest.approx(report.rms_mv, abs=1e-3)
    assert len(report.pulses) == 15 and len(report.groups) == 5
    assert report.slow_c_rate == pytest.approx(0.1, rel=0.05)


def test_limits_and_labels(report) -> None:
    m = report.model
    assert m.name == "emulated nmc"
    assert m.v_min_v == pytest.approx(2.5, abs=0.05)  # where the slow discharge stopped
    assert m.v_max_v == pytest.approx(4.2, abs=0.05)
    assert m.i_discharge_max_a == pytest.approx(2 * CAPACITY_AH)  # largest logged: the 2C pulse
    assert m.i_charge_max_a == 1.5  # given
    assert any("5 K" in note for note in report.notes)  # one temperature: no Arrhenius fit
    assert m.r0_activation_k == 0.0


def test_fit_then_estimate_round_trip(report) -> None:
    log, truth = drive_log(0.85, rest_s=300, drive_s=2400, after_s=1800)
    out = run_log(report.model, log, EstimatorConfig(initial_soc=0.5))
    err = errors_after(log, out.soc, truth)
    assert np.max(np.abs(err)) < 0.02
    assert abs(out.capacity_ah[-1] - CAPACITY_AH) / CAPACITY_AH < 0.03


def test_no_slow_discharge_is_a_clear_error() -> None:
    _, hppc = characterization_parts()
    with pytest.raises(
        FitError, match=r"no slow \(≤ C/10\) full discharge .*lines 513–632 .* without the end-of-discharge knee"
    ) as info:
        fit_model(hppc)
    assert isinstance(info.value, SmartBattError)


def test_no_pulses_is_a_clear_error() -> None:
    slow, _ = characterization_parts()
    with pytest.raises(FitError, match="no current pulses found"):
        fit_model(slow)


def test_a_partial_slow_discharge_is_rejected() -> None:
    slow, hppc = characterization_parts()
    half = 600  # samples of 30 s: 5 h into a 10 h discharge
    cut = make_log(slow.time_s[:half], slow.voltage_v[:half], slow.current_a[:half], slow.temperature_c[:half])
    with pytest.raises(FitError, match=r"lines 23–601 \(0.3 A, 1.45 Ah\), ends at 3.755 V without the .* knee"):
        fit_model(join(cut, hppc))


def test_a_fast_discharge_is_not_taken_for_an_ocv_curve() -> None:
    _, hppc = characterization_parts()
    fast = full_discharge(1.0, 5).log()
    shifted = replace(hppc, time_s=hppc.time_s - hppc.time_s[0] + fast.time_s[-1] + 1)
    with pytest.raises(FitError, match=r"no slow .* \(saw full discharges: 3 A, 2.98 Ah \(C/0.99\) at line 23\)"):
        fit_model(join(fast, shifted))
