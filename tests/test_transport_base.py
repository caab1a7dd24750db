"""What the abstract Transport guarantees, exercised through the emulated wire.

The contract suite (test_transport_contract.py) runs the primitives over every backend; this
module covers the engine itself: retry policy, write safety, PEC diagnosis, block validation,
transaction log, closed state, bus-time accounting and the backend registry.
"""

from __future__ import annotations

import pytest

from smartbatt.emulator.register_file import RegisterFileDevice
from smartbatt.emulator.target import EmulatedBus, SMBusTarget, TargetNack
from smartbatt.errors import (
    AdapterGone,
    BadBlockLength,
    BusBusy,
    BusTimeout,
    NoAcknowledge,
    PecMismatch,
    UriError,
)
from smartbatt.pec import crc8
from smartbatt.transports import RetryPolicy, TransactionRecord, open_transport, registry, transport_class
from smartbatt.transports.emulated import EmulatedTransport
from smartbatt.transports.txlog import SMBusProtocol
from tests.wire_fakes import PecFlipper, StopStartAdapter

BAT = 0x0B


def _transport(target: SMBusTarget | None = None, **kw: object) -> EmulatedTransport:
    return EmulatedTransport(target or EmulatedBus([RegisterFileDevice()]), **kw)  # type: ignore[arg-type]


class _BlockReplier:
    """A device whose block read returns a fixed (possibly malformed) byte string."""

    def __init__(self, reply: bytes) -> None:
        self.reply = reply

    def transfer(self, address: int, write: bytes, read: bool = False) -> bytes:
        return self.reply

    def quick(self, address: int, read: bool) -> None:
        return None


def test_read_word_with_and_without_pec() -> None:
    with _transport() as t:
        assert t.read_word(BAT, 0x09) == 16120
        assert t.read_word(BAT, 0x09, pec=True) == 16120
        assert t.read_block(BAT, 0x21, pec=True) == b"EMU-4S3000"


def test_retry_recovers_a_transient_nack_and_logs_each_attempt() -> None:
    records: list[TransactionRecord] = []
    with open_transport("emulated:?model=static&nack_every=2") as t:
        t.retry = RetryPolicy(attempts=3, backoff_s=0.0)
        t.add_listener(records.append)
        t.read_word(BAT, 0x09)  # transaction 1 ok
        assert t.read_word(BAT, 0x09) == 16120  # transaction 2 NACKed, 3 ok
    assert [r.result for r in records] == ["ok", "NoAcknowledge", "ok"]
    assert [r.attempt for r in records] == [1, 1, 2]


def test_retries_give_up_with_the_last_error() -> None:
    with open_transport("emulated:?model=static&nack_every=1") as t:
        t.retry = RetryPolicy(attempts=3, backoff_s=0.0)
        with pytest.raises(NoAcknowledge) as info:
            t.read_word(BAT, 0x09)
        assert isinstance(t, EmulatedTransport)
        assert t.transactions == 3
    assert (info.value.address, info.value.command, info.value.byte_index) == (BAT, 0x09, 0)


def test_writes_are_never_retried() -> None:
    with open_transport("emulated:?model=static&nack_every=1") as t:
        t.retry = RetryPolicy(attempts=5, backoff_s=0.0)
        with pytest.raises(NoAcknowledge):
            t.write_word(BAT, 0x01, 123)
        with pytest.raises(NoAcknowledge):
            t.process_call(BAT, 0x01, 123)
        assert isinstance(t, EmulatedTransport)
        assert t.transactions == 2


def test_corrupted_reply_pec_reports_expected_and_got() -> None:
    with open_transport("emulated:?model=static&corrupt_pec_every=1") as t:
        t.retry = RetryPolicy(attempts=1)
        with pytest.raises(PecMismatch) as info:
            t.read_word(BAT, 0x09, pec=True)
    good = crc8(bytes.fromhex("16 09 17") + (16120).to_bytes(2, "little"))
    assert info.value.expected == good
    assert info.value.got == good ^ 0x01
    assert info.value.check == "read"
    assert info.value.likely_cause == ""


def test_stop_start_adapter_is_recognised() -> None:
    with _transport(StopStartAdapter(EmulatedBus([RegisterFileDevice()]))) as t:
        t.retry = RetryPolicy(attempts=1)
        with pytest.raises(PecMismatch, match="STOP\\+START instead of a repeated start"):
            t.read_word(BAT, 0x09, pec=True)
        assert t.read_word(BAT, 0x09, pec=False) == 16120


def test_device_refusing_our_pec_says_which_check_failed() -> None:
    with _transport(PecFlipper(EmulatedBus([RegisterFileDevice()]))) as t:
        with pytest.raises(PecMismatch) as info:
            t.write_word(BAT, 0x01, 200, pec=True)
        assert info.value.check == "write"
        t.write_word(BAT, 0x01, 200, pec=False)
        assert t.read_word(BAT, 0x01) == 200


@pytest.mark.parametrize(
    ("reply", "match"),
    [
        (b"\x00\xaa", "block length 0"),
        (bytes((40,)) + b"x" * 41, "block length 40"),
        (b"\x05ab", "announced 5 bytes but sent 2"),
    ],
)
def test_bad_block_lengths(reply: bytes, match: str) -> None:
    with _transport(_BlockReplier(reply)) as t:
        t.retry = RetryPolicy(attempts=1)
        with pytest.raises(BadBlockLength, match=match) as info:
            t.read_block(BAT, 0x20)
        assert info.value.length == reply[0]


