"""Sample/Event records and the SampleBus: order, isolation of slow and failing subscribers, drops."""

from __future__ import annotations

import math
import pickle
import threading

import pytest

from smartbatt.errors import SmartBattError
from smartbatt.monitor.sample import BusClosed, Event, Sample, SampleBus, Severity, cell_channels


def _s(i: int, **values: float) -> Sample:
    return Sample(float(i), values or {"Voltage": 16.0 + i / 1000})


# --- records -------------------------------------------------------------------------------------


def test_sample_is_immutable_and_copies_its_mappings():
    values = {"Voltage": 16.1, "CellVoltage2": 4.0, "CellVoltage10": 3.9, "CellVoltage1": 4.1}
    s = Sample(1.0, values, {"BatteryStatus": 0xC0}, missing=frozenset(["Current"]))
    values["Voltage"] = 0.0  # the caller's dict is not shared
    assert s.values["Voltage"] == 16.1
    assert s.missing == frozenset({"Current"})
    with pytest.raises(TypeError):
        s.values["Voltage"] = 1.0  # type: ignore[index]
    with pytest.raises(AttributeError):
        s.time = 2.0  # type: ignore[misc]
    assert s.cells() == [4.1, 4.0, 3.9]  # ordered by cell number, not by text


def test_sample_get_treats_nan_and_absent_as_missing():
    s = Sample(0.0, {"Voltage": math.nan, "Current": -1.5})
    assert s.get("Voltage") is None
    assert s.get("Temperature") is None
    assert s.get("Current") == -1.5


def test_cell_channels_sorts_numerically_and_ignores_others():
    assert cell_channels(["CellVoltage12", "Voltage", "CellVoltage2", "CellVoltageX"]) == [
        "CellVoltage2",
        "CellVoltage12",
    ]


def test_event_lifecycle_and_pickle():
    e = Event(7, 10.0, Severity.ALARM, "CellVoltage1", "cell_over_voltage", "hi", 4.3, 4.25, latched=True)
    assert e.active and e.standing
    cleared = e.with_clear(20.0)
    assert not cleared.active and cleared.standing  # latched: stands until acknowledged
    done = cleared.with_ack(21.0)
    assert not done.standing and done.ack_time == 21.0 and done.id == 7
    unlatched = Event(8, 1.0, Severity.WARNING, "x", "y", "z", latched=False).with_clear(2.0)
    assert not unlatched.standing
    assert pickle.loads(pickle.dumps(done)) == done


def test_severity_order_and_parse():
    assert Severity.INFO < Severity.WARNING < Severity.ALARM < Severity.CRITICAL
    assert Severity.parse(" Critical ") is Severity.CRITICAL
    with pytest.raises(ValueError, match="unknown severity"):
        Severity.parse("fatal")


# --- bus -----------------------------------------------------------------------------------------


def test_every_subscriber_gets_every_sample_in_order():
    with SampleBus() as bus:
        got_a: list[float] = []
        got_b: list[float] = []
        bus.subscribe(lambda s: got_a.append(s.time), name="a")
        bus.subscribe(lambda s: got_b.append(s.time), name="b")
        for i in range(500):
            bus.publish(_s(i))
        assert bus.wait_idle(5.0)
    assert got_a == got_b == [float(i) for i in range(500)]


def test_subscriber_runs_on_its_own_thread_and_filters_by_type():
    threads: set[str] = set()
    events: list[Event] = []
    samples: list[Sample] = []
    with SampleBus() as bus:

        def on_sample(s: Sample) -> None:
            threads.add(threading.current_thread().name)
            samples.append(s)

        bus.subscribe(on_sample, name="samples")
        bus.subscribe(events.append, name="events", accept=(Event,))
        bus.publish(_s(1))
        bus.publish(Event(1, 1.0, Severity.INFO, "link", "x", "y"))
        assert bus.wait_idle(5.0)
    assert threads == {"samplebus-samples"}
    assert len(samples) == 1 and len(events) == 1


def test_failing_subscriber_is_counted_and_does_not_stop_others():
    good: list[float] = []

    def bad(sample: Sample) -> None:
        raise RuntimeError("subscriber bug")

    with SampleBus() as bus:
        failing = bus.subscribe(bad, name="bad")
        bus.subscribe(lambda s: good.append(s.time), name="good")
        for i in range(10):
            bus.publish(_s(i))
        assert bus.wait_idle(5.0)
        assert failing.errors == 10 and failing.delivered == 10
        assert isinstance(failing.last_error, RuntimeError)
    assert len(good) == 10


