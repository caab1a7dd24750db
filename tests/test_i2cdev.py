"""The ``i2c:`` backend against a fake smbus2 bus: exact messages and flags, errno mapping, opening.

:class:`FakeSMBus` stands in for ``smbus2.SMBus`` at the seam where smbus2 would call the kernel
(as smbus2's own tests fake ``ioctl``): it records every ``i2c_msg`` list and SMBus call with its
flags and answers by forwarding to an :class:`SMBusTarget`, doing what the kernel does for the
native calls (count byte handling, PEC when ``bus.pec`` is set, errnos per fault-codes.rst).
The contract suite (test_transport_contract.py) runs it through every primitive.
"""

from __future__ import annotations

import ctypes
import errno
import pickle
import sys
from typing import Any

import pytest
from smbus2 import I2cFunc, i2c_msg

from smartbatt.emulator.register_file import RegisterFileDevice
from smartbatt.emulator.target import EmulatedBus, SMBusTarget, TargetBusStuck, TargetNack, TargetStretch
from smartbatt.errors import (
    AdapterGone,
    AdapterUnavailable,
    ArbitrationLost,
    BadBlockLength,
    BusBusy,
    BusTimeout,
    NoAcknowledge,
    PecMismatch,
    SmartBattError,
    TransportError,
    UriError,
)
from smartbatt.pec import crc8, pec_for_read, pec_for_write
from smartbatt.transports import NO_RETRY, Capability, i2cdev, open_transport
from smartbatt.transports.i2cdev import I2C_TIMEOUT, I2CDevOptions, I2CDevTransport

I2C_M_RD = 0x0001
BAT = 0x0B

#: a plain I2C master without SMBus PEC or native block read (CP2112-like for PEC, cp2112.md §5).
RAW_FUNCS = I2cFunc.I2C | I2cFunc.SMBUS_QUICK
#: an adapter with the kernel's SMBus emulation (PEC included) plus native block read and
#: block process call (a controller whose driver supports I2C_M_RECV_LEN).
NATIVE_FUNCS = I2cFunc.I2C | I2cFunc.SMBUS_EMUL | I2cFunc.SMBUS_READ_BLOCK_DATA | I2cFunc.SMBUS_BLOCK_PROC_CALL
#: an SMBus-only controller (no raw I2C): everything through SMBus calls.
SMBUS_ONLY_FUNCS = I2cFunc.SMBUS_EMUL & ~I2cFunc.SMBUS_PEC


