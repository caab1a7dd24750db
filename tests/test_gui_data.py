"""The desktop app's Qt-free parts, tested as data: formatting, history, pack state, limits editing,
register checks, the emulator controls and the TI-driver adapters (against the emulated pack)."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from gui import emulator_control as emu
from gui import gauge_ops
from gui.format import (
    MISSING,
    UnitPrefs,
    channel_info,
    first_sentence,
    format_hex,
    format_minutes,
    format_number,
    format_value,
)
from gui.history import History
from gui.limits_edit import FIELDS, HOST_RULES, apply_edits, limit_rows
from gui.pack_state import derive, security_state
from gui.registers import check_value, command_list, read_all, read_one, write_one
from smartbatt.errors import AccessDenied, AdapterGone, ProfileError, RangeError, SealedError
from smartbatt.monitor.alarms import AlarmLimits, Threshold, load_limits
from smartbatt.monitor.cellmodel import CellModel
from smartbatt.monitor.live import LiveEstimator
from smartbatt.monitor.sample import Sample
from smartbatt.profiles.loader import load_profile
from smartbatt.profiles.schema import SecurityLevel
from smartbatt.sbs.battery import open_battery
from smartbatt.sbs.commands import sbs_table

# --- formatting ------------------------------------------------------------------------------------


def test_values_carry_their_unit_and_resolution():
    assert format_value("Voltage", 16.1204) == "16.120 V"
    assert format_value("Current", -1.5) == "−1.500 A"  # a real minus sign
    assert format_value("Temperature", 25.04) == "25.0 °C"
    assert format_value("CellVoltage3", 3.7) == "3.700 V"
    assert format_value("RelativeStateOfCharge", 57.0) == "57 %"
    assert format_value("RunTimeToEmpty", 125.0) == "2 h 05 min"


def test_missing_values_are_a_dash_never_nan():
    for bad in (None, math.nan, math.inf):
        assert format_value("Voltage", bad) == MISSING
    assert format_number(None, 2, "V") == MISSING
    assert format_minutes(-1) == MISSING


def test_unit_preferences_convert():
    prefs = UnitPrefs(temperature="F", current="mA", voltage="mV", capacity="mAh")
    assert format_value("Temperature", 100.0, prefs) == "212.0 °F"
    assert format_value("Current", -1.234, prefs) == "−1,234 mA"
    assert format_value("Voltage", 16.12, prefs) == "16,120 mV"
    assert format_value("RemainingCapacity", 2.5, prefs) == "2,500 mAh"
    assert format_value("Temperature", 0.0, UnitPrefs(temperature="K")) == "273.1 K"


def test_invalid_unit_preference_is_refused():
    with pytest.raises(ValueError, match="temperature unit"):
        UnitPrefs(temperature="R")


def test_channel_info_guesses_cells_and_unknowns():
    assert channel_info("CellVoltage12").label == "Cell 12"
    assert channel_info("Temperature2").unit == "°C"
    assert channel_info("Mystery").unit == ""


def test_minutes_hex_and_first_sentence():
    assert format_minutes(45) == "45 min"
    assert format_minutes(60 * 50) == "2 d 2 h"
    assert format_hex(0x00C0) == "0x00C0"
    assert format_hex(0x2A05, 32) == "0x00002A05"
    assert format_hex(b"LION") == "4C 49 4F 4E"
    assert first_sentence("line one\nline two") == "line one"
    assert first_sentence("x" * 300, 50).endswith("…") and len(first_sentence("x" * 300, 50)) == 50


# --- history ---------------------------------------------------------------------------------------


def test_history_window_and_new_channel_mid_stream():
    h = History(10)
    for k in range(5):
        values = {"Voltage": 16.0 + k}
        if k >= 3:
            values["CellVoltage1"] = 4.0
        h.append(100.0 + k, values)
    t, cols = h.window(["Voltage", "CellVoltage1", "Absent"], 101.0, 103.0)
    assert t.tolist() == [101.0, 102.0, 103.0]
    assert cols["Voltage"].tolist() == [17.0, 18.0, 19.0]
    assert np.isnan(cols["CellVoltage1"][:2]).all() and cols["CellVoltage1"][2] == 4.0
    assert np.isnan(cols["Absent"]).all()
    assert h.at(102.5) == (102.0, {"Voltage": 18.0})
    before = h.at(50.0)
    assert before is not None and before[0] == 100.0  # before the start: the first sample


def test_history_keeps_the_newest_capacity_samples_across_compactions():
    h = History(100)
    for k in range(1000):  # several wrap-arounds of the double-length buffer
        h.append(float(k), {"Voltage": float(k)})
    assert len(h) == 100
    t, cols = h.window(["Voltage"])
    assert t.tolist() == [float(k) for k in range(900, 1000)]
    assert cols["Voltage"].tolist() == t.tolist()
    assert h.span() == (900.0, 999.0)


def test_history_load_checks_lengths_and_keeps_the_tail():
    h = History(3)
    h.load([1, 2, 3, 4], {"Voltage": [10, 20, 30, 40]})
    assert h.window(["Voltage"])[1]["Voltage"].tolist() == [20.0, 30.0, 40.0]
    with pytest.raises(ValueError, match="has 2 values for 4 times"):
        h.load([1, 2, 3, 4], {"Voltage": [1, 2]})
    assert History(2).span() is None
    with pytest.raises(ValueError):
        History(1)


def test_peak_decimation_keeps_spikes_and_gaps():
    from gui.plots import decimate, refresh_interval_ms

    t = np.arange(10_000, dtype=np.float64)
    y = np.zeros(10_000, dtype=np.float32)
    y[1234] = 9.0  # a one-sample spike
    y[5000:5400] = np.nan  # two whole bins of 200 samples missing
    y[6000:6100] = np.nan  # half a bin missing
    t2, cols = decimate(t, {"V": y}, 50)
    assert len(t2) == 100 and np.nanmax(cols["V"]) == 9.0
    assert np.isnan(cols["V"]).sum() == 4  # the two empty bins stay gaps; the half-empty one keeps its readings
    _, cols3 = decimate(t, {"V": np.full(10_000, np.nan, dtype=np.float32)}, 50)
    assert np.isnan(cols3["V"]).all()  # missing stays missing
    t4, cols4 = decimate(t[:50], {"V": y[:50]}, 50)
    assert cols4["V"].tolist() == y[:50].tolist()
    assert len(t4) == 50  # short series untouched
    assert refresh_interval_ms(60, 1200) == 100 and refresh_interval_ms(86_400, 1200) == 2000


# --- derived pack state --------------------------------------------------------------------------------


def _op_status(sec: int, dsg: bool, chg: bool, cb: bool) -> int:
    # bit positions from the bq40z50 profile's OperationStatus map, not from this test
    bf = load_profile("bq40z50").bitfields["OperationStatus"]
    bits = {f.name: f.bit for f in bf.flags}
    sec_group = next(g for g in bf.groups if g.name == "SEC")
    word = sec << sec_group.low
    for name, on in (("DSG", dsg), ("CHG", chg), ("CB", cb)):
        word |= int(on) << bits[name]
    return word


def test_derive_reads_fets_security_and_balancing_from_the_profile():
    profile = load_profile("bq40z50")
    sample = Sample(
        1.0,
        {"Voltage": 16.0, "Current": -2.0, "FullChargeCapacity": 2.7, "CellVoltage1": 3.9, "CellVoltage2": 4.0},
        {"OperationStatus": _op_status(3, dsg=True, chg=False, cb=True)},
    )
    state = derive(sample, profile, 3.0)
    assert state.power_w == pytest.approx(-32.0)
    assert state.soh_pct == pytest.approx(90.0)
    assert (state.discharge_fet, state.charge_fet, state.balancing) == (True, False, True)
    assert state.security is SecurityLevel.SEALED and state.sealed
    assert state.cell_spread_v == pytest.approx(0.1)
    unsealed = Sample(1.0, {}, {"OperationStatus": _op_status(2, True, True, False)})
    assert security_state(profile, unsealed) is SecurityLevel.UNSEALED


def test_derive_says_unknown_without_the_register_or_profile():
    state = derive(Sample(1.0, {"Voltage": 16.0}), load_profile("generic-sbs"), None)
    assert state.power_w is None and state.soh_pct is None
    assert state.charge_fet is None and state.security is None and state.sealed is None
    assert derive(Sample(1.0, {}, {"OperationStatus": 0xFFFF}), None, 3.0).security is None


# --- host limits editing -------------------------------------------------------------------------------


def test_limit_rows_cover_every_threshold_rule_of_the_schema():
    limits = load_limits("default")
    threshold_fields = {name for name in HOST_RULES if isinstance(getattr(limits, name, None), Threshold | None)}
    assert threshold_fields == set(HOST_RULES)
    rows = {r.rule: r for r in limit_rows(limits)}
    assert rows["cell_over_voltage"].cells[:2] == ("4.22", "4.25")
    assert len(rows["cell_over_voltage"].cells) == len(FIELDS)


def test_apply_edits_validates_through_the_limits_file_format():
    limits = load_limits("default")
    edited = apply_edits(limits, {"over_temperature": ("50", "58", "", "1.5", "3")})
    assert edited.over_temperature is not None
    assert (edited.over_temperature.warning, edited.over_temperature.alarm) == (50.0, 58.0)
    assert edited.over_temperature.hysteresis == 1.5 and edited.over_temperature.delay_s == 3.0
    assert edited.cell_over_voltage == limits.cell_over_voltage  # untouched rows stay
    off = apply_edits(limits, {"under_temperature": ("", "", "", "", "")})
    assert off.under_temperature is None
    new = apply_edits(AlarmLimits(), {"charge_over_current": ("", "5", "", "", "")})
    assert new.charge_over_current is not None and new.charge_over_current.alarm == 5.0


def test_apply_edits_refuses_bad_numbers_and_tier_order():
    limits = load_limits("default")
    with pytest.raises(RangeError, match="not a number"):
        apply_edits(limits, {"over_temperature": ("hot", "", "", "", "")})
    with pytest.raises(ProfileError, match="alarm"):
        apply_edits(limits, {"over_temperature": ("60", "50", "", "", "")})  # alarm below warning
    with pytest.raises(ProfileError, match="hysteresis"):
        apply_edits(limits, {"over_temperature": ("60", "", "", "-1", "")})
    with pytest.raises(RangeError, match="unknown limit rule"):
        apply_edits(limits, {"nonsense": ("1", "", "", "", "")})


# --- registers --------------------------------------------------------------------------------------------


def test_command_list_is_sbs_then_profile_commands():
    names = [c.name for c, origin in command_list(load_profile("bq40z50"))]
    assert names[0] == "ManufacturerAccess" and "CellVoltage1" in names and "DAStatus1" in names
    assert len(command_list(None)) == len(list(sbs_table()))


def test_check_value_uses_the_codec_range():
    cmd = sbs_table().by_name("RemainingCapacityAlarm")
    assert check_value(cmd, 300) == 300
    with pytest.raises(RangeError):
        check_value(cmd, -1)
    with pytest.raises(AccessDenied):
        check_value(sbs_table().by_name("Voltage"), 1)


def test_read_and_write_registers_on_the_emulated_pack():
    profile = load_profile("bq40z50")
    with open_battery("emulated:?speed=0") as battery:
        rows = {r.command.name: r for r in read_all(battery, command_list(profile), profile)}
        assert rows["Voltage"].reading is not None and rows["Voltage"].reading.unit == "mV"
        assert rows["CellVoltage1"].reading is not None and rows["CellVoltage1"].origin == "bq40z50"
        # sealed: the TI status blocks are refused, and the row says why instead of failing the table
        assert rows["SafetyStatus"].reading is None and rows["SafetyStatus"].error
        written = write_one(battery, sbs_table().by_name("RemainingCapacityAlarm"), "sbs", 250)
        assert written.reading is not None and written.reading.value == 250
        assert read_one(battery, sbs_table().by_name("RemainingCapacityAlarm"), "sbs").reading.value == 250  # type: ignore[union-attr]
        with pytest.raises(RangeError):
            write_one(battery, sbs_table().by_name("RemainingTimeAlarm"), "sbs", 70000)
        with pytest.raises(RangeError):
            write_one(battery, profile.command("BTPDischargeSet"), "bq40z50", 10**6)


# --- emulator controls ----------------------------------------------------------------------------------------


def test_every_fault_is_injected_and_cleared():
    with open_battery("emulated:?speed=0&security=unsealed") as battery:
        for key in emu.FAULTS:
            emu.inject(battery, key)
        state = emu.state(battery)
        assert set(state.faults) == set(emu.FAULTS) - {"gauge_reset"}
        transport, gauge = emu.gauge_of(battery)
        assert transport.faults.nack_every == 5 and gauge.vpack.pack.ambient_c == emu.HOT_AMBIENT_C
        emu.clear_faults(battery)
        assert emu.state(battery).faults == ()
        assert not transport.faults.active and gauge.vpack.pack.ambient_c == 25.0
        assert gauge.vpack.faults.runaway is None and not gauge.vpack.faults.shorts


def test_short_circuit_trips_the_gauge_protection():
    with open_battery("emulated:?speed=0&scenario=idle") as battery:
        _, gauge = emu.gauge_of(battery)
        emu.inject(battery, "short_circuit")
        gauge.vpack.advance(2.0)
        assert gauge.vpack.protections.discharge_disabled
        assert emu.state(battery).safety_status != 0
        emu.clear_faults(battery)
        assert type(gauge.vpack.load).__name__ != "ConstantCurrent"


def test_scenario_and_speed_controls():
    with open_battery("emulated:?speed=0") as battery:
        emu.set_scenario(battery, "drone")
        assert emu.state(battery).scenario == "drone"
        emu.set_speed(battery, 10.0)
        assert emu.state(battery).speed == 10.0
        with pytest.raises(ValueError):
            emu.set_scenario(battery, "moon")


def test_controls_refuse_a_pack_that_is_not_emulated(emulated):
    from smartbatt.sbs.battery import Battery

    class Fake:
        transport = object()
        address = 0x0B

    with pytest.raises(emu.NotEmulated):
        emu.state(Fake())  # type: ignore[arg-type]
    with pytest.raises(emu.NotEmulated, match="no emulated gauge"):
        emu.state(Battery(emulated))  # the static register file is not a simulated gauge


def test_link_keeps_the_same_pack_and_simulates_an_unplugged_adapter():
    now = [0.0]
    link = emu.EmulatorLink(clock=lambda: now[0])
    first = link.open("emulated:?speed=0&nack_every=7")
    second = link.open("emulated:?speed=0&nack_every=7")
    try:
        assert second.target is first.target  # type: ignore[attr-defined]
        assert second.faults.nack_every == 7 and second.faults is not first.faults  # type: ignore[attr-defined]
        link.unplug(5.0)
        assert link.unplugged
        with pytest.raises(AdapterGone, match="unplugged"):
            link.open("emulated:?speed=0&nack_every=7")
        now[0] = 6.0
        third = link.open("emulated:?speed=0&nack_every=7")
        third.close()
    finally:
        first.close()
        second.close()


# --- TI driver adapters ----------------------------------------------------------------------------------------


def test_security_state_and_threshold_rows_on_the_emulated_bq4050():
    profile = load_profile("bq4050")
    with open_battery("emulated:bq4050?speed=0") as battery:
        info = gauge_ops.security_state(battery, profile)
        assert info.level is SecurityLevel.SEALED and not info.writable
        entry = profile.df_entry("Protections:CUV:Threshold")
        with pytest.raises(SealedError):
            gauge_ops.write_entry(battery, profile, entry, 2600)
        info = gauge_ops.unseal(battery, profile, None)
        assert info.level is SecurityLevel.UNSEALED and info.writable
        rows = {r.entry.key: r for r in gauge_ops.read_thresholds(battery, profile)}
        assert rows[entry.key].value is not None
        old = rows[entry.key].value
        new = 2600 if old != 2600 else 2650
        written = gauge_ops.write_entry(battery, profile, entry, new)
        assert written.value == new and written.text == entry.format_display(new)
        with pytest.raises(RangeError):
            gauge_ops.write_entry(battery, profile, entry, 10**9)
        assert gauge_ops.seal(battery, profile).sealed


def test_unaddressed_entries_say_why():
    rows = gauge_ops.threshold_rows(load_profile("bq40z50"))
    assert rows and all("address unknown" in r.problem for r in rows if r.entry.address is None)
    assert gauge_ops.threshold_rows(None) == []


def test_image_export_preview_and_import(tmp_path):
    profile = load_profile("bq4050")
    key = "Protections:CUV:Threshold"
    with open_battery("emulated:bq4050?speed=0&security=unsealed") as battery:
        image = tmp_path / "golden.json"
        assert "entries" in gauge_ops.export_image(battery, profile, image)
        assert gauge_ops.preview_import(battery, profile, image).changes == ()
        before = gauge_ops.read_thresholds(battery, profile)
        old = next(r.value for r in before if r.entry.key == key)
        gauge_ops.write_entry(battery, profile, profile.df_entry(key), 2600 if old != 2600 else 2650)
        preview = gauge_ops.preview_import(battery, profile, image)
        assert [c[0] for c in preview.changes] == [key]
        summary = gauge_ops.import_image(battery, profile, image, tmp_path / "backups")
        assert "1 entries written" in summary
        assert next(r.value for r in gauge_ops.read_thresholds(battery, profile) if r.entry.key == key) == old
        assert list((tmp_path / "backups").glob("*.backup.json"))


# --- independent estimate ----------------------------------------------------------------------------------------


def _cell_model() -> CellModel:
    soc = tuple(np.linspace(0.0, 1.0, 11).tolist())
    ocv = tuple((3.0 + 1.2 * np.asarray(soc) ** 0.8).tolist())
    return CellModel(
        capacity_ah=3.0, ocv_soc=soc, ocv_v=ocv, r_soc=(0.5,), r0_ohm=(0.03,), r1_ohm=(0.01,), c1_f=(2000.0,),
        r2_ohm=(0.01,), c2_f=(20000.0,), v_min_v=3.0, v_max_v=4.2, i_discharge_max_a=20.0, i_charge_max_a=6.0,
        name="test cell",
    )  # fmt: skip


def test_live_estimator_reports_soc_sigma_and_power():
    est = LiveEstimator(_cell_model(), 4, design_capacity_ah=3.0)
    t0 = time.time()
    out = {}
    for k in range(30):
        out = dict(est.step(Sample(t0 + k, {"Voltage": 15.6, "Current": -1.0, "Temperature": 25.0})))
    assert 0.0 <= out["est_soc"] <= 100.0 and out["est_soc_sigma"] > 0.0
    assert out["est_sop_discharge_10s_w"] > 0.0 and out["est_sop_charge_10s_w"] > 0.0
    assert est.step(Sample(t0 + 29, {"Voltage": 15.6, "Current": -1.0})) == {}  # repeated time: skipped
    assert est.step(Sample(t0 + 40, {"Current": -1.0})) == {}  # no voltage: nothing to estimate
    assert est.status().running and "4 cells" in est.status().text
