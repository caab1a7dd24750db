"""Physics of the virtual battery: cells, pack, heat, balancing, faults, ageing, loads, clock."""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from smartbatt.emulator.cell import arrhenius
from smartbatt.emulator.chemistry import CHEMISTRIES
from smartbatt.emulator.clock import SimClock
from smartbatt.emulator.load import (
    SCENARIOS,
    CCCVCharger,
    ConstantCurrent,
    ConstantPower,
    Load,
    ProfileReplay,
    Rest,
    scenario,
)
from smartbatt.emulator.pack import Pack, PackConfig, balance_mask
from smartbatt.emulator.scenarios import ScheduleLoad, duration_s


def uniform(**fields: Any) -> PackConfig:
    """A pack with no spread: every group identical, so expectations can be computed exactly."""
    return PackConfig(capacity_spread=0.0, resistance_spread=0.0, soc_spread=0.0, **fields)


def run(pack: Pack, load: Load, seconds: float, dt: float = 1.0) -> None:
    """Step ``pack`` for ``seconds`` with ``load`` evaluated at every step."""
    t = pack.time_s
    end = t + seconds
    while t < end - 1e-9:
        pack.step(dt, load.current(t, pack))
        t += dt


def discharge_to_cutoff(pack: Pack, current_a: float, dt: float = 1.0, limit_s: float = 3 * 3600) -> float:
    """Discharge at ``current_a`` until the lowest group reaches the chemistry cut-off; returns seconds."""
    t = 0.0
    while pack.min_max_cell()[0] > pack.chemistry.v_min:
        pack.step(dt, -current_a)
        t += dt
        assert t < limit_s, "discharge never reached the cut-off"
    return t


# --- capacity and voltage limits -----------------------------------------------------------------


@pytest.mark.parametrize("chemistry", CHEMISTRIES)
@pytest.mark.parametrize("series", [1, 4])
def test_1c_discharge_of_3ah_pack_lasts_about_an_hour_and_ends_at_cutoff(chemistry: str, series: int) -> None:
    # Tolerance: the cut-off is reached while some charge is left, because the 1C IR and
    # polarisation drop (~0.1 V) meets the steep bottom of the OCV curve; the 4S pack also ends on
    # its weakest cell (2 % capacity spread). So 0.90-1.02 h: not less than 90 % of nominal, and
    # not more than nominal (the seeded spread can give the weakest of 4 cells at most ~+2 %).
    pack = Pack(PackConfig(chemistry=chemistry, series=series, cell_capacity_ah=3.0, initial_soc=1.0))
    seconds = discharge_to_cutoff(pack, 3.0)
    assert 0.90 * 3600 <= seconds <= 1.02 * 3600
    low, _ = pack.min_max_cell()
    # 1 s steps near empty move the voltage by a few mV per step
    assert pack.chemistry.v_min - 0.03 <= low <= pack.chemistry.v_min
    assert pack.cell_soc.min() < 0.05


def test_depleted_group_cannot_deliver_more_and_its_voltage_collapses() -> None:
    pack = Pack(uniform(series=1, initial_soc=0.05))
    run(pack, ConstantCurrent(-3.0), 1200)
    assert pack.cell_soc[0] == 0.0
    assert pack.cells.soc[0] == pytest.approx(pack.chemistry.soc_floor)
    assert 0.0 <= pack.voltage < 1.0
    pack.step(1.0, 0.0)  # load removed: the cell reads its (very low) OCV plus relaxing RC voltages
    assert pack.voltage == pytest.approx(float(pack.cell_ocv[0] + pack.rc_voltages[0]), abs=1e-3)
    assert pack.voltage > 1.0
    assert all(np.isfinite(pack.cell_voltages))


def test_overcharge_without_cv_climbs_above_the_charge_voltage() -> None:
    # what a charger fault does: the gauge's over-voltage protection must be able to see it
    pack = Pack(uniform(series=1, initial_soc=0.95))
    run(pack, ConstantCurrent(3.0), 900)
    assert pack.voltage > pack.chemistry.v_max + 0.1
    assert pack.cell_soc[0] == 1.0


