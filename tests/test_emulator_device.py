"""The emulated bq40z50 as an SMBus device: SBS commands, MAC, security, profiles, URIs, charger."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import cast

import pytest

from smartbatt.emulator import build_bus
from smartbatt.emulator.device import EmulatedGauge, Security
from smartbatt.emulator.register_file import RegisterFileDevice
from smartbatt.emulator.target import EmulatedBus
from smartbatt.errors import BadBlockLength, NoAcknowledge, UriError
from smartbatt.transports import Transport, open_transport
from smartbatt.transports.retry import NO_RETRY

BAT = 0x0B


def gauge_of(t: Transport) -> EmulatedGauge:
    return cast(EmulatedGauge, cast(EmulatedBus, t.target).devices[BAT])  # type: ignore[attr-defined]


@pytest.fixture
def sealed() -> Iterator[Transport]:
    with open_transport("emulated:bq40z50?speed=0&seed=1") as t:
        t.retry = NO_RETRY
        yield t


def sec(t: Transport) -> int:
    """SEC[1:0] from OperationStatus via MAC 0x0054 (flow A)."""
    t.write_word(BAT, 0x00, 0x0054)
    data = t.read_block(BAT, 0x23)
    return (int.from_bytes(data[:4], "little") >> 8) & 3


def unseal(t: Transport) -> None:
    with t.exclusive():
        t.write_word(BAT, 0x00, 0x0414)
        t.write_word(BAT, 0x00, 0x3672)


# --- SBS 0x00–0x23 ------------------------------------------------------------------------------


def test_sbs_identity_and_fixed_registers(sealed: Transport) -> None:
    t = sealed
    assert t.read_block(BAT, 0x20) == b"smartbatt"
    assert t.read_block(BAT, 0x21) == b"EMU-4S3000"
    assert t.read_block(BAT, 0x22) == b"LION"
    assert t.read_word(BAT, 0x1A) == 0x0031
    assert t.read_word(BAT, 0x1B) == (2025 - 1980) * 512 + 3 * 32 + 14
    assert t.read_word(BAT, 0x18) == 3000
    assert t.read_word(BAT, 0x19) == 14400
    assert t.read_word(BAT, 0x03) == 0x6001


def test_sbs_reads_with_pec(sealed: Transport) -> None:
    assert sealed.read_word(BAT, 0x09, pec=True) == sealed.read_word(BAT, 0x09)


def test_read_only_registers_refuse_writes_with_access_denied(sealed: Transport) -> None:
    t = sealed
    with pytest.raises(NoAcknowledge):
        t.write_word(BAT, 0x09, 1234)
    assert t.read_word(BAT, 0x16) & 0x000F == 0x4  # EC AccessDenied reported by the next BatteryStatus
    assert t.read_word(BAT, 0x16) & 0x000F == 0x0  # …and cleared by that read


def test_unsupported_command_nacks_with_error_code(sealed: Transport) -> None:
    with pytest.raises(NoAcknowledge):
        sealed.read_word(BAT, 0x1D)
    assert sealed.read_word(BAT, 0x16) & 0x000F == 0x3


def test_battery_mode_only_writable_bits_change(sealed: Transport) -> None:
    t = sealed
    t.write_word(BAT, 0x03, 0xFFFF)
    assert t.read_word(BAT, 0x03) == (0x6001 | 0xE300)  # ICC stays (read-only), CF is computed
    t.write_word(BAT, 0x03, 0x0000)
    assert t.read_word(BAT, 0x03) == 0x0001


def test_alarm_registers_drive_rca_and_rta(sealed: Transport) -> None:
    t = sealed
    assert not t.read_word(BAT, 0x16) & 0x0200
    t.write_word(BAT, 0x01, 3000)  # RemainingCapacityAlarm above RemainingCapacity
    assert t.read_word(BAT, 0x01) == 3000
    assert t.read_word(BAT, 0x16) & 0x0200  # RCA
    t.write_word(BAT, 0x01, 0)  # 0 disables
    assert not t.read_word(BAT, 0x16) & 0x0200


def test_cell_voltage_registers_match_dastatus1() -> None:
    with open_transport("emulated:bq40z50?speed=0&seed=1&security=unsealed") as t:
        cells = [t.read_word(BAT, c) for c in (0x3F, 0x3E, 0x3D, 0x3C)]
        block = t.read_block(BAT, 0x71)
        assert len(block) == 32
        fields = struct.unpack("<6H4h4h2h", block)
        assert list(fields[:4]) == cells
        assert fields[4] == sum(cells) == t.read_word(BAT, 0x09)
        t.write_word(BAT, 0x00, 0x0072)
        da2 = t.read_block(BAT, 0x23)
        assert len(da2) == 14
        assert struct.unpack("<7H", da2)[5] == t.read_word(BAT, 0x08)  # cell temperature = Temperature()


def test_fewer_cells_read_zero_in_missing_cell_registers() -> None:
    with open_transport("emulated:bq40z50?speed=0&cells=2") as t:
        assert t.read_word(BAT, 0x3F) > 3000 and t.read_word(BAT, 0x3E) > 3000
        assert t.read_word(BAT, 0x3D) == 0 and t.read_word(BAT, 0x3C) == 0
        assert t.read_word(BAT, 0x19) == 7200


# --- MAC and security ------------------------------------------------------------------------------


def test_sealed_gauge_answers_device_type_and_firmware_by_both_flows(sealed: Transport) -> None:
    t = sealed
    t.write_word(BAT, 0x00, 0x0001)
    assert t.read_block(BAT, 0x23) == b"\x00\x45"  # 0x4500 LE, no echo (flow A)
    t.write_block(BAT, 0x44, b"\x01\x00")
    assert t.read_block(BAT, 0x44) == b"\x01\x00\x00\x45"  # echo + data (flow B)
    t.write_block(BAT, 0x44, b"\x02\x00")
    fw = t.read_block(BAT, 0x44)
    assert fw[:2] == b"\x02\x00" and fw[2:4] == b"\x45\x00" and len(fw) == 2 + 11  # big-endian DeviceNumber


def test_sealed_gauge_refuses_status_blocks_and_unsealed_macs(sealed: Transport) -> None:
    t = sealed
    assert sec(t) == Security.SEALED
    for command in (0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57, 0x71, 0x72):
        with pytest.raises(NoAcknowledge):
            t.read_block(BAT, command)
    t.write_word(BAT, 0x00, 0x0051)  # accepted, ignored: the result buffer is empty (count 0)
    with pytest.raises(BadBlockLength):
        t.read_block(BAT, 0x23)
    t.write_block(BAT, 0x44, b"\x51\x00")
    assert t.read_block(BAT, 0x44) == b"\x51\x00"  # echo, no data
    t.write_word(BAT, 0x00, 0x0035)
    with pytest.raises(BadBlockLength):
        t.read_block(BAT, 0x23)  # keys never leak while sealed


def test_unseal_full_access_and_seal(sealed: Transport) -> None:
    t = sealed
    unseal(t)
    assert sec(t) == Security.UNSEALED
    assert len(t.read_block(BAT, 0x51)) == 4
    assert len(t.read_block(BAT, 0x55)) == 3
    assert len(t.read_block(BAT, 0x56)) == 3
    assert len(t.read_block(BAT, 0x57)) == 2
    t.write_block(BAT, 0x44, b"\x35\x00")
    assert t.read_block(BAT, 0x44) == b"\x35\x00"  # SecurityKeys needs FULL ACCESS: no data
    with t.exclusive():
        t.write_word(BAT, 0x00, 0xFFFF)
        t.write_word(BAT, 0x00, 0xFFFF)
    assert sec(t) == Security.FULL_ACCESS
    t.write_word(BAT, 0x00, 0x0035)
    assert t.read_block(BAT, 0x23) == bytes.fromhex("14047236ffffffff")
    t.write_word(BAT, 0x00, 0x0030)  # SealDevice
    assert sec(t) == Security.SEALED
    with pytest.raises(NoAcknowledge):
        t.read_block(BAT, 0x51)


def test_unseal_fails_with_traffic_between_the_key_words(sealed: Transport) -> None:
    t = sealed
    t.write_word(BAT, 0x00, 0x0414)
    t.read_word(BAT, 0x09)  # any other transaction breaks the sequence
    t.write_word(BAT, 0x00, 0x3672)
    assert sec(t) == Security.SEALED


def test_unseal_fails_after_the_four_second_window(sealed: Transport) -> None:
    t = sealed
    vp = gauge_of(t).vpack
    t.write_word(BAT, 0x00, 0x0414)
    vp.clock.advance(4.5)  # time passes without bus traffic
    t.write_word(BAT, 0x00, 0x3672)
    assert sec(t) == Security.SEALED
    t.write_word(BAT, 0x00, 0x0414)
    vp.clock.advance(3.5)
    t.write_word(BAT, 0x00, 0x3672)
    assert sec(t) == Security.UNSEALED


def test_wrong_second_word_and_block_write_keys_do_not_unseal(sealed: Transport) -> None:
    t = sealed
    t.write_word(BAT, 0x00, 0x0414)
    t.write_word(BAT, 0x00, 0x3673)
    assert sec(t) == Security.SEALED
    t.write_block(BAT, 0x44, b"\x14\x04")
    t.write_block(BAT, 0x44, b"\x72\x36")  # keys sent through 0x44 fail (ti_gauges.md §6)
    assert sec(t) == Security.SEALED


def test_security_keys_can_be_changed_in_full_access() -> None:
    with open_transport("emulated:bq40z50?speed=0&security=full") as t:
        t.write_block(BAT, 0x44, bytes.fromhex("3500" "3412" "7856" "ffff" "ffff"))
        t.write_block(BAT, 0x44, bytes.fromhex("3500" "5000" "0100" "ffff" "ffff"))  # 0x0050 is a MAC code: refused
        t.write_word(BAT, 0x00, 0x0030)
        unseal(t)
        assert sec(t) == Security.SEALED  # the default key no longer works
        with t.exclusive():
            t.write_word(BAT, 0x00, 0x1234)
            t.write_word(BAT, 0x00, 0x5678)
        assert sec(t) == Security.UNSEALED


def test_device_reset_seals_and_reinitialises() -> None:
    with open_transport("emulated:bq40z50?speed=0&security=unsealed") as t:
        vp = gauge_of(t).vpack
        t.write_word(BAT, 0x00, 0x0041)  # DeviceReset
        assert not t.read_word(BAT, 0x16) & 0x0080  # INIT cleared
        assert sec(t) == Security.SEALED
        vp.advance(1)
        assert t.read_word(BAT, 0x16) & 0x0080


# --- profiles, URIs -----------------------------------------------------------------------------------


def test_generic_sbs_profile_has_no_ti_extensions() -> None:
    with open_transport("emulated:generic-sbs?speed=0") as t:
        t.retry = NO_RETRY
        assert 14000 < t.read_word(BAT, 0x09) < 17500
        for command in (0x3C, 0x3F):
            with pytest.raises(NoAcknowledge):
                t.read_word(BAT, command)
        with pytest.raises(NoAcknowledge):
            t.read_block(BAT, 0x51)
        t.write_word(BAT, 0x00, 0x0414)
        assert t.read_word(BAT, 0x00) == 0x0414  # a plain register, no key sequence


def test_unknown_profile_lists_the_known_ones() -> None:
    with pytest.raises(UriError, match=r"bq40z50.*generic-sbs"):
        build_bus("bq99", {})


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"colour": "red"}, "valid options"),
        ({"scenario": "rocket"}, "scenario"),
        ({"cells": "5"}, "1..4"),
        ({"thermistor": "melted"}, "thermistor"),
        ({"short_cell": "9"}, "short_cell"),
        ({"speed": "-1"}, "speed"),
        ({"security": "open"}, "security"),
        ({"soc": "1.5"}, "initial_soc"),
        ({"model": "quantum"}, "model"),
    ],
)
def test_invalid_options_are_uri_errors(options: dict[str, str], match: str) -> None:
    with pytest.raises(UriError, match=match):
        build_bus("bq40z50", options)


def test_static_model_still_gives_the_register_file() -> None:
    bus = build_bus("", {"model": "static"})
    assert isinstance(bus.devices[BAT], RegisterFileDevice)
    with pytest.raises(UriError, match="model=static"):
        build_bus("", {"model": "static", "cells": "2"})


def test_default_uri_is_the_physics_bq40z50() -> None:
    bus = build_bus("", {"speed": "0"})
    assert isinstance(bus.devices[BAT], EmulatedGauge)
    assert bus.devices[BAT].profile.name == "bq40z50"  # type: ignore[attr-defined]


# --- charger at 0x09 ----------------------------------------------------------------------------------


def test_charger_commands_and_inhibit() -> None:
    with open_transport("emulated:bq40z50?speed=0&soc=0.5&charger=1") as t:
        t.retry = NO_RETRY
        vp = gauge_of(t).vpack
        assert t.read_word(0x09, 0x11) == 0x0002
        status = t.read_word(0x09, 0x13)
        assert status & 0x8000 and status & 0x4000 and status & 0x0030 == 0x0030  # AC, battery, level 3
        vp.advance(10)
        assert t.read_word(BAT, 0x0A) > 1000
        t.write_word(0x09, 0x12, 0x0001)  # INHIBIT_CHARGE
        assert t.read_word(0x09, 0x13) & 0x0001
        vp.advance(5)
        assert t.read_word(BAT, 0x0A) == 0
        t.write_word(0x09, 0x12, 0x0002)  # polling again
        t.write_word(0x09, 0x14, 500)  # host ceiling 500 mA
        vp.advance(5)
        assert 450 <= t.read_word(BAT, 0x0A) <= 510
        with pytest.raises(NoAcknowledge):
            t.read_word(0x09, 0x14)  # ChargingCurrent is write-only on a charger


def test_a_pmbus_converter_can_share_the_bus() -> None:
    from smartbatt.emulator.pmbus_device import EmulatedPMBusDevice

    bus = build_bus("", {"speed": "0", "pmbus": "0x40"})
    assert isinstance(bus.devices[0x40], EmulatedPMBusDevice)
    assert isinstance(bus.devices[BAT], EmulatedGauge)
    assert isinstance(build_bus("", {"model": "static", "pmbus": "0x41"}).devices[0x41], EmulatedPMBusDevice)
    with pytest.raises(UriError, match="pmbus"):
        build_bus("", {"pmbus": "0x0B"})


def test_a_long_idle_backlog_is_caught_up_in_bounded_steps() -> None:
    """An emulated pack left alone for simulated hours answers the next read without replaying
    every 1 s step (the catch-up steps grow), and its state still follows the physics."""
    from smartbatt.emulator.device import CATCH_UP_MAX_S, CATCH_UP_STEPS
    from smartbatt.emulator.factory import build_bus

    bus = build_bus("bq40z50", {"speed": "0", "scenario": "idle", "soc": "0.5"})
    gauge = bus.devices[0x0B]
    vpack = gauge.vpack  # type: ignore[attr-defined]
    steps = 0
    original = vpack._step

    def counting(dt: float) -> None:
        nonlocal steps
        steps += 1
        original(dt)

    vpack._step = counting
    vpack.clock.advance(6 * 3600.0)
    vpack.sync()
    assert vpack.time_s == pytest.approx(6 * 3600.0, abs=1.0)
    # one stretch of equal catch-up steps, then at most one catch-up step replayed in 1 s steps
    assert steps <= max(CATCH_UP_STEPS, 6 * 3600 / CATCH_UP_MAX_S) + CATCH_UP_MAX_S + 1
    assert 0.45 < float(vpack.pack.cell_soc.mean()) < 0.51  # self-discharge only, no jump


def test_manufacturer_data_before_any_mac_command_is_operation_status() -> None:
    """TI E2E 1334019: with no MAC command taken, 0x44 answers the OperationStatus result, so a
    plain SBS snapshot of the default emulated pack reads ManufacturerData without an error."""
    from smartbatt.sbs.battery import Battery
    from smartbatt.transports import open_transport

    with open_transport("emulated:bq40z50?speed=0&security=unsealed") as t:
        assert t.read_block(0x0B, 0x44)[:2] == b"\x54\x00"
        battery = Battery(t)
        data = battery.read("ManufacturerData").raw
        assert isinstance(data, bytes) and len(data) == 4  # OperationStatus, 32 bits, no echo
        assert int.from_bytes(data, "little") == int.from_bytes(t.read_block(0x0B, 0x54), "little")
        snapshot = battery.snapshot()
        assert snapshot.ok, snapshot
        t.write_block(0x0B, 0x44, b"\x01\x00")  # DeviceType
        assert t.read_block(0x0B, 0x44)[:2] == b"\x01\x00"


@pytest.mark.parametrize(
    ("options", "serial", "date"),
    [
        ({"serial": "777", "made": "2026-11-01"}, 777, "2026-11-01"),
        ({"seed": "5"}, 0x1005, "2025-03-14"),
    ],
)
def test_identity_options_set_serial_and_manufacture_date(options: dict[str, str], serial: int, date: str) -> None:
    from smartbatt.sbs.battery import Battery
    from smartbatt.transports.emulated import EmulatedTransport

    bus = build_bus("bq40z50", {"speed": "0", **options})
    with EmulatedTransport(bus) as t:
        battery = Battery(t)
        assert battery.serial_number == serial
        made = battery.manufacture_date
        assert made is not None and made.isoformat() == date


def test_made_today_and_bad_identity_options() -> None:
    import datetime

    from smartbatt.errors import UriError
    from smartbatt.sbs.battery import Battery
    from smartbatt.transports.emulated import EmulatedTransport

    with EmulatedTransport(build_bus("bq40z50", {"speed": "0", "made": "today"})) as t:
        assert Battery(t).manufacture_date == datetime.date.today()
    for bad in ({"made": "2026-13-01"}, {"made": "1970-01-01"}, {"serial": "70000"}):
        with pytest.raises(UriError):
            build_bus("bq40z50", bad)


def test_da_status1_saturates_power_in_a_drone_burst() -> None:
    """576 W in cW does not fit a signed 16-bit field: the emulated gauge saturates instead of
    failing the transaction (regression: a bare struct.error escaped at a 36 A burst)."""
    import struct

    from smartbatt.emulator.load import ConstantCurrent
    from smartbatt.transports.emulated import EmulatedTransport

    bus = build_bus("bq40z50", {"speed": "0", "security": "unsealed", "scenario": "drone", "soc": "1.0"})
    gauge = bus.devices[0x0B]
    gauge.vpack.load = ConstantCurrent(-36.0)  # type: ignore[attr-defined]
    gauge.vpack.advance(2.0)  # type: ignore[attr-defined]
    with EmulatedTransport(bus) as t:
        block = t.read_block(0x0B, 0x71)
        current = t.read_word(0x0B, 0x0A)
    fields = struct.unpack("<6H4h4h2h", block)
    assert fields[14] == -32768  # Power, cW
    assert fields[6] == -32768  # cell 1 current, mA
    assert current == 0x8000  # SBS Current saturates at -32768 mA, not wrapped to +29.5 A