class FakeSMBus:
    """A fake ``smbus2.SMBus``: records calls, answers from a target like the kernel would.

    ``calls`` holds ``("i2c_rdwr", [(addr, flags, bytes-or-length), …])`` for raw transfers,
    ``("pec", value)`` for the I2C_PEC ioctl and ``(method, args…, {"pec": p, "force": f})`` for
    SMBus calls. ``fail_with`` makes the next call raise that errno.
    """

    def __init__(self, target: SMBusTarget, funcs: int = RAW_FUNCS, fd: int = 7) -> None:
        self.target = target
        self.funcs = I2cFunc(funcs)
        self.fd: int | None = fd
        self._pec = 0
        self.calls: list[tuple[Any, ...]] = []
        self.fail_with: int | None = None

    # --- smbus2 attributes --------------------------------------------------------------------

    @property
    def pec(self) -> int:
        return self._pec

    @pec.setter
    def pec(self, value: int) -> None:
        if not self.funcs & I2cFunc.SMBUS_PEC:
            raise OSError("SMBUS_PEC is not a feature")  # what smbus2.enable_pec raises
        self._pec = int(value)
        self.calls.append(("pec", int(value)))

    def close(self) -> None:
        self.fd = None

    # --- the kernel side ----------------------------------------------------------------------

    def _enter(self) -> None:
        if self.fd is None:
            raise OSError(errno.EBADF, "Bad file descriptor")
        if self.fail_with is not None:
            code, self.fail_with = self.fail_with, None
            raise OSError(code, "injected")

    def _xfer(self, address: int, write: bytes, read: bool) -> bytes:
        try:
            return self.target.transfer(address, write, read)
        except TargetNack:
            raise OSError(errno.ENXIO, "No such device or address") from None
        except TargetStretch:
            raise OSError(errno.ETIMEDOUT, "Connection timed out") from None
        except TargetBusStuck:
            raise OSError(errno.EBUSY, "Device or resource busy") from None

    def _need(self, bit: int) -> None:
        if not self.funcs & bit:
            raise OSError(errno.EOPNOTSUPP, "Operation not supported")

    def i2c_rdwr(self, *msgs: Any) -> None:
        self._enter()
        self.calls.append(("i2c_rdwr", [(m.addr, m.flags, m.len if m.flags & I2C_M_RD else bytes(m)) for m in msgs]))
        self._need(I2cFunc.I2C)
        if len(msgs) == 1 and msgs[0].flags & I2C_M_RD:
            _fill(msgs[0], self._xfer(msgs[0].addr, b"", True))
        elif len(msgs) == 1:
            self._xfer(msgs[0].addr, bytes(msgs[0]), False)
        elif (
            len(msgs) == 2
            and not msgs[0].flags & I2C_M_RD
            and msgs[1].flags & I2C_M_RD
            and msgs[0].addr == msgs[1].addr
        ):
            _fill(msgs[1], self._xfer(msgs[0].addr, bytes(msgs[0]), True))
        else:
            raise OSError(errno.EOPNOTSUPP, "Operation not supported")

    def _record(self, name: str, *args: Any, force: bool | None = None) -> None:
        self._enter()
        self.calls.append((name, *args, {"pec": self._pec, "force": force}))

    def _read(self, address: int, written: bytes, n: int) -> bytes:
        """A kernel SMBus read of ``n`` data bytes; with PEC one more byte, checked."""
        reply = self._xfer(address, written, True) + b"\xff" * (n + 1)
        if self._pec and reply[n] != pec_for_read(address, written, reply[:n]):
            raise OSError(errno.EBADMSG, "Bad message")
        return reply[:n]

    def _write(self, address: int, payload: bytes) -> None:
        if self._pec:
            payload += bytes((pec_for_write(address, payload),))
        self._xfer(address, payload, False)

    def _read_block(self, address: int, written: bytes) -> list[int]:
        reply = self._xfer(address, written, True) + b"\xff" * 40
        count = reply[0]
        if not 1 <= count <= 32:
            raise OSError(errno.EPROTO, "Protocol error")
        if self._pec and reply[1 + count] != pec_for_read(address, written, reply[: 1 + count]):
            raise OSError(errno.EBADMSG, "Bad message")
        return list(reply[1 : 1 + count])

    # --- smbus2's SMBus calls -----------------------------------------------------------------

    def write_quick(self, i2c_addr: int, force: bool | None = None) -> None:
        self._record("write_quick", i2c_addr, force=force)
        self._need(I2cFunc.SMBUS_QUICK)
        try:
            self.target.quick(i2c_addr, False)
        except TargetNack:
            raise OSError(errno.ENXIO, "No such device or address") from None
        except TargetBusStuck:
            raise OSError(errno.EBUSY, "Device or resource busy") from None

    def read_byte(self, i2c_addr: int, force: bool | None = None) -> int:
        self._record("read_byte", i2c_addr, force=force)
        self._need(I2cFunc.SMBUS_READ_BYTE)
        return self._read(i2c_addr, b"", 1)[0]

    def write_byte(self, i2c_addr: int, value: int, force: bool | None = None) -> None:
        self._record("write_byte", i2c_addr, value, force=force)
        self._need(I2cFunc.SMBUS_WRITE_BYTE)
        self._write(i2c_addr, bytes((value,)))

    def read_byte_data(self, i2c_addr: int, register: int, force: bool | None = None) -> int:
        self._record("read_byte_data", i2c_addr, register, force=force)
        self._need(I2cFunc.SMBUS_READ_BYTE_DATA)
        return self._read(i2c_addr, bytes((register,)), 1)[0]

    def write_byte_data(self, i2c_addr: int, register: int, value: int, force: bool | None = None) -> None:
        self._record("write_byte_data", i2c_addr, register, value, force=force)
        self._need(I2cFunc.SMBUS_WRITE_BYTE_DATA)
        self._write(i2c_addr, bytes((register, value)))

    def read_word_data(self, i2c_addr: int, register: int, force: bool | None = None) -> int:
        self._record("read_word_data", i2c_addr, register, force=force)
        self._need(I2cFunc.SMBUS_READ_WORD_DATA)
        lo, hi = self._read(i2c_addr, bytes((register,)), 2)
        return lo | hi << 8

    def write_word_data(self, i2c_addr: int, register: int, value: int, force: bool | None = None) -> None:
        self._record("write_word_data", i2c_addr, register, value, force=force)
        self._need(I2cFunc.SMBUS_WRITE_WORD_DATA)
        self._write(i2c_addr, bytes((register, value & 0xFF, value >> 8)))

    def process_call(self, i2c_addr: int, register: int, value: int, force: bool | None = None) -> int:
        self._record("process_call", i2c_addr, register, value, force=force)
        self._need(I2cFunc.SMBUS_PROC_CALL)
        lo, hi = self._read(i2c_addr, bytes((register, value & 0xFF, value >> 8)), 2)
        return lo | hi << 8

    def read_block_data(self, i2c_addr: int, register: int, force: bool | None = None) -> list[int]:
        self._record("read_block_data", i2c_addr, register, force=force)
        self._need(I2cFunc.SMBUS_READ_BLOCK_DATA)
        return self._read_block(i2c_addr, bytes((register,)))

    def write_block_data(self, i2c_addr: int, register: int, data: list[int], force: bool | None = None) -> None:
        self._record("write_block_data", i2c_addr, register, list(data), force=force)
        self._need(I2cFunc.SMBUS_WRITE_BLOCK_DATA)
        self._write(i2c_addr, bytes((register, len(data), *data)))

    def block_process_call(self, i2c_addr: int, register: int, data: list[int], force: bool | None = None) -> list[int]:
        self._record("block_process_call", i2c_addr, register, list(data), force=force)
        self._need(I2cFunc.SMBUS_BLOCK_PROC_CALL)
        return self._read_block(i2c_addr, bytes((register, len(data), *data)))