# --- OCV, RC relaxation, resistance ----------------------------------------------------------------


@pytest.mark.parametrize("chemistry", CHEMISTRIES)
def test_ocv_at_rest_matches_the_table_after_relaxation(chemistry: str) -> None:
    pack = Pack(uniform(chemistry=chemistry, series=1, initial_soc=0.7))
    run(pack, ConstantCurrent(-1.5), 1200)
    run(pack, Rest(), 5 * 3600, dt=10.0)
    chem = pack.chemistry
    table = np.interp(pack.cells.soc[0], chem.soc, chem.ocv_v)
    assert pack.cell_temperatures[0] == pytest.approx(25.0, abs=0.01)
    assert pack.voltage == pytest.approx(table, abs=0.001)
    assert pack.cell_soc[0] == pytest.approx(0.7 - 1.5 * 1200 / 3600 / 3.0, abs=0.005)


def test_rc_relaxation_after_a_pulse_has_the_chemistry_time_constants() -> None:
    pack = Pack(uniform(series=1, initial_soc=0.5))
    run(pack, ConstantCurrent(-3.0), 120, dt=0.5)
    loaded = pack.voltage
    r0 = float(pack.resistance_ohm[0])
    pack.step(0.01, 0.0)
    # the ohmic part recovers at once: I·R0
    assert pack.voltage - loaded == pytest.approx(3.0 * r0, rel=0.05)
    times, deficits = [], []
    t = 0.0
    for _ in range(3000):
        pack.step(1.0, 0.0)
        t += 1.0
        times.append(t)
        deficits.append(float(pack.cell_ocv[0] - pack.voltage))
    d = np.asarray(deficits)
    ts = np.asarray(times)
    assert np.all(np.diff(pack_voltage_trace := -d) > 0), "voltage must rise monotonically at rest"
    assert pack_voltage_trace[-1] == pytest.approx(0.0, abs=0.002)
    chem = pack.chemistry
    slow = (ts >= 400) & (ts <= 1500)
    tau2 = -1.0 / np.polyfit(ts[slow], np.log(d[slow]), 1)[0]
    assert tau2 == pytest.approx(chem.tau2_s, rel=0.05)
    # remove the slow exponential (extrapolated back) and fit the fast one on what remains
    amplitude2 = math.exp(np.polyfit(ts[slow], np.log(d[slow]), 1)[1])
    fast = (ts >= 5) & (ts <= 60)
    residual = d[fast] - amplitude2 * np.exp(-ts[fast] / tau2)
    tau1 = -1.0 / np.polyfit(ts[fast], np.log(residual), 1)[0]
    assert tau1 == pytest.approx(chem.tau1_s, rel=0.10)


def test_rc_update_is_stable_and_exact_at_large_steps() -> None:
    fine = Pack(uniform(series=1, initial_soc=0.5))
    coarse = Pack(uniform(series=1, initial_soc=0.5))
    run(fine, ConstantCurrent(-1.0), 600, dt=0.1)
    run(coarse, ConstantCurrent(-1.0), 600, dt=300.0)  # 10 x tau1: explicit Euler would blow up
    assert coarse.voltage == pytest.approx(fine.voltage, abs=0.01)
    # (ageing refreshes once a simulated minute, so the two step sizes age a hair apart)
    assert coarse.cell_soc[0] == pytest.approx(fine.cell_soc[0], abs=1e-5)


def test_temperature_raises_resistance_when_cold_and_lowers_it_when_warm() -> None:
    resistance = {}
    sag = {}
    for ambient in (0.0, 25.0, 45.0):
        pack = Pack(uniform(series=1, initial_soc=0.5, ambient_c=ambient))
        resistance[ambient] = float(pack.resistance_ohm[0])
        rest_v = pack.voltage
        pack.step(1.0, -3.0)
        sag[ambient] = rest_v - pack.voltage
    assert resistance[0.0] > resistance[25.0] > resistance[45.0]
    ea = Pack(PackConfig()).chemistry.ea_r0_j_per_mol
    expected = float(arrhenius(np.array([0.0]), ea)[0])
    assert resistance[0.0] / resistance[25.0] == pytest.approx(expected, rel=1e-6)
    assert sag[0.0] > sag[25.0] > sag[45.0]


