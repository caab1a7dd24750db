"""Injected faults surface through the transport as the typed error or register values hardware gives."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import cast

import pytest

from smartbatt.emulator.device import EmulatedGauge, Security
from smartbatt.emulator.gauge import INIT, OTA, ZERO_C_DECI_K
from smartbatt.emulator.load import ConstantCurrent
from smartbatt.emulator.pack_faults import OPEN_THERMISTOR_C, SHORTED_THERMISTOR_C, PackFaults, ThermistorFault
from smartbatt.emulator.target import EmulatedBus
from smartbatt.errors import BusBusy, BusTimeout, NoAcknowledge, PecMismatch
from smartbatt.transports import Transport, open_transport
from smartbatt.transports.retry import NO_RETRY

BAT = 0x0B
BASE = "emulated:bq40z50?speed=0&seed=11&security=unsealed"


def gauge_of(t: Transport) -> EmulatedGauge:
    return cast(EmulatedGauge, cast(EmulatedBus, t.target).devices[BAT])  # type: ignore[attr-defined]


def mac32(t: Transport, sub: int) -> int:
    t.write_word(BAT, 0x00, sub)
    return int.from_bytes(t.read_block(BAT, 0x23)[:4], "little")


def ts_c(t: Transport) -> list[float]:
    t.write_word(BAT, 0x00, 0x0072)
    words = struct.unpack("<7H", t.read_block(BAT, 0x23))
    return [(w - ZERO_C_DECI_K) / 10 for w in words[1:5]]


def cells(t: Transport) -> list[int]:
    return [t.read_word(BAT, c) for c in (0x3F, 0x3E, 0x3D, 0x3C)]


def signed(word: int) -> int:
    return word - 0x10000 if word & 0x8000 else word


@pytest.fixture
def pack(request: pytest.FixtureRequest) -> Iterator[Transport]:
    with open_transport(BASE + "&" + request.param) as t:
        t.retry = NO_RETRY
        yield t


# --- wire faults -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "error"),
    [("nack_every=1", NoAcknowledge), ("nack_rate=1", NoAcknowledge), ("stretch_ms=40", BusTimeout),
     ("stuck=1", BusBusy)],
)
def test_wire_faults_raise_the_adapter_error(option: str, error: type[Exception]) -> None:
    with open_transport(f"{BASE}&{option}") as t:
        t.retry = NO_RETRY
        with pytest.raises(error):
            t.read_word(BAT, 0x09)


def test_corrupted_pec_is_a_pec_mismatch() -> None:
    with open_transport(f"{BASE}&corrupt_pec_every=1") as t:
        t.retry = NO_RETRY
        with pytest.raises(PecMismatch):
            t.read_word(BAT, 0x09, pec=True)
        assert 14000 < t.read_word(BAT, 0x09, pec=False) < 17500  # without PEC the data is intact


def test_nack_every_third_is_absorbed_by_read_retries() -> None:
    with open_transport(f"{BASE}&nack_every=3") as t:
        values = [t.read_word(BAT, 0x09) for _ in range(6)]
        assert all(14000 < v < 17500 for v in values)
        assert t.transactions > 6  # type: ignore[attr-defined]  # some reads needed a retry


def test_a_legal_stretch_only_slows_the_bus() -> None:
    with open_transport(f"{BASE}&stretch_ms=10") as t:
        assert 14000 < t.read_word(BAT, 0x09) < 17500


# --- pack faults ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("pack", ["thermistor=open"], indirect=True)
def test_open_thermistor_reads_absurdly_cold_and_trips_utd(pack: Transport) -> None:
    t = pack
    assert ts_c(t)[0] == pytest.approx(OPEN_THERMISTOR_C, abs=0.3)
    assert (t.read_word(BAT, 0x08) - ZERO_C_DECI_K) / 10 == pytest.approx(25, abs=1)  # hottest TS: still sane
    gauge_of(t).vpack.advance(2)
    assert mac32(t, 0x0051) & (1 << 27)  # SafetyStatus[UTD]: the gauge believes the pack is frozen
    assert mac32(t, 0x0054) & (1 << 13)  # XDSG
    assert t.read_word(BAT, 0x15) == 16800  # charging range uses Temperature(): still RT


@pytest.mark.parametrize("pack", ["thermistor=short"], indirect=True)
def test_shorted_thermistor_reads_absurdly_hot_and_raises_ota(pack: Transport) -> None:
    t = pack
    assert (t.read_word(BAT, 0x08) - ZERO_C_DECI_K) / 10 == pytest.approx(SHORTED_THERMISTOR_C, abs=0.3)
    assert t.read_word(BAT, 0x15) == 0 and t.read_word(BAT, 0x14) == 0  # OT range: no charging
    gauge_of(t).vpack.advance(2)
    assert t.read_word(BAT, 0x16) & OTA
    assert mac32(t, 0x0051) & (1 << 13)  # OTD


@pytest.mark.parametrize("pack", ["short_cell=2"], indirect=True)
def test_internal_short_makes_one_cell_sag(pack: Transport) -> None:
    t = pack
    before = cells(t)
    gauge_of(t).vpack.advance(1800)
    after = cells(t)
    others = [after[i] - before[i] for i in (0, 2, 3)]
    assert after[1] - before[1] < min(others) - 20  # cell 2 lost clearly more voltage
    assert signed(t.read_word(BAT, 0x0A)) == 0  # the leak flows inside the pack: the sense resistor sees nothing


@pytest.mark.parametrize("pack", ["runaway_cell=3"], indirect=True)
def test_runaway_precursor_ramps_temperature_and_voltage_falls(pack: Transport) -> None:
    t = pack
    vp = gauge_of(t).vpack
    start_temps, start_cells = ts_c(t), cells(t)
    vp.advance(300)
    mid_temps = ts_c(t)
    vp.advance(300)
    temps, now_cells = ts_c(t), cells(t)
    assert temps[2] - start_temps[2] > 3.0  # TS3 sits on cell 3
    assert temps[2] - start_temps[2] > 1.5 * (mid_temps[2] - start_temps[2])  # ramping, not a step
    assert temps[2] > max(temps[0], temps[3]) + 1.0
    assert now_cells[2] - start_cells[2] < -10  # dV/dt on that cell
    vp.run_until(lambda v: v.protections.tripped("OTD"), limit_s=3600)
    assert t.read_word(BAT, 0x16) & OTA


@pytest.mark.parametrize("pack", ["offset_drift=0.5"], indirect=True)
def test_current_offset_drift_leaves_the_deadband_and_moves_the_counter(pack: Transport) -> None:
    t = pack
    assert signed(t.read_word(BAT, 0x0A)) == 0
    rem0 = t.read_word(BAT, 0x0F)
    vp = gauge_of(t).vpack
    vp.advance(60)
    assert 25 <= signed(t.read_word(BAT, 0x0A)) <= 35  # 30 mA of pure offset at rest
    vp.advance(1800)
    assert t.read_word(BAT, 0x0F) > rem0 + 10  # the gauge "charges" a resting pack


def test_gauge_reset_clears_init_then_sets_it_and_keeps_learned_values() -> None:
    with open_transport(BASE + "&soc=0.5") as t:
        g = gauge_of(t)
        vp = g.vpack
        vp.gauge.fcc_mah = 2800.0  # as if learned earlier
        vp.gauge.cycle_count = 5
        rsoc = t.read_word(BAT, 0x0D)
        vp.gauge.remaining_mah = 100.0  # a wrong coulomb count the reset will wipe
        vp.load = ConstantCurrent(-1.0)
        vp.advance(30)
        g.reset()
        status = t.read_word(BAT, 0x16)
        assert not status & INIT
        vp.advance(1)
        assert t.read_word(BAT, 0x16) & INIT
        assert t.read_word(BAT, 0x10) == 2800  # FCC lives in data flash
        assert t.read_word(BAT, 0x17) == 5  # CycleCount too
        # re-initialised from an OCV reading taken under load: close, but low
        assert rsoc - 12 <= t.read_word(BAT, 0x0D) < rsoc
        assert t.read_word(BAT, 0x0C) >= 5  # MaxError: an OCV reading under load is uncertain
        assert g.security is Security.SEALED


def test_fault_api_validates_and_repairs() -> None:
    faults = PackFaults()
    with pytest.raises(ValueError):
        faults.thermistor(-1, ThermistorFault.OPEN)
    with pytest.raises(ValueError):
        faults.internal_short(0, 0.0)
    faults.thermistor(0, ThermistorFault.OPEN)
    assert faults.thermistor_reading(0, 20.0) == OPEN_THERMISTOR_C
    faults.thermistor(0, None)
    assert faults.thermistor_reading(0, 20.0) == 20.0


def test_thermistor_fault_can_be_injected_and_repaired_mid_session() -> None:
    with open_transport(BASE) as t:
        vp = gauge_of(t).vpack
        vp.faults.thermistor(1, ThermistorFault.SHORT)
        vp.advance(1)
        assert ts_c(t)[1] == pytest.approx(SHORTED_THERMISTOR_C, abs=0.3)
        vp.faults.thermistor(1, None)
        vp.advance(1)
        assert ts_c(t)[1] == pytest.approx(25.0, abs=1.0)


def test_reset_can_be_scheduled_from_the_uri() -> None:
    with open_transport(BASE + "&reset_at=10") as t:
        vp = gauge_of(t).vpack
        vp.advance(9)
        assert t.read_word(BAT, 0x16) & INIT
        assert gauge_of(t).security is Security.UNSEALED
        vp.advance(1)
        assert not t.read_word(BAT, 0x16) & INIT
        assert gauge_of(t).security is Security.SEALED
        vp.advance(1)
        assert t.read_word(BAT, 0x16) & INIT
        vp.advance(100)
        assert t.read_word(BAT, 0x16) & INIT  # once only