def _fill(msg: Any, reply: bytes) -> None:
    """Copy a target's reply into a read message; beyond the reply the bus reads 0xFF."""
    data = (reply + b"\xff" * msg.len)[: msg.len]
    ctypes.memmove(msg.buf, data, msg.len)


class IoctlRecorder:
    def __init__(self, fail: int | None = None) -> None:
        self.calls: list[tuple[int, int, int]] = []
        self.fail = fail

    def __call__(self, fd: int, request: int, arg: int) -> int:
        self.calls.append((fd, request, arg))
        if self.fail is not None:
            raise OSError(self.fail, "injected")
        return 0


def make(
    funcs: int = RAW_FUNCS, target: SMBusTarget | None = None, **kw: Any
) -> tuple[I2CDevTransport, FakeSMBus, IoctlRecorder]:
    bus = FakeSMBus(target or EmulatedBus([RegisterFileDevice()]), funcs)
    ioctl = kw.pop("ioctl", IoctlRecorder())
    kw.setdefault("retry", NO_RETRY)
    transport = I2CDevTransport(bus, ioctl=ioctl, **kw)
    return transport, bus, ioctl


# ---------------------------------------------------------------------------------------------
# exact messages and flags
# ---------------------------------------------------------------------------------------------


def test_raw_messages_for_every_primitive_with_software_pec() -> None:
    transport, bus, _ = make(RAW_FUNCS)
    with transport:
        assert transport.read_word(BAT, 0x09, pec=True) == 16120
        transport.write_word(BAT, 0x00, 0x0414, pec=True)
        assert transport.read_block(BAT, 0x20, pec=True) == b"smartbatt"
        assert transport.read_word(BAT, 0x08) == 2982
        transport.write_word(BAT, 0x01, 0x0102)
    assert bus.calls == [
        ("i2c_rdwr", [(BAT, 0, b"\x09"), (BAT, I2C_M_RD, 3)]),
        # write word ManufacturerAccess 0x0414 + PEC 0x0C (smbus.md §4 vector 16 00 14 04 -> 0C)
        ("i2c_rdwr", [(BAT, 0, b"\x00\x14\x04\x0c")]),
        # block read without native support: the count first, then count + data + PEC
        ("i2c_rdwr", [(BAT, 0, b"\x20"), (BAT, I2C_M_RD, 1)]),
        ("i2c_rdwr", [(BAT, 0, b"\x20"), (BAT, I2C_M_RD, 1 + 9 + 1)]),
        ("i2c_rdwr", [(BAT, 0, b"\x08"), (BAT, I2C_M_RD, 2)]),
        ("i2c_rdwr", [(BAT, 0, b"\x01\x02\x01")]),
    ]
    assert not any(call[0] == "pec" for call in bus.calls)  # PEC never asked of this adapter


