"""What every transport must do, run on every backend (python-can ``Back2BackTestCase`` style).

:class:`TestTransportContract` runs one set of tests over:

* ``emulated`` — :class:`EmulatedTransport` in process;
* ``i2c`` — :class:`I2CDevTransport` over a fake smbus2 bus (test_i2cdev.FakeSMBus) of a plain
  I2C master without SMBus PEC (software PEC over raw ``I2C_RDWR`` messages);
* ``i2c-native`` — the same fake adapter with native block read, block process call and kernel
  PEC (the hardware-PEC path through smbus2's SMBus calls);
* ``buspirate`` — :class:`BusPirateTransport` over a real pseudo-terminal, answered by
  :class:`BusPirateResponder`.

Every backend reaches the same :class:`ContractDevice` through a :class:`FaultyBus`, so one
fault setting produces each wire's own typed error. Expectations that depend on what an adapter
can know (the NACK position, the PEC values when the kernel checks them, a short block that a
real wire pads with 0xFF) follow the backend's declared capabilities.

:class:`TestRealHardware` runs the backend-independent part against a real battery at 0x0B when
``SMARTBATT_TEST_I2C`` (a URI, e.g. ``i2c:1``) or ``SMARTBATT_TEST_BUSPIRATE`` (a serial port)
is set.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from smartbatt.emulator.buspirate_pty import Mode, open_pty
from smartbatt.emulator.faults import BusFaults, FaultyBus
from smartbatt.emulator.target import BLOCK, EmulatedBus, SMBusDevice, SMBusTarget, TargetNack
from smartbatt.errors import (
    AdapterGone,
    AdapterUnavailable,
    BadBlockLength,
    BusBusy,
    BusTimeout,
    NoAcknowledge,
    PecMismatch,
)
from smartbatt.pec import crc8
from smartbatt.transports import NO_RETRY, Capability, Transport, open_transport
from smartbatt.transports.base import STOP_START_HINT
from smartbatt.transports.buspirate import BusPirateOptions, BusPirateTransport
from smartbatt.transports.emulated import EmulatedTransport
from smartbatt.transports.i2cdev import I2CDevTransport
from tests.test_i2cdev import NATIVE_FUNCS, RAW_FUNCS, FakeSMBus, IoctlRecorder
from tests.wire_fakes import PecFlipper, StopStartAdapter

BAT = 0x0B
ABSENT = 0x0C
#: 1111 110: reserved by the I2C specification (UM10204 §3.1.12), so nobody on a real bus owns it.
RESERVED = 0x7E
#: transaction time limit of the harness, seconds (the Bus Pirate's includes a pty round trip).
TIMEOUT_S = 0.15
BACKENDS = ["emulated", "i2c", "i2c-native", "buspirate"]


class ContractDevice(SMBusDevice):
    """The device the contract runs against, with the values of the smbus.md §4 vectors.

    Words (Voltage 16000 mV = 0x3E80, Temperature 2982 = 0x0BA6, writable ManufacturerAccess),
    ManufacturerName "TI", a byte register, a process call, a block process call, send/receive
    byte, and three malformed blocks: count 0, count 33, and a count of 10 with 3 bytes behind it.
    """

    BYTE_REG = 0x50
    PROC_CALL = 0x60
    BLOCK_PROC_CALL = 0x61
    COUNT_ZERO, COUNT_33, SHORT = 0x30, 0x31, 0x32
    SEND_BYTES = range(0xC0, 0xD0)

    def __init__(self, address: int = BAT) -> None:
        super().__init__(address)
        self.words = {0x00: 0x0000, 0x01: 300, 0x08: 2982, 0x09: 16000, 0x1A: 0x0031}
        self.writable_words = {0x00, 0x01}
        self.byte = 0x5A
        self.blocks = {0x20: b"TI", 0x21: b"bq40z50", 0x44: b"\x00\x00"}
        self.raw = {
            self.COUNT_ZERO: b"\x00",
            self.COUNT_33: bytes((33,)) + bytes(range(33)),
            self.SHORT: b"\x0aabc",
        }
        self.sent: list[int] = []

    def write_shape(self, command: int) -> int | None:
        if command in self.writable_words:
            return 2
        if command == self.BYTE_REG:
            return 1
        if command == 0x44:
            return BLOCK
        if command in self.SEND_BYTES:
            return 0
        return None

    def read_command(self, command: int, written: bytes) -> bytes:
        if command == self.PROC_CALL:
            value = written[0] | written[1] << 8
            result = (value * 3) & 0xFFFF
            return bytes((result & 0xFF, result >> 8))
        if command == self.BLOCK_PROC_CALL:
            data = written[1 : 1 + written[0]]
            return bytes((len(data),)) + data[::-1]
        if command in self.words:
            value = self.words[command]
            return bytes((value & 0xFF, value >> 8))
        if command == self.BYTE_REG:
            return bytes((self.byte,))
        if command in self.blocks:
            return bytes((len(self.blocks[command]),)) + self.blocks[command]
        if command in self.raw:
            return self.raw[command]
        raise TargetNack(1, f"command 0x{command:02X} not implemented")

    def write_command(self, command: int, data: bytes) -> None:
        if command in self.writable_words:
            self.words[command] = data[0] | data[1] << 8
        elif command == self.BYTE_REG:
            self.byte = data[0]
        elif command == 0x44:
            self.blocks[0x44] = data
        else:
            self.sent.append(command)

    def receive_byte(self) -> int:
        return self.sent[-1] if self.sent else 0xA5


class Recorder:
    """Records what reaches the device: ``(address, written, read, reply)`` per transfer."""

    def __init__(self, inner: SMBusTarget) -> None:
        self.inner = inner
        self.transfers: list[tuple[int, bytes, bool, bytes]] = []
        self.quicks: list[tuple[int, bool]] = []

    def transfer(self, address: int, write: bytes, read: bool = False) -> bytes:
        reply = self.inner.transfer(address, write, read)
        self.transfers.append((address, bytes(write), read, reply))
        return reply

    def quick(self, address: int, read: bool) -> None:
        self.quicks.append((address, read))
        self.inner.quick(address, read)


@dataclass
class Bench:
    """One transport over one backend, with the device, the recorder and the live fault settings."""

    backend: str
    transport: Transport
    device: ContractDevice
    recorder: Recorder
    faults: BusFaults = field(default_factory=BusFaults)

    @property
    def caps(self) -> Capability:
        return self.transport.capabilities

    @property
    def wire(self) -> bool:
        """A real wire: bytes past the device's reply read as 0xFF, so a short block is invisible."""
        return self.backend != "emulated"

    @property
    def software_pec(self) -> bool:
        return not self.caps & Capability.HARDWARE_PEC


