"""ManufacturerAccess: both flows, the fallback, echo checks, delays, decoding, generic refusal."""

from __future__ import annotations

from collections.abc import Iterator
from typing import cast

import pytest

from smartbatt.emulator import build_bus
from smartbatt.emulator.device import EmulatedGauge
from smartbatt.emulator.target import EmulatedBus, TargetNack
from smartbatt.errors import AccessDenied, DecodeError, NoAcknowledge, UnknownCommand
from smartbatt.gauge.flags import DecodedRegister
from smartbatt.gauge.mac import TI_BLOCK_MAX, Mac, MacFlow
from smartbatt.profiles.loader import load_profile
from smartbatt.transports import TransactionRecord, Transport, open_transport
from smartbatt.transports.emulated import EmulatedTransport
from smartbatt.transports.retry import NO_RETRY

BAT = 0x0B


class NoBlockAccess:
    """A bus whose gauge NACKs every ManufacturerBlockAccess (0x44) command byte (an older gauge)."""

    def __init__(self, inner: EmulatedBus) -> None:
        self.inner = inner

    def transfer(self, address: int, write: bytes, read: bool = False) -> bytes:
        if write and write[0] == 0x44:
            raise TargetNack(1, "0x44 not supported")
        return self.inner.transfer(address, write, read)

    def quick(self, address: int, read: bool) -> None:
        self.inner.quick(address, read)


class WrongEcho:
    """A bus that answers a 0x44 read with another subcommand's echo."""

    def __init__(self, inner: EmulatedBus) -> None:
        self.inner = inner

    def transfer(self, address: int, write: bytes, read: bool = False) -> bytes:
        reply = self.inner.transfer(address, write, read)
        if read and write == b"\x44" and len(reply) > 3:
            return reply[:1] + bytes((reply[1] ^ 0x10,)) + reply[2:]
        return reply

    def quick(self, address: int, read: bool) -> None:
        self.inner.quick(address, read)


def log(t: Transport) -> list[TransactionRecord]:
    records: list[TransactionRecord] = []
    t.add_listener(records.append)
    return records


@pytest.fixture
def unsealed() -> Iterator[Transport]:
    with open_transport("emulated:bq40z50?speed=0&security=unsealed") as t:
        t.retry = NO_RETRY
        yield t


def test_block_flow_strips_the_echo_and_remembers_the_flow(unsealed: Transport) -> None:
    mac = Mac(unsealed, load_profile("bq40z50"), pec=False)
    records = log(unsealed)
    assert mac.read("DeviceType") == b"\x00\x45"
    assert mac.flow is MacFlow.BLOCK
    assert [(r.protocol.value, r.command, r.data_out) for r in records] == [
        ("write_block", 0x44, b"\x02\x01\x00"),
        ("read_block", 0x44, b""),
    ]
    assert records[1].data_in == b"\x01\x00\x00\x45"  # the echo the driver stripped


def test_falls_back_to_manufacturer_access_when_0x44_is_refused() -> None:
    bus = build_bus("bq40z50", {"speed": "0", "security": "unsealed"})
    with EmulatedTransport(NoBlockAccess(bus)) as t:
        t.retry = NO_RETRY
        mac = Mac(t, load_profile("bq40z50"), pec=False)
        records = log(t)
        assert mac.read(0x0001) == b"\x00\x45"
        assert mac.flow is MacFlow.WORD
        first = [(r.protocol.value, r.command, r.result) for r in records]
        assert first == [
            ("write_block", 0x44, "NoAcknowledge"),
            ("write_word", 0x00, "ok"),
            ("read_block", 0x23, "ok"),
        ]
        records.clear()
        status = mac.read("OperationStatusMAC")
        assert len(status) == 4 and (int.from_bytes(status, "little") >> 8) & 3 == 2
        assert [r.command for r in records] == [0x00, 0x23]  # 0x44 is not tried again


def test_an_address_nack_is_not_a_reason_to_change_flow() -> None:
    with open_transport("emulated:bq40z50?speed=0&security=unsealed&nack_every=1") as t:
        t.retry = NO_RETRY
        mac = Mac(t, load_profile("bq40z50"), pec=False)
        with pytest.raises(NoAcknowledge) as err:
            mac.read("DeviceType")
        assert err.value.byte_index == 0
        assert mac.flow is None  # still undecided: the pack did not answer at all


def test_an_echo_of_another_subcommand_is_an_error() -> None:
    bus = build_bus("bq40z50", {"speed": "0", "security": "unsealed"})
    with EmulatedTransport(WrongEcho(bus)) as t:
        mac = Mac(t, load_profile("bq40z50"), pec=False)
        with pytest.raises(DecodeError, match=r"echoed 0x0011, not 0x0001"):
            mac.read("DeviceType")


def test_a_sealed_gauge_gives_no_data_and_that_is_access_denied() -> None:
    with open_transport("emulated:bq40z50?speed=0") as t:
        mac = Mac(t, load_profile("bq40z50"), pec=False)
        with pytest.raises(AccessDenied, match="returned no data"):
            mac.read("SafetyStatusMAC")
        assert mac.read("DeviceType") == b"\x00\x45"  # available sealed (TI R4 table)


