"""The ``buspirate:`` backend end to end through a real pty, and the Bus Pirate responder itself.

Mode entry and recovery from every state a Bus Pirate can be found in, the exact serial bytes of
pipelined transactions, a peer that stops answering mid-reply (BusTimeout, no hang), a pty closed
under the transport (AdapterGone), and the responder's firmware state machine driven byte by byte.
"""

from __future__ import annotations

import errno
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from smartbatt.emulator.buspirate_pty import (
    BBIO_VERSION,
    I2C_VERSION,
    BusPirateResponder,
    Mode,
    PtySession,
    open_pty,
)
from smartbatt.emulator.faults import BusFaults
from smartbatt.emulator.register_file import RegisterFileDevice
from smartbatt.emulator.target import EmulatedBus
from smartbatt.errors import (
    AdapterGone,
    AdapterUnavailable,
    BusTimeout,
    NoAcknowledge,
    TransportError,
    UriError,
)
from smartbatt.transports import NO_RETRY, open_transport
from smartbatt.transports import buspirate as bp
from smartbatt.transports.buspirate import BusPirateOptions, BusPirateTransport

pytestmark = pytest.mark.timeout(20)

BAT = 0x0B
PROBE = bytes.fromhex("02 10 FE 03")  # START, write 0x7F+W, STOP
READ_VOLTAGE_PEC = bytes.fromhex("02 11 16 09 02 10 17 04 06 04 06 04 07 03")


def _bus() -> EmulatedBus:
    return EmulatedBus([RegisterFileDevice()])


@pytest.fixture
def session() -> Iterator[PtySession]:
    with open_pty(_bus(), mode=Mode.BBIO) as s:
        yield s


def _open(s: PtySession, **options: Any) -> BusPirateTransport:
    return BusPirateTransport.open(s.path, BusPirateOptions(timeout=0.2, **options), retry=NO_RETRY)


# ---------------------------------------------------------------------------------------------
# mode entry and recovery
# ---------------------------------------------------------------------------------------------


def test_entry_from_the_user_terminal_sends_twenty_zeros() -> None:
    with open_pty(_bus(), mode=Mode.TERMINAL) as s:
        with _open(s) as t:
            assert s.responder.mode is Mode.I2C
            assert t.read_word(BAT, 0x09) == 16120
        received = bytes(s.responder.received)
    # 20 zeros (one at a time, each waiting for BBIO1), one more to confirm the sync, 0x02 for
    # I2C mode, then speed 100 kHz (0x62) and peripherals off (0x40)
    assert received.startswith(b"\x00" * 21 + b"\x02\x62\x40")


@pytest.mark.parametrize("mode", [Mode.BBIO, Mode.I2C])
def test_entry_from_binary_modes_needs_one_zero(mode: Mode) -> None:
    with open_pty(_bus(), mode=mode) as s:
        with _open(s) as t:
            assert t.read_word(BAT, 0x09, pec=True) == 16120
        assert bytes(s.responder.received).startswith(b"\x00\x00\x02\x62\x40")


def test_recovery_from_a_half_sent_bulk_write() -> None:
    """A program died after ``START, bulk write of 4 bytes, 0x16``: three zeros are eaten as data."""
    device = RegisterFileDevice()
    with open_pty(EmulatedBus([device]), mode=Mode.I2C) as s:
        s.responder.feed(b"\x02\x13\x16")
        words_before = dict(device.words)
        with _open(s) as t:
            assert t.read_word(BAT, 0x09) == 16120
        assert bytes(s.responder.received).startswith(b"\x02\x13\x16" + b"\x00" * 5 + b"\x02")
        assert device.words == words_before  # no STOP came: the half transaction was never applied


def test_recovery_from_terminal_chatter_and_garbage() -> None:
    with open_pty(_bus(), mode=Mode.TERMINAL) as s:
        s.responder.inject(b"Bus Pirate v3.5\r\nHiZ>\x1b[2K garbage \xff\xfe")
        s.responder.feed(b"abc\r")  # someone typed at the terminal: echoed, plus a prompt
        with _open(s) as t:
            assert t.read_block(BAT, 0x20, pec=True) == b"smartbatt"


def test_settings_reach_the_bus_pirate() -> None:
    with open_pty(_bus(), mode=Mode.BBIO) as s:
        with _open(s, speed=50, power=True, pullups=True):
            assert s.responder.speed == 1  # ~50 kHz
            assert s.responder.peripherals == 0b1100  # power and pull-ups, AUX and CS low
        with _open(s, speed=400):
            assert s.responder.speed == 3 and s.responder.peripherals == 0


def test_close_returns_the_bus_pirate_to_its_terminal(session: PtySession) -> None:
    with _open(session):
        pass
    assert bytes(session.responder.received).endswith(b"\x00\x0f")
    assert session.responder.mode is Mode.TERMINAL
    with _open(session) as t:  # and it can be opened again from there
        assert t.read_word(BAT, 0x09) == 16120


