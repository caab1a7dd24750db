"""The polling scheduler against the emulated pack: samples, read-only, rates, budget, errors,
reconnect, hot-plug, pack swap and calls on the I/O thread. Waits on conditions, never sleeps blind."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from smartbatt.emulator import build_bus
from smartbatt.emulator.faults import BusFaults
from smartbatt.emulator.register_file import DEFAULT_WORDS, RegisterFileDevice
from smartbatt.emulator.target import EmulatedBus, SMBusTarget
from smartbatt.errors import AdapterGone, NoAcknowledge
from smartbatt.monitor.poller import GAUGE_MAX_HZ, LinkState, Poller
from smartbatt.monitor.sample import Event, Sample, SampleBus
from smartbatt.transports import TransactionRecord, Transport
from smartbatt.transports.emulated import EmulatedTransport
from smartbatt.transports.retry import RetryPolicy
from smartbatt.transports.txlog import SMBusProtocol

READS = {SMBusProtocol.READ_WORD, SMBusProtocol.READ_BLOCK, SMBusProtocol.READ_BYTE, SMBusProtocol.QUICK}


def wait_for(cond: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


class Rig:
    """A poller whose transports all reach one target through one switchable fault set."""

    def __init__(self, target: SMBusTarget, **poller_kw: Any) -> None:
        self.target = target
        self.faults = BusFaults()
        self.transports: list[Transport] = []
        self.samples: list[Sample] = []
        self.events: list[Event] = []
        self.bus = SampleBus()
        self.bus.subscribe(self._collect, accept=(Sample, Event))
        kw: dict[str, Any] = {"fast_hz": 20.0, "allow_fast": True, "reconnect_s": 0.02, "identity_check_s": 0.05}
        kw.update(poller_kw)
        self.poller = Poller("emulated:test", self.bus, opener=self._open, **kw)

    def _collect(self, item: object) -> None:
        (self.samples if isinstance(item, Sample) else self.events).append(item)  # type: ignore[arg-type]

    def _open(self, uri: str) -> Transport:
        transport = EmulatedTransport(self.target, faults=self.faults)
        transport.retry = RetryPolicy(attempts=2, backoff_s=0.0)
        self.transports.append(transport)
        return transport

    def codes(self) -> list[str]:
        return [e.code for e in self.events]


@pytest.fixture
def physics() -> Iterator[Rig]:
    rig = Rig(build_bus("bq40z50", {"speed": "50", "scenario": "drone", "security": "unsealed"}), profile="bq40z50")
    yield rig
    rig.poller.stop()
    rig.bus.close()


def test_samples_carry_every_channel_in_display_units(physics: Rig) -> None:
    physics.poller.start()
    wait_for(lambda: len(physics.samples) >= 3)
    sample = physics.samples[-1]
    assert 12.0 < sample.values["Voltage"] < 17.0  # V, 4S pack
    assert sample.values["Current"] < 0  # drone scenario discharges: SBS sign, A
    assert 15.0 < sample.values["Temperature"] < 60.0  # °C
    cells = sample.cells()
    assert len(cells) == 4 and all(3.0 < v < 4.3 for v in cells)
    assert sum(cells) == pytest.approx(sample.values["Voltage"], abs=0.05)
    assert 0 <= sample.values["RelativeStateOfCharge"] <= 100
    assert {"BatteryStatus", "SafetyStatus", "PFStatus", "OperationStatus"} <= set(sample.status)
    status = physics.poller.status
    assert status.link is LinkState.CONNECTED
    assert status.identity is not None and status.identity.cells == 4 and status.identity.profile == "bq40z50"


def test_monitoring_never_writes_to_the_pack(physics: Rig) -> None:
    records: list[TransactionRecord] = []
    physics.poller.add_transaction_listener(records.append)
    physics.poller.start()
    wait_for(lambda: len(physics.samples) >= 5)
    physics.poller.stop()
    assert records, "the listener saw the polling traffic"
    assert {r.protocol for r in records} <= READS


def test_fast_rate_is_capped_at_the_gauge_update_rate_unless_asked() -> None:
    bus = SampleBus()
    try:
        assert Poller("emulated:", bus, fast_hz=50.0).requested_fast_hz == GAUGE_MAX_HZ
        assert Poller("emulated:", bus, fast_hz=50.0, allow_fast=True).requested_fast_hz == 50.0
        with pytest.raises(ValueError, match="bus_budget"):
            Poller("emulated:", bus, bus_budget=0)
    finally:
        bus.close()


def test_schedule_that_does_not_fit_the_bus_budget_is_slowed_and_reported() -> None:
    rig = Rig(
        build_bus("bq40z50", {"speed": "0", "security": "unsealed"}), profile="bq40z50", fast_hz=200.0, bus_budget=0.05
    )
    try:
        rig.poller.start()
        wait_for(lambda: rig.poller.status.link is LinkState.CONNECTED)
        status = rig.poller.status
        assert status.over_budget and status.bus_load > 1.0
        assert status.fast_hz < 200.0
        wait_for(lambda: "over_budget" in rig.codes())
    finally:
        rig.poller.stop()
        rig.bus.close()


def test_transient_errors_become_missing_channels_not_crashes(physics: Rig) -> None:
    physics.faults.nack_rate = 0.3
    physics.faults.seed = 3
    physics.poller.start()
    wait_for(lambda: len(physics.samples) >= 20)
    assert physics.poller.status.missing > 0
    assert any(s.missing for s in physics.samples)
    assert physics.poller.status.link is LinkState.CONNECTED


def test_lost_link_is_reported_and_recovers_by_itself(physics: Rig) -> None:
    physics.poller.start()
    wait_for(lambda: len(physics.samples) >= 2)
    physics.faults.stuck = True
    wait_for(lambda: physics.poller.status.link is not LinkState.CONNECTED)
    wait_for(lambda: "link_lost" in physics.codes())
    assert "bus stuck" in physics.poller.status.last_error
    with pytest.raises(AdapterGone):
        physics.poller.call(lambda battery: battery.voltage, timeout=2.0)
    physics.faults.stuck = False
    wait_for(lambda: "link_restored" in physics.codes())
    before = len(physics.samples)
    wait_for(lambda: len(physics.samples) > before)
    assert physics.poller.status.link is LinkState.CONNECTED
    assert all(t.closed for t in physics.transports[:-1]), "each lost transport was closed"


def test_pack_inserted_after_start_up_is_picked_up() -> None:
    bus = EmulatedBus()
    rig = Rig(bus)
    try:
        rig.poller.start()
        wait_for(lambda: rig.poller.status.last_error != "")
        assert rig.poller.status.link is LinkState.CONNECTING
        assert "no acknowledge" in rig.poller.status.last_error
        bus.attach(RegisterFileDevice())
        wait_for(lambda: rig.poller.status.link is LinkState.CONNECTED)
        wait_for(lambda: len(rig.samples) >= 1)
        assert rig.samples[-1].values["Voltage"] == pytest.approx(16.12)
    finally:
        rig.poller.stop()
        rig.bus.close()


def test_pack_swap_starts_a_new_session() -> None:
    bus = EmulatedBus([RegisterFileDevice()])
    rig = Rig(bus)
    try:
        rig.poller.start()
        wait_for(lambda: len(rig.samples) >= 1)
        other = dict(DEFAULT_WORDS)
        other[0x1C] = 0x9999
        bus.attach(RegisterFileDevice(words=other))
        wait_for(lambda: "pack_changed" in rig.codes())
        identity = rig.poller.status.identity
        assert identity is not None and identity.serial_number == 0x9999
        assert "link_lost" not in rig.codes()
    finally:
        rig.poller.stop()
        rig.bus.close()


def test_call_runs_on_the_io_thread_and_passes_errors_back(physics: Rig) -> None:
    physics.poller.start()
    wait_for(lambda: physics.poller.status.link is LinkState.CONNECTED)
    assert 12000 < physics.poller.call(lambda battery: battery.voltage) < 17000

    def fails(battery: Any) -> None:
        raise NoAcknowledge("refused", address=0x0B, command=0x44)

    with pytest.raises(NoAcknowledge, match="refused"):
        physics.poller.call(fails)
    physics.poller.stop()
    with pytest.raises(AdapterGone, match="not running"):
        physics.poller.call(lambda battery: battery.voltage)
    assert physics.poller.status.link is LinkState.STOPPED


def test_status_registers_follow_the_security_state_without_a_reconnect() -> None:
    """A sealed bq40z50 refuses SafetyStatus (0x51); after an unseal the poller reads it again at
    its next identity check, and after a re-seal drops it again without counting misses."""
    from smartbatt.gauge.gauge import Gauge
    from smartbatt.gauge.security import seal, unseal

    rig = Rig(build_bus("bq40z50", {"speed": "0", "security": "sealed"}), profile="bq40z50")
    try:
        rig.poller.start()
        wait_for(lambda: len(rig.samples) >= 2)
        assert "SafetyStatus" not in rig.samples[-1].status
        rig.poller.call(lambda battery: unseal(Gauge(battery, "bq40z50")))
        wait_for(lambda: "SafetyStatus" in rig.samples[-1].status)
        missing_before = rig.poller.status.missing
        rig.poller.call(lambda battery: seal(Gauge(battery, "bq40z50")))
        wait_for(lambda: "SafetyStatus" not in rig.samples[-1].status)
        assert rig.poller.status.missing == missing_before
        assert rig.poller.status.link is LinkState.CONNECTED
    finally:
        rig.poller.stop()
        rig.bus.close()


def test_an_emulated_pack_is_monitored_with_the_chip_its_uri_names() -> None:
    """DeviceName detection cannot recognise the emulator's "EMU-4S3000"; its URI names the chip."""
    bus = SampleBus()
    poller = Poller("emulated:bq4050?speed=0", bus, fast_hz=20.0, allow_fast=True)
    try:
        poller.start()
        wait_for(lambda: poller.status.identity is not None)
        identity = poller.status.identity
        assert identity is not None
        assert (identity.profile, identity.cells) == ("bq4050", 4)
        assert "URI" in identity.profile_reason
    finally:
        poller.stop()
        bus.close()