def test_native_calls_with_hardware_pec() -> None:
    transport, bus, _ = make(NATIVE_FUNCS)
    with transport:
        assert transport.capabilities & Capability.HARDWARE_PEC
        assert transport.read_word(BAT, 0x09, pec=True) == 16120
        assert transport.read_word(BAT, 0x09, pec=True) == 16120
        transport.write_word(BAT, 0x00, 0x3672, pec=True)
        assert transport.read_block(BAT, 0x21, pec=True) == b"EMU-4S3000"
        assert transport.read_word(BAT, 0x08) == 2982
        assert transport.read_block(BAT, 0x22) == b"LION"
    assert bus.calls == [
        ("pec", 1),  # set once, kept while it does not change
        ("read_word_data", BAT, 0x09, {"pec": 1, "force": None}),
        ("read_word_data", BAT, 0x09, {"pec": 1, "force": None}),
        ("write_word_data", BAT, 0x00, 0x3672, {"pec": 1, "force": None}),
        ("read_block_data", BAT, 0x21, {"pec": 1, "force": None}),
        # no PEC: raw messages are the exact transaction (the I2C_PEC flag does not touch them)
        ("i2c_rdwr", [(BAT, 0, b"\x08"), (BAT, I2C_M_RD, 2)]),
        # blocks keep the native call (one transaction), with the flag switched off first
        ("pec", 0),
        ("read_block_data", BAT, 0x22, {"pec": 0, "force": None}),
    ]


def test_native_block_read_without_pec_is_one_transaction() -> None:
    transport, bus, _ = make(NATIVE_FUNCS)
    with transport:
        assert transport.read_block(BAT, 0x20) == b"smartbatt"
    assert bus.calls == [("pec", 0), ("read_block_data", BAT, 0x20, {"pec": 0, "force": None})]


def test_software_pec_on_request_even_when_the_adapter_has_hardware_pec() -> None:
    transport, bus, _ = make(NATIVE_FUNCS, pec_mode="software")
    with transport:
        assert not transport.capabilities & Capability.HARDWARE_PEC
        assert transport.read_word(BAT, 0x09, pec=True) == 16120
    assert bus.calls == [("i2c_rdwr", [(BAT, 0, b"\x09"), (BAT, I2C_M_RD, 3)])]


def test_smbus_only_controller_uses_smbus_calls_for_everything() -> None:
    transport, bus, _ = make(SMBUS_ONLY_FUNCS)
    with transport:
        assert transport.read_word(BAT, 0x09) == 16120
        transport.write_word(BAT, 0x03, 0x6001)
        transport.quick(BAT)
        with pytest.raises(AdapterUnavailable, match="read_word with PEC"):
            transport.read_word(BAT, 0x09, pec=True)
    assert bus.calls == [
        ("read_word_data", BAT, 0x09, {"pec": 0, "force": None}),
        ("write_word_data", BAT, 0x03, 0x6001, {"pec": 0, "force": None}),
        ("write_quick", BAT, {"pec": 0, "force": None}),
    ]


