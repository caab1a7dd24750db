"""Protections of the emulated gauge: the rule engine alone, then through the transport."""

from __future__ import annotations

import struct
from typing import cast

import numpy as np
import pytest

from smartbatt.emulator.device import EmulatedGauge
from smartbatt.emulator.load import ConstantCurrent, Rest
from smartbatt.emulator.pack import PackConfig
from smartbatt.emulator.protections import (
    PARAMS,
    PF_RULES,
    RULES,
    ProtectionInputs,
    ProtectionParameters,
    ProtectionState,
)
from smartbatt.emulator.target import EmulatedBus
from smartbatt.transports import Transport, open_transport

BAT = 0x0B
NORMAL = ProtectionInputs(3800, 3790, 0, 25.0, 25.0, charging=False, relaxed=True)


def inputs(**changes: object) -> ProtectionInputs:
    values = {**NORMAL.__dict__, **changes}
    return ProtectionInputs(**values)


def run(state: ProtectionState, seconds: int, value: ProtectionInputs) -> None:
    for _ in range(seconds):
        state.update(1.0, value)


# name, trip inputs, FET that opens, recovery inputs, delay (s), recovery delay (s)
CASES = [
    ("CUV", inputs(min_cell_mv=2400), "dsg", inputs(min_cell_mv=3050), 2, 0),
    ("COV", inputs(max_cell_mv=4350, charging=True, relaxed=False), "chg", inputs(max_cell_mv=3850), 2, 0),
    ("OCC1", inputs(current_ma=6500, charging=True, relaxed=False), "chg", inputs(current_ma=-300), 6, 5),
    ("OCC2", inputs(current_ma=8500, charging=True, relaxed=False), "chg", inputs(current_ma=-300), 3, 5),
    ("OCD1", inputs(current_ma=-6500, relaxed=False), "dsg", inputs(current_ma=300), 6, 5),
    ("OCD2", inputs(current_ma=-8500, relaxed=False), "dsg", inputs(current_ma=300), 3, 5),
    ("OTC", inputs(max_temp_c=56.0, charging=True, relaxed=False), "chg", inputs(max_temp_c=49.0), 2, 0),
    ("OTD", inputs(max_temp_c=61.0), "dsg", inputs(max_temp_c=54.0), 2, 0),
    ("UTC", inputs(min_temp_c=-1.0, charging=True, relaxed=False), "chg", inputs(min_temp_c=6.0), 2, 0),
    ("UTD", inputs(min_temp_c=-1.0), "dsg", inputs(min_temp_c=6.0), 2, 0),
]


@pytest.mark.parametrize(("name", "trip", "fet", "recover", "delay", "recovery_delay"), CASES)
def test_each_protection_trips_after_its_delay_and_recovers_per_its_rule(
    name: str, trip: ProtectionInputs, fet: str, recover: ProtectionInputs, delay: int, recovery_delay: int
) -> None:
    state = ProtectionState()
    rule = next(r for r in RULES if r.name == name)
    run(state, delay - 1, trip)
    assert state.alerting(name) and not state.tripped(name)
    assert state.safety_alert & (1 << rule.bit) and state.safety_status == 0
    assert not (state.charge_disabled or state.discharge_disabled)
    run(state, 1, trip)
    assert state.tripped(name) and not state.alerting(name)
    assert state.safety_status == 1 << rule.bit and not state.safety_alert & (1 << rule.bit)
    assert state.charge_disabled is (fet == "chg")
    assert state.discharge_disabled is (fet == "dsg")
    # the current protections need a reversal: the trip condition going away (the FET is open, no
    # current) is not their recovery condition; the others recover when back to normal
    current_rule = name in ("OCC1", "OCC2", "OCD1", "OCD2")
    run(state, 30, inputs(current_ma=0) if current_rule else NORMAL)
    assert state.tripped(name) is current_rule
    state = ProtectionState()
    run(state, delay, trip)
    assert state.tripped(name)
    if recovery_delay:
        run(state, recovery_delay - 1, recover)
        assert state.tripped(name)
    run(state, 1, recover)
    assert not state.tripped(name)
    assert not (state.charge_disabled or state.discharge_disabled)


def test_current_protections_need_a_reversal_to_recover() -> None:
    state = ProtectionState()
    run(state, 6, inputs(current_ma=-7000))
    assert state.tripped("OCD1")
    run(state, 60, inputs(current_ma=0))  # DSG FET open: no current, no recovery
    assert state.tripped("OCD1")
    run(state, 5, inputs(current_ma=250, charging=True))  # a charger connected
    assert not state.tripped("OCD1")


def test_temperature_protections_only_in_their_mode() -> None:
    state = ProtectionState()
    run(state, 10, inputs(max_temp_c=57.0, charging=False))
    assert not state.tripped("OTC")  # OTC only while charging; OTD threshold (60 °C) not reached
    run(state, 10, inputs(min_temp_c=-5.0, charging=True, relaxed=False))
    assert state.tripped("UTC") and not state.tripped("UTD")


