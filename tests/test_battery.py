"""Battery: typed properties vs the table, PEC, pinned traces, writes, snapshot, fillers, NACKs."""

from __future__ import annotations

import datetime
import re
from typing import Any

import pytest

from smartbatt import Battery as PublicBattery
from smartbatt import open_battery as public_open_battery
from smartbatt.emulator.register_file import DEFAULT_BLOCKS, DEFAULT_WORDS, RegisterFileDevice
from smartbatt.emulator.target import EmulatedBus
from smartbatt.errors import (
    AccessDenied,
    AdapterGone,
    BusTimeout,
    NoAcknowledge,
    NotReady,
    PecMismatch,
    RangeError,
    UnknownCommand,
    VerifyError,
)
from smartbatt.sbs.battery import Battery, battery_properties, open_battery, snapshot_fields
from smartbatt.sbs.codecs import BitFields, SpecInfo
from smartbatt.sbs.commands import sbs_table
from smartbatt.transports import NO_RETRY, TransactionRecord
from smartbatt.transports.emulated import EmulatedTransport


class Recorder:
    """An SMBusTarget wrapper that logs every transfer: (address, bytes written, read?, reply)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.log: list[tuple[int, bytes, bool, bytes]] = []

    def transfer(self, address: int, write: bytes, read: bool = False) -> bytes:
        reply: bytes = self.inner.transfer(address, write, read)
        self.log.append((address, bytes(write), read, bytes(reply)))
        return reply

    def quick(self, address: int, read: bool) -> None:
        self.inner.quick(address, read)

    def writes(self) -> list[bytes]:
        return [w for _, w, read, _ in self.log if not read]


def make(
    words: dict[int, int] | None = None, blocks: dict[int, bytes] | None = None, **device: Any
) -> tuple[EmulatedTransport, Recorder, RegisterFileDevice]:
    dev = RegisterFileDevice(
        words={**DEFAULT_WORDS, **(words or {})}, blocks={**DEFAULT_BLOCKS, **(blocks or {})}, **device
    )
    rec = Recorder(EmulatedBus([dev]))
    return EmulatedTransport(rec), rec, dev


def snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


# --- the table and the properties agree ----------------------------------------------------------


def test_every_readable_command_has_a_property_and_vice_versa() -> None:
    props = battery_properties()
    readable = {c.name for c in sbs_table().readable()}
    assert set(props.values()) == readable
    assert all(attr == snake(name) for attr, name in props.items()), props
    writable = {c.name for c in sbs_table().writable()}
    settable = {name for attr, name in props.items() if type(vars(Battery)[attr]).__name__ == "_WritableCommand"}
    assert settable == writable


def test_snapshot_fields_match_the_table_too() -> None:
    assert snapshot_fields() == battery_properties()


def test_property_docs_name_the_command_and_code() -> None:
    for attr, name in battery_properties().items():
        doc = vars(Battery)[attr].__doc__
        code = sbs_table().by_name(name).code
        assert doc and doc.startswith(f"{name} (0x{code:02X})"), attr


EXPECTED_TYPES: dict[str, tuple[type, ...]] = {
    "temperature": (float,),
    "at_rate_ok": (bool,),
    "battery_mode": (BitFields,),
    "battery_status": (BitFields,),
    "specification_info": (SpecInfo,),
    "manufacture_date": (datetime.date,),
    "manufacturer_name": (str,),
    "device_name": (str,),
    "device_chemistry": (str,),
    "manufacturer_data": (bytes,),
    "at_rate_time_to_full": (type(None),),
    "at_rate_time_to_empty": (type(None),),
    "run_time_to_empty": (type(None),),
    "average_time_to_empty": (type(None),),
    "average_time_to_full": (type(None),),
}


def test_every_property_reads_its_command_with_the_declared_type(emulated: Any) -> None:
    battery = Battery(emulated)
    for attr, name in battery_properties().items():
        value = getattr(battery, attr)
        assert isinstance(value, EXPECTED_TYPES.get(attr, (int,))), (attr, value)
        assert value == battery.read(name).value, attr
    assert battery.voltage == 16120
    assert battery.temperature == 25.05
    assert battery.current == 0
    assert battery.device_name == "EMU-4S3000"
    assert battery.manufacture_date == datetime.date(2025, 3, 14)
    assert battery.battery_status.is_set("INITIALIZED")


def test_public_api_exports() -> None:
    assert PublicBattery is Battery and public_open_battery is open_battery


# --- PEC ----------------------------------------------------------------------------------------


def records(transport: EmulatedTransport) -> list[TransactionRecord]:
    log: list[TransactionRecord] = []
    transport.add_listener(log.append)
    return log


def test_pec_enabled_from_specification_info_version_3() -> None:
    t, _, _ = make({0x1A: 0x0031})
    with t:
        log = records(t)
        battery = Battery(t)
        assert battery.voltage == 16120
        assert battery.pec
        # the deciding read of SpecificationInfo goes without PEC, the rest with it
        assert [(r.command, r.pec) for r in log] == [(0x1A, False), (0x09, True)]


def test_pec_stays_off_for_sbs_1_1_without_pec() -> None:
    t, _, _ = make({0x1A: 0x0021})
    with t:
        log = records(t)
        battery = Battery(t)
        assert battery.voltage == 16120 and not battery.pec
        assert all(not r.pec for r in log)


@pytest.mark.parametrize("forced", [True, False])
def test_forced_pec_is_used_without_asking_the_gauge(forced: bool) -> None:
    t, _, _ = make({0x1A: 0x0021 if forced else 0x0031})
    with t:
        log = records(t)
        assert Battery(t, pec=forced).temperature == 25.05
        assert [(r.command, r.pec) for r in log] == [(0x08, forced)]


# Pinned transaction traces with PEC (smbus.md §4 worked vectors): bytes the host wrote and
# every byte the device clocked out, PEC last.
@pytest.mark.parametrize(
    ("words", "blocks", "action", "trace"),
    [
        ({0x09: 0x3E80}, {}, lambda b: b.voltage, (b"\x09", True, b"\x80\x3e\x67")),
        ({0x08: 2982}, {}, lambda b: b.temperature, (b"\x08", True, b"\xa6\x0b\x2a")),
        ({}, {0x20: b"TI"}, lambda b: b.manufacturer_name, (b"\x20", True, b"\x02TI\x7f")),
        ({}, {}, lambda b: b.write("ManufacturerAccess", 0x0414), (b"\x00\x14\x04\x0c", False, b"")),
        ({}, {}, lambda b: b.write("ManufacturerAccess", 0x3672), (b"\x00\x72\x36\x19", False, b"")),
    ],
)
def test_pinned_pec_traces(words: dict[int, int], blocks: dict[int, bytes], action: Any, trace: Any) -> None:
    t, rec, _ = make(words, blocks)
    with t:
        battery = Battery(t, pec=True)
        _ = battery.spec_info  # read once for scaling; not part of the pinned trace
        rec.log.clear()
        action(battery)
    assert rec.log == [(0x0B, *trace)]


def test_pec_error_is_typed_and_names_the_transaction() -> None:
    with EmulatedTransport(EmulatedBus([RegisterFileDevice()])) as t:
        battery = Battery(t, pec=True)
        _ = battery.spec_info
        t.faults.corrupt_pec_every = 1
        with pytest.raises(PecMismatch) as info:
            _ = battery.voltage
    assert info.value.address == 0x0B and info.value.command == 0x09
    assert "address 0x0B, command 0x09" in str(info.value)


# --- reading never changes the pack ----------------------------------------------------------------


def test_reads_and_snapshot_never_write() -> None:
    t, rec, _ = make({0x03: 0xE001})  # capacity mode: must be read, never toggled
    with t:
        battery = Battery(t)
        battery.snapshot()
        _ = battery.remaining_capacity, battery.full_charge_capacity, battery.at_rate
        battery.refresh_mode()
        _ = battery.design_capacity
        for name in battery_properties().values():
            battery.read(name)
    assert rec.log and rec.writes() == []


# --- capacity mode and scaling -------------------------------------------------------------------


def test_capacity_mode_is_read_from_battery_mode_and_cached() -> None:
    t, _, dev = make({0x03: 0xE001, 0x0F: 2340})
    with t:
        battery = Battery(t)
        assert battery.capacity_mode
        assert battery.remaining_capacity == 23400
        assert battery.read("RemainingCapacity").unit == "mWh"
        assert battery.voltage == 16120  # not a capacity: unchanged
        dev.write_command(0x03, b"\x01\x60")  # someone else switched the pack to mAh
        assert battery.remaining_capacity == 23400  # cached until refreshed
        battery.refresh_mode()
        assert battery.read("BatteryMode").value == battery.battery_mode
        assert battery.remaining_capacity == 2340
        assert battery.read("RemainingCapacity").unit == "mAh"


def test_specification_info_scaling_applies_to_properties() -> None:
    t, _, _ = make({0x1A: 0x1131, 0x09: 1612, 0x0A: (-150) & 0xFFFF, 0x0F: 234})
    with t:
        battery = Battery(t)
        assert battery.spec_info.vscale == 1 and battery.spec_info.ipscale == 1
        assert battery.voltage == 16120
        assert battery.current == -1500
        assert battery.remaining_capacity == 2340
        assert battery.read("Voltage").value == 16120


# --- writes ------------------------------------------------------------------------------------------


def test_write_checks_range_then_writes_and_verifies() -> None:
    t, rec, dev = make()
    with t:
        battery = Battery(t, pec=True)
        reading = battery.write("RemainingCapacityAlarm", 400)
        assert reading is not None and reading.value == 400 and dev.words[0x01] == 400
        battery.remaining_time_alarm = 15
        assert dev.words[0x02] == 15
        battery.at_rate = -1000
        assert dev.words[0x04] == (-1000) & 0xFFFF
        assert battery.at_rate == -1000
        writes = len(rec.writes())
        with pytest.raises(RangeError):
            battery.write("RemainingCapacityAlarm", 70000)
        with pytest.raises(RangeError):
            battery.write("AtRate", 40000)
        with pytest.raises(RangeError):
            battery.battery_mode = 0x0004  # reserved bit
        assert len(rec.writes()) == writes  # nothing reached the bus


def test_write_read_only_or_unknown_is_refused_without_io() -> None:
    t, rec, _ = make()
    with t:
        battery = Battery(t, pec=False)
        with pytest.raises(AccessDenied):
            battery.write("Voltage", 1)
        with pytest.raises(AccessDenied):
            battery.voltage = 1  # type: ignore[assignment]
        with pytest.raises(UnknownCommand):
            battery.write("Bogus", 1)
    assert rec.log == []


class IgnoresWrites(RegisterFileDevice):
    """A gauge that ACKs writes but keeps its values (sealed TI gauges do this for some commands)."""

    def write_command(self, command: int, data: bytes) -> None:
        return None


def test_write_that_does_not_stick_raises_verify_error() -> None:
    with EmulatedTransport(EmulatedBus([IgnoresWrites()])) as t, pytest.raises(VerifyError) as info:
        Battery(t).write("RemainingCapacityAlarm", 400)
    assert "wrote 0x0190 but read back 0x012C" in str(info.value)
    assert info.value.address == 0x0B and info.value.command == 0x01


def test_battery_mode_write_compares_writable_bits_and_updates_capacity_mode() -> None:
    t, _, dev = make({0x03: 0x6001})
    with t:
        battery = Battery(t)
        assert not battery.capacity_mode
        reading = battery.write("BatteryMode", 0xE000)  # CAPM on; ICC (read-only) not given
        assert reading is not None and dev.words[0x03] == 0xE000
        assert battery.capacity_mode


def test_manufacturer_access_write_is_not_verified() -> None:
    t, rec, _ = make()
    with t:
        assert Battery(t, pec=False).write("ManufacturerAccess", 0x0006) is None
    assert [r for r in rec.log if r[2]] == []  # no read-back


# --- fillers -------------------------------------------------------------------------------------------


def test_persistent_filler_raises_not_ready_with_raw_kept() -> None:
    t, rec, _ = make({0x09: 0xFFFF})
    with t:
        battery = Battery(t, pec=True, filler_retries=3, filler_delay_s=0)
        with pytest.raises(NotReady) as info:
            _ = battery.voltage
        with pytest.raises(NotReady):
            battery.read("Voltage")
    assert info.value.raw == 0xFFFF and info.value.command == 0x09 and info.value.address == 0x0B
    assert "0xFFFF" in str(info.value)
    assert sum(1 for _, w, _, _ in rec.log if w == b"\x09") == 8  # 4 reads for each access


class FillerThenValue(RegisterFileDevice):
    """Answers 0x1717 (Sanyo filler) to the first ``n`` reads of Temperature."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.left = n

    def read_command(self, command: int, written: bytes) -> bytes:
        if command == 0x08 and self.left:
            self.left -= 1
            return b"\x17\x17"
        return super().read_command(command, written)