def test_nothing_answering_is_adapter_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(BusPirateTransport, "PROBE_S", 0.004)
    with open_pty(_bus(), mode=Mode.BBIO) as s:
        s.responder.mute()
        start = time.monotonic()
        with pytest.raises(AdapterUnavailable, match=r"no Bus Pirate answers on /dev/pts/\d+"):
            _open(s)
        assert time.monotonic() - start < 3
        # it tried 0x00 one at a time, then <enter> x10 to leave a terminal menu, then 0x00 again
        received = bytes(s.responder.received)
        assert received == b"\x00" * bp.ENTRY_ATTEMPTS + b"\r" * 10 + b"\x00" * bp.ENTRY_ATTEMPTS + b"\x00\x0f"


# ---------------------------------------------------------------------------------------------
# pipelining: exact serial bytes, one round trip per transaction
# ---------------------------------------------------------------------------------------------


def test_read_word_is_one_pipelined_round_trip(session: PtySession) -> None:
    with _open(session) as t:
        mark = len(session.responder.received)
        trips = t.round_trips
        assert t.read_word(BAT, 0x09, pec=True) == 16120
        assert t.round_trips - trips == 1
        assert bytes(session.responder.received[mark:]) == PROBE + READ_VOLTAGE_PEC


def test_without_the_bus_probe(session: PtySession) -> None:
    with _open(session, busprobe=False) as t:
        mark = len(session.responder.received)
        t.write_word(BAT, 0x00, 0x0414, pec=True)
        # the smbus.md §4 vector 16 00 14 04 -> PEC 0C, in one bulk write of 5 bytes
        assert bytes(session.responder.received[mark:]) == bytes.fromhex("02 14 16 00 14 04 0C 03")


def test_long_writes_are_split_into_16_byte_bulk_commands(session: PtySession) -> None:
    with _open(session, busprobe=False) as t:
        mark = len(session.responder.received)
        with pytest.raises(NoAcknowledge) as info:  # the register file refuses command 0x44
            t.write_block(BAT, 0x44, bytes(range(32)))
        assert info.value.byte_index == 2
    sent = bytes(session.responder.received[mark:])
    # address + command + count + 32 data = 35 bytes: bulk 16, bulk 16, bulk 3
    assert (sent[:2], sent[18], sent[35], sent[39]) == (b"\x02\x1f", 0x1F, 0x12, 0x03)


def test_byte_at_a_time_mode_gives_the_same_answers(session: PtySession) -> None:
    with _open(session, pipeline=False) as t:
        trips = t.round_trips
        assert t.read_word(BAT, 0x09, pec=True) == 16120
        # one round trip per command: probe (start, 0x7F, stop) + start, 2 bytes, Sr, 1 byte,
        # 3 x (read, ACK/NACK), stop
        assert t.round_trips - trips == 3 + 1 + 2 + 1 + 1 + 6 + 1
        assert t.read_block(BAT, 0x21, pec=True) == b"EMU-4S3000"
        with pytest.raises(NoAcknowledge) as info:
            t.read_word(0x0C, 0x09)
        assert info.value.byte_index == 0  # the address probe decides the ACK provisionally
        t.quick(BAT)
        t.quick(BAT, read=True)
        with pytest.raises(NoAcknowledge):
            t.quick(0x0C, read=True)


def test_block_predict_costs_one_round_trip_once_the_count_is_known(session: PtySession) -> None:
    with _open(session) as t:
        trips = t.round_trips
        assert t.read_block(BAT, 0x21, pec=True) == b"EMU-4S3000"
        assert t.round_trips - trips == 2  # count first, then the block
        trips = t.round_trips
        assert t.read_block(BAT, 0x21, pec=True) == b"EMU-4S3000"
        assert t.round_trips - trips == 1


def test_block_split_is_one_transaction_in_two_round_trips(session: PtySession) -> None:
    with _open(session, block="split", busprobe=False) as t:
        mark = len(session.responder.received)
        trips = t.round_trips
        assert t.read_block(BAT, 0x22, pec=True) == b"LION"
        assert t.round_trips - trips == 2
        sent = bytes(session.responder.received[mark:])
    head = bytes.fromhex("02 11 16 22 02 10 17 04 06")  # count read with an ACK, no STOP
    tail = bytes.fromhex("04 06" * 4 + "04 07 03")  # 4 data bytes, PEC NACKed, STOP
    assert sent == head + tail