def test_parallel_cells_add_capacity_and_divide_resistance() -> None:
    single = Pack(uniform(series=2, parallel=1))
    double = Pack(uniform(series=2, parallel=3))
    assert double.capacity_ah == pytest.approx(3 * single.capacity_ah)
    assert double.resistance_ohm == pytest.approx(single.resistance_ohm / 3)
    assert double.heat_capacity_j_per_k == pytest.approx(3 * single.heat_capacity_j_per_k)


# --- heat ----------------------------------------------------------------------------------------


def test_heat_rises_under_load_and_decays_towards_ambient_at_rest() -> None:
    pack = Pack(PackConfig(series=4, initial_soc=1.0))
    run(pack, ConstantCurrent(-6.0), 1200)  # 2C
    hot = pack.cell_temperatures
    assert hot.min() > 25.0 + 3.0
    trace = []
    for _ in range(100):
        run(pack, Rest(), 100, dt=10.0)
        trace.append(pack.cell_temperatures.max())
    assert np.all(np.diff(trace) < 0), "a resting pack only cools"
    assert trace[-1] == pytest.approx(25.0, abs=0.1)


def test_extra_heat_ramps_temperature_to_the_convective_steady_state() -> None:
    pack = Pack(uniform(series=1))
    pack.set_extra_heat(0, 1.0)
    tau = pack.heat_capacity_j_per_k / pack.convection_w_per_k
    steady = 1.0 / pack.convection_w_per_k
    run(pack, Rest(), tau, dt=1.0)
    # first-order response: 63 % of the steady rise after one time constant (plus a trace of I²R
    # heat from the self-discharge leak, negligible)
    assert pack.cell_temperatures[0] - 25.0 == pytest.approx(steady * (1 - math.exp(-1)), rel=0.01)
    run(pack, Rest(), 9 * tau, dt=10.0)
    assert pack.cell_temperatures[0] - 25.0 == pytest.approx(steady, rel=0.01)
    pack.set_extra_heat(0, 0.0)
    run(pack, Rest(), 10 * tau, dt=10.0)
    assert pack.cell_temperatures[0] == pytest.approx(25.0, abs=0.05)


def test_extra_heat_on_one_group_warms_its_neighbours_through_conduction() -> None:
    pack = Pack(uniform(series=4))
    pack.set_extra_heat(1, 2.0)
    run(pack, Rest(), 1800, dt=5.0)
    t = pack.cell_temperatures
    assert t[1] > t[0] > 25.0
    assert t[1] > t[2] > t[3] > 25.0
    assert t[0] > t[3]  # group 0 touches the heater, group 3 is two groups away


def test_ambient_change_moves_the_pack_temperature() -> None:
    pack = Pack(PackConfig(series=2))
    pack.ambient_c = -10.0
    run(pack, Rest(), 4 * 3600, dt=30.0)
    assert pack.cell_temperatures == pytest.approx([-10.0, -10.0], abs=0.1)
    with pytest.raises(ValueError, match="ambient_c"):
        pack.ambient_c = 200.0


# --- balancing -----------------------------------------------------------------------------------


def _soc_spread(pack: Pack) -> float:
    soc = pack.cell_soc
    return float(soc.max() - soc.min())


def test_balancing_narrows_the_cell_spread_over_a_long_rest() -> None:
    config = PackConfig(series=4, soc_spread=0.03, seed=3, initial_soc=0.6)
    balanced, control = Pack(config), Pack(config)
    initial = _soc_spread(balanced)
    assert initial > 0.03  # a real imbalance to start from
    for _ in range(48 * 60):  # 48 h, the gauge's decision once a minute
        balanced.set_balancing(balance_mask(balanced.cell_voltages, threshold_v=0.003))
        balanced.step(60.0, 0.0)
        control.step(60.0, 0.0)
    final = _soc_spread(balanced)
    # measured: 0.126 -> 0.0035 within 12 h, then steady (the 3 mV threshold is ~0.4 % SOC on
    # the NMC curve near 57 %, so the rule stops there)
    assert final < 0.2 * initial
    assert final < 0.01
    assert _soc_spread(control) == pytest.approx(initial, abs=0.002)
    assert balanced.cell_soc.mean() < control.cell_soc.mean()  # passive balancing burns charge