def test_nack_for_an_absent_device_and_unwritable_command() -> None:
    with _transport() as t:
        t.retry = RetryPolicy(attempts=1)
        with pytest.raises(NoAcknowledge) as absent:
            t.read_word(0x0C, 0x09)
        assert absent.value.byte_index == 0
        with pytest.raises(NoAcknowledge) as readonly:
            t.write_word(BAT, 0x09, 1)
        assert readonly.value.byte_index == 2
        with pytest.raises(NoAcknowledge):
            t.quick(0x0C)
        t.quick(BAT)


def test_stuck_bus_and_clock_stretching() -> None:
    with open_transport("emulated:?model=static&stuck=1") as t, pytest.raises(BusBusy, match="SDA held low"):
        t.read_word(BAT, 0x09)
    with open_transport("emulated:?model=static&stretch_ms=40") as t, pytest.raises(BusTimeout, match="40 ms"):
        t.read_word(BAT, 0x09)
    with open_transport("emulated:?model=static&stretch_ms=5") as t:
        assert t.read_word(BAT, 0x09) == 16120  # legal stretching only slows the bus


def test_faults_can_be_switched_at_run_time() -> None:
    with open_transport("emulated:?model=static") as t:
        assert isinstance(t, EmulatedTransport)
        t.faults.stuck = True
        with pytest.raises(BusBusy):
            t.read_word(BAT, 0x09)
        t.faults.stuck = False
        assert t.read_word(BAT, 0x09) == 16120


def test_closed_transport_raises_adapter_gone() -> None:
    t = _transport()
    t.close()
    t.close()  # idempotent
    with pytest.raises(AdapterGone):
        t.read_word(BAT, 0x09)


def test_listener_sees_bytes_and_a_broken_listener_does_not_break_the_bus() -> None:
    records: list[TransactionRecord] = []

    def broken(_: TransactionRecord) -> None:
        raise RuntimeError("subscriber bug")

    with _transport() as t:
        t.add_listener(broken)
        remove = t.add_listener(records.append)
        t.write_word(BAT, 0x01, 0x0102, pec=True)
        assert t.read_block(BAT, 0x20) == b"smartbatt"
        remove()
        t.read_word(BAT, 0x09)
    assert [(r.protocol, r.command, r.data_out, r.data_in, r.pec) for r in records] == [
        (SMBusProtocol.WRITE_WORD, 0x01, b"\x02\x01", b"", True),
        (SMBusProtocol.READ_BLOCK, 0x20, b"", b"smartbatt", False),
    ]
    assert "0x0B write_word 0x01 <- 02 01 PEC ok" in records[0].summary()


def test_bus_time_matches_the_bit_count_model() -> None:
    # read word with PEC: 6 bytes x 9 periods + S, Sr, P = 57 SCL periods (smbus.md §5)
    with _transport(bus_hz=100_000) as t:
        t.read_word(BAT, 0x09, pec=True)
        assert t.bus_time_s == pytest.approx(57 / 100_000 + 4.7e-6)


def test_argument_validation() -> None:
    with _transport() as t:
        with pytest.raises(ValueError, match="7-bit"):
            t.read_word(0x80, 0x09)
        with pytest.raises(ValueError, match="16-bit"):
            t.write_word(BAT, 0x01, 0x10000)
        with pytest.raises(ValueError, match=r"1\.\.32"):
            t.write_block(BAT, 0x23, b"")


def test_registry_and_unknown_schemes() -> None:
    assert {"emulated", "i2c", "buspirate"} <= set(registry())
    assert transport_class("emulated") is EmulatedTransport
    with pytest.raises(UriError, match="unknown adapter 'cp2113'"):
        open_transport("cp2113:0")
    with pytest.raises(UriError, match="unknown option 'bogus'"):
        open_transport("emulated:?model=static&bogus=1")


def test_target_nack_index_survives_the_wire() -> None:
    class NackSecondByte(RegisterFileDevice):
        def read_command(self, command: int, written: bytes) -> bytes:
            raise TargetNack(1, "unsupported")

    with _transport(EmulatedBus([NackSecondByte()])) as t:
        t.retry = RetryPolicy(attempts=1)
        with pytest.raises(NoAcknowledge) as info:
            t.read_word(BAT, 0x42)
        assert info.value.byte_index == 1


def test_a_refused_command_byte_is_not_retried_but_an_address_nack_is() -> None:
    class RefusesCommand(RegisterFileDevice):
        def read_command(self, command: int, written: bytes) -> bytes:
            if command == 0x54:
                raise TargetNack(1, "not allowed while sealed")
            return super().read_command(command, written)

    with _transport(EmulatedBus([RefusesCommand()])) as t:
        t.retry = RetryPolicy(attempts=3, backoff_s=0.0)
        with pytest.raises(NoAcknowledge):
            t.read_block(BAT, 0x54)
        assert t.transactions == 1
        t.retry = RetryPolicy(attempts=3, backoff_s=0.0, retry_command_nack=True)
        with pytest.raises(NoAcknowledge):
            t.read_block(BAT, 0x54)
        assert t.transactions == 4
