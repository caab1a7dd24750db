"""The emulated pack's per-second fast paths give exactly what the plain formulation gives."""

from __future__ import annotations

import random

import pytest

from smartbatt.emulator.gauge import Measurement, _Noise
from smartbatt.emulator.protections import ProtectionInputs, ProtectionParameters, ProtectionState

NORMAL = ProtectionInputs(3800, 3790, 0, 25.0, 25.0, charging=False, relaxed=True)


@pytest.mark.parametrize("batches", [(9,), (1, 1, 1), (3, 4, 5, 9, 2), (0, 7, 1)])
def test_normals_match_random_gauss_stream(batches: tuple[int, ...]) -> None:
    fast, plain = _Noise(12345), random.Random(12345)
    for count in batches:
        assert fast.normals(count) == [plain.gauss(0.0, 1.0) for _ in range(count)]
    # the spare of a pair is kept where gauss() keeps it: mixing both APIs stays in step
    assert fast.gauss(0.0, 1.0) == plain.gauss(0.0, 1.0)
    assert fast.random() == plain.random()


def test_measurement_derived_values() -> None:
    m = Measurement((3700, 3650, 3712), 11062, -500, (2981, 3001, 2990))
    assert (m.max_cell_mv, m.min_cell_mv, m.temperature_deci_k) == (3712, 3650, 3001)
    assert m.ts_c == pytest.approx((24.95, 26.95, 25.85))
    assert m == Measurement((3700, 3650, 3712), 11062, -500, (2981, 3001, 2990))


def _trip_after(state: ProtectionState, value: ProtectionInputs, limit: int = 50) -> int:
    for second in range(1, limit + 1):
        state.update(1.0, value)
        if state.tripped("CUV"):
            return second
    raise AssertionError("CUV did not trip")


def test_threshold_change_after_caching_takes_effect() -> None:
    params = ProtectionParameters()
    state = ProtectionState(params)
    low = ProtectionInputs(2600, 2600, 0, 25.0, 25.0, charging=False, relaxed=True)
    for _ in range(10):
        state.update(1.0, low)  # limits resolved and cached: 2600 mV is above CUV 2500 mV
    assert not state.alerting("CUV") and not state.tripped("CUV")
    params["CUV:Threshold"] = 2700  # the cache must notice the new value
    state.update(1.0, low)
    assert state.alerting("CUV")
    params["CUV:Delay"] = 5
    assert _trip_after(state, low) == 4  # 1 s already counted, 5 s delay


def test_replaced_parameter_set_is_used() -> None:
    state = ProtectionState()
    low = ProtectionInputs(2600, 2600, 0, 25.0, 25.0, charging=False, relaxed=True)
    state.update(1.0, low)
    assert not state.alerting("CUV")
    state.params = ProtectionParameters({"CUV:Threshold": 2650})
    state.update(1.0, low)
    assert state.alerting("CUV")


def _fets(state: ProtectionState) -> tuple[bool, bool]:
    """(CHG open, DSG open)."""
    return state.charge_disabled, state.discharge_disabled


def test_fet_state_follows_force_and_reset() -> None:
    state = ProtectionState()
    state.update(1.0, NORMAL)
    assert _fets(state) == (False, False)
    state.force("OCD1", tripped=True)
    assert _fets(state) == (False, True)
    state.reset()
    assert _fets(state) == (False, False)
    state.force("SOV", tripped=True)
    assert _fets(state) == (True, True)
    state.reset_permanent_failure()
    assert _fets(state) == (False, False)
    assert state.check_instant(-90000.0)  # ASCD (−80 A) trips before the current flows
    assert _fets(state) == (True, True)


def test_update_readings_is_update() -> None:
    a, b = ProtectionState(), ProtectionState()
    high = ProtectionInputs(4400, 3800, 500, 30.0, 25.0, charging=True, relaxed=False, temp_range="LT")
    tripped_seen = False
    for value in [NORMAL, *[high] * 5, *[NORMAL] * 3]:
        a.update(1.0, value)
        b.update_readings(
            1.0,
            value.max_cell_mv,
            value.min_cell_mv,
            value.current_ma,
            value.max_temp_c,
            value.min_temp_c,
            charging=value.charging,
            relaxed=value.relaxed,
            temp_range=value.temp_range,
        )
        assert (a.safety_alert, a.safety_status, a.pf_alert, a.pf_status) == (
            b.safety_alert,
            b.safety_status,
            b.pf_alert,
            b.pf_status,
        )
        tripped_seen = tripped_seen or a.tripped("COV")
    assert tripped_seen and not a.tripped("COV")  # tripped on the high cell, recovered at 3800 mV