def test_balancing_bleeds_the_selected_group_and_heats_it() -> None:
    pack = Pack(uniform(series=3))
    pack.balance_current_a = 0.1
    pack.set_balancing(np.array([False, True, False]))
    assert list(pack.balancing) == [False, True, False]
    run(pack, Rest(), 3600, dt=10.0)
    soc = pack.cell_soc
    assert soc[0] - soc[1] == pytest.approx(0.1 / 3.0, rel=0.02)
    assert soc[0] == pytest.approx(soc[2], abs=1e-9)
    assert pack.cell_temperatures[1] > pack.cell_temperatures[0]
    assert pack.current == 0.0  # the bleed never shows as pack current


def test_balancing_mask_and_hooks_reject_bad_arguments() -> None:
    pack = Pack(PackConfig(series=4))
    with pytest.raises(ValueError, match="4 booleans"):
        pack.set_balancing(np.array([True, False]))
    with pytest.raises(ValueError, match="4 booleans"):
        pack.set_balancing(np.array([1, 0, 0, 1]))
    with pytest.raises(ValueError, match="group"):
        pack.set_internal_short(4, 10.0)
    with pytest.raises(ValueError, match="resistance_ohm"):
        pack.set_internal_short(0, 0.0)
    with pytest.raises(ValueError, match="watts"):
        pack.set_extra_heat(0, -1.0)
    with pytest.raises(ValueError, match="group"):
        pack.set_extra_heat(-1, 1.0)
    with pytest.raises(ValueError, match="balance_current_a"):
        pack.balance_current_a = -0.1
    with pytest.raises(ValueError, match="threshold_v"):
        balance_mask([3.7, 3.8], -0.01)
    with pytest.raises(ValueError, match="dt_s"):
        pack.step(-1.0, 0.0)
    with pytest.raises(ValueError, match="current_a"):
        pack.step(1.0, math.nan)


# --- faults ----------------------------------------------------------------------------------------


def test_internal_short_drains_its_group_sags_its_voltage_and_heats_it() -> None:
    pack = Pack(uniform(series=4, initial_soc=0.8))
    pack.set_internal_short(2, 10.0)
    run(pack, Rest(), 3600, dt=5.0)
    soc, volts, temps = pack.cell_soc, pack.cell_voltages, pack.cell_temperatures
    leak_a = 3.9 / 10.0  # about OCV / R
    assert soc[0] - soc[2] == pytest.approx(leak_a / 3.0, rel=0.05)
    assert volts[2] < volts[0] - 0.02
    assert temps[2] > temps[0] + 5.0  # ~1.5 W in the short
    assert pack.current == 0.0  # the gauge's sense resistor sees nothing
    pack.set_internal_short(2, None)
    before = pack.cell_soc[2]
    run(pack, Rest(), 3600, dt=10.0)
    assert pack.cell_soc[2] == pytest.approx(before, abs=0.002)  # healed: only self-discharge


# --- ageing and self-discharge ---------------------------------------------------------------------


def test_ageing_reduces_capacity_and_raises_resistance() -> None:
    fresh = Pack(uniform())
    aged = Pack(uniform(cycles=500, age_days=365))
    chem = fresh.chemistry
    fade = chem.fade_per_cycle * 500 + chem.fade_per_sqrt_day * math.sqrt(365)
    growth = 1 + chem.growth_per_cycle * 500 + chem.growth_per_sqrt_day * math.sqrt(365)
    assert aged.capacity_ah == pytest.approx(fresh.capacity_ah * (1 - fade))
    assert aged.resistance_ohm == pytest.approx(fresh.resistance_ohm * growth)
    assert 0.1 < fade < 0.3  # a plausibly worn pack, not a dead one