Wrap = Callable[[SMBusTarget], SMBusTarget]


def build(backend: str, stack: contextlib.ExitStack, wrap: Wrap | None = None) -> Bench:
    """A transport of kind ``backend`` reaching a fresh ContractDevice through ``wrap``."""
    device = ContractDevice()
    bus: SMBusTarget = EmulatedBus([device])
    recorder = Recorder(wrap(bus) if wrap else bus)
    faults = BusFaults()
    transport: Transport
    if backend == "emulated":
        transport = EmulatedTransport(recorder, faults=faults, timeout_s=TIMEOUT_S, retry=NO_RETRY)
    elif backend in ("i2c", "i2c-native"):
        funcs = RAW_FUNCS if backend == "i2c" else NATIVE_FUNCS
        fake = FakeSMBus(FaultyBus(recorder, faults), funcs)
        transport = I2CDevTransport(fake, ioctl=IoctlRecorder(), timeout_s=TIMEOUT_S, retry=NO_RETRY)
    else:
        session = stack.enter_context(open_pty(recorder, faults=faults, mode=Mode.BBIO))
        transport = BusPirateTransport.open(session.path, BusPirateOptions(timeout=TIMEOUT_S), retry=NO_RETRY)
    stack.callback(transport.close)
    return Bench(backend, transport, device, recorder, faults)


class TransportContract:
    """Backend-independent behaviour: holds for any transport with a smart battery at 0x0B.

    A subclass provides the ``transport`` fixture.
    """

    def test_read_word_with_and_without_pec_agree(self, transport: Transport) -> None:
        spec_info = transport.read_word(BAT, 0x1A)
        assert transport.read_word(BAT, 0x1A, pec=True) == spec_info
        assert 0 <= spec_info <= 0xFFFF

    def test_read_block_with_and_without_pec_agree(self, transport: Transport) -> None:
        name = transport.read_block(BAT, 0x20, pec=True)
        assert 1 <= len(name) <= 32
        assert transport.read_block(BAT, 0x20) == name

    def test_nack_at_an_address_nobody_owns(self, transport: Transport) -> None:
        with pytest.raises(NoAcknowledge) as info:
            transport.read_word(RESERVED, 0x09)
        assert (info.value.address, info.value.command) == (RESERVED, 0x09)
        if transport.capabilities & Capability.NACK_POSITION:
            assert info.value.byte_index == 0

    def test_closed_transport_raises_adapter_gone(self, transport: Transport) -> None:
        transport.close()
        assert transport.closed
        for call in (
            lambda: transport.read_word(BAT, 0x09),
            lambda: transport.write_word(BAT, 0x01, 300),
            lambda: transport.read_block(BAT, 0x20),
            lambda: transport.quick(BAT),
        ):
            with pytest.raises(AdapterGone):
                call()
        transport.close()  # idempotent