def test_force_option_reaches_the_smbus_calls() -> None:
    transport, bus, _ = make(SMBUS_ONLY_FUNCS, force=True)
    with transport:
        transport.read_word(BAT, 0x09)
    assert bus.calls == [("read_word_data", BAT, 0x09, {"pec": 0, "force": True})]


def test_adapter_timeout_is_set_in_10ms_units() -> None:
    for timeout, ticks in ((0.1, 10), (0.025, 3), (0.001, 1), (1.0, 100)):
        transport, _, ioctl = make(timeout_s=timeout)
        transport.close()
        assert ioctl.calls == [(7, I2C_TIMEOUT, ticks)]  # FakeSMBus.fd


def test_timeout_ioctl_failure_is_adapter_unavailable_and_closes() -> None:
    bus = FakeSMBus(EmulatedBus([RegisterFileDevice()]))
    with pytest.raises(AdapterUnavailable, match="adapter timeout"):
        I2CDevTransport(bus, ioctl=IoctlRecorder(fail=errno.EINVAL))
    assert bus.fd is None  # closed again, nothing leaked


def test_capabilities_follow_the_adapter_functions() -> None:
    transport, _, _ = make(RAW_FUNCS)
    with transport:
        assert transport.capabilities == Capability.REPEATED_START | Capability.PLAIN_READ | Capability.QUICK
    transport, _, _ = make(NATIVE_FUNCS)
    with transport:
        assert transport.capabilities & Capability.BLOCK_READ
        assert transport.capabilities & Capability.BLOCK_PROCESS_CALL
        assert transport.capabilities & Capability.HARDWARE_PEC
    assert I2CDevTransport.capabilities == Capability.REPEATED_START | Capability.PLAIN_READ  # class default kept


def test_hardware_pec_mode_needs_adapter_support() -> None:
    with pytest.raises(AdapterUnavailable, match="no SMBus PEC"):
        make(RAW_FUNCS, pec_mode="hardware")


def test_quick_limits() -> None:
    transport, _, _ = make(I2cFunc.I2C)
    with transport, pytest.raises(AdapterUnavailable, match="quick"):
        transport.quick(BAT)
    transport, _, _ = make(RAW_FUNCS)
    with transport, pytest.raises(AdapterUnavailable, match="write quick"):
        transport.quick(BAT, read=True)


def test_block_process_call_needs_the_native_call() -> None:
    transport, bus, _ = make(RAW_FUNCS)
    with transport, pytest.raises(AdapterUnavailable, match="block_process_call"):
        transport.block_process_call(BAT, 0x44, b"\x01\x00")
    assert bus.calls == []  # never split into two transactions: it writes


# ---------------------------------------------------------------------------------------------
# errno mapping (Linux Documentation/i2c/fault-codes.rst)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (errno.ENXIO, NoAcknowledge),
        (errno.EREMOTEIO, NoAcknowledge),
        (errno.EBADMSG, PecMismatch),
        (errno.EPROTO, BadBlockLength),
        (errno.EAGAIN, ArbitrationLost),
        (errno.EBUSY, BusBusy),
        (errno.ETIMEDOUT, BusTimeout),
        (errno.ENODEV, AdapterGone),
        (errno.ESHUTDOWN, AdapterGone),
        (errno.EIO, TransportError),
        (errno.EOPNOTSUPP, AdapterUnavailable),
    ],
)
@pytest.mark.parametrize("funcs", [RAW_FUNCS, NATIVE_FUNCS], ids=["raw", "native"])
def test_errno_mapping(code: int, error: type[SmartBattError], funcs: int) -> None:
    transport, bus, _ = make(funcs)
    with transport:
        bus.fail_with = code
        with pytest.raises(error) as info:
            transport.read_word(BAT, 0x09, pec=True)
    exc = info.value
    assert exc.address == BAT and exc.command == 0x09
    assert exc.record is None  # no listener subscribed
    assert type(pickle.loads(pickle.dumps(exc))) is type(exc)


