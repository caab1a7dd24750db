"""scan(): probe addresses like i2cdetect, name SBS devices, never retry, fail loudly on bus faults."""

from __future__ import annotations

from typing import Any

import pytest

from smartbatt.emulator.register_file import DEFAULT_BLOCKS, RegisterFileDevice
from smartbatt.emulator.target import EmulatedBus
from smartbatt.errors import BusBusy
from smartbatt.sbs.scan import DEFAULT_ADDRESSES, Found, scan
from smartbatt.transports import Capability, RetryPolicy
from smartbatt.transports.emulated import EmulatedTransport


class Eeprom(RegisterFileDevice):
    """A device that answers receive byte (as EEPROMs do: current-address read)."""

    def receive_byte(self) -> int:
        return 0xA5


class NoQuickTransport(EmulatedTransport):
    capabilities = Capability.REPEATED_START | Capability.PLAIN_READ


class BareTransport(EmulatedTransport):
    capabilities = Capability.REPEATED_START


def test_scan_finds_and_names_the_battery(emulated: Any) -> None:
    found = scan(emulated)
    assert found == [
        Found(0x0B, "battery", "Smart Battery smartbatt EMU-4S3000", manufacturer="smartbatt", device="EMU-4S3000")
    ]
    assert str(found[0]) == "0x0B Smart Battery smartbatt EMU-4S3000"


def test_scan_names_charger_selector_and_unknown_devices() -> None:
    bus = EmulatedBus(
        [RegisterFileDevice(), RegisterFileDevice(address=0x09), RegisterFileDevice(address=0x0A), Eeprom(address=0x50)]
    )
    with EmulatedTransport(bus) as t:
        found = scan(t)
    assert [(f.address, f.role) for f in found] == [
        (0x09, "charger"),
        (0x0A, "selector"),
        (0x0B, "battery"),
        (0x50, "unknown"),
    ]
    assert found[0].description == "Smart Battery Charger"
    assert found[3].description == "unknown device"


class Recording(EmulatedBus):
    def __init__(self, devices: list[Any]) -> None:
        super().__init__(devices)
        self.kinds: dict[int, str] = {}

    def transfer(self, address: int, write: bytes, read: bool = False) -> bytes:
        self.kinds.setdefault(address, "read" if read else "write")
        return super().transfer(address, write, read)

    def quick(self, address: int, read: bool) -> None:
        self.kinds.setdefault(address, "quick")
        super().quick(address, read)


def test_eeprom_ranges_are_probed_with_a_read_not_a_quick_write() -> None:
    bus = Recording([])
    with EmulatedTransport(bus) as t:
        assert scan(t) == []
    for address in DEFAULT_ADDRESSES:
        expected = "read" if 0x30 <= address <= 0x37 or 0x50 <= address <= 0x5F else "quick"
        assert bus.kinds[address] == expected, hex(address)


def test_probes_are_never_retried_and_the_policy_is_restored() -> None:
    with EmulatedTransport(EmulatedBus([RegisterFileDevice()])) as t:
        policy = RetryPolicy(attempts=5, backoff_s=0.5)
        t.retry = policy
        t.faults.nack_every = 1
        assert scan(t) == []
        assert t.transactions == len(DEFAULT_ADDRESSES)  # one probe each, no retries, no sleeps
        assert t.retry is policy


def test_scan_without_quick_uses_receive_byte() -> None:
    with NoQuickTransport(EmulatedBus([Eeprom(address=0x0B), Eeprom(address=0x20)])) as t:
        assert [f.address for f in scan(t)] == [0x0B, 0x20]


def test_scan_without_quick_or_plain_read_uses_read_byte() -> None:
    with BareTransport(EmulatedBus([RegisterFileDevice()])) as t:
        assert [f.address for f in scan(t)] == [0x0B]


def test_stuck_bus_is_an_error_not_an_empty_scan() -> None:
    with EmulatedTransport(EmulatedBus([RegisterFileDevice()])) as t:
        t.faults.stuck = True
        with pytest.raises(BusBusy):
            scan(t)


def test_battery_with_unreadable_names_is_still_listed() -> None:
    blocks = {k: v for k, v in DEFAULT_BLOCKS.items() if k not in (0x20, 0x21)}
    with EmulatedTransport(EmulatedBus([RegisterFileDevice(blocks=blocks)])) as t:
        t.retry = RetryPolicy(attempts=1)
        assert scan(t) == [Found(0x0B, "battery", "Smart Battery (name unreadable)")]


def test_scan_subset_and_bad_addresses(emulated: Any) -> None:
    assert scan(emulated, [0x0B, 0x0B, 0x0C]) == scan(emulated, [0x0B])
    assert scan(emulated, []) == []
    with pytest.raises(ValueError):
        scan(emulated, [0x80])