def test_alarms_follow_the_ti_summary() -> None:
    state = ProtectionState()
    state.update(1.0, inputs(max_cell_mv=4350, charging=True))
    assert state.alarms() == {"TCA"}
    state = ProtectionState()
    state.update(1.0, inputs(current_ma=-7000))
    assert state.alarms() == {"TDA"}
    run(state, 6, inputs(current_ma=-7000))
    assert "TDA" not in state.alarms()  # the alarm belongs to the alert, not to the trip
    state = ProtectionState()
    run(state, 3, inputs(max_temp_c=62.0))
    assert state.alarms() == {"OTA"}


def test_lowering_cov_makes_it_trip_earlier() -> None:
    value = inputs(max_cell_mv=4150, charging=True)
    state = ProtectionState()
    run(state, 10, value)
    assert not state.tripped("COV")
    params = ProtectionParameters({"COV:Threshold Rec Temp": 4100})
    state = ProtectionState(params)
    run(state, 2, value)
    assert state.tripped("COV")
    state.params["COV:Threshold Rec Temp"] = 4300
    state.params["COV:Recovery Rec Temp"] = 4200
    state.update(1.0, value)
    assert not state.tripped("COV")  # the live parameter set is read at every step


def test_cov_threshold_depends_on_the_temperature_range() -> None:
    params = ProtectionParameters({"COV:Threshold Low Temp": 4100})
    state = ProtectionState(params)
    run(state, 2, inputs(max_cell_mv=4150, charging=True, temp_range="LT"))
    assert state.tripped("COV")
    state = ProtectionState(params)
    run(state, 2, inputs(max_cell_mv=4150, charging=True, temp_range="RT"))
    assert not state.tripped("COV")


def test_parameters_are_validated() -> None:
    params = ProtectionParameters()
    with pytest.raises(KeyError, match="unknown"):
        params["COV:Bogus"] = 1
    with pytest.raises(ValueError, match="outside"):
        params["CUV:Delay"] = 300
    assert {p.key for p in PARAMS} == set(params)
    for rule in (*RULES, *PF_RULES):  # every key a rule names exists
        for key in (rule.threshold, rule.delay, rule.recovery, rule.recovery_delay, rule.recovery_after):
            if key:
                keys = [key.replace("{range}", s) for s in ("Rec Temp", "Low Temp")]
                assert all(k in set(params) for k in keys), key


def test_disabled_protection_never_trips() -> None:
    params = ProtectionParameters()
    params.enabled.discard("CUV")
    state = ProtectionState(params)
    run(state, 10, inputs(min_cell_mv=2000))
    assert not state.tripped("CUV") and state.safety_alert == 0


def test_short_circuit_trips_before_the_current_flows_and_recovers_after_time() -> None:
    state = ProtectionState()
    assert not state.check_instant(-20000)
    assert state.check_instant(-90000)
    assert state.tripped("ASCD") and state.charge_disabled and state.discharge_disabled
    assert state.safety_status == 1 << 10 and state.safety_alert == 0  # no SafetyAlert bit (reserved)
    run(state, 4, NORMAL)
    assert state.tripped("ASCD")
    run(state, 1, NORMAL)
    assert not state.tripped("ASCD")


def test_permanent_failure_latches_until_reset() -> None:
    state = ProtectionState()
    over = inputs(max_cell_mv=4600, min_cell_mv=4590, charging=True, relaxed=False)
    run(state, 4, over)
    assert state.pf_alert == 1 << 1 and not state.permanent_failure
    run(state, 1, over)
    assert state.pf_status == 1 << 1  # SOV
    assert state.charge_disabled and state.discharge_disabled
    assert state.alarms() >= {"TCA", "TDA"}
    run(state, 100, NORMAL)
    state.reset()  # a gauge reset does not clear PF (kept in data flash)
    assert state.pf_status == 1 << 1
    state.reset_permanent_failure()
    assert state.pf_status == 0 and not state.charge_disabled


# --- through the transport ------------------------------------------------------------------------


def gauge_of(t: Transport) -> EmulatedGauge:
    return cast(EmulatedGauge, cast(EmulatedBus, t.target).devices[BAT])  # type: ignore[attr-defined]


def mac_word32(t: Transport, sub: int) -> int:
    t.write_word(BAT, 0x00, sub)
    return int(struct.unpack("<I", t.read_block(BAT, 0x23)[:4].ljust(4, b"\0"))[0])


def signed(word: int) -> int:
    return word - 0x10000 if word & 0x8000 else word