def test_specific_messages() -> None:
    transport, bus, _ = make(NATIVE_FUNCS)
    with transport:
        bus.fail_with = errno.EBUSY
        with pytest.raises(BusBusy, match=r"claimed by a kernel driver.*force=1"):
            transport.read_word(BAT, 0x09, pec=True)
        bus.fail_with = errno.EBADMSG
        with pytest.raises(PecMismatch, match=r"pec=software") as info:
            transport.read_word(BAT, 0x09, pec=True)
        assert info.value.expected is None and info.value.got is None  # the kernel does not say
        bus.fail_with = errno.ETIMEDOUT
        with pytest.raises(BusTimeout, match="CP2112"):
            transport.read_word(BAT, 0x09)


def test_closed_fd_is_adapter_gone() -> None:
    transport, bus, _ = make()
    with transport:
        bus.fd = None  # the descriptor went away under us (EBADF)
        with pytest.raises(AdapterGone):
            transport.read_word(BAT, 0x09)


def test_unplugged_adapter_is_told_apart_from_a_nack() -> None:
    present = {"/dev/i2c-9": True}
    transport, bus, _ = make(path="/dev/i2c-9", node_exists=lambda p: present.get(p, False))
    with transport:
        bus.fail_with = errno.ENXIO
        with pytest.raises(NoAcknowledge):
            transport.read_word(BAT, 0x09)
        present["/dev/i2c-9"] = False  # the USB adapter was pulled: its node vanished
        bus.fail_with = errno.ENXIO
        with pytest.raises(AdapterGone, match="unplugged"):
            transport.read_word(BAT, 0x09)


def test_transport_errors_from_the_target() -> None:
    transport, bus, _ = make()
    with transport:
        with pytest.raises(NoAcknowledge):
            transport.read_word(0x0C, 0x09)
        bus.target = _Raising(TargetStretch(0.04))
        with pytest.raises(BusTimeout):
            transport.read_word(BAT, 0x09)
        bus.target = _Raising(TargetBusStuck())
        with pytest.raises(BusBusy):
            transport.read_word(BAT, 0x09)


class _Raising:
    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def transfer(self, address: int, write: bytes, read: bool = False) -> bytes:
        raise self.exc

    def quick(self, address: int, read: bool) -> None:
        raise self.exc


# ---------------------------------------------------------------------------------------------
# opening
# ---------------------------------------------------------------------------------------------


def _factory(exc: BaseException) -> Any:
    def factory(path: str, force: bool = False) -> FakeSMBus:
        raise exc

    return factory


def test_missing_node_lists_the_nodes_present() -> None:
    with pytest.raises(AdapterUnavailable, match=r"no I2C device node /dev/i2c-7 \(present: /dev/i2c-0, /dev/i2c-1\)"):
        I2CDevTransport.open(
            "/dev/i2c-7", bus_factory=_factory(FileNotFoundError(2, "x")), nodes=lambda: ["/dev/i2c-0", "/dev/i2c-1"]
        )
    with pytest.raises(AdapterUnavailable, match="modprobe i2c-dev"):
        I2CDevTransport.open("/dev/i2c-7", bus_factory=_factory(FileNotFoundError(2, "x")), nodes=lambda: [])


def test_permission_denied_gives_the_fix() -> None:
    with pytest.raises(AdapterUnavailable) as info:
        I2CDevTransport.open("/dev/i2c-1", bus_factory=_factory(PermissionError(13, "Permission denied")))
    text = str(info.value)
    assert "sudo usermod -aG i2c $USER" in text
    assert 'KERNEL=="i2c-[0-9]*", GROUP="i2c", MODE="0660"' in text


def test_not_an_i2c_adapter_and_other_open_errors() -> None:
    with pytest.raises(AdapterUnavailable, match="not an I2C adapter"):
        I2CDevTransport.open("/dev/null", bus_factory=_factory(OSError(errno.ENOTTY, "Inappropriate ioctl")))
    with pytest.raises(AdapterUnavailable, match="cannot open"):
        I2CDevTransport.open("/dev/i2c-1", bus_factory=_factory(OSError(errno.EIO, "I/O error")))