def test_cycling_throughput_ages_the_pack() -> None:
    pack = Pack(uniform(series=1, initial_soc=0.5))
    start_capacity = float(pack.capacity_ah[0])
    for _ in range(20):  # 20 x (2C down 15 min + 2C up 15 min): 3 Ah of a 3 Ah cell moved each time
        run(pack, ConstantCurrent(-6.0), 900, dt=10.0)
        run(pack, ConstantCurrent(6.0), 900, dt=10.0)
    cycles = float(pack.equivalent_cycles[0])
    assert cycles == pytest.approx(10.0, rel=0.02)  # one equivalent cycle = 2 x capacity moved
    chem = pack.chemistry
    expected = 1 - chem.fade_per_cycle * cycles - chem.fade_per_sqrt_day * math.sqrt(pack.age_days)
    assert pack.capacity_ah[0] / start_capacity == pytest.approx(expected, rel=1e-3)


def test_self_discharge_loses_a_few_percent_a_month() -> None:
    pack = Pack(uniform(series=1, initial_soc=0.8))
    run(pack, Rest(), 30 * 86400, dt=600.0)
    lost = 0.8 - float(pack.cell_soc[0])
    assert lost == pytest.approx(pack.chemistry.self_discharge_per_month, rel=0.05)


# --- configuration and determinism -----------------------------------------------------------------


def test_two_runs_with_one_seed_give_identical_traces() -> None:
    def trace(seed: int) -> np.ndarray:
        pack = Pack(PackConfig(series=4, seed=seed))
        load = scenario("drone", seed=seed)
        rows = []
        for step in range(900):
            pack.step(1.0, load.current(float(step), pack))
            rows.append(np.concatenate([pack.cell_voltages, pack.cell_temperatures, pack.cell_soc]))
        return np.asarray(rows)

    first, second = trace(7), trace(7)
    assert np.array_equal(first, second)
    assert not np.array_equal(first, trace(8))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("chemistry", "nicd"),
        ("series", 0),
        ("series", 17),
        ("series", 4.0),
        ("parallel", 5),
        ("cell_capacity_ah", 0.0),
        ("cell_capacity_ah", math.nan),
        ("seed", -1),
        ("capacity_spread", -0.01),
        ("resistance_spread", 0.9),
        ("soc_spread", 0.5),
        ("initial_soc", 1.2),
        ("ambient_c", -60.0),
        ("cycles", -1.0),
        ("age_days", math.inf),
    ],
)
def test_invalid_config_raises_value_error_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        PackConfig(**{field: value})  # type: ignore[arg-type]


def test_pack_refuses_something_that_is_not_a_config() -> None:
    with pytest.raises(ValueError, match="PackConfig"):
        Pack({"series": 4})  # type: ignore[arg-type]


def test_sixteen_series_four_parallel_pack_runs() -> None:
    pack = Pack(PackConfig(series=16, parallel=4, cell_capacity_ah=5.0))
    run(pack, scenario("powertool"), 120)
    assert pack.cell_voltages.shape == (16,)
    assert np.all(np.isfinite(pack.cell_voltages))
    assert pack.voltage == pytest.approx(float(pack.cell_voltages.sum()))


# --- loads and scenarios ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", SCENARIOS)
def test_each_scenario_runs_for_its_duration_without_nan(name: str) -> None:
    pack = Pack(PackConfig(series=4, initial_soc=0.2 if name == "charge" else 0.9))
    load = scenario(name)
    length = duration_s(load)
    assert math.isfinite(length) and length > 0
    dt = 1.0 if length <= 3600 else 4.0
    lowest = math.inf
    t = 0.0
    while t < length:
        current = load.current(t, pack)
        assert math.isfinite(current)
        pack.step(dt, current)
        lowest = min(lowest, pack.min_max_cell()[0])
        t += dt
    for values in (pack.cell_voltages, pack.cell_temperatures, pack.cell_soc, pack.resistance_ohm):
        assert np.all(np.isfinite(values))
    assert lowest > pack.chemistry.v_min - 0.3  # no scenario drives a full pack to collapse
    if name == "charge":
        assert pack.cell_soc.mean() > 0.97