def test_transient_filler_is_reread_and_never_decoded() -> None:
    with EmulatedTransport(EmulatedBus([FillerThenValue(2)])) as t:
        battery = Battery(t, filler_delay_s=0)
        assert battery.temperature == 25.05
        t.target.devices[0x0B].left = 2  # type: ignore[attr-defined]
        reading = battery.read("Temperature")
        assert reading.value == 25.05 and not reading.filler


def test_block_filler_raises_not_ready() -> None:
    t, _, _ = make(blocks={0x21: b"\x17\x17\x17\x17"})
    with t, pytest.raises(NotReady) as info:
        _ = Battery(t, filler_delay_s=0).device_name
    assert info.value.raw == b"\x17\x17\x17\x17"


# --- NACK diagnosis and bus errors ------------------------------------------------------------------


def test_nack_at_battery_address_carries_a_diagnosis(emulated: Any) -> None:
    battery = Battery(emulated, address=0x0C, pec=False)
    with pytest.raises(NoAcknowledge) as info:
        _ = battery.temperature
    err = info.value
    assert err.address == 0x0C and err.command == 0x08 and err.byte_index == 0
    text = str(err)
    for hint in ("asleep", "shipping", "deeply discharged", "SDA/SCL", "pull-ups", "address"):
        assert hint in text, hint