def test_word_flow_with_no_result_is_access_denied_too() -> None:
    bus = build_bus("bq40z50", {"speed": "0"})
    with EmulatedTransport(NoBlockAccess(bus)) as t:
        t.retry = NO_RETRY
        mac = Mac(t, load_profile("bq40z50"), pec=False)
        with pytest.raises(AccessDenied, match="returned no data"):
            mac.read("SafetyStatusMAC")  # sealed: ManufacturerData count 0
        assert mac.flow is MacFlow.WORD


def test_the_profile_delay_is_waited_after_the_subcommand(unsealed: Transport) -> None:
    waits: list[float] = []
    mac = Mac(unsealed, load_profile("bq40z50"), pec=False, sleep=waits.append)
    mac.write("LifetimeDataFlush")  # PX4: 200 ms before lifetime data are valid
    assert waits == [0.2]
    mac.read("DeviceType")
    assert waits == [0.2]  # no delay published for DeviceType
    bq28 = load_profile("bq28z610")
    assert bq28.timing.mac_delay_ms == 250  # the chip-wide delay is used where no per-command one exists


def test_write_uses_the_word_flow_for_commands_and_0x44_for_data(unsealed: Transport) -> None:
    mac = Mac(unsealed, load_profile("bq40z50"), pec=False)
    records = log(unsealed)
    mac.write("SealDevice")
    assert [(r.protocol.value, r.command, r.data_out) for r in records] == [("write_word", 0x00, b"\x30\x00")]
    with pytest.raises(ValueError, match="at most 32"):
        mac.write(0x4000, bytes(33))


def test_data_needs_block_access() -> None:
    bq20 = load_profile("bq20z65")
    with open_transport("emulated:bq40z50?speed=0") as t:
        mac = Mac(t, bq20, pec=False)
        assert mac.flow is MacFlow.WORD and not mac.has_block
        with pytest.raises(AccessDenied, match="needs ManufacturerBlockAccess"):
            mac.write(0x0035, b"\x01\x02")


def test_blocks_of_34_bytes_are_allowed_on_the_transport(unsealed: Transport) -> None:
    assert unsealed.max_block == 32
    mac = Mac(unsealed, load_profile("bq40z50"), pec=False)
    assert unsealed.max_block == TI_BLOCK_MAX
    assert len(mac.read("DAStatus1MAC")) == 32  # 34 bytes with the echo


def test_lookup_by_name_code_and_hex_text(unsealed: Transport) -> None:
    mac = Mac(unsealed, load_profile("bq40z50"), pec=False)
    assert mac.command("devicetype").code == 0x0001
    assert mac.command("0x0054").name == "OperationStatusMAC"
    assert mac.command(0x4938).name == "0x4938"  # a data-flash address: a raw code
    with pytest.raises(UnknownCommand, match="no MAC subcommand 'Frobnicate'"):
        mac.command("Frobnicate")
    with pytest.raises(UnknownCommand):
        mac.command(0x10000)
    with pytest.raises(AccessDenied, match="returns nothing"):
        mac.read("SealDevice")


def test_results_decode_with_layouts_and_bit_maps(unsealed: Transport) -> None:
    mac = Mac(unsealed, load_profile("bq40z50"), pec=False)
    assert mac.query("DeviceType").decoded == {"DeviceType": 0x4500}
    fw = mac.query("FirmwareVersion").decoded
    assert isinstance(fw, dict) and fw["DeviceNumber"] == 0x4500
    op = mac.query("OperationStatusMAC").decoded
    assert isinstance(op, DecodedRegister)
    assert op.group("SEC").meaning == "Unsealed" and op["DSG"] and op["CHG"]
    assert mac.decode("HardwareVersion", b"\x01\x02") is None  # no layout, no bit map: raw bytes only


def test_generic_sbs_refuses_every_mac_operation_without_touching_the_bus() -> None:
    with open_transport("emulated:generic-sbs?speed=0") as t:
        mac = Mac(t, load_profile("generic-sbs"))
        records = log(t)
        for call in (lambda: mac.read(0x0001), lambda: mac.write(0x0030), lambda: mac.command("DeviceType")):
            with pytest.raises(AccessDenied, match="never sends ManufacturerAccess"):
                call()
        assert records == []
        assert t.max_block == 32  # nothing about the bus was changed either


def test_pec_follows_the_battery() -> None:
    from smartbatt.sbs.battery import Battery

    with open_transport("emulated:bq40z50?speed=0&security=unsealed") as t:
        battery = Battery(t)
        mac = Mac(battery, load_profile("bq40z50"))
        records = log(t)
        mac.read("DeviceType")
        assert all(r.pec for r in records if r.command == 0x44)  # SpecificationInfo says SBS 1.1 + PEC
        gauge = cast(EmulatedGauge, cast(EmulatedBus, t.target).devices[BAT])  # type: ignore[attr-defined]
        assert gauge.profile.name == "bq40z50"


def test_mac_names_resolve_in_any_case_and_without_the_mac_suffix() -> None:
    from smartbatt.profiles.loader import load_profile

    profile = load_profile("bq40z50")
    assert profile.mac_command("DAStatus1").name == "DAStatus1MAC"
    assert profile.mac_command("devicetype").code == 0x0001
    assert profile.mac_command(0x0071).name == "DAStatus1MAC"
    with pytest.raises(KeyError):
        profile.mac_command("NoSuchThing")