def test_slow_subscriber_drops_oldest_and_does_not_block_publisher_or_others():
    release = threading.Event()
    entered = threading.Event()
    slow_got: list[float] = []
    fast_got: list[float] = []

    def slow(sample: Sample) -> None:
        entered.set()
        release.wait(5.0)
        slow_got.append(sample.time)

    with SampleBus() as bus:
        slow_sub = bus.subscribe(slow, name="slow", maxlen=5)
        bus.subscribe(lambda s: fast_got.append(s.time), name="fast", maxlen=1000)
        bus.publish(_s(0))
        assert entered.wait(5.0)  # "slow" now holds item 0 in its callback
        for i in range(1, 100):
            bus.publish(_s(i))  # must not block although "slow" is stuck
        assert bus.subscriptions[1].wait_idle(5.0)
        assert len(fast_got) == 100
        release.set()
        assert bus.wait_idle(5.0)
    # the slow one holds the item it was stuck on, then the newest 5: the oldest were dropped
    assert slow_sub.dropped == 99 - 5
    assert slow_got == [0.0, 95.0, 96.0, 97.0, 98.0, 99.0]


def test_blocking_publish_paces_a_fast_source_without_drops():
    got: list[float] = []
    gate = threading.Semaphore(0)

    def paced(sample: Sample) -> None:
        gate.acquire(timeout=5.0)
        got.append(sample.time)

    with SampleBus() as bus:
        sub = bus.subscribe(paced, name="paced", maxlen=2)
        feeder = threading.Thread(target=lambda: gate.release(50))
        feeder.start()
        for i in range(50):
            bus.publish(_s(i), block_s=5.0)
        feeder.join()
        assert bus.wait_idle(5.0)
    assert sub.dropped == 0
    assert got == [float(i) for i in range(50)]


def test_blocking_publish_gives_up_on_a_stuck_subscriber():
    stuck = threading.Event()
    with SampleBus() as bus:
        sub = bus.subscribe(lambda s: stuck.wait(5.0), name="stuck", maxlen=1)
        for i in range(4):
            bus.publish(_s(i), block_s=0.02)  # bounded wait, then drop: never a hang
        assert sub.dropped >= 1
        stuck.set()


def test_close_drains_then_refuses():
    got: list[float] = []
    bus = SampleBus()
    bus.subscribe(lambda s: got.append(s.time))
    for i in range(20):
        bus.publish(_s(i))
    assert bus.close(timeout_s=5.0)
    assert got == [float(i) for i in range(20)]
    with pytest.raises(BusClosed) as err:
        bus.publish(_s(99))
    assert isinstance(err.value, SmartBattError)
    with pytest.raises(BusClosed):
        bus.subscribe(got.append)


def test_close_without_drain_counts_the_discarded_items():
    release = threading.Event()
    bus = SampleBus()
    sub = bus.subscribe(lambda s: release.wait(5.0), maxlen=100)
    for i in range(10):
        bus.publish(_s(i))
    release.set()
    assert bus.close(drain=False, timeout_s=5.0)
    assert sub.delivered + sub.dropped == 10


def test_close_reports_a_subscriber_stuck_in_its_callback():
    never = threading.Event()
    bus = SampleBus()
    bus.subscribe(lambda s: never.wait(2.0))
    bus.publish(_s(1))
    assert bus.close(timeout_s=0.05) is False  # gave up instead of hanging
    never.set()


def test_unsubscribe_stops_delivery():
    got: list[float] = []
    with SampleBus() as bus:
        sub = bus.subscribe(lambda s: got.append(s.time))
        bus.publish(_s(1))
        sub.unsubscribe()
        bus.publish(_s(2))
        assert bus.wait_idle(5.0)
    assert got == [1.0]
    assert "delivered=1" in repr(sub)


def test_concurrent_publishers_lose_nothing():
    got: list[float] = []
    with SampleBus(maxlen=100_000) as bus:
        bus.subscribe(lambda s: got.append(s.time))

        def publisher(k: int) -> None:
            for i in range(500):
                bus.publish(_s(k * 1000 + i))

        threads = [threading.Thread(target=publisher, args=(k,)) for k in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert bus.wait_idle(5.0)
        assert bus.published == 2000
    assert sorted(got) == sorted(float(k * 1000 + i) for k in range(4) for i in range(500))


def test_bad_maxlen():
    with pytest.raises(ValueError):
        SampleBus(maxlen=0)