def test_nack_of_the_command_byte_gets_its_own_diagnosis() -> None:
    words = dict(DEFAULT_WORDS)
    del words[0x17]
    with EmulatedTransport(EmulatedBus([RegisterFileDevice(words=words)])) as t:
        t.retry = NO_RETRY
        with pytest.raises(NoAcknowledge) as info:
            _ = Battery(t, pec=False).cycle_count
    assert info.value.byte_index == 1 and "refused the command byte" in str(info.value)


def test_stretch_past_timeout_is_a_bus_timeout_not_a_hang() -> None:
    with open_battery("emulated:?stretch_ms=40") as battery, pytest.raises(BusTimeout) as info:
        _ = battery.voltage
    assert info.value.address == 0x0B


def test_closed_battery_raises_adapter_gone() -> None:
    battery = open_battery("emulated:?model=static")
    try:
        assert battery.voltage == 16120
    finally:
        battery.close()
    assert battery.transport.closed
    with pytest.raises(AdapterGone):
        _ = battery.voltage


def test_open_battery_closes_its_transport_even_on_bad_options() -> None:
    with open_battery("emulated:?model=static", pec=False) as battery:
        assert not battery.pec
    assert battery.transport.closed
    with pytest.raises(ValueError):
        Battery(battery.transport, address=0x80)