def test_scenarios_are_seeded_and_unknown_names_fail() -> None:
    a, b, c = scenario("laptop", seed=1), scenario("laptop", seed=1), scenario("laptop", seed=2)
    assert isinstance(a, ScheduleLoad) and isinstance(b, ScheduleLoad) and isinstance(c, ScheduleLoad)
    assert a.levels == b.levels
    assert a.levels != c.levels
    with pytest.raises(ValueError, match="unknown scenario"):
        scenario("flight")


def test_drone_scenario_hovers_at_10_to_15_a_with_bursts_to_30_40_a_on_a_4s_5ah_pack() -> None:
    pack = Pack(PackConfig(series=4, parallel=2, cell_capacity_ah=2.5))
    load = scenario("drone")
    assert isinstance(load, ScheduleLoad)
    currents = np.array([-load.current(t, pack) for t in np.arange(30.0, 860.0, 0.5)])
    assert currents.max() <= 40.0 + 1e-9
    assert currents.max() >= 30.0
    hover = currents[currents < 20.0]
    assert hover.min() >= 10.0 and hover.max() <= 15.0
    assert np.median(currents) == pytest.approx(12.5, abs=1.5)
    assert load.current(950.0, pack) == 0.0  # landed


def test_laptop_scenario_draws_5_to_25_w_on_a_4_cell_pack() -> None:
    pack = Pack(PackConfig(series=4))
    load = scenario("laptop")
    powers = []
    for t in np.arange(0.0, 7200.0, 5.0):
        powers.append(-load.current(float(t), pack) * pack.voltage)
    assert min(powers) >= 5.0 - 1e-9
    assert max(powers) <= 25.0 + 1e-9
    assert max(powers) > 15.0 and min(powers) < 8.0  # it really varies


def test_powertool_scenario_pulses_4_to_8_c_with_rests() -> None:
    pack = Pack(PackConfig(series=5, parallel=2, cell_capacity_ah=2.5))
    load = scenario("powertool")
    currents = np.array([-load.current(float(t), pack) for t in np.arange(0.0, 600.0, 0.25)])
    pulses = currents[currents > 0]
    assert pulses.min() >= 20.0 and pulses.max() <= 40.0
    assert 0.2 < len(pulses) / len(currents) < 0.6  # bursts with rests between


def test_constant_power_draws_power_over_voltage() -> None:
    pack = Pack(PackConfig(series=4))
    load = ConstantPower(-20.0)
    assert load.current(0.0, pack) == pytest.approx(-20.0 / pack.voltage)
    limited = ConstantPower(-200.0, max_current_a=5.0)
    assert limited.current(0.0, pack) == -5.0
    with pytest.raises(ValueError, match="power_w"):
        ConstantPower(math.inf)


def _finished(charger: CCCVCharger) -> bool:
    return charger.done


def test_cccv_charger_charges_to_full_without_exceeding_its_voltage() -> None:
    pack = Pack(uniform(series=4, initial_soc=0.3))
    charger = CCCVCharger(current_a=1.5, voltage_v=16.8, termination_a=0.15)
    highest = 0.0
    saw_cv = False
    t = 0.0
    while not charger.done:
        pack.step(1.0, charger.current(t, pack))
        highest = max(highest, pack.voltage)
        saw_cv = saw_cv or charger.in_cv
        t += 1.0
        assert t < 6 * 3600
    assert saw_cv
    assert highest <= 16.8 + 0.002
    assert pack.cell_soc.mean() > 0.97
    assert charger.current(t, pack) == 0.0
    charger.set_request(1.5, 16.4)  # the gauge lowers ChargingVoltage: a new request re-arms
    assert not _finished(charger)
    charger.set_request(0.0, 16.8)  # ChargingCurrent 0: no charge
    assert charger.current(t, pack) == 0.0
    with pytest.raises(ValueError, match="current_a"):
        charger.set_request(-1.0, 16.8)


def test_charge_scenario_follows_the_gauge_request() -> None:
    pack = Pack(PackConfig(series=4, initial_soc=0.3))
    load = scenario("charge")
    assert isinstance(load, CCCVCharger)
    assert load.current(0.0, pack) == pytest.approx(0.5 * 3.0)  # NMC standard charge: 0.5C
    load.set_request(1.0, 16.0)
    assert load.current(1.0, pack) == pytest.approx(1.0)


