"""State of power: physical sanity of the peak limits and the comparison with the gauge's AtRate."""

from __future__ import annotations

import math

import pytest

from smartbatt.errors import RangeError
from smartbatt.monitor.estimator import EstimatorConfig, SocEstimator
from smartbatt.monitor.power import (
    NOT_DISCHARGING,
    PowerLimit,
    compare_at_rate,
    state_of_power,
    state_of_power_now,
)
from tests.test_estimator_cellmodel import simple_model


def test_longer_horizons_allow_less_current() -> None:
    m = simple_model(i_discharge_max_a=100.0, i_charge_max_a=100.0)
    limits = state_of_power(m, 0.3, temperature_c=25.0)
    assert [lim.horizon_s for lim in limits] == [2.0, 10.0, 30.0]
    dis = [lim.discharge_current_a for lim in limits]
    chg = [lim.charge_current_a for lim in limits]
    assert dis[0] > dis[1] > dis[2] > 0
    assert chg[0] > chg[1] > chg[2] > 0
    assert all(lim.discharge_limited_by == "voltage" for lim in limits)


def test_the_limit_is_where_the_voltage_bound_meets_v_min() -> None:
    m = simple_model(i_discharge_max_a=100.0, r0_current_coeff=0.0, r0_activation_k=0.0)
    (lim,) = state_of_power(m, 0.5, horizons=[10.0])
    i = lim.discharge_current_a
    r1, tau1, r2, tau2 = m.rc(0.5)

    soc_end = 0.5 - i * 10 / 3600 / m.capacity_ah
    r0 = max(m.r0(0.5), m.r0(soc_end))  # the worse of now and the end of the pulse
    v = m.ocv(soc_end) - i * (r0 + r1 * (1 - math.exp(-10 / tau1)) + r2 * (1 - math.exp(-10 / tau2)))
    assert v == pytest.approx(m.v_min_v, abs=1e-6)
    assert lim.discharge_power_w == pytest.approx(i * v, rel=1e-6)


def test_a_hot_cell_gives_more_power() -> None:
    m = simple_model(i_discharge_max_a=100.0, i_charge_max_a=100.0)
    cold = state_of_power(m, 0.5, temperature_c=0.0)[1]
    warm = state_of_power(m, 0.5, temperature_c=25.0)[1]
    hot = state_of_power(m, 0.5, temperature_c=45.0)[1]
    assert cold.discharge_power_w < warm.discharge_power_w < hot.discharge_power_w
    assert cold.charge_power_w < warm.charge_power_w < hot.charge_power_w


def test_polarisation_already_built_up_lowers_the_limit() -> None:
    m = simple_model(i_discharge_max_a=100.0)
    rested = state_of_power(m, 0.5)[1].discharge_current_a
    loaded = state_of_power(m, 0.5, v1=-0.05, v2=-0.08)[1].discharge_current_a
    assert loaded < rested


def test_limits_at_the_ends_and_by_current() -> None:
    m = simple_model()  # 9 A discharge, 3 A charge limits
    empty = state_of_power(m, 0.0)[0]
    assert empty.discharge_current_a == 0.0 and empty.discharge_power_w == 0.0
    full = state_of_power(m, 1.0)[0]
    assert full.charge_current_a == 0.0 and full.charge_limited_by == "soc"
    mid = state_of_power(m, 0.6)[0]
    assert mid.discharge_current_a == pytest.approx(9.0) and mid.discharge_limited_by == "current"
    # a long horizon near empty: running out of charge is the limit
    low = state_of_power(simple_model(v_min_v=2.0, i_discharge_max_a=100.0), 0.01, horizons=[300.0])[0]
    assert low.discharge_limited_by == "soc"
    assert low.discharge_current_a == pytest.approx(0.01 * 3.0 * 3600 / 300)


def test_pack_layout_and_margin() -> None:
    m = simple_model(i_discharge_max_a=100.0)
    cell = state_of_power(m, 0.5)[1]
    pack = state_of_power(m, 0.5, series=4, parallel=3)[1]
    assert pack.discharge_current_a == pytest.approx(3 * cell.discharge_current_a)
    assert pack.discharge_power_w == pytest.approx(12 * cell.discharge_power_w)
    assert state_of_power(m, 0.5, margin_v=0.1)[1].discharge_current_a < cell.discharge_current_a


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"soc": 1.5}, "0..1"), ({"soc": 0.5, "series": 0}, "series"), ({"soc": 0.5, "horizons": [0.0]}, "> 0 s")],
)
def test_bad_arguments(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(RangeError, match=match):
        state_of_power(simple_model(), **kwargs)  # type: ignore[arg-type]


def test_from_the_estimator_state() -> None:
    m = simple_model()
    est = SocEstimator(m, EstimatorConfig(initial_soc=0.6, series=2))
    est.step(0.0, 2 * m.ocv(0.6), 0.0, 25.0)
    limits = state_of_power_now(est, 25.0)
    direct = state_of_power(m, est.soc, temperature_c=25.0, series=2)
    assert limits[1].discharge_power_w == pytest.approx(direct[1].discharge_power_w, rel=1e-3)


def _limit(horizon: float = 10.0, discharge_a: float = 20.0) -> PowerLimit:
    return PowerLimit(horizon, discharge_a, 300.0, "voltage", 5.0, 80.0, "voltage")


def test_at_rate_semantics() -> None:
    # 5 A extra on top of 12 A already flowing fits a 20 A 10-s limit; the gauge agrees
    ok = compare_at_rate(_limit(), -5000, present_current_a=-12.0, remaining_ah=2.0, gauge_ok=1,
                         gauge_time_to_empty_min=24)  # fmt: skip
    assert ok.our_ok and ok.gauge_ok and ok.agree and ok.note == "agree"
    assert ok.our_time_to_empty_min == pytest.approx(24.0)
    # 10 A extra does not fit; a gauge that says OK disagrees
    no = compare_at_rate(_limit(), -10000, present_current_a=-12.0, remaining_ah=2.0, gauge_ok=1)
    assert not no.our_ok and not no.agree and "gauge says OK" in no.note
    # AtRate ≥ 0: always OK (SBS), and 65535 means "not discharging"
    charge = compare_at_rate(_limit(), 1000, present_current_a=0.0, remaining_ah=2.0, gauge_ok=1,
                             gauge_time_to_empty_min=NOT_DISCHARGING)  # fmt: skip
    assert charge.our_ok and charge.agree and charge.gauge_time_to_empty_min is None
    # run times far apart
    far = compare_at_rate(_limit(), -5000, present_current_a=0.0, remaining_ah=2.0, gauge_time_to_empty_min=60)
    assert not far.agree and "run time 24 min vs gauge 60 min" in far.note


def test_at_rate_arguments() -> None:
    with pytest.raises(RangeError, match="10 s"):
        compare_at_rate(_limit(horizon=2.0), -1000, present_current_a=0.0, remaining_ah=1.0)
    with pytest.raises(RangeError, match="signed 16-bit"):
        compare_at_rate(_limit(), -40000, present_current_a=0.0, remaining_ah=1.0)