def test_block_process_call_always_splits(session: PtySession) -> None:
    """It writes, so it is never repeated to learn the count: one transaction, two round trips."""
    with _open(session, busprobe=False) as t:  # block=predict would repeat a read block
        mark = len(session.responder.received)
        trips = t.round_trips
        # the register file answers DeviceName whatever was written in the process call
        assert t.block_process_call(BAT, 0x21, b"\x01") == b"EMU-4S3000"
        assert t.round_trips - trips == 2
        sent = bytes(session.responder.received[mark:])
    assert sent == bytes.fromhex("02 13 16 21 01 01 02 10 17 04 06" + "04 06" * 9 + "04 07 03")


# ---------------------------------------------------------------------------------------------
# a peer that stops answering, a pty that goes away, a stream out of sync
# ---------------------------------------------------------------------------------------------


def test_peer_stops_mid_reply_gives_bus_timeout_quickly(session: PtySession) -> None:
    with _open(session) as t:
        session.responder.mute(after=5)  # five reply bytes, then silence
        start = time.monotonic()
        with pytest.raises(BusTimeout, match=r"answered 5 of 18 bytes") as info:
            t.read_word(BAT, 0x09, pec=True)
        assert time.monotonic() - start < 1.0
        assert (info.value.address, info.value.command) == (BAT, 0x09)
        session.responder.unmute()
        assert t.read_word(BAT, 0x09, pec=True) == 16120  # re-synchronised


def test_peer_silent_before_replying(session: PtySession) -> None:
    with _open(session) as t:
        session.responder.mute()
        start = time.monotonic()
        with pytest.raises(BusTimeout):
            t.write_word(BAT, 0x01, 5)
        assert time.monotonic() - start < 1.0
    # close() did not hang on the silent peer either


def test_pty_closed_under_the_transport_is_adapter_gone(session: PtySession) -> None:
    t = _open(session)
    try:
        assert t.read_word(BAT, 0x09) == 16120
        session.responder.hang_up()
        start = time.monotonic()
        with pytest.raises(AdapterGone) as info:
            for _ in range(50):  # the hang-up lands between two transactions
                t.read_word(BAT, 0x09)
        assert time.monotonic() - start < 2.0
        assert info.value.address == BAT
        with pytest.raises(AdapterGone):
            t.read_word(BAT, 0x09)
    finally:
        start = time.monotonic()
        t.close()
        assert time.monotonic() - start < 1.0
    assert t.closed


def test_garbage_in_the_reply_stream_is_detected_and_recovered(session: PtySession) -> None:
    with _open(session) as t:
        session.responder.inject(b"\x55")
        with pytest.raises(TransportError, match="out of sync"):
            t.read_word(BAT, 0x09)
        assert t.read_word(BAT, 0x09) == 16120


def test_stop_interrupts_a_long_stall() -> None:
    faults = BusFaults()
    s = open_pty(_bus(), faults=faults, mode=Mode.BBIO)
    with _open(s) as t:
        faults.stretch_s = 30.0
        with pytest.raises(BusTimeout):
            t.read_word(BAT, 0x09)
    start = time.monotonic()
    s.close()
    assert time.monotonic() - start < 1.0


def test_added_latency_costs_one_round_trip_per_transaction() -> None:
    with open_pty(_bus(), latency_s=0.005, mode=Mode.BBIO) as s, _open(s) as t:
        start = time.perf_counter()
        for _ in range(5):
            t.read_word(BAT, 0x09, pec=True)
        per_tx = (time.perf_counter() - start) / 5
    assert 0.010 <= per_tx < 0.090  # 2 x 5 ms plus scheduling; one trip per command would be ~190 ms


# ---------------------------------------------------------------------------------------------
# opening errors and URIs
# ---------------------------------------------------------------------------------------------


def test_missing_port_lists_ports() -> None:
    with pytest.raises(AdapterUnavailable, match=r"no serial port /dev/ttyNOPE0 \(ports present: "):
        open_transport("buspirate:/dev/ttyNOPE0")


def test_open_error_messages() -> None:
    class Exc(Exception):
        def __init__(self, code: int) -> None:
            super().__init__("x")
            self.errno = code

    assert "dialout" in str(bp._open_error("/dev/ttyUSB0", Exc(errno.EACCES)))
    assert "busy" in str(bp._open_error("/dev/ttyUSB0", Exc(errno.EBUSY)))
    assert "cannot open" in str(bp._open_error("/dev/ttyUSB0", Exc(errno.EIO)))


def test_missing_pyserial(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "serial", None)
    with pytest.raises(AdapterUnavailable, match="pip install pyserial"):
        BusPirateTransport.open("/dev/ttyUSB0")


@pytest.mark.parametrize(
    ("uri", "match"),
    [
        ("buspirate:", "needs a serial port"),
        ("buspirate:/dev/ttyUSB0?speed=200", "speed"),
        ("buspirate:/dev/ttyUSB0?block=guess", "block"),
        ("buspirate:/dev/ttyUSB0?timeout=0", "timeout"),
        ("buspirate:/dev/ttyUSB0?baud=9600", "valid options"),
    ],
)
def test_uri_errors(uri: str, match: str) -> None:
    with pytest.raises(UriError, match=match):
        open_transport(uri)


