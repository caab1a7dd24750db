"""Alarm engine: each fault raises exactly its event, a normal drone flight raises none; latching,
acknowledge, gauge flags, limits-file validation.

Streams come from the emulator physics (smartbatt.emulator.pack + the ``drone`` scenario), measured
as a gauge would: 1 mV, 1 mA, 0.1 K steps. Faults are the pack's own fault hooks (internal short,
extra heat, hot ambient) or, for sensor faults, a corrupted reading in the sample stream.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from smartbatt.emulator.load import scenario
from smartbatt.emulator.pack import Pack, PackConfig
from smartbatt.errors import ProfileError, SmartBattError, UnknownEvent
from smartbatt.monitor.alarms import (
    AlarmEngine,
    AlarmLimits,
    GaugeFlagLimits,
    LinkLimit,
    Threshold,
    available_limits,
    dump_limits,
    events_summary,
    load_limits,
    read_limits_text,
    save_limits,
)
from smartbatt.monitor.sample import Event, Sample, SampleBus, Severity

T0 = 1_750_000_000.0
DRONE = "drone-4s-lipo"
STATUS_OK = {"BatteryStatus": 0x00C0, "SafetyAlert": 0, "SafetyStatus": 0, "PFAlert": 0, "PFStatus": 0}


def measure(pack: Pack, t: float, current: float) -> Sample:
    """What a gauge reports: quantised pack V, I, hottest-cell T, cell voltages, status words."""
    values = {
        "Voltage": round(pack.voltage, 3),
        "Current": round(current, 3),
        "Temperature": round(float(pack.cell_temperatures.max()), 1),
        "RelativeStateOfCharge": float(round(float(pack.cell_soc.mean()) * 100)),
    }
    for k, v in enumerate(pack.cell_voltages, 1):
        values[f"CellVoltage{k}"] = round(float(v), 3)
    return Sample(T0 + t, values, STATUS_OK)


def fly(
    seconds: int,
    *,
    limits: str | AlarmLimits = DRONE,
    flight: bool = True,
    seed: int = 1,
    ambient_c: float = 25.0,
    at: int | None = None,
    fault: Callable[[Pack], None] | None = None,
    corrupt: Callable[[int, Sample], Sample] | None = None,
) -> AlarmEngine:
    """Fly (or rest) a 4S 5 Ah LiCoO2 pouch pack for ``seconds`` at 1 Hz through an AlarmEngine."""
    pack = Pack(PackConfig(chemistry="lco", series=4, cell_capacity_ah=5.0, initial_soc=1.0, seed=seed,
                           ambient_c=ambient_c))  # fmt: skip
    load = scenario("drone", seed=seed) if flight else None
    engine = AlarmEngine(load_limits(limits) if isinstance(limits, str) else limits)
    for t in range(seconds):
        if t == at and fault is not None:
            fault(pack)
        current = load.current(float(t), pack) if load is not None else 0.0
        pack.step(1.0, current)
        sample = measure(pack, t, current)
        engine.feed(corrupt(t, sample) if corrupt is not None else sample)
    return engine


def raised(engine: AlarmEngine, after: float = 0.0, before: float = math.inf) -> list[tuple[str, str, str]]:
    """(code, source, severity) of the events raised in [after, before) seconds."""
    return events_summary(e for e in engine.log if after <= e.time - T0 < before)


# --- the faults, through the physics ---------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_normal_drone_flight_stays_quiet(seed: int):
    engine = fly(900 + 300, seed=seed)  # 15 min flight (6–8C bursts), 5 min rest after landing
    assert engine.log == []


def test_over_temperature_on_a_hot_day():
    engine = fly(1200, ambient_c=50.0)
    assert raised(engine) == [
        ("over_temperature", "Temperature", "warning"),
        ("over_temperature", "Temperature", "alarm"),
    ]  # the heating is what the load explains: no runaway precursor
    alarm = engine.log[1]
    assert alarm.limit == 60.0 and alarm.value > 60.0 and "over-temperature" in alarm.message


def test_internal_short_at_rest_is_a_sudden_cell_drop():
    # after the flight and 200 s of rest, cell 3 develops a 1 Ω internal short
    engine = fly(1100 + 30, at=1100, fault=lambda p: p.set_internal_short(2, 1.0))
    assert raised(engine) == [("cell_voltage_drop", "CellVoltage3", "critical")]
    drop = engine.log[0]
    assert drop.time - T0 == 1100 and drop.value > drop.limit == 20.0
    assert "internal short" in drop.message


def test_internal_short_then_heats_the_pack():
    # the same short left alone: the leak heats the cell, which the runaway rule catches next
    engine = fly(1100 + 90, at=1100, fault=lambda p: p.set_internal_short(2, 1.0))
    assert raised(engine) == [
        ("cell_voltage_drop", "CellVoltage3", "critical"),
        ("runaway_heating", "Temperature", "critical"),
    ]


def test_runaway_ramp_at_rest():
    # 5 W from nowhere inside cell 2 of a resting pack: ~3.3 K/min that no current explains
    engine = fly(300, flight=False, at=60, fault=lambda p: p.set_extra_heat(1, 5.0))
    assert raised(engine) == [("runaway_heating", "Temperature", "critical")]
    event = engine.log[0]
    assert 60 + 30 <= event.time - T0 <= 60 + 90  # a full window plus the hold time
    assert event.value > event.limit


def test_fast_heating_explained_by_load_is_not_runaway():
    # 8C continuous for 3 minutes heats fast (~10 K/min), all of it I²R
    engine = AlarmEngine(load_limits(DRONE))
    pack = Pack(PackConfig(chemistry="lco", series=4, cell_capacity_ah=5.0, initial_soc=1.0, seed=1))
    for t in range(180):
        pack.step(1.0, -40.0)
        engine.feed(measure(pack, t, -40.0))
    assert pack.cell_temperatures.max() > 40.0
    assert [e.code for e in engine.log if e.code == "runaway_heating"] == []


def _freeze(channel: str, since: int) -> Callable[[int, Sample], Sample]:
    held: dict[str, float] = {}

    def corrupt(t: int, s: Sample) -> Sample:
        if t < since:
            return s
        held.setdefault(channel, s.values[channel])
        return replace(s, values={**s.values, channel: held[channel]})

    return corrupt


def test_stuck_temperature_sensor_in_flight():
    engine = fly(900, corrupt=_freeze("Temperature", 200))
    assert raised(engine) == [("sensor_stale", "Temperature", "warning")]
    # 300 s after the reading last changed: at most 300 s after the freeze (the true value may
    # already have sat on the frozen 0.1 K step for a few seconds before it)
    assert 200 + 300 - 30 <= engine.log[0].time - T0 <= 200 + 300
    assert engine.log[0].value >= 300


def test_stuck_cell_voltage_in_flight():
    engine = fly(300, corrupt=_freeze("CellVoltage2", 200))
    assert raised(engine) == [("sensor_stale", "CellVoltage2", "warning")]
    assert 200 + 60 - 10 <= engine.log[0].time - T0 <= 200 + 60


def test_open_thermistor_is_a_stuck_sensor_not_an_under_temperature():
    def open_thermistor(t: int, s: Sample) -> Sample:
        return replace(s, values={**s.values, "Temperature": -273.1}) if t >= 100 else s

    engine = fly(200, corrupt=open_thermistor)
    assert raised(engine) == [("sensor_stuck", "Temperature", "alarm")]
    assert engine.log[0].time - T0 == 105  # after the 5 s delay
    assert engine.log[0].limit == -40.0


def test_lost_communication_from_failed_polls_and_recovery():
    def link_down(t: int, s: Sample) -> Sample:
        return Sample(s.time, {}, {}, missing=frozenset(s.values)) if 100 <= t < 110 else s

    engine = fly(130, corrupt=link_down)
    assert raised(engine) == [("lost_communication", "link", "alarm")]
    event = engine.log[0]
    # last good sample at t=99; 3 s timeout; raised with the first failed poll past it, cleared at 110
    assert event.time - T0 == 103 and event.cleared is not None and event.cleared - T0 == 110
    assert event.standing and not event.acknowledged  # latched: still shown until acknowledged


def test_lost_communication_when_samples_stop_arriving():
    engine = AlarmEngine(load_limits(DRONE))
    engine.feed(Sample(T0, {"Voltage": 16.0}))
    assert engine.check(T0 + 2.9) == []
    [event] = engine.check(T0 + 3.5)
    assert (event.code, event.value) == ("lost_communication", 3.5)
    assert engine.check(T0 + 10) == []  # still down: no duplicate
    [cleared] = engine.feed(Sample(T0 + 11, {"Voltage": 16.0}))
    assert cleared.id == event.id and cleared.cleared == T0 + 11


def test_a_gap_nobody_watched_is_logged_after_the_fact():
    engine = AlarmEngine(load_limits(DRONE))
    engine.feed(Sample(T0, {"Voltage": 16.0}))
    new = engine.feed(Sample(T0 + 20, {"Voltage": 16.0}))
    assert [(e.code, e.time - T0, e.cleared) for e in new] == [
        ("lost_communication", 3.0, None),
        ("lost_communication", 3.0, T0 + 20),
    ]


# --- threshold mechanics -----------------------------------------------------------------------------


def _temp_engine(**kw) -> AlarmEngine:
    limit = Threshold(
        warning=None, alarm=60.0, hysteresis=2.0, delay_s=kw.pop("delay_s", 0.0), latch=kw.pop("latch", None)
    )
    return AlarmEngine(AlarmLimits(over_temperature=limit, **kw))


def _feed_temps(engine: AlarmEngine, temps: list[float], current: float = -5.0, start: int = 0) -> list[Event]:
    out: list[Event] = []
    for i, temp in enumerate(temps, start):
        out += engine.feed(Sample(T0 + i, {"Temperature": temp, "Current": current}))
    return out


def test_hysteresis_prevents_chatter():
    engine = _temp_engine()
    events = _feed_temps(engine, [59.0, 60.5, 59.5, 60.2, 58.5, 60.1, 57.9, 57.0])
    # raised once at 60.5; 59.5 / 58.5 are inside the 2 K hysteresis; cleared at 57.9 (< 58)
    assert [(e.time - T0, e.cleared) for e in events] == [(1, None), (1, T0 + 6)]


def test_delay_debounces_short_spikes():
    engine = _temp_engine(delay_s=3.0)
    assert _feed_temps(engine, [61, 61, 59, 61, 61, 61]) == []  # never 3 s long
    events = _feed_temps(engine, [61, 61, 61, 61], start=6)
    assert len(events) == 1 and events[0].time - T0 == 6  # above since t=3, raised 3 s later


def test_latched_event_stands_until_acknowledged():
    engine = _temp_engine()
    _feed_temps(engine, [65.0, 50.0])
    [event] = engine.standing()
    assert not event.active and event.latched
    acked = engine.acknowledge(event.id, when=T0 + 100)
    assert acked.acknowledged and acked.ack_time == T0 + 100
    assert engine.standing() == []
    assert engine.acknowledge(event.id) == acked  # idempotent


def test_acknowledged_active_event_stands_until_it_clears():
    engine = _temp_engine()
    _feed_temps(engine, [65.0])
    event = engine.acknowledge(engine.log[0].id)
    assert event.standing and event.active
    _feed_temps(engine, [50.0], start=1)
    assert engine.standing() == []
    # a new excursion is a new event
    more = _feed_temps(engine, [70.0], start=2)
    assert more[0].id != event.id and not more[0].acknowledged


def test_latched_unacknowledged_event_that_returns_keeps_its_id():
    engine = _temp_engine()
    first = _feed_temps(engine, [65.0, 50.0, 66.0])
    assert [e.id for e in first] == [1, 1, 1]
    assert first[-1].active and len(engine.log) == 1


def test_unlatched_event_disappears_when_it_clears():
    engine = _temp_engine(latch=False)
    _feed_temps(engine, [65.0])
    assert len(engine.standing()) == 1
    _feed_temps(engine, [50.0], start=1)
    assert engine.standing() == [] and not engine.log[0].latched


def test_acknowledge_unknown_event_and_acknowledge_all():
    engine = _temp_engine()
    with pytest.raises(UnknownEvent) as err:
        engine.acknowledge(42)
    assert isinstance(err.value, SmartBattError) and "42" in str(err.value)
    _feed_temps(engine, [65.0, 50.0])
    assert [e.acknowledged for e in engine.acknowledge_all()] == [True]
    assert engine.standing() == []


def test_charge_only_temperature_rule():
    engine = AlarmEngine(AlarmLimits(charge_over_temperature=Threshold(alarm=45.0, hysteresis=1.0)))
    assert _feed_temps(engine, [50.0, 50.0], current=-3.0) == []  # discharging at 50 °C: fine
    events = _feed_temps(engine, [50.0], current=2.0, start=2)  # charging at 50 °C: not fine
    assert [(e.code, e.severity) for e in events] == [("charge_over_temperature", Severity.ALARM)]
    cleared = _feed_temps(engine, [50.0], current=-3.0, start=3)  # stops charging: condition gone
    assert cleared[0].cleared is not None


def test_missing_reading_neither_raises_nor_clears():
    engine = _temp_engine()
    _feed_temps(engine, [65.0])
    assert engine.feed(Sample(T0 + 5, {"Current": -1.0}, missing=frozenset({"Temperature"}))) == []
    assert engine.log[0].active


def test_tiers_and_imbalance():
    limits = AlarmLimits(cell_over_voltage=Threshold(warning=4.22, alarm=4.25, critical=4.30))
    engine = AlarmEngine(limits)
    engine.feed(Sample(T0, {"CellVoltage1": 4.20, "CellVoltage2": 4.26}))
    assert raised(engine) == [
        ("cell_over_voltage", "CellVoltage2", "warning"),
        ("cell_over_voltage", "CellVoltage2", "alarm"),
    ]
    assert "4.26 V above 4.25 V" in engine.log[1].message


# --- gauge flags ------------------------------------------------------------------------------------


def test_gauge_flags_name_their_bits():
    engine = AlarmEngine(load_limits("default"), bit_names={"SafetyStatus": {12: "OTC"}})
    events = engine.feed(Sample(T0, {"Voltage": 16.0}, {"SafetyStatus": (1 << 12) | (1 << 3), "BatteryStatus": 0x08C0}))
    assert sorted(events_summary(events)) == [
        ("BatteryStatus.TDA", "BatteryStatus", "warning"),
        ("SafetyStatus.OTC", "SafetyStatus", "alarm"),
        ("SafetyStatus.bit3", "SafetyStatus", "alarm"),
    ]
    tda = next(e for e in events if e.code == "BatteryStatus.TDA")
    assert "terminate-discharge" in tda.message and tda.value == 0x08C0
    # INIT/DSG (bits 7, 6) and the error code are not alarms; clearing a bit clears its event
    cleared = engine.feed(Sample(T0 + 1, {"Voltage": 16.0}, {"SafetyStatus": 1 << 12, "BatteryStatus": 0x00C7}))
    assert sorted((e.code, e.active) for e in cleared) == [("BatteryStatus.TDA", False), ("SafetyStatus.bit3", False)]


def test_pf_status_is_critical_and_unconfigured_words_are_ignored():
    limits = AlarmLimits(gauge_flags=GaugeFlagLimits(words={"PFStatus": Severity.CRITICAL}))
    engine = AlarmEngine(limits)
    events = engine.feed(Sample(T0, {"Voltage": 1.0}, {"PFStatus": 1 << 19, "OperationStatus": 0xFFFF}))
    assert events_summary(events) == [("PFStatus.bit19", "PFStatus", "critical")]


# --- bus integration ---------------------------------------------------------------------------------


def test_engine_on_a_bus_publishes_events_for_the_recorder():
    got: list[Event] = []
    with SampleBus() as bus:
        engine = AlarmEngine(
            AlarmLimits(lost_communication=LinkLimit(timeout_s=1.0), over_temperature=Threshold(alarm=60.0))
        )
        engine.attach(bus)
        bus.subscribe(got.append, name="log", accept=(Event,))
        bus.publish(Sample(T0, {"Temperature": 70.0}, session_id=7))
        bus.publish(Sample(T0 + 1, {"Temperature": 20.0}, session_id=7))
        assert bus.wait_idle(5.0)
        engine.acknowledge(1)
        assert bus.wait_idle(5.0)
    assert [(e.id, e.active, e.acknowledged, e.session_id) for e in got] == [
        (1, True, False, 7),
        (1, False, False, 7),
        (1, False, True, 7),
    ]


def test_on_event_callback_and_first_id():
    seen: list[int] = []
    engine = AlarmEngine(
        AlarmLimits(over_temperature=Threshold(alarm=60.0)), on_event=lambda e: seen.append(e.id), first_id=100
    )
    engine.feed(Sample(T0, {"Temperature": 70.0}))
    assert seen == [100]


# --- limits files ------------------------------------------------------------------------------------


def test_shipped_limits_files_load_and_round_trip(tmp_path: Path):
    names = available_limits()
    assert {"default", "drone-4s-lipo", "laptop-3s", "powertool-5s-lfp"} <= set(names)
    for name in names:
        limits = load_limits(name)
        assert limits.name == name
        path = tmp_path / f"{name}.toml"
        save_limits(limits, path)
        assert load_limits(path) == limits
    assert load_limits(DRONE).cell_under_voltage == Threshold(
        warning=3.0, alarm=2.75, critical=None, hysteresis=0.05, delay_s=5.0
    )


BASE = 'schema_version = 1\nname = "t"\n'


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ("name = 'x'\n", "schema_version", "missing"),
        ("schema_version = 2\n", "schema_version", "unsupported version 2"),
        ("schema_version = true\n", "schema_version", "unsupported"),
        (BASE + "colour = 'red'\n", "colour", "unknown key"),
        (BASE + "[cell_overvoltage]\nalarm = 4.2\n", "cell_overvoltage", "unknown section"),
        (BASE + "[cell_over_voltage]\nalarm = '4.2'\n", "cell_over_voltage.alarm", "finite number"),
        (BASE + "[cell_over_voltage]\nalarm = true\n", "cell_over_voltage.alarm", "finite number"),
        (BASE + "[cell_over_voltage]\nalarm = nan\n", "cell_over_voltage.alarm", "finite number"),
        (BASE + "[cell_over_voltage]\nhysteresis = 0.1\n", "cell_over_voltage", "at least one of"),
        (BASE + "[cell_over_voltage]\nwarning = 4.3\nalarm = 4.2\n", "cell_over_voltage.alarm", "above or equal"),
        (BASE + "[cell_under_voltage]\nwarning = 2.5\nalarm = 3.0\n", "cell_under_voltage.alarm", "below or equal"),
        (BASE + "[cell_over_voltage]\nalarm = 4.2\nhysteresis = -1\n", "cell_over_voltage.hysteresis", "must be in"),
        (BASE + "[cell_over_voltage]\nalarm = 4.2\nlatch = 1\n", "cell_over_voltage.latch", "true or false"),
        (BASE + "[cell_over_voltage]\nalarm = 4.2\ndelays = 1\n", "cell_over_voltage.delays", "unknown key"),
        (BASE + "[runaway_heating]\nseverity = 'fatal'\n", "runaway_heating.severity", "unknown severity"),
        (BASE + "[runaway_heating]\nwindow_s = 1\n", "runaway_heating.window_s", "must be in"),
        (BASE + "[sensor_stuck]\ntemperature_c = [120, -40]\n", "sensor_stuck.temperature_c", "low must be below"),
        (BASE + "[sensor_stuck]\ntemperature_c = [1]\n", "sensor_stuck.temperature_c", "[low, high]"),
        (BASE + "[sensor_stale]\nchannels = []\n", "sensor_stale.channels", "non-empty list"),
        (BASE + "[gauge_flags]\nPFStatus = 'loud'\n", "gauge_flags.PFStatus", "unknown severity"),
        (BASE + "[gauge_flags.BatteryStatus]\nXYZ = 'alarm'\n", "gauge_flags.BatteryStatus.XYZ", "unknown key"),
        (BASE + "conditions = 3\n", "conditions", "unknown key"),
        (BASE + "cells = 0\n", "cells", "must be in"),
        ("schema_version = 1\n[broken\n", "", "not valid TOML"),
    ],
)
def test_bad_limits_name_the_key(text: str, key: str, reason: str):
    with pytest.raises(ProfileError) as err:
        read_limits_text(text, "bad.toml")
    assert err.value.file == "bad.toml"
    assert err.value.key_path == key
    assert reason in err.value.reason


def test_load_limits_errors(tmp_path: Path):
    with pytest.raises(ProfileError, match="no such limits file; shipped: default"):
        load_limits("no-such-pack")
    (tmp_path / "latin1.toml").write_bytes(b"name = '\xe9'\n")
    with pytest.raises(ProfileError, match="not UTF-8"):
        load_limits(tmp_path / "latin1.toml")
    with pytest.raises(ProfileError, match="cannot read"):
        load_limits(tmp_path / "missing.toml")
    with pytest.raises(ProfileError, match="cannot write"):
        save_limits(load_limits("default"), tmp_path / "no-dir" / "x.toml")


def test_dump_is_readable_toml():
    text = dump_limits(load_limits(DRONE))
    assert "[gauge_flags.BatteryStatus]" in text and 'severity = "critical"' in text
    assert read_limits_text(text) == load_limits(DRONE)


def test_event_log_is_persisted_through_the_recorder(tmp_path: Path):
    from smartbatt.monitor.store import Recorder, Store

    path = tmp_path / "rec.db"
    with Store(path) as store:
        sid = store.start_session(started=T0)
    with SampleBus() as bus:
        engine = AlarmEngine(load_limits(DRONE), first_id=1)
        engine.attach(bus)
        recorder = Recorder(path, sid)
        recorder.attach(bus)
        for i, temp in enumerate([30.0, 62.0, 62.0, 62.0, 40.0]):
            bus.publish(Sample(T0 + i, {"Temperature": temp, "Current": -1.0}, session_id=sid))
        assert bus.wait_idle(5.0)
        engine.acknowledge_all(when=T0 + 10)
        assert bus.wait_idle(5.0)
        recorder.close()
    with Store(path, readonly=True) as store:
        logged = store.events(session_id=sid)
        assert store.count(sid) == 5
    assert [(e.code, e.severity, e.cleared is not None, e.acknowledged) for e in logged] == [
        ("over_temperature", Severity.WARNING, True, True),
        ("over_temperature", Severity.ALARM, True, True),
    ]
