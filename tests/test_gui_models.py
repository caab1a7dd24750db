"""The app model against the emulated pack, headless (pytest-qt, no window): connect, data, alarms,
register and threshold writes, link loss and recovery, record and replay, the bus monitor.

Every wait is for a condition with a timeout; nothing sleeps.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gui.app_model import AppModel
from gui.models.alarms import AlarmsModel, event_key
from gui.models.busmon import BusFilter, BusMonitorModel
from gui.models.connection import Link, snapshot
from gui.models.flags import FlagsModel
from gui.settings import DeviceChoice, Settings
from gui.tasks import TaskRunner
from smartbatt.emulator.factory import emulated_profile
from smartbatt.errors import NoAcknowledge
from smartbatt.monitor.alarms import load_limits, read_limits_text
from smartbatt.monitor.sample import Event, Sample, Severity
from smartbatt.profiles.loader import load_profile
from smartbatt.profiles.schema import SecurityLevel
from smartbatt.sbs.commands import sbs_table
from smartbatt.transports.txlog import SMBusProtocol, TransactionRecord

WAIT_MS = 10_000


@pytest.fixture
def model(qtbot, tmp_path: Path) -> Iterator[AppModel]:
    settings = Settings(tmp_path / "settings.ini")
    settings.set_recordings_path(tmp_path / "recordings.db")
    app_model = AppModel(settings, fast_hz=4.0, medium_hz=4.0, reconnect_s=0.2, identity_check_s=0.5)
    yield app_model
    app_model.shutdown()


def connect(qtbot, model: AppModel, uri: str, samples: int = 2) -> None:
    model.connect_device(DeviceChoice(uri))
    qtbot.waitUntil(lambda: model.connection.state.link is Link.CONNECTED, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: model.live.received >= samples, timeout=WAIT_MS)


def test_connect_and_data_arrive_in_the_live_model(qtbot, model):
    seen: list[Sample] = []
    model.live.sample_changed.connect(seen.append)
    connect(qtbot, model, "emulated:?speed=0")
    qtbot.waitUntil(lambda: bool(seen), timeout=WAIT_MS)
    state = model.connection.state
    assert state.identity is not None and state.identity.device_name == "EMU-4S3000"
    qtbot.waitUntil(lambda: model.connection.profile is not None, timeout=WAIT_MS)
    assert model.connection.profile.name == "bq40z50"  # from the emulator's URI, not generic SBS
    sample = seen[-1]
    assert 10.0 < sample.get("Voltage") < 18.0  # type: ignore[operator]
    assert len(sample.cells()) == 4
    assert {"Voltage", "Current", "Power", "CellVoltage1"} <= set(model.live.history.channels)
    assert model.settings.recent_devices()[0].uri == "emulated:?speed=0"


def test_bad_uri_is_one_sentence_not_a_reconnect_loop(qtbot, model):
    errors: list[str] = []
    model.error.connect(errors.append)
    model.connect_device(DeviceChoice("nosuchadapter:1"))
    qtbot.waitUntil(lambda: bool(errors), timeout=WAIT_MS)
    assert "nosuchadapter" in errors[0] and "\n" not in errors[0]
    assert model.connection.state.link is Link.DISCONNECTED
    assert model.connection.poller is None


def test_a_fault_shows_as_an_alarm_and_is_acknowledged(qtbot, model):
    connect(qtbot, model, "emulated:?speed=1&security=unsealed&scenario=idle")
    qtbot.waitUntil(lambda: model.emulator.available, timeout=WAIT_MS)
    model.emulator.inject("short_circuit")

    def short_alarm() -> list[Event]:
        return [e for e in model.alarms.standing() if e.code.startswith("SafetyStatus.")]

    qtbot.waitUntil(lambda: bool(short_alarm()), timeout=WAIT_MS)
    event = short_alarm()[0]
    assert event.severity >= Severity.ALARM and "SafetyStatus" in event.message
    model.alarms.acknowledge(event_key(event))
    qtbot.waitUntil(
        lambda: model.alarms._events[event_key(event)].acknowledged, timeout=WAIT_MS
    )


def test_register_write_is_verified_and_range_checked(qtbot, model):
    connect(qtbot, model, "emulated:?speed=0")
    written: list[Any] = []
    failed: list[Any] = []
    model.registers.written.connect(written.append)
    model.registers.write_failed.connect(failed.append)
    cmd = sbs_table().by_name("RemainingCapacityAlarm")
    model.registers.write(cmd, "sbs", 420)
    qtbot.waitUntil(lambda: bool(written), timeout=WAIT_MS)
    assert written[0].reading.value == 420
    model.registers.write(cmd, "sbs", -5)
    qtbot.waitUntil(lambda: bool(failed), timeout=WAIT_MS)
    assert "RemainingCapacityAlarm" in failed[0].message
    model.registers.refresh()
    qtbot.waitUntil(lambda: not model.registers.busy and any(r.reading for r in model.registers.rows), timeout=WAIT_MS)
    row = next(r for r in model.registers.rows if r.command.name == "RemainingCapacityAlarm")
    assert row.reading is not None and row.reading.value == 420


def test_threshold_write_is_verified_and_refused_when_sealed(qtbot, model):
    connect(qtbot, model, "emulated:bq4050?speed=0")
    gauge = model.gauge
    qtbot.waitUntil(lambda: gauge.security.level is SecurityLevel.SEALED, timeout=WAIT_MS)
    entry = load_profile("bq4050").df_entry("Protections:CUV:Threshold")
    errors: list[Any] = []
    gauge.error.connect(errors.append)
    gauge.write_entry(entry, 2600)
    qtbot.waitUntil(lambda: bool(errors), timeout=WAIT_MS)
    assert "SEALED" in errors[0].message or "sealed" in errors[0].message
    gauge.unseal(None)
    qtbot.waitUntil(lambda: gauge.security.level is SecurityLevel.UNSEALED, timeout=WAIT_MS)
    gauge.read_thresholds()
    qtbot.waitUntil(lambda: any(r.value is not None for r in gauge.rows), timeout=WAIT_MS)
    old = next(r.value for r in gauge.rows if r.entry.key == entry.key)
    new = 2650 if old != 2650 else 2700
    written: list[Any] = []
    gauge.entry_written.connect(written.append)
    gauge.write_entry(entry, new)
    qtbot.waitUntil(lambda: bool(written), timeout=WAIT_MS)
    assert written[0].value == new  # the value read back after the write
    assert next(r.value for r in gauge.rows if r.entry.key == entry.key) == new


def test_record_then_replay_and_scrub(qtbot, model, tmp_path):
    connect(qtbot, model, "emulated:?speed=10&scenario=laptop")
    model.start_recording()
    qtbot.waitUntil(lambda: model.recording.state.active, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: model.recording.samples_written() >= 4, timeout=WAIT_MS)
    model.recording.stop()
    qtbot.waitUntil(lambda: not model.recording.state.active and model.recording.state.samples >= 4, timeout=WAIT_MS)
    sessions: list[Any] = []
    model.recording.sessions_listed.connect(sessions.append)
    model.recording.list_sessions()
    qtbot.waitUntil(lambda: bool(sessions) and bool(sessions[-1]), timeout=WAIT_MS)
    session = sessions[-1][0]
    assert session.samples >= 4
    loaded: list[Any] = []
    model.recording.replay_loaded.connect(loaded.append)
    model.recording.open_session(session)
    qtbot.waitUntil(lambda: bool(loaded), timeout=WAIT_MS)
    model.live.load_replay(loaded[0])
    assert model.live.history is model.live.replay_history and len(model.live.history) == session.samples
    t = loaded[0].window.t
    scrubbed = model.live.scrub(float(t[1]))
    assert scrubbed is not None and scrubbed.time == float(t[1]) and scrubbed.get("Voltage") is not None
    assert model.live.current() is scrubbed
    model.live.close_replay()
    assert model.live.history is model.live.live
    out = tmp_path / "session.csv"
    done: list[Any] = []
    model.recording.exported.connect(done.append)
    model.recording.export_csv(session.id, out)
    qtbot.waitUntil(lambda: bool(done), timeout=WAIT_MS)
    assert out.read_text().splitlines()[0].startswith("time,unix_s")


def test_bus_monitor_sees_transactions_and_filters(qtbot, model):
    connect(qtbot, model, "emulated:?speed=0")
    qtbot.waitUntil(lambda: model.busmon.rowCount() > 10, timeout=WAIT_MS)
    proxy = BusFilter()
    proxy.setSourceModel(model.busmon)
    proxy.set_text("read_word 0x09")
    assert 0 < proxy.rowCount() < model.busmon.rowCount()
    proxy.set_errors_only(True)
    assert proxy.rowCount() == 0  # a healthy bus


def test_bus_monitor_rows_are_bounded_and_errors_shown(qtbot, monkeypatch):
    from gui.models import busmon

    monkeypatch.setattr(busmon, "MAX_ROWS", 50)
    monitor = BusMonitorModel()
    for k in range(120):
        monitor.on_transaction(
            TransactionRecord(float(k), 0x0B, SMBusProtocol.READ_WORD, 0x09, b"", b"\x80\x3e", True,
                              "ok" if k % 10 else "NoAcknowledge", "" if k % 10 else "no acknowledge", 1e-4)
        )  # fmt: skip
    monitor.log_error("Write X: failed", "the whole story", 200.0)
    monitor.drain()
    assert monitor.rowCount() == 50 and monitor.total == 121
    last = monitor.rows[-1]
    assert last.source == "app" and last.cells()[2] == "app error"
    proxy = BusFilter()
    proxy.setSourceModel(monitor)
    proxy.set_errors_only(True)
    assert proxy.rowCount() == 1 + sum(1 for r in list(monitor.rows)[:-1] if not r.ok)


def test_flags_model_logs_what_changed():
    flags = FlagsModel()
    flags.set_profile(load_profile("bq40z50"))
    bits = {f.name: f.bit for f in flags.profile.bitfields["SafetyStatus"].flags}
    flags.update(Sample(1.0, {}, {"SafetyStatus": 0, "BatteryStatus": 0x00C0}))
    assert not flags.changes
    flags.update(Sample(2.0, {}, {"SafetyStatus": 1 << bits["OTD"], "BatteryStatus": 0x00C0}))
    assert [(c.change.register, c.change.name, c.change.raised, c.time) for c in flags.changes] == [
        ("SafetyStatus", "OTD", True, 2.0)
    ]
    assert flags.registers["SafetyStatus"]["OTD"]
    assert "temperature" in flags.descriptions("SafetyStatus")["OTD"].lower()


def test_alarms_model_keys_poller_and_engine_events_apart(qtbot):
    alarms = AlarmsModel(read_limits_text("schema_version = 1\nname = 'none'\n"))
    engine_event = Event(1, 10.0, Severity.ALARM, "Temperature", "over_temperature", "hot", latched=True)
    lost = Event(1, 11.0, Severity.WARNING, "link", "link_lost", "lost")
    alarms._on_event(engine_event)
    alarms._on_event(lost)
    alarms.drain()
    assert len(alarms.events()) == 2  # same id, different producers
    assert [e.code for e in alarms.standing()] == ["over_temperature", "link_lost"]
    alarms._on_event(Event(2, 12.0, Severity.INFO, "link", "link_restored", "back"))
    alarms.drain()
    codes = {e.code: e for _, e in alarms.events()}
    assert not codes["link_lost"].active and not codes["link_restored"].standing
    alarms.acknowledge(("engine", 1))  # no engine attached: acknowledged locally
    assert codes["over_temperature"].id == 1 and alarms._events[("engine", 1)].acknowledged
    alarms.clear_inactive()
    assert len(alarms.events()) == 1


def test_status_snapshot_and_emulated_profile_are_defensive():
    class Status:
        link = "lost"
        device = "emulated:"
        last_error = "gone"

    state = snapshot(Status())
    assert state.link is Link.LOST and state.active and state.samples == 0
    assert emulated_profile("emulated:bq4050?speed=0") == "bq4050"
    assert emulated_profile("emulated:") == "bq40z50"
    assert emulated_profile("emulated:?model=static") == ""
    assert emulated_profile("i2c:1") == ""
    assert emulated_profile("::bad") == ""
    assert emulated_profile("emulated:bq99") == ""  # not an emulated chip: detection decides


def test_task_errors_are_one_sentence(qtbot):
    runner = TaskRunner()
    results: list[Any] = []
    runner.submit("read", lambda: 42, results.append)
    runner.submit("nack", _raise_nack, None, results.append)
    runner.submit("bug", lambda: 1 / 0, None, results.append)
    qtbot.waitUntil(lambda: len(results) == 3, timeout=WAIT_MS)
    assert 42 in results
    errors = [r for r in results if r != 42]
    by_what = {e.what: e for e in errors}
    assert by_what["nack"].expected and by_what["nack"].message.startswith("nack: ")
    assert not by_what["bug"].expected and "ZeroDivisionError" in by_what["bug"].message
    assert "Traceback" in by_what["bug"].detail
    runner.shutdown(wait=True)
    assert runner.submit("late", lambda: 1) is None


def _raise_nack() -> None:
    raise NoAcknowledge("no acknowledge at byte 0", byte_index=0)


def test_settings_round_trip_and_survive_damage(tmp_path):
    settings = Settings(tmp_path / "s.ini")
    for k in range(12):
        settings.remember_device(DeviceChoice(f"emulated:?seed={k}"))
    recent = settings.recent_devices()
    assert len(recent) == 8 and recent[0].uri == "emulated:?seed=11"
    settings.qs.setValue("devices/recent", "{not json")
    settings.qs.setValue("display/units", '{"temperature": "R"}')
    assert settings.recent_devices() == []
    assert settings.units().temperature == "C"
    settings.set_hidden_series({"Current"})
    assert Settings(tmp_path / "s.ini").hidden_series() == {"Current"}
    with pytest.raises(ValueError):
        DeviceChoice("no-scheme")
    with pytest.raises(ValueError):
        DeviceChoice("emulated:", address=0x80)


def test_limits_apply_to_the_running_engine(qtbot, model):
    connect(qtbot, model, "emulated:?speed=0")
    assert model.alarms.engine is not None
    tight = load_limits("default")
    from dataclasses import replace

    from smartbatt.monitor.alarms import Threshold

    tight = replace(tight, over_temperature=Threshold(warning=0.0))
    model.set_limits("tight", tight)
    assert model.alarms.engine.limits is tight
    qtbot.waitUntil(lambda: any(e.code == "over_temperature" for e in model.alarms.standing()), timeout=WAIT_MS)
    assert model.settings.limits_name() == "tight"


def test_a_lost_link_recovers_by_itself_and_recording_loses_nothing(qtbot, model):
    connect(qtbot, model, "emulated:?speed=0")
    model.start_recording()
    qtbot.waitUntil(lambda: model.recording.state.active, timeout=WAIT_MS)
    received_at_start = model.live.received
    qtbot.waitUntil(lambda: model.recording.samples_written() >= 2, timeout=WAIT_MS)
    session = model.recording.state.session_id
    model.emulator.unplug(0.8)
    qtbot.waitUntil(lambda: model.connection.state.link is Link.LOST, timeout=WAIT_MS)
    written_during_outage = model.recording.samples_written()
    qtbot.waitUntil(lambda: model.connection.state.link is Link.CONNECTED, timeout=WAIT_MS)
    received_after = model.live.received
    qtbot.waitUntil(lambda: model.live.received >= received_after + 3, timeout=WAIT_MS)
    received_at_stop = model.live.received
    model.recording.stop()
    qtbot.waitUntil(lambda: not model.recording.state.active and model.recording.state.samples > 0, timeout=WAIT_MS)
    assert model.recording.state.session_id == session  # one session across the outage
    qtbot.waitUntil(lambda: "link_restored" in [e.code for _, e in model.alarms.events()], timeout=WAIT_MS)
    lost = next(e for _, e in model.alarms.events() if e.code == "link_lost")
    assert "lost communication" in lost.message and not lost.active  # cleared by the restoration
    assert model.recording.state.samples >= written_during_outage + 3
    # every sample published while recording was written (±1 at each boundary: the recorder
    # attaches and detaches on other threads while samples keep arriving)
    assert abs(model.recording.state.samples - (received_at_stop - received_at_start)) <= 2


def test_independent_estimate_appears_with_a_cell_model(qtbot, model, tmp_path):
    from tests.test_gui_data import _cell_model

    path = tmp_path / "cell.json"
    _cell_model().save(path)
    connect(qtbot, model, "emulated:?speed=0")
    # no model of the user's: the generic model for the pack's chemistry (LION → NMC) runs
    qtbot.waitUntil(lambda: "generic" in model.estimate_status(), timeout=WAIT_MS)
    assert model.live.estimator is not None and model.live.estimator.model.chemistry == "nmc"
    assert model.live.estimator.model.capacity_ah == pytest.approx(3.0)  # the pack's DesignCapacity
    model.load_cell_model(path)
    qtbot.waitUntil(lambda: "test cell" in model.estimate_status(), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: "est_soc" in (model.live.latest.values if model.live.latest else {}), timeout=WAIT_MS)
    latest = model.live.latest
    assert latest is not None
    assert 0.0 <= latest.values["est_soc"] <= 100.0 and latest.values["est_soc_sigma"] > 0
    assert latest.values["est_sop_discharge_10s_w"] > 0
    assert "est_soc" in model.live.history.channels
    assert "4 cells in series" in model.estimate_status()
    assert model.settings.cell_model_path() == path
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    errors: list[str] = []
    model.error.connect(errors.append)
    model.load_cell_model(bad)
    qtbot.waitUntil(lambda: bool(errors), timeout=WAIT_MS)
    assert "bad.json" in errors[0]


def test_unseal_key_is_never_stored_or_shown(qtbot, model, tmp_path):
    connect(qtbot, model, "emulated:bq4050?speed=0")
    gauge = model.gauge
    qtbot.waitUntil(lambda: gauge.security.level is SecurityLevel.SEALED, timeout=WAIT_MS)
    key = "0x04143672"  # the TI default, typed by the user
    gauge.unseal(key)
    qtbot.waitUntil(lambda: gauge.security.level is SecurityLevel.UNSEALED, timeout=WAIT_MS)
    model.busmon.drain()
    key_bytes = {"14 04", "72 36"}  # the two key words as they go on the wire (LE)
    sent = [" ".join(r.cells()[4:6]) for r in model.busmon.rows if r.source == "bus"]
    assert not [s for s in sent if any(k in s for k in key_bytes)]
    model.settings.sync()
    stored = (tmp_path / "settings.ini").read_text()
    assert "0414" not in stored and "3672" not in stored and "04143672" not in stored
    wrong: list[Any] = []
    gauge.error.connect(wrong.append)
    gauge.seal()
    qtbot.waitUntil(lambda: gauge.security.level is SecurityLevel.SEALED, timeout=WAIT_MS)
    gauge.unseal("0x11112222")
    qtbot.waitUntil(lambda: bool(wrong), timeout=WAIT_MS)
    assert "wrong key" in wrong[0].message and "1111" not in wrong[0].message


def test_a_swapped_pack_gets_a_recording_session_of_its_own(qtbot, model):
    from gui import emulator_control as emu

    connect(qtbot, model, "emulated:?speed=0")
    model.start_recording()
    qtbot.waitUntil(lambda: model.recording.samples_written() >= 1, timeout=WAIT_MS)
    first = model.recording.state.session_id

    def swap(battery: Any) -> None:
        emu.gauge_of(battery)[1].identity.serial_number = 0x4321

    model.connection.call("swap the pack", swap)
    qtbot.waitUntil(
        lambda: model.recording.state.active and model.recording.state.session_id != first, timeout=WAIT_MS
    )
    assert model.connection.state.identity.serial_number == 0x4321
    qtbot.waitUntil(lambda: "pack_changed" in [e.code for _, e in model.alarms.events()], timeout=WAIT_MS)