def test_uri_opens_the_pty(session: PtySession) -> None:
    with open_transport(f"buspirate:{session.path}?speed=400&timeout=0.5") as t:
        assert isinstance(t, BusPirateTransport)
        assert t.describe() == f"Bus Pirate on {session.path}"
        assert t.timeout_s == 0.5 and t.speed_khz == 400
        assert t.read_word(BAT, 0x09) == 16120
    assert BusPirateTransport.detect() == []


# ---------------------------------------------------------------------------------------------
# the responder's firmware state machine, byte by byte
# ---------------------------------------------------------------------------------------------


def _responder(mode: Mode = Mode.I2C, faults: BusFaults | None = None) -> BusPirateResponder:
    return BusPirateResponder(_bus(), faults=faults, mode=mode)


def test_responder_terminal_and_bitbang() -> None:
    r = _responder(Mode.TERMINAL)
    assert r.feed(b"ab\x01") == b"ab"  # printable characters echo, control characters do not
    assert r.feed(b"\r") == b"\r\nHiZ>"
    assert r.feed(b"\x00" * 19) == b""
    assert r.feed(b"\x00") == BBIO_VERSION
    assert r.feed(b"\x00") == BBIO_VERSION
    assert r.feed(b"\x01") == b"\x00"  # SPI mode is not emulated
    assert r.feed(b"\x02") == I2C_VERSION
    assert r.feed(b"\x01") == I2C_VERSION
    assert r.feed(b"\x00\x0f") == BBIO_VERSION + b"\x01"
    assert r.mode is Mode.TERMINAL
    assert r.feed(b"\x00" * 19) == b""  # the count starts again after the reset


def test_responder_i2c_opcodes() -> None:
    r = _responder()
    assert r.feed(b"\x60\x63\x4f\x05\x0a\x50\x70\x80\x0f") == b"\x01\x01\x01\x00\x00\x00\x00\x00\x00"
    assert r.speed == 3 and r.peripherals == 0x0F
    assert r.feed(b"\x09\x03") == b"\x01\x00"  # AUX read
    assert r.feed(b"\x09\x01") == b"\x01\x01"


def test_responder_read_word_trace() -> None:
    r = _responder()
    reply = r.feed(READ_VOLTAGE_PEC)
    #           S   bulk ack ack  Sr  bulk ack F8 ACK 3E ACK PEC NACK P
    assert reply == bytes.fromhex("01 01 00 00 01 01 00 F8 01 3E 01 6D 01 01")


def test_responder_nack_positions() -> None:
    r = _responder()
    # absent address: NACK from the address on; the bulk write goes on clocking the other bytes
    assert r.feed(bytes.fromhex("02 11 18 09 02 10 19 04 07 03")) == bytes.fromhex("01 01 01 01 01 01 01 FF 01 01")
    # unwritable command: the device NACKs the first data byte (index 2) and what follows
    assert r.feed(bytes.fromhex("02 13 16 09 01 00 03")) == bytes.fromhex("01 01 00 00 01 01 01")


def test_responder_writes_apply_at_stop_only() -> None:
    device = RegisterFileDevice()
    r = BusPirateResponder(EmulatedBus([device]), mode=Mode.I2C)
    assert r.feed(bytes.fromhex("02 13 16 01 2C 01")) == bytes.fromhex("01 01 00 00 00 00")
    assert device.words[0x01] == 300
    r.feed(b"\x03")
    assert device.words[0x01] == 0x012C


def test_responder_stuck_bus_reads_zero_with_every_ack_low() -> None:
    r = _responder(faults=BusFaults(stuck=True))
    assert r.feed(bytes.fromhex("02 10 FE 03")) == bytes.fromhex("01 01 00 01")
    assert r.feed(READ_VOLTAGE_PEC) == bytes.fromhex("01 01 00 00 01 01 00 00 01 00 01 00 01 01")


def test_responder_write_then_read_command() -> None:
    r = _responder()
    # 0x08: write [0x17] (read address), read 3: the register file does not do receive byte
    assert r.feed(bytes.fromhex("08 00 01 00 03 17")) == b"\x00"
    # write [0x16, 0x01, 0x2C, 0x01], read 0: a write word, applied
    assert r.feed(bytes.fromhex("08 00 04 00 00 16 01 2C 01")) == b"\x01"
    # a length above the firmware's 4096-byte buffer is refused before the data is read
    assert r.feed(bytes.fromhex("08 10 01 00 00")) == b"\x00"


def test_responder_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        BusPirateResponder(_bus(), latency_s=-1)
    with open_pty(_bus()) as s, pytest.raises(RuntimeError):
        s.responder.serve(0)
