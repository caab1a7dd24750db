"""The gauge driver against the emulated chip: detection, every status bit, security state, cells,
DAStatus blocks, lifetime data, and generic SBS mode that never writes ManufacturerAccess."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import cast

import pytest

from smartbatt.emulator.device import EmulatedGauge, Security
from smartbatt.emulator.load import ConstantCurrent
from smartbatt.emulator.protections import PF_RULES, RULES
from smartbatt.errors import AccessDenied, NoAcknowledge, SealedError, SecurityError, UnknownCommand
from smartbatt.gauge import security
from smartbatt.gauge.dataflash import DataFlash
from smartbatt.gauge.gauge import Gauge, detect
from smartbatt.profiles.loader import load_profile
from smartbatt.profiles.schema import SecurityLevel
from smartbatt.sbs.battery import Battery
from smartbatt.transports import TransactionRecord, Transport, open_transport
from smartbatt.transports.emulated import EmulatedTransport
from tests.gauge_helpers import emulator, log, no_sleep


def mac_writes(records: list[TransactionRecord]) -> list[TransactionRecord]:
    """Writes to ManufacturerAccess or ManufacturerBlockAccess."""
    return [r for r in records if r.protocol.value.startswith("write") and r.command in (0x00, 0x44)]


@pytest.fixture
def pack(request: pytest.FixtureRequest) -> Iterator[Transport]:
    with open_transport(f"emulated:{request.param}?speed=0&security=unsealed") as t:
        yield t


# --- detection ----------------------------------------------------------------------------------


def test_detection_without_mac_writes_nothing_and_falls_back_to_generic() -> None:
    with open_transport("emulated:bq40z50?speed=0") as t:
        records = log(t)
        result = detect(Battery(t))
        assert result.profile == "generic-sbs" and not result.confirmed
        assert "EMU-4S3000" in result.reason and "matches no chip profile" in result.reason
        assert not [r for r in records if r.protocol.value.startswith("write")]


@pytest.mark.parametrize(("chip", "device_type"), [("bq40z50", 0x4500), ("bq4050", 0x9E34)])
def test_detection_with_the_device_type_probe(chip: str, device_type: int) -> None:
    with open_transport(f"emulated:{chip}?speed=0") as t:
        records = log(t)
        gauge = Gauge(Battery(t), allow_mac=True, sleep=no_sleep)
        assert gauge.profile.name == chip
        assert gauge.detection is not None and gauge.detection.confirmed
        assert gauge.detection.device_type == device_type
        writes = mac_writes(records)
        assert [(w.command, w.data_out) for w in writes] == [(0x00, b"\x01\x00")]  # MAC 0x0001, once


def test_a_device_name_alone_selects_a_profile_and_its_variant_unconfirmed() -> None:
    with open_transport("emulated:bq40z50?speed=0") as t:
        emulator(t).identity.device_name = b"bq40z50-R2"
        gauge = Gauge(Battery(t), sleep=no_sleep)
        assert (gauge.profile.name, gauge.profile.variant) == ("bq40z50", "R2")
        assert gauge.detection is not None and not gauge.detection.confirmed


def test_a_clone_with_a_ti_name_but_no_ti_device_type_stays_generic() -> None:
    with open_transport("emulated:generic-sbs?speed=0") as t:
        emulator(t).identity.device_name = b"bq40z50"
        gauge = Gauge(Battery(t), allow_mac=True, sleep=no_sleep)
        assert gauge.profile.name == "generic-sbs"
        assert gauge.detection is not None and "clone or unsupported chip" in gauge.detection.reason


def test_an_explicit_profile_skips_detection() -> None:
    with open_transport("emulated:bq40z50?speed=0") as t:
        records = log(t)
        gauge = Gauge(Battery(t), "bq40z50", variant="R3", sleep=no_sleep)
        assert gauge.detection is None and gauge.profile.variant == "R3"
        assert records == []


# --- every bit of every status word -----------------------------------------------------------------

_RULE_ATTR = {"SafetyAlert": "alert", "SafetyStatus": "tripped", "PFAlert": "alert", "PFStatus": "tripped"}
_RULE_NAMES = {r.name for r in (*RULES, *PF_RULES)}


def _set(em: EmulatedGauge, register: str, flag: str) -> None:
    """Put the emulator in the state that sets ``flag``: the protection state machine for the rules it
    runs, the test-bench hook for what its simulation does not model."""
    attr = _RULE_ATTR.get(register)
    if attr is not None and flag in _RULE_NAMES:
        em.vpack.protections.force(flag, **{attr: True})
    else:
        em.force_flags(register, flag)


def _clear(em: EmulatedGauge, register: str, flag: str) -> None:
    attr = _RULE_ATTR.get(register)
    if attr is not None and flag in _RULE_NAMES:
        em.vpack.protections.force(flag, alert=False, tripped=False)
    em.clear_forced_flags()


_CASES = [
    (chip, register)
    for chip in ("bq40z50", "bq4050")
    for register, src in load_profile(chip).status_sources.items()
    if src.mac is not None
]


@pytest.mark.parametrize(("chip", "register"), _CASES, ids=[f"{c}-{r}" for c, r in _CASES])
def test_every_status_bit_round_trips_from_the_emulator_state(chip: str, register: str) -> None:
    with open_transport(f"emulated:{chip}?speed=0&security=unsealed") as t:
        em = emulator(t)
        gauge = Gauge(Battery(t), chip, sleep=no_sleep)
        src = gauge.profile.status_sources[register]
        baseline = gauge.status(register)
        assert baseline.raw == em.status_word(register)
        for flag in gauge.profile.bitfields[register].flags:
            _set(em, register, flag.name)
            by_sbs = gauge.status(register)  # SBS block 0x5x while unsealed
            result = gauge.mac.query(src.mac or 0)  # and through the MAC
            by_mac = result.decoded
            assert by_sbs.raw == em.status_word(register)
            assert by_sbs[flag.name], f"{register}.{flag.name} (bit {flag.bit}) lost on the way"
            assert by_mac == by_sbs
            expected = {f.name for f in baseline.active} | {flag.name}
            assert {f.name for f in by_sbs.active} == expected
            assert by_sbs.unknown_bits == ()
            _clear(em, register, flag.name)
        assert gauge.status(register) == baseline


def test_status_words_follow_a_real_protection_event() -> None:
    with open_transport("emulated:bq4050?speed=0&seed=5&security=unsealed") as t:
        em = emulator(t)
        gauge = Gauge(Battery(t), "bq4050", sleep=no_sleep)
        em.vpack.load = ConstantCurrent(-7.0)  # above OCD1 (6 A for 6 s), below OCD2
        em.vpack.advance(3)
        words = gauge.status_words()
        assert [f.name for f in words["SafetyAlert"].decoded.active] == ["OCD1"]  # type: ignore[union-attr]
        em.vpack.advance(3)
        words = gauge.status_words()
        assert [f.name for f in words["SafetyStatus"].decoded.active] == ["OCD1"]  # type: ignore[union-attr]
        op = words["OperationStatus"].decoded
        assert op is not None and op["XDSG"] and op["SS"] and not op["DSG"] and op["CHG"]


def test_sealed_status_words_say_why_they_are_missing() -> None:
    with open_transport("emulated:bq40z50?speed=0") as t:
        gauge = Gauge(Battery(t), "bq40z50", sleep=no_sleep)
        records = log(t)
        words = gauge.status_words()
        assert words["OperationStatus"].decoded is not None  # via MAC 0x0054, allowed sealed
        assert words["OperationStatus"].source == "MAC 0x0054"
        for name in ("SafetyAlert", "SafetyStatus", "PFAlert", "PFStatus", "ChargingStatus", "GaugingStatus"):
            err = words[name].error
            assert isinstance(err, SealedError) and "smartbatt unseal" in str(err)
        assert words["BatteryStatus"].decoded is not None  # SBS 1.1 words stay readable
        tried = {r.command for r in records if r.command in range(0x50, 0x58) and r.protocol.value == "read_block"}
        assert tried == {0x54}  # only OperationStatus, to learn the state; the others are not even tried
        records.clear()
        gauge.status_words()
        assert not [r for r in records if r.command in range(0x50, 0x58)]  # now known sealed: MAC at once
        with pytest.raises(SealedError):
            gauge.status("SafetyStatus")
        with pytest.raises(UnknownCommand):
            gauge.status("NoSuchRegister")


# --- security state -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "level"),
    [("sealed", SecurityLevel.SEALED), ("unsealed", SecurityLevel.UNSEALED), ("full", SecurityLevel.FULL_ACCESS)],
)
def test_security_state_from_the_sec_bits(mode: str, level: SecurityLevel) -> None:
    with open_transport(f"emulated:bq40z50?speed=0&security={mode}") as t:
        state = Gauge(Battery(t), "bq40z50", sleep=no_sleep).security_state()
        assert state.level is level and not state.inferred
        assert state.raw == {"sealed": 3, "unsealed": 2, "full": 1}[mode]
        assert str(state) == {"sealed": "SEALED", "unsealed": "UNSEALED", "full": "FULL ACCESS"}[mode]


def test_a_gauge_that_hides_operation_status_when_sealed_is_inferred_sealed() -> None:
    with open_transport("emulated:bq40z50?speed=0") as t:
        em = emulator(t)
        em.mac_table[0x0054] = replace(em.mac_table[0x0054], level=Security.UNSEALED)  # TI table: "—" sealed
        state = Gauge(Battery(t), "bq40z50", sleep=no_sleep).security_state()
        assert state.level is SecurityLevel.SEALED and state.inferred
        assert "only a SEALED gauge refuses it" in state.source


def test_security_state_is_unknown_not_guessed_on_generic_sbs() -> None:
    with open_transport("emulated:generic-sbs?speed=0") as t:
        state = Gauge(Battery(t), "generic-sbs", sleep=no_sleep).security_state()
        assert state.level is None and str(state) == "unknown"


def test_a_bus_failure_is_not_mistaken_for_sealed() -> None:
    with open_transport("emulated:bq40z50?speed=0") as t:
        gauge = Gauge(Battery(t), "bq40z50", sleep=no_sleep)
        assert gauge.battery.pec  # decided before the fault
        t.faults.nack_every = 1  # type: ignore[attr-defined]
        with pytest.raises(NoAcknowledge):
            gauge.security_state()


# --- cells ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("pack", ["bq40z50", "bq4050"], indirect=True)
def test_cells_by_words_and_by_dastatus1_agree_and_the_cheaper_is_chosen(pack: Transport) -> None:
    gauge = Gauge(Battery(pack), emulator(pack).profile.name, sleep=no_sleep)
    gauge.battery.pec  # noqa: B018 - decide PEC before measuring
    plans = gauge.cell_read_plans()
    assert [p.method for p in plans] == ["words", "dastatus1"]
    measured: dict[str, float] = {}
    values: dict[str, list[int]] = {}
    wire = cast(EmulatedTransport, pack)
    for method in ("words", "dastatus1"):
        before = wire.bus_time_s
        values[method] = gauge.cells(method)
        measured[method] = wire.bus_time_s - before
    assert values["words"] == values["dastatus1"] == gauge.cells()
    assert all(3000 < mv < 4300 for mv in values["words"])
    assert measured["words"] < measured["dastatus1"]  # the model's choice holds on the wire


def test_cells_are_readable_sealed_by_words_but_not_by_dastatus1() -> None:
    with open_transport("emulated:bq40z50?speed=0&cells=3") as t:
        gauge = Gauge(Battery(t), "bq40z50", sleep=no_sleep)
        cells = gauge.cells()
        assert len(cells) == 4 and cells[3] == 0 and all(c > 3000 for c in cells[:3])
        with pytest.raises(SealedError, match="smartbatt unseal"):
            gauge.cells("dastatus1")


def test_generic_sbs_has_no_cell_voltages() -> None:
    with (
        open_transport("emulated:generic-sbs?speed=0") as t,
        pytest.raises(AccessDenied, match="no per-cell voltages"),
    ):
        Gauge(Battery(t), "generic-sbs", sleep=no_sleep).cells()


# --- blocks ------------------------------------------------------------------------------------------


def test_dastatus_blocks_and_lifetime_data() -> None:
    with open_transport("emulated:bq40z50?speed=0&security=unsealed") as t:
        em = emulator(t)
        gauge = Gauge(Battery(t), "bq40z50", sleep=no_sleep)
        em.vpack.load = ConstantCurrent(-2.0)
        em.vpack.advance(30)
        da1 = gauge.da_status1()
        assert da1["BATVoltage"] == sum(int(da1[f"CellVoltage{i}"]) for i in range(1, 5))
        da2 = gauge.da_status2()
        assert 2900 < float(da2["CellTemperature"]) * 10 < 3200  # 0.1 K scale applied: ~25 °C in K
        life = gauge.lifetime()
        assert set(life) == {f"LifetimeDataBlock{i}" for i in range(1, 6)}
        block1 = life["LifetimeDataBlock1"]
        assert int(block1["CellMaxVoltage1"]) >= int(block1["CellMinVoltage1"]) > 3000
        assert int(block1["MaxDischargeCurrent"]) < -1500
        assert gauge.device_type() == 0x4500


def test_blocks_while_sealed_are_refused_with_what_to_do() -> None:
    with open_transport("emulated:bq40z50?speed=0") as t:
        gauge = Gauge(Battery(t), "bq40z50", sleep=no_sleep)
        for call in (gauge.da_status1, gauge.da_status2, gauge.lifetime):
            with pytest.raises(SealedError, match="smartbatt unseal"):
                call()


# --- generic SBS mode never writes ManufacturerAccess --------------------------------------------------------


def test_generic_sbs_mode_never_sends_a_manufacturer_access_write() -> None:
    with open_transport("emulated:bq40z50?speed=0") as t:  # a real TI gauge, but nobody said so
        records = log(t)
        gauge = Gauge(Battery(t), sleep=no_sleep)  # detection without the MAC probe
        assert gauge.profile.name == "generic-sbs"
        words = gauge.status_words()
        assert set(words) == {"BatteryMode", "BatteryStatus", "SpecificationInfo"}
        assert all(w.decoded is not None for w in words.values())
        assert gauge.security_state().level is None
        refusals = (
            gauge.cells,
            gauge.lifetime,
            gauge.device_type,
            lambda: security.unseal(gauge),
            lambda: security.seal(gauge),
            lambda: security.full_access(gauge, "0414:3672"),
            lambda: DataFlash(gauge).read_all(),
            lambda: gauge.mac.write("SealDevice"),
        )
        for call in refusals:
            with pytest.raises((AccessDenied, SecurityError, UnknownCommand)):
                call()
        assert mac_writes(records) == []
        assert [r for r in records if r.protocol.value.startswith("write")] == []


# --- every shipped profile drives the driver ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["bq20z65", "bq28z610", "bq4050", "bq40z50", "bq40z80", "bq78350", "generic-sbs"])
def test_every_shipped_profile_builds_a_driver_that_refuses_what_it_cannot_do(name: str) -> None:
    with open_transport("emulated:bq40z50?speed=0&security=unsealed") as t:
        gauge = Gauge(Battery(t), name, sleep=no_sleep)
        assert all(reg in gauge.profile.bitfields for reg in gauge.profile.status_sources)
        assert [p.bus_bytes for p in gauge.cell_read_plans()] == sorted(p.bus_bytes for p in gauge.cell_read_plans())
        state = gauge.security_state()
        assert not state.inferred  # nothing this driver cannot ask is taken as a refusal
        if name == "bq28z610":  # I2C command pairs: not this driver's protocol
            assert state.level is None and "no way to read it" in state.source
            with pytest.raises(AccessDenied, match="AltManufacturerAccess"):
                gauge.mac.read("DeviceType")
            with pytest.raises(AccessDenied, match="alt_mac access"):
                DataFlash(gauge).read_all()


def test_a_bus_faster_than_the_chip_is_pointed_out() -> None:
    with open_transport("emulated:bq40z50?speed=0&bus_hz=400000") as t:
        note = Gauge(Battery(t), "bq40z50", sleep=no_sleep).bus_speed_note()
        assert note is not None and "400 kHz" in note and "100 kHz" in note
    with open_transport("emulated:bq40z50?speed=0") as t:
        assert Gauge(Battery(t), "bq40z50", sleep=no_sleep).bus_speed_note() is None