def test_overcurrent_in_discharge_through_the_transport() -> None:
    with open_transport("emulated:bq40z50?speed=0&seed=5&security=unsealed") as t:
        vp = gauge_of(t).vpack
        vp.load = ConstantCurrent(-7.0)  # above OCD1 (6 A, 6 s), below OCD2 (8 A)
        vp.advance(3)
        assert mac_word32(t, 0x0050) & (1 << 4)  # SafetyAlert[OCD1]
        assert t.read_word(BAT, 0x16) & 0x0800  # TDA while the alert is pending
        vp.advance(3)
        assert mac_word32(t, 0x0051) & (1 << 4)  # SafetyStatus[OCD1]
        op = mac_word32(t, 0x0054)
        assert op & (1 << 13) and not op & (1 << 1)  # XDSG set, DSG FET off
        assert op & (1 << 11)  # SS
        vp.advance(2)
        assert signed(t.read_word(BAT, 0x0A)) == 0  # the physics obeys the open FET
        vp.advance(60)
        assert mac_word32(t, 0x0051) & (1 << 4)  # no recovery without a reversal
        vp.load = ConstantCurrent(0.5)  # a charger: CHG FET is still on
        vp.advance(6)
        assert mac_word32(t, 0x0051) == 0
        assert mac_word32(t, 0x0054) & (1 << 1)  # DSG FET back on


def test_cell_undervoltage_trips_and_opens_dsg_then_recovers_at_rest() -> None:
    with open_transport("emulated:bq40z50?speed=0&seed=6&security=unsealed&soc=0.02") as t:
        vp = gauge_of(t).vpack
        vp.load = ConstantCurrent(-3.0)
        vp.run_until(lambda v: v.protections.tripped("CUV"), limit_s=1200)
        assert t.read_word(BAT, 0x16) & 0x0010  # FD (SafetyStatus[CUV])
        assert mac_word32(t, 0x0051) & 1
        vp.advance(2)
        assert signed(t.read_word(BAT, 0x0A)) == 0
        vp.load = Rest()
        vp.advance(120)  # an empty cell relaxes, but not above CUV:Recovery (3000 mV)
        assert mac_word32(t, 0x0051) & 1
        vp.load = ConstantCurrent(0.5)  # charging still flows (the CHG FET is on)
        vp.run_until(lambda v: min(v.gauge.measurement.cell_mv) >= 3000, limit_s=1800)
        vp.advance(1)
        assert not mac_word32(t, 0x0051) & 1


def test_undertemperature_in_discharge_from_a_cold_pack() -> None:
    with open_transport("emulated:bq40z50?speed=0&seed=7&security=unsealed&ambient=-10") as t:
        vp = gauge_of(t).vpack
        vp.advance(1)
        assert mac_word32(t, 0x0050) & (1 << 27)  # SafetyAlert[UTD]
        vp.advance(1)
        assert mac_word32(t, 0x0051) & (1 << 27)
        vp.load = ConstantCurrent(-1.0)
        vp.advance(5)
        assert signed(t.read_word(BAT, 0x0A)) == 0
        assert t.read_word(BAT, 0x14) == 0 and t.read_word(BAT, 0x15) == 0  # UT range: no charging


def test_permanent_failure_latches_and_only_full_access_resets_it() -> None:
    with open_transport("emulated:bq40z50?speed=0&seed=8&security=unsealed") as t:
        g = gauge_of(t)
        g.vpack.protections.params["SOV:Threshold"] = 3900  # below the present cells: a PF event
        g.vpack.advance(5)
        assert mac_word32(t, 0x0053) == 1 << 1  # PFStatus[SOV]
        op = mac_word32(t, 0x0054)
        assert op & (1 << 12) and not op & 0b110  # PF; CHG and DSG FETs off
        g.vpack.protections.params["SOV:Threshold"] = 4500
        g.vpack.advance(60)
        assert mac_word32(t, 0x0053) == 1 << 1  # latched
        t.write_word(BAT, 0x00, 0x0029)  # PermanentFailDataReset while only UNSEALED: refused
        assert mac_word32(t, 0x0053) == 1 << 1
        t.write_word(BAT, 0x00, 0xFFFF)
        t.write_word(BAT, 0x00, 0xFFFF)  # FULL ACCESS
        assert (mac_word32(t, 0x0054) >> 8) & 3 == 1
        t.write_word(BAT, 0x00, 0x0029)
        assert mac_word32(t, 0x0053) == 0
        assert mac_word32(t, 0x0054) & 0b110 == 0b110


def test_balancing_narrows_the_cell_spread_over_a_long_rest() -> None:
    from smartbatt.emulator.device import VirtualPack

    vp = VirtualPack(PackConfig(seed=9, soc_spread=0.02, initial_soc=0.85))
    vp.pack.balance_current_a = 0.2  # a pack with stronger bleed resistors keeps the test short
    spread0 = float(np.ptp(vp.pack.cell_soc))
    vp.advance(600)
    assert vp.pack.balancing.any()  # the gauge switched bleed resistors on
    vp.advance(2 * 3600)
    spread = float(np.ptp(vp.pack.cell_soc))
    assert spread < spread0 * 0.5, (spread0, spread)
    cells = vp.gauge.measurement.cell_mv
    assert max(cells) - min(cells) <= 4
