"""PMBusDevice against the emulated converter, through the real transport stack.

Raw words are pinned where the value is worked by hand (READ_VIN 12 V = 0xD300: 12 x 2^6 = 768 fits
the 11-bit mantissa, 12 x 2^7 does not, so N = -6 -> (26 << 11) | 768).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smartbatt.emulator.pmbus_device import (
    EmulatedPMBusDevice,
    Identity,
    default_rails,
    pmbus_bus,
)
from smartbatt.emulator.target import EmulatedBus, TargetNack
from smartbatt.errors import (
    AccessDenied,
    BusBusy,
    DecodeError,
    NoAcknowledge,
    PecMismatch,
    RangeError,
    SmartBattError,
    UnknownCommand,
    VerifyError,
)
from smartbatt.pec import crc8
from smartbatt.pmbus.commands import load_table
from smartbatt.pmbus.device import TELEMETRY_HELPERS, PMBusDevice
from smartbatt.pmbus.formats import DirectCoefficients, encode_direct
from smartbatt.transports import NO_RETRY, SMBusProtocol, TransactionRecord
from smartbatt.transports.emulated import EmulatedTransport

ADDRESS = 0x40
TABLE = load_table()


def _emulated(bus: EmulatedBus, address: int = ADDRESS) -> EmulatedPMBusDevice:
    device = bus.devices[address]
    assert isinstance(device, EmulatedPMBusDevice)
    return device


@pytest.fixture
def bus() -> EmulatedBus:
    return pmbus_bus(ADDRESS)


@pytest.fixture
def emu(bus: EmulatedBus) -> EmulatedPMBusDevice:
    return _emulated(bus)


@pytest.fixture
def transport(bus: EmulatedBus) -> Iterator[EmulatedTransport]:
    with EmulatedTransport(bus, retry=NO_RETRY) as t:
        yield t


@pytest.fixture
def log(transport: EmulatedTransport) -> list[TransactionRecord]:
    records: list[TransactionRecord] = []
    transport.add_listener(records.append)
    return records


@pytest.fixture
def pmbus(transport: EmulatedTransport) -> PMBusDevice:
    return PMBusDevice(transport, ADDRESS)


def _commands(log: list[TransactionRecord], protocol: SMBusProtocol) -> list[int | None]:
    return [r.command for r in log if r.protocol is protocol]


# --- telemetry --------------------------------------------------------------------------------------


def test_telemetry_of_both_rails(pmbus: PMBusDevice) -> None:
    assert pmbus.read_vin() == 12.0
    assert pmbus.read_vout(page=0) == 1.0
    assert pmbus.read_iout(page=0) == 12.5
    assert pmbus.read_pout(page=0) == 12.5
    assert pmbus.read_temperature_1(page=0) == 45.25
    assert pmbus.read_temperature_2(page=0) == 38.5
    assert pmbus.read_vout(page=1) == pytest.approx(3.3, abs=2**-13)
    assert pmbus.read_iout(page=1) == 4.0
    # input power = (1.0 x 12.5 + 3.3 x 4) / 0.9 = 28.56 W, within one LINEAR11 step (2^-5)
    assert pmbus.read_pin() == pytest.approx(25.7 / 0.9, abs=2**-5)
    assert pmbus.read_iin() == pytest.approx(25.7 / 0.9 / 12.0, abs=2**-8)


def test_raw_words_on_the_wire(pmbus: PMBusDevice) -> None:
    reading = pmbus.read("READ_VIN")
    assert (reading.raw, reading.value, reading.unit, reading.text) == (0xD300, 12.0, "V", "12 V")
    assert pmbus.read("READ_VOUT", page=0).raw == 0x0200  # 1.0 V x 2^9 (VOUT_MODE 0x17)
    assert pmbus.read("READ_VOUT", page=1).raw == 0x699A  # 3.3 V x 2^13 rounded (VOUT_MODE 0x13)
    assert pmbus.read("MFR_ID").raw == b"smartbatt"


def test_typed_helpers_agree_with_the_table(pmbus: PMBusDevice) -> None:
    for helper, name in TELEMETRY_HELPERS.items():
        command = TABLE.get(name)
        assert command.numeric and command.readable, name
        assert callable(getattr(pmbus, helper))
        doc = getattr(PMBusDevice, helper).__doc__
        assert name in doc and (command.unit in doc), helper
    for helper in ("read_vin", "read_vout", "read_iout", "read_pout", "read_temperature_1"):
        assert getattr(pmbus, helper)() == pmbus.read(TELEMETRY_HELPERS[helper]).value


def test_read_by_code_and_string(pmbus: PMBusDevice) -> None:
    assert pmbus.read(0x88).name == "READ_VIN"
    assert pmbus.read("0x88").value == 12.0
    with pytest.raises(UnknownCommand):
        pmbus.read("READ_NOTHING")


def test_write_only_and_non_numeric_commands(pmbus: PMBusDevice, log: list[TransactionRecord]) -> None:
    with pytest.raises(AccessDenied):
        pmbus.read("CLEAR_FAULTS")
    assert log == []  # refused before touching the bus
    with pytest.raises(DecodeError, match="not a numeric command"):
        pmbus.read_value("MFR_ID")


def test_vout_mode_is_read_once_per_page(pmbus: PMBusDevice, log: list[TransactionRecord]) -> None:
    for _ in range(3):
        assert pmbus.read_vout(page=0) == 1.0
    for _ in range(3):
        assert pmbus.read_vout(page=1) == pytest.approx(3.3, abs=2**-13)
    assert pmbus.read_vout(page=0) == 1.0
    reads = _commands(log, SMBusProtocol.READ_BYTE)
    assert reads.count(0x20) == 2  # one VOUT_MODE per page, despite 7 READ_VOUTs
    assert _commands(log, SMBusProtocol.READ_WORD).count(0x8B) == 7
    assert pmbus.vout_mode(0).exponent == -9 and pmbus.vout_mode(1).exponent == -13


def test_forget_vout_mode_rereads(pmbus: PMBusDevice, emu: EmulatedPMBusDevice) -> None:
    assert pmbus.read_vout(page=0) == 1.0
    emu.rails[0].vout_mode = 0x14  # the device was reconfigured (exponent -12)
    pmbus.forget_vout_mode()
    assert pmbus.read("READ_VOUT", page=0).raw == 0x1000  # 1.0 x 2^12
    assert pmbus.read_vout(page=0) == 1.0


# --- pages --------------------------------------------------------------------------------------------


def test_page_select_writes_then_verifies(pmbus: PMBusDevice, log: list[TransactionRecord]) -> None:
    pmbus.page = 1
    assert [(r.protocol, r.command, r.data_out) for r in log] == [
        (SMBusProtocol.READ_BYTE, 0x19, b""),  # CAPABILITY, once: decides PEC
        (SMBusProtocol.WRITE_BYTE, 0x00, b"\x01"),
        (SMBusProtocol.READ_BYTE, 0x00, b""),
    ]
    assert pmbus.page == 1


def test_page_is_written_only_when_it_changes(pmbus: PMBusDevice, log: list[TransactionRecord]) -> None:
    pmbus.read_iout(page=1)
    pmbus.read_iout(page=1)
    pmbus.read_temperature_1(page=1)
    pmbus.read_iout(page=0)
    assert _commands(log, SMBusProtocol.WRITE_BYTE) == [0x00, 0x00]


def test_reads_without_page_use_the_current_page(pmbus: PMBusDevice, emu: EmulatedPMBusDevice) -> None:
    emu.page = 1  # selected by someone else
    assert pmbus.read_iout() == 4.0


def test_page_the_device_lacks(pmbus: PMBusDevice, emu: EmulatedPMBusDevice) -> None:
    with pytest.raises(NoAcknowledge) as info:
        pmbus.page = 5
    assert info.value.byte_index == 2
    assert "refused page 5" in str(info.value)
    assert emu.page == 0  # unchanged
    assert emu.status_cml == 0x40  # invalid data


@pytest.mark.parametrize("page", [-1, 32, 0xFE, 256, True])
def test_page_out_of_range_never_reaches_the_bus(pmbus: PMBusDevice, log: list[TransactionRecord], page: int) -> None:
    with pytest.raises(RangeError):
        pmbus.page = page
    assert log == []


def test_reads_refuse_all_pages(pmbus: PMBusDevice, log: list[TransactionRecord]) -> None:
    with pytest.raises(RangeError, match="writes only"):
        pmbus.read_vout(page=0xFF)
    assert log == []


def test_device_left_on_all_pages_gets_a_clear_error(pmbus: PMBusDevice, emu: EmulatedPMBusDevice) -> None:
    emu.page = 0xFF  # a group write elsewhere left it there
    with pytest.raises(RangeError, match="PAGE is 0xFF"):
        pmbus.read_vin()
    with pytest.raises(RangeError, match="PAGE is 0xFF"):
        pmbus.status()


class _PageIgnoringDevice(EmulatedPMBusDevice):
    """A faulty part that ACKs PAGE writes but keeps page 0."""

    def _write_page(self, value: int) -> None:
        return None


def test_page_verify_error() -> None:
    bus = EmulatedBus([_PageIgnoringDevice(ADDRESS)])
    with EmulatedTransport(bus, retry=NO_RETRY) as transport:
        device = PMBusDevice(transport, ADDRESS)
        with pytest.raises(VerifyError, match="reads back 0"):
            device.page = 1
        with pytest.raises(VerifyError):
            device.read_vout(page=1)  # never silently reads page 0's value


# --- status -------------------------------------------------------------------------------------------


def test_status_clean(pmbus: PMBusDevice) -> None:
    status = pmbus.status(page=0)
    assert status.ok and status.summary.raw == 0 and status.details == () and status.flags() == []


def test_overtemperature_injected_on_one_page(pmbus: PMBusDevice, emu: EmulatedPMBusDevice) -> None:
    emu.inject("STATUS_TEMPERATURE", "OT_FAULT", page=1)
    assert pmbus.status(page=0).ok
    status = pmbus.status(page=1)
    assert status.summary.raw == 0x0004
    assert status.flags() == ["STATUS_WORD.TEMPERATURE", "STATUS_TEMPERATURE.OT_FAULT"]
    assert status.details[0].raw == 0x80


def test_overvoltage_from_a_reading_latches_fault_and_warning(pmbus: PMBusDevice, emu: EmulatedPMBusDevice) -> None:
    emu.set_reading(page=0, vout=1.2)  # above OV warn 1.10 V and OV fault 1.15 V
    status = pmbus.status(page=0)
    # VOUT | POWER_GOOD# | VOUT_OV_FAULT | NONE_OF_THE_ABOVE (the OV warning is not in bits 7:1)
    assert status.summary.raw == 0x8821
    assert status.flags() == [
        "STATUS_WORD.VOUT",
        "STATUS_WORD.POWER_GOOD_N",
        "STATUS_WORD.VOUT_OV_FAULT",
        "STATUS_WORD.NONE_OF_THE_ABOVE",
        "STATUS_VOUT.VOUT_OV_FAULT",
        "STATUS_VOUT.VOUT_OV_WARNING",
    ]
    assert [d.name for d in status.details] == ["STATUS_VOUT"]  # two summary bits, one detail read


def test_overcurrent_on_page_1(pmbus: PMBusDevice, emu: EmulatedPMBusDevice) -> None:
    emu.set_reading(page=1, iout=13.0)  # above OC warn 10 A and OC fault 12 A
    status = pmbus.status(page=1)
    # IOUT/POUT | IOUT_OC_FAULT | NONE_OF_THE_ABOVE (the OC warning is not in bits 7:1)
    assert status.summary.raw == 0x4011
    assert status.details[0].flag_names == ("IOUT_OC_FAULT", "IOUT_OC_WARNING")
    assert pmbus.status(page=0).ok


def test_inject_rejects_what_the_device_lacks(emu: EmulatedPMBusDevice) -> None:
    with pytest.raises(ValueError, match="computed"):
        emu.inject("STATUS_WORD", "VOUT")
    with pytest.raises(ValueError, match="not implemented"):
        emu.inject("STATUS_FANS_1_2", "FAN_1_FAULT")
    with pytest.raises(UnknownCommand):
        emu.inject("STATUS_VOUT", "NO_SUCH_BIT")
    with pytest.raises(ValueError, match="page 2"):
        emu.inject("STATUS_VOUT", "VOUT_OV_FAULT", page=2)


def test_input_undervoltage_shows_on_every_page(pmbus: PMBusDevice, emu: EmulatedPMBusDevice) -> None:
    emu.set_reading(vin=8.5)
    for page in (0, 1):
        flags = pmbus.status(page=page).flags()
        assert "STATUS_WORD.VIN_UV_FAULT" in flags
        assert "STATUS_INPUT.VIN_UV_FAULT" in flags and "STATUS_INPUT.VIN_UV_WARNING" in flags


def test_output_off_is_reported(pmbus: PMBusDevice, transport: EmulatedTransport) -> None:
    transport.write_byte(ADDRESS, 0x01, 0x00, pec=True)  # OPERATION: off (page 0)
    status = pmbus.status(page=0)
    assert status.flags() == ["STATUS_WORD.POWER_GOOD_N", "STATUS_WORD.OFF"]
    assert not status.ok
    assert pmbus.read_vout(page=0) == 0.0


def test_unsupported_command_nacks_and_flags_cml(pmbus: PMBusDevice, emu: EmulatedPMBusDevice) -> None:
    with pytest.raises(NoAcknowledge) as info:
        pmbus.read_fan_speed_1()
    error = info.value
    assert (error.byte_index, error.address, error.command) == (1, ADDRESS, 0x90)
    assert "does not support READ_FAN_SPEED_1 (0x90)" in str(error)
    assert pmbus.status().flags() == ["STATUS_WORD.CML", "STATUS_CML.INVALID_COMMAND"]


def test_unsupported_detail_register_is_reported_not_raised(bus: EmulatedBus) -> None:
    device = EmulatedPMBusDevice(ADDRESS, unsupported={0x7D})
    device.inject("STATUS_TEMPERATURE", "OT_WARNING")
    with EmulatedTransport(EmulatedBus([device]), retry=NO_RETRY) as transport:
        status = PMBusDevice(transport, ADDRESS).status(page=0)
    # the device NACKed STATUS_TEMPERATURE, which itself set CML: the summary was read first
    assert status.summary.flag_names == ("TEMPERATURE",)
    assert status.details[0].name == "STATUS_TEMPERATURE"
    assert status.details[0].raw is None and status.details[0].error == "not supported by the device"


def test_status_byte_fallback() -> None:
    device = EmulatedPMBusDevice(ADDRESS, unsupported={0x79})
    device.inject("STATUS_TEMPERATURE", "OT_FAULT")
    with EmulatedTransport(EmulatedBus([device]), retry=NO_RETRY) as transport:
        status = PMBusDevice(transport, ADDRESS).status(page=0)
    assert status.summary.name == "STATUS_BYTE"
    # the refused STATUS_WORD read set CML, and the device reports it honestly
    assert status.flags() == [
        "STATUS_BYTE.TEMPERATURE",
        "STATUS_BYTE.CML",
        "STATUS_TEMPERATURE.OT_FAULT",
        "STATUS_CML.INVALID_COMMAND",
    ]


def test_clear_faults_only_on_request(
    pmbus: PMBusDevice, emu: EmulatedPMBusDevice, log: list[TransactionRecord]
) -> None:
    emu.inject("STATUS_TEMPERATURE", "OT_WARNING", page=0)
    pmbus.read_vin()
    pmbus.status(page=1)
    pmbus.identify()
    pmbus.dump(page=0)
    with pytest.raises(NoAcknowledge):
        pmbus.read_fan_speed_1()
    assert emu.clear_faults_count == 0
    # the only writes so far are page selections
    writes = [
        r for r in log if r.protocol not in (SMBusProtocol.READ_BYTE, SMBusProtocol.READ_WORD, SMBusProtocol.READ_BLOCK)
    ]
    assert writes and all((r.protocol, r.command) == (SMBusProtocol.WRITE_BYTE, 0x00) for r in writes)
    assert not pmbus.status(page=0).ok
    pmbus.clear_faults()
    assert emu.clear_faults_count == 1
    assert pmbus.status(page=0).ok and pmbus.status(page=1).ok


def test_clear_faults_relatches_a_present_condition(pmbus: PMBusDevice, emu: EmulatedPMBusDevice) -> None:
    emu.set_reading(page=1, temperature_1=130.0)
    assert "STATUS_TEMPERATURE.OT_FAULT" in pmbus.status(page=1).flags()
    pmbus.clear_faults()
    assert "STATUS_TEMPERATURE.OT_FAULT" in pmbus.status(page=1).flags()  # still 130 °C
    emu.set_reading(page=1, temperature_1=60.0)
    pmbus.clear_faults()
    assert pmbus.status(page=1).ok


def test_clear_faults_on_all_pages_restores_the_page(pmbus: PMBusDevice, emu: EmulatedPMBusDevice) -> None:
    pmbus.page = 1
    emu.inject("STATUS_IOUT", "IOUT_OC_WARNING", page=0)
    pmbus.clear_faults(page=0xFF)
    assert emu.page == 1
    assert pmbus.read_iout() == 4.0
    assert pmbus.status(page=0).ok


def test_status_bits_are_write_one_to_clear(transport: EmulatedTransport, emu: EmulatedPMBusDevice) -> None:
    emu.inject("STATUS_TEMPERATURE", "OT_FAULT")
    emu.inject("STATUS_TEMPERATURE", "OT_WARNING")
    transport.write_byte(ADDRESS, 0x7D, 0x40, pec=True)
    assert transport.read_byte(ADDRESS, 0x7D) == 0x80


# --- identity and PEC -------------------------------------------------------------------------------


def test_identify(pmbus: PMBusDevice) -> None:
    identity = pmbus.identify()
    assert (identity.mfr_id, identity.mfr_model, identity.mfr_revision) == ("smartbatt", "EMU-POL2", "A1")
    assert identity.capability_raw == 0xB0 and identity.pec_supported is True
    assert identity.capability is not None
    assert {v.name: v.text for v in identity.capability}["MAX_BUS_SPEED"] == "400 kHz"
    assert identity.pmbus_revision is not None
    assert [v.text for v in identity.pmbus_revision] == ["1.3", "1.3"]


def test_identify_with_missing_commands() -> None:
    device = EmulatedPMBusDevice(ADDRESS, unsupported={0x9A, 0x19})
    with EmulatedTransport(EmulatedBus([device]), retry=NO_RETRY) as transport:
        identity = PMBusDevice(transport, ADDRESS).identify()
    assert identity.mfr_model is None and identity.capability is None and identity.pec_supported is None
    assert identity.mfr_id == "smartbatt"


def test_pec_follows_capability(pmbus: PMBusDevice, log: list[TransactionRecord]) -> None:
    pmbus.read_vin()
    assert [(r.command, r.pec) for r in log] == [(0x19, False), (0x88, True)]


def test_pec_off_when_the_device_lacks_it() -> None:
    device = EmulatedPMBusDevice(ADDRESS, identity=Identity(capability=0x30))
    with EmulatedTransport(EmulatedBus([device]), retry=NO_RETRY) as transport:
        records: list[TransactionRecord] = []
        transport.add_listener(records.append)
        pmbus = PMBusDevice(transport, ADDRESS)
        assert pmbus.read_vin() == 12.0 and pmbus.pec is False
    assert all(not r.pec for r in records)


def test_pec_off_when_capability_is_unsupported() -> None:
    device = EmulatedPMBusDevice(ADDRESS, unsupported={0x19})
    with EmulatedTransport(EmulatedBus([device]), retry=NO_RETRY) as transport:
        assert PMBusDevice(transport, ADDRESS).pec is False


@pytest.mark.parametrize("pec", [True, False])
def test_forced_pec(transport: EmulatedTransport, log: list[TransactionRecord], pec: bool) -> None:
    device = PMBusDevice(transport, ADDRESS, pec=pec)
    assert device.read_vout(page=1) == pytest.approx(3.3, abs=2**-13)
    device.clear_faults()
    assert log and all(r.pec is pec for r in log)
    assert 0x19 not in [r.command for r in log]  # forced: CAPABILITY is not consulted


def test_corrupted_pec_is_a_typed_error(transport: EmulatedTransport) -> None:
    transport.faults.corrupt_pec_every = 1
    with pytest.raises(PecMismatch):
        PMBusDevice(transport, ADDRESS, pec=True).read_vin()
    # without PEC nothing checks it: the same corruption goes unnoticed, by design
    assert PMBusDevice(transport, ADDRESS, pec=False).read_vin() == 12.0


def test_device_requiring_pec_refuses_writes_without_it(transport: EmulatedTransport, emu: EmulatedPMBusDevice) -> None:
    emu.require_pec = True
    with pytest.raises(NoAcknowledge):
        PMBusDevice(transport, ADDRESS, pec=False).page = 1
    assert emu.status_cml & 0x40  # invalid data
    PMBusDevice(transport, ADDRESS, pec=True).page = 1
    assert emu.page == 1


def test_bad_pec_on_a_write_sets_cml(bus: EmulatedBus, emu: EmulatedPMBusDevice) -> None:
    frame = bytes((0x00, 0x01))  # PAGE <- 1
    good = crc8(bytes((ADDRESS << 1,)) + frame)
    with pytest.raises(TargetNack):
        bus.transfer(ADDRESS, frame + bytes((good ^ 0xFF,)))
    assert emu.status_cml == 0x20 and emu.page == 0
    bus.transfer(ADDRESS, frame + bytes((good,)))
    assert emu.page == 1


# --- DIRECT-format devices --------------------------------------------------------------------------

IOUT_COEFFICIENTS = DirectCoefficients(m=800, b=20, R=-1)  # illustrative, like a hot-swap datasheet


def test_direct_telemetry_needs_coefficients() -> None:
    device = EmulatedPMBusDevice(ADDRESS, direct={0x8C: IOUT_COEFFICIENTS})
    with EmulatedTransport(EmulatedBus([device]), retry=NO_RETRY) as transport:
        raw = PMBusDevice(transport, ADDRESS).read("READ_IOUT", page=0).raw
        # Y = round((800 x 12.5 + 20) / 10) = 1002 = 0x03EA
        assert raw == encode_direct(12.5, IOUT_COEFFICIENTS) == 0x03EA
        wrong = PMBusDevice(transport, ADDRESS).read_iout(page=0)
        assert wrong != 12.5  # read as LINEAR11 it is nonsense: the datasheet's coefficients matter
        right = PMBusDevice(transport, ADDRESS, direct_coefficients={"READ_IOUT": IOUT_COEFFICIENTS})
        assert right.read_iout(page=0) == pytest.approx(12.5, abs=0.1 / 800)


def test_direct_vout_mode() -> None:
    vout = DirectCoefficients(m=4000, b=0, R=-1)
    rails = default_rails()
    rails[0].vout_mode = 0x40  # DIRECT
    device = EmulatedPMBusDevice(ADDRESS, rails, vout_coefficients=vout)
    with EmulatedTransport(EmulatedBus([device]), retry=NO_RETRY) as transport:
        with pytest.raises(DecodeError, match="coefficients") as info:
            PMBusDevice(transport, ADDRESS).read_vout(page=0)
        assert (info.value.address, info.value.command) == (ADDRESS, 0x8B)
        device_with = PMBusDevice(transport, ADDRESS, direct_coefficients={0x8B: vout})
        assert device_with.read_vout(page=0) == 1.0


def test_unknown_coefficient_key(transport: EmulatedTransport) -> None:
    with pytest.raises(UnknownCommand):
        PMBusDevice(transport, ADDRESS, direct_coefficients={"READ_NOTHING": IOUT_COEFFICIENTS})


def test_emulator_refuses_vout_modes_it_cannot_model() -> None:
    for mode in (0x21, 0x97, 0x60):  # VID, relative, IEEE half
        rails = default_rails()
        rails[1].vout_mode = mode
        with pytest.raises(ValueError, match="not emulated"):
            EmulatedPMBusDevice(ADDRESS, rails)
    rails = default_rails()
    rails[1].vout_mode = 0x40
    with pytest.raises(ValueError, match="vout_coefficients"):
        EmulatedPMBusDevice(ADDRESS, rails)


# --- dump and bus errors ----------------------------------------------------------------------------


def test_dump(pmbus: PMBusDevice, emu: EmulatedPMBusDevice) -> None:
    entries = {e.command.name: e for e in pmbus.dump(page=1)}
    assert entries["READ_VOUT"].reading is not None
    assert entries["READ_VOUT"].reading.raw == 0x699A
    assert entries["READ_FAN_SPEED_1"].reading is None and entries["READ_FAN_SPEED_1"].error == "not supported"
    assert "CLEAR_FAULTS" not in entries  # send byte: not read
    assert len(entries) == sum(1 for c in TABLE if c.readable)
    assert emu.status_cml == 0x80  # every unsupported command was flagged, as on a real device


def test_nothing_at_the_address(transport: EmulatedTransport) -> None:
    with pytest.raises(NoAcknowledge) as info:
        PMBusDevice(transport, 0x41).read_vin()  # PEC detection is the first transaction
    assert info.value.byte_index == 0 and "Nothing answered at address 0x41" in str(info.value)
    with pytest.raises(NoAcknowledge, match="Nothing answered"):
        PMBusDevice(transport, 0x41, pec=False).read_vin()


def test_stuck_bus(transport: EmulatedTransport) -> None:
    device = PMBusDevice(transport, ADDRESS, pec=False)
    transport.faults.stuck = True
    with pytest.raises(BusBusy):
        device.read_vin()
    with pytest.raises(BusBusy):
        device.dump()


def test_invalid_address(transport: EmulatedTransport) -> None:
    with pytest.raises(ValueError):
        PMBusDevice(transport, 0x80)


# --- fuzzing: whatever a device answers, the result is a reading or a typed error --------------------


class _RandomReplies:
    """An SMBus target that answers every read with the bytes it is given."""

    def __init__(self) -> None:
        self.reply = b""

    def transfer(self, address: int, write: bytes, read: bool = False) -> bytes:
        return self.reply if read else b""

    def quick(self, address: int, read: bool) -> None:
        return None


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=150)
@given(
    st.sampled_from([c.name for c in TABLE if c.readable]),
    st.binary(max_size=40),
    st.booleans(),
)
def test_any_reply_is_a_reading_or_a_typed_error(name: str, reply: bytes, pec: bool) -> None:
    target = _RandomReplies()
    target.reply = reply
    with EmulatedTransport(target, retry=NO_RETRY) as transport:
        device = PMBusDevice(transport, ADDRESS, pec=pec)
        try:
            reading = device.read(name)
        except SmartBattError:
            return
        assert reading.name == name and isinstance(reading.text, str)