# --- CSV replay -----------------------------------------------------------------------------------


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "profile.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_replay_holds_each_sample_and_converts_power(tmp_path: Path) -> None:
    pack = Pack(PackConfig(series=4))
    current = ProfileReplay.from_csv(_write(tmp_path, "# recorded\ntime_s,current_a\n0,-1.0\n\n10,-2.5\n20,0.5\n"))
    assert [current.current(t, pack) for t in (0.0, 9.99, 10.0, 25.0, 29.99, 30.0)] == [-1, -1, -2.5, 0.5, 0.5, 0]
    looped = ProfileReplay.from_csv(_write(tmp_path, "time_s,current_a\n0,-1\n10,-2\n"), loop=True)
    assert looped.current(25.0, pack) == -1.0
    power = ProfileReplay.from_csv(_write(tmp_path, "time_s,power_w\n0,-16\n"))
    assert power.current(0.5, pack) == pytest.approx(-16.0 / pack.voltage)


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("time,current\n0,1\n", 1, "header"),
        ("time_s,current_a\n0,-1\n1,abc\n", 3, "not a number"),
        ("time_s,current_a\n0,-1\n1,-1\n2,-1,7\n", 4, "expected 2 columns"),
        ("time_s,current_a\n0,-1\n5,-1\n5,-2\n", 4, "does not increase"),
        ("time_s,power_w\n# comment\n0,nan\n", 3, "not finite"),
        ("time_s,current_a\n-1,-1\n", 2, "negative"),
    ],
)
def test_csv_replay_reports_bad_rows_with_their_line_number(tmp_path: Path, text: str, line: int, reason: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ValueError, match=reason) as info:
        ProfileReplay.from_csv(path)
    assert f"{path}:{line}:" in str(info.value)


@pytest.mark.parametrize(("text", "reason"), [("", "empty profile"), ("time_s,current_a\n", "no samples")])
def test_csv_replay_refuses_empty_files(tmp_path: Path, text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        ProfileReplay.from_csv(_write(tmp_path, text))


# --- clock ----------------------------------------------------------------------------------------


class FakeHost:
    """A host monotonic clock that only moves when a wait 'sleeps' on it."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FakeEvent(threading.Event):
    """An Event whose wait advances the fake host clock instead of sleeping."""

    def __init__(self, host: FakeHost) -> None:
        super().__init__()
        self.host = host

    def wait(self, timeout: float | None = None) -> bool:
        assert timeout is not None
        self.host.now += timeout
        return self.is_set()


def test_as_fast_as_possible_clock_moves_only_when_told() -> None:
    clock = SimClock(None)
    assert not clock.realtime
    assert clock.now() == 0.0
    assert clock.advance(1.5) == 1.5
    assert clock.wait_until(10.0, threading.Event(), timeout_s=0.0)
    assert clock.now() == 10.0
    with pytest.raises(ValueError, match="dt_s"):
        clock.advance(-1.0)


def test_realtime_clock_follows_the_host_times_speed() -> None:
    host = FakeHost()
    clock = SimClock(10.0, monotonic=host)
    host.now += 2.0
    assert clock.now() == pytest.approx(20.0)
    clock.set_speed(1.0)  # no jump when the speed changes
    assert clock.now() == pytest.approx(20.0)
    host.now += 3.0
    assert clock.now() == pytest.approx(23.0)
    clock.advance(100.0)  # skip ahead
    assert clock.now() == pytest.approx(123.0)
    assert clock.host_seconds_until(125.0) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="speed"):
        SimClock(0.0)


def test_realtime_wait_until_waits_for_the_clock_and_honours_stop_and_timeout() -> None:
    host = FakeHost()
    clock = SimClock(2.0, monotonic=host)
    stop = FakeEvent(host)
    assert clock.wait_until(10.0, stop, timeout_s=60.0)
    assert clock.now() == pytest.approx(10.0)
    assert not clock.wait_until(1000.0, stop, timeout_s=5.0)  # would need 495 host seconds
    assert clock.now() == pytest.approx(20.0)
    stop.set()
    assert not clock.wait_until(1000.0, stop, timeout_s=60.0)