class TestTransportContract(TransportContract):
    """The full contract over the emulated device, on every backend."""

    @pytest.fixture(params=BACKENDS)
    def make(self, request: pytest.FixtureRequest) -> Iterator[Callable[..., Bench]]:
        with contextlib.ExitStack() as stack:
            yield lambda wrap=None: build(request.param, stack, wrap)

    @pytest.fixture
    def bench(self, make: Callable[..., Bench]) -> Bench:
        return make()

    @pytest.fixture
    def transport(self, bench: Bench) -> Transport:
        return bench.transport

    # --- pinned byte traces (smbus.md §4 test vectors) --------------------------------------

    def test_read_word_voltage_vector(self, bench: Bench) -> None:
        """16 09 17 80 3E -> PEC 67: the device's reply bytes and the value decoded from them."""
        assert bench.transport.read_word(BAT, 0x09, pec=True) == 16000
        assert bench.recorder.transfers == [(BAT, b"\x09", True, b"\x80\x3e\x67")]
        assert bench.transport.read_word(BAT, 0x09) == 16000

    def test_read_word_temperature_vector(self, bench: Bench) -> None:
        """16 08 17 A6 0B -> PEC 2A."""
        assert bench.transport.read_word(BAT, 0x08, pec=True) == 2982
        assert bench.recorder.transfers == [(BAT, b"\x08", True, b"\xa6\x0b\x2a")]

    @pytest.mark.parametrize(("value", "pec"), [(0x0414, 0x0C), (0x3672, 0x19)])
    def test_write_word_unseal_vectors(self, bench: Bench, value: int, pec: int) -> None:
        """16 00 14 04 -> 0C and 16 00 72 36 -> 19: the bytes the device receives."""
        bench.transport.write_word(BAT, 0x00, value, pec=True)
        assert bench.recorder.transfers == [(BAT, bytes((0x00, value & 0xFF, value >> 8, pec)), False, b"")]
        assert bench.device.words[0x00] == value

    def test_write_word_without_pec_sends_no_pec_byte(self, bench: Bench) -> None:
        bench.transport.write_word(BAT, 0x00, 0x0414)
        assert bench.recorder.transfers == [(BAT, b"\x00\x14\x04", False, b"")]

    def test_read_block_vector(self, bench: Bench) -> None:
        """16 20 17 02 54 49 -> PEC 7F (ManufacturerName "TI")."""
        assert bench.transport.read_block(BAT, 0x20, pec=True) == b"TI"
        # adapters without a native block read fetch the count first (same reply, read twice)
        assert bench.recorder.transfers
        assert set(bench.recorder.transfers) == {(BAT, b"\x20", True, b"\x02TI\x7f")}

    def test_write_block_vector(self, bench: Bench) -> None:
        """16 44 02 54 00 -> PEC 34 (ManufacturerBlockAccess, MAC 0x0054 OperationStatus)."""
        bench.transport.write_block(BAT, 0x44, b"\x54\x00", pec=True)
        assert bench.recorder.transfers == [(BAT, b"\x44\x02\x54\x00\x34", False, b"")]
        assert bench.device.blocks[0x44] == b"\x54\x00"

    # --- every primitive, with and without PEC ---------------------------------------------

    @pytest.mark.parametrize("pec", [False, True])
    def test_byte_primitives(self, bench: Bench, pec: bool) -> None:
        t = bench.transport
        assert t.read_byte(BAT, ContractDevice.BYTE_REG, pec=pec) == 0x5A
        t.write_byte(BAT, ContractDevice.BYTE_REG, 0xC3, pec=pec)
        assert bench.device.byte == 0xC3
        assert t.read_byte(BAT, ContractDevice.BYTE_REG, pec=pec) == 0xC3
        t.send_byte(BAT, 0xC7, pec=pec)
        assert bench.device.sent == [0xC7]
        assert t.receive_byte(BAT, pec=pec) == 0xC7

    @pytest.mark.parametrize("pec", [False, True])
    def test_word_primitives(self, bench: Bench, pec: bool) -> None:
        t = bench.transport
        t.write_word(BAT, 0x01, 0xBEEF, pec=pec)
        assert t.read_word(BAT, 0x01, pec=pec) == 0xBEEF
        assert t.process_call(BAT, ContractDevice.PROC_CALL, 0x1234, pec=pec) == 0x369C

    @pytest.mark.parametrize("pec", [False, True])
    @pytest.mark.parametrize("size", [1, 2, 16, 17, 32])
    def test_block_round_trip(self, bench: Bench, pec: bool, size: int) -> None:
        data = bytes(range(0x40, 0x40 + size))
        bench.transport.write_block(BAT, 0x44, data, pec=pec)
        assert bench.device.blocks[0x44] == data
        assert bench.transport.read_block(BAT, 0x44, pec=pec) == data
        assert bench.transport.read_block(BAT, 0x44, pec=pec) == data  # again (a predicted count)

    def test_block_length_changes_between_reads(self, bench: Bench) -> None:
        for data in (b"short", b"a much longer block than before", b"x"):
            bench.device.blocks[0x44] = data
            assert bench.transport.read_block(BAT, 0x44, pec=True) == data

    @pytest.mark.parametrize("pec", [False, True])
    def test_block_process_call(self, bench: Bench, pec: bool) -> None:
        if not bench.caps & Capability.BLOCK_PROCESS_CALL:
            with pytest.raises(AdapterUnavailable):
                bench.transport.block_process_call(BAT, ContractDevice.BLOCK_PROC_CALL, b"abc", pec=pec)
            assert bench.recorder.transfers == []  # it writes: never emulated with two transactions
            return
        assert bench.transport.block_process_call(BAT, ContractDevice.BLOCK_PROC_CALL, b"abc", pec=pec) == b"cba"
        assert [t[1] for t in bench.recorder.transfers] == [b"\x61\x03abc"]  # exactly one transaction

    def test_quick(self, bench: Bench) -> None:
        bench.transport.quick(BAT)
        with pytest.raises(NoAcknowledge) as info:
            bench.transport.quick(ABSENT)
        assert info.value.address == ABSENT and info.value.command is None

    # --- errors -------------------------------------------------------------------------------

    def test_nack_at_the_address(self, bench: Bench) -> None:
        with pytest.raises(NoAcknowledge) as info:
            bench.transport.read_word(ABSENT, 0x09, pec=True)
        assert (info.value.address, info.value.command) == (ABSENT, 0x09)
        assert info.value.byte_index == (0 if bench.caps & Capability.NACK_POSITION else None)

    def test_injected_nack(self, bench: Bench) -> None:
        bench.faults.nack_every = 1
        with pytest.raises(NoAcknowledge) as info:
            bench.transport.read_word(BAT, 0x09)
        assert (info.value.address, info.value.command) == (BAT, 0x09)
        bench.faults.nack_every = 0
        assert bench.transport.read_word(BAT, 0x09) == 16000

    def test_nack_of_an_unwritable_command(self, bench: Bench) -> None:
        with pytest.raises(NoAcknowledge) as info:
            bench.transport.write_word(BAT, 0x09, 1)
        assert info.value.command == 0x09
        if bench.caps & Capability.NACK_POSITION:
            assert info.value.byte_index == 2  # the first data byte after the command
        assert bench.device.words[0x09] == 16000

    def test_pec_corruption(self, bench: Bench) -> None:
        bench.faults.corrupt_pec_every = 1
        with pytest.raises(PecMismatch) as info:
            bench.transport.read_word(BAT, 0x09, pec=True)
        exc = info.value
        assert (exc.address, exc.command, exc.check) == (BAT, 0x09, "read")
        if bench.software_pec:
            assert (exc.expected, exc.got) == (0x67, 0x66)
            assert exc.likely_cause == ""
        else:
            assert (exc.expected, exc.got) == (None, None)  # the kernel only says EBADMSG
        bench.faults.corrupt_pec_every = 0
        assert bench.transport.read_word(BAT, 0x09, pec=True) == 16000

    def test_stop_start_diagnosis(self, make: Callable[..., Bench]) -> None:
        bench = make(StopStartAdapter)
        with pytest.raises(PecMismatch) as info:
            bench.transport.read_word(BAT, 0x09, pec=True)
        if bench.software_pec:
            assert info.value.expected == 0x67
            assert info.value.got == crc8(b"\x17\x80\x3e")
            assert info.value.likely_cause == STOP_START_HINT
        else:
            assert info.value.likely_cause == ""
        assert bench.transport.read_word(BAT, 0x09) == 16000  # without PEC the data is right

    def test_device_refusing_our_pec(self, make: Callable[..., Bench]) -> None:
        bench = make(PecFlipper)
        if bench.caps & Capability.NACK_POSITION:
            with pytest.raises(PecMismatch) as info:
                bench.transport.write_word(BAT, 0x00, 0x0414, pec=True)
            assert info.value.check == "write"
        else:
            with pytest.raises(NoAcknowledge):  # i2c-dev cannot say which byte was refused
                bench.transport.write_word(BAT, 0x00, 0x0414, pec=True)
        assert bench.device.words[0x00] == 0

    @pytest.mark.parametrize("pec", [False, True])
    @pytest.mark.parametrize(("command", "length"), [(ContractDevice.COUNT_ZERO, 0), (ContractDevice.COUNT_33, 33)])
    def test_impossible_block_length(self, bench: Bench, pec: bool, command: int, length: int) -> None:
        with pytest.raises(BadBlockLength) as info:
            bench.transport.read_block(BAT, command, pec=pec)
        assert info.value.command == command
        if info.value.length is not None:  # the kernel's EPROTO does not carry the count
            assert info.value.length == length
        assert bench.transport.read_word(BAT, 0x09) == 16000  # the bus is usable afterwards

    @pytest.mark.parametrize("pec", [False, True])
    def test_short_block(self, bench: Bench, pec: bool) -> None:
        """Count 10 with 3 bytes behind it: only the in-process wire sees where the device stops;
        on a real wire the missing bytes read 0xFF, which PEC catches."""
        if not bench.wire:
            with pytest.raises(BadBlockLength) as info:
                bench.transport.read_block(BAT, ContractDevice.SHORT, pec=pec)
            assert (info.value.length, info.value.received) == (10, 3 if pec else 4)
        elif pec:
            with pytest.raises(PecMismatch):
                bench.transport.read_block(BAT, ContractDevice.SHORT, pec=pec)
        else:
            device_pec = crc8(b"\x16\x32\x17\x0aabc")
            expected = b"abc" + bytes((device_pec,)) + b"\xff" * 6
            assert bench.transport.read_block(BAT, ContractDevice.SHORT) == expected

    def test_bus_stuck(self, bench: Bench) -> None:
        bench.faults.stuck = True
        for call in (
            lambda: bench.transport.read_word(BAT, 0x09),
            lambda: bench.transport.write_word(BAT, 0x01, 1),
            lambda: bench.transport.read_block(BAT, 0x20, pec=True),
        ):
            with pytest.raises(BusBusy):
                call()
        assert bench.device.words[0x01] == 300  # nothing was written
        bench.faults.stuck = False
        assert bench.transport.read_word(BAT, 0x09, pec=True) == 16000

    @pytest.mark.timeout(10)
    def test_clock_stretch_past_the_smbus_timeout(self, bench: Bench) -> None:
        bench.faults.stretch_s = 0.2  # past tTIMEOUT (25 ms) and past the transport's limit
        start = time.monotonic()
        with pytest.raises(BusTimeout) as info:
            bench.transport.read_word(BAT, 0x09, pec=True)
        assert time.monotonic() - start < TIMEOUT_S + 0.5
        assert (info.value.address, info.value.command) == (BAT, 0x09)
        bench.faults.stretch_s = 0.0
        assert bench.transport.read_word(BAT, 0x09, pec=True) == 16000  # and it recovers

    def test_legal_clock_stretch_only_slows_the_bus(self, bench: Bench) -> None:
        bench.faults.stretch_s = 0.004
        assert bench.transport.read_word(BAT, 0x09, pec=True) == 16000


def _real_uris() -> list[str]:
    uris = []
    if uri := os.environ.get("SMARTBATT_TEST_I2C"):
        uris.append(uri)
    if port := os.environ.get("SMARTBATT_TEST_BUSPIRATE"):
        uris.append(f"buspirate:{port}")
    return uris


@pytest.mark.skipif(not _real_uris(), reason="set SMARTBATT_TEST_I2C=i2c:N or SMARTBATT_TEST_BUSPIRATE=/dev/ttyUSB0")
class TestRealHardware(TransportContract):
    """The backend-independent contract against a real smart battery at 0x0B."""

    @pytest.fixture(params=_real_uris() or ["unset"])
    def transport(self, request: pytest.FixtureRequest) -> Iterator[Any]:
        with open_transport(request.param) as transport:
            yield transport