# --- snapshot ---------------------------------------------------------------------------------------


def test_snapshot_reads_everything_once_typed() -> None:
    t, rec, _ = make()
    with t:
        snap = Battery(t).snapshot()
    assert snap.ok and set(snap.readings) == {c.name for c in sbs_table().readable()}
    assert snap.voltage == 16120 and snap.temperature == 25.05 and snap.device_name == "EMU-4S3000"
    assert snap.run_time_to_empty is None and snap.readings["RunTimeToEmpty"].meaning == "not discharging"
    assert snap.capacity_mode is False and snap.spec_info is not None and snap.spec_info.pec_supported
    assert snap["Voltage"].raw == 16120
    assert list(snap) == [c.name for c in sbs_table().readable()]
    json = snap.to_json()
    assert set(json) == set(snap.readings)
    assert all(set(v) >= {"raw", "value", "unit"} for v in json.values())
    # one read per command, plus the PEC decision
    assert len([1 for _, _, read, _ in rec.log if read]) == len(sbs_table().readable()) + 1


def test_snapshot_keeps_per_command_errors_and_goes_on() -> None:
    words = dict(DEFAULT_WORDS)
    del words[0x17]
    blocks = dict(DEFAULT_BLOCKS)
    del blocks[0x23]
    with EmulatedTransport(EmulatedBus([RegisterFileDevice(words=words, blocks=blocks)])) as t:
        t.retry = NO_RETRY
        snap = Battery(t).snapshot()
    assert set(snap.errors) == {"CycleCount", "ManufacturerData"}
    assert isinstance(snap.errors["CycleCount"], NoAcknowledge)
    assert snap.cycle_count is None and snap.voltage == 16120 and not snap.ok
    with pytest.raises(NoAcknowledge):
        snap["CycleCount"]
    with pytest.raises(KeyError):
        snap["Bogus"]
    json = snap.to_json()
    assert json["CycleCount"]["raw"] is None and "no acknowledge" in json["CycleCount"]["error"]
    assert json["CycleCount"]["unit"] == "cycles"


def test_snapshot_without_battery_mode_reports_capacities_as_unknown() -> None:
    words = dict(DEFAULT_WORDS)
    del words[0x03]
    with EmulatedTransport(EmulatedBus([RegisterFileDevice(words=words)])) as t:
        t.retry = NO_RETRY
        snap = Battery(t).snapshot()
    assert snap.capacity_mode is None
    assert isinstance(snap.errors["RemainingCapacity"], NotReady)
    assert snap.voltage == 16120


def test_snapshot_of_an_absent_battery_is_all_errors_not_an_exception() -> None:
    with EmulatedTransport(EmulatedBus([])) as t:
        t.retry = NO_RETRY
        snap = Battery(t).snapshot()
    assert not snap.readings
    assert set(snap.errors) == {c.name for c in sbs_table().readable()}
    assert all(e.address == 0x0B for e in snap.errors.values())