def test_missing_smbus2_is_adapter_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "smbus2", None)
    with pytest.raises(AdapterUnavailable, match="pip install smbus2"):
        I2CDevTransport.open("/dev/i2c-1")


def test_open_with_a_factory_passes_options() -> None:
    seen: dict[str, Any] = {}

    def factory(path: str, force: bool = False) -> FakeSMBus:
        seen.update(path=path, force=force)
        return FakeSMBus(EmulatedBus([RegisterFileDevice()]), NATIVE_FUNCS)

    ioctl = IoctlRecorder()
    options = I2CDevOptions(timeout=0.05, force=True, pec="software")
    with I2CDevTransport.open("/dev/i2c-3", options, bus_factory=factory, ioctl=ioctl) as transport:
        assert seen == {"path": "/dev/i2c-3", "force": True}
        assert transport.pec_mode == "software" and transport.force and transport.timeout_s == 0.05
        assert ioctl.calls == [(7, I2C_TIMEOUT, 5)]


def test_uri_parsing() -> None:
    assert i2cdev.node_path("1") == "/dev/i2c-1"
    assert i2cdev.node_path("/dev/i2c-12") == "/dev/i2c-12"
    with pytest.raises(UriError):
        i2cdev.node_path("bus1")
    with pytest.raises(UriError, match="valid options"):
        open_transport("i2c:1?speed=100")
    with pytest.raises(UriError, match="pec"):
        open_transport("i2c:1?pec=maybe")
    with pytest.raises(UriError, match="needs a bus"):
        open_transport("i2c:")


def test_open_transport_reaches_a_missing_node() -> None:
    with pytest.raises(AdapterUnavailable, match="no I2C device node /dev/i2c-250"):
        open_transport("i2c:250")


def test_detect_and_describe(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    for n in (10, 2, 1):
        (tmp_path / f"i2c-{n}").write_text("")
    monkeypatch.setattr(i2cdev, "DEV_GLOB", str(tmp_path / "i2c-*"))
    assert I2CDevTransport.detect() == [f"i2c:{tmp_path}/i2c-{n}" for n in (1, 2, 10)]
    (tmp_path / "name").write_text("CP2112 SMBus Bridge on hidraw0\n")
    monkeypatch.setattr(i2cdev, "SYSFS_NAME", str(tmp_path / "name"))
    transport, _, _ = make(path="/dev/i2c-1", node_exists=lambda p: True)
    with transport:
        assert transport.describe() == "i2c-dev /dev/i2c-1 (CP2112 SMBus Bridge on hidraw0)"


def test_pec_vectors_through_raw_messages() -> None:
    """smbus.md §4: 16 08 17 A6 0B -> 2A (Temperature 2982 = 25.05 °C)."""
    transport, bus, _ = make(RAW_FUNCS)
    with transport:
        assert transport.read_word(BAT, 0x08, pec=True) == 2982
    msgs = bus.calls[0][1]
    assert msgs == [(BAT, 0, b"\x08"), (BAT, I2C_M_RD, 3)]
    assert crc8(bytes((0x16, 0x08, 0x17, 0xA6, 0x0B))) == 0x2A


def test_messages_are_real_smbus2_i2c_msgs() -> None:
    """The fake sees what smbus2 would hand the kernel: check the ctypes message itself."""
    seen: list[Any] = []

    class Spy(FakeSMBus):
        def i2c_rdwr(self, *msgs: Any) -> None:
            seen.extend(msgs)
            super().i2c_rdwr(*msgs)

    bus = Spy(EmulatedBus([RegisterFileDevice()]))
    with I2CDevTransport(bus, ioctl=IoctlRecorder()) as transport:
        transport.read_word(BAT, 0x09)
    assert [type(m) for m in seen] == [i2c_msg, i2c_msg]
    assert (seen[0].addr, seen[0].flags, bytes(seen[0])) == (BAT, 0, b"\x09")
    assert (seen[1].addr, seen[1].flags, bytes(seen[1])) == (BAT, I2C_M_RD, b"\xf8\x3e")
