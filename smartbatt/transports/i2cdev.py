"""``i2c:1`` or ``i2c:/dev/i2c-1`` — Linux i2c-dev through smbus2.

How each transaction reaches the adapter (``pec=auto`` is the default):

* **With PEC, ``pec=hardware``** (and ``auto`` when the adapter reports ``I2C_FUNC_SMBUS_PEC``
  and the native SMBus call for the protocol): smbus2's SMBus call with ``bus.pec = 1``, i.e. the
  ``I2C_PEC`` ioctl. The kernel (or the SMBus controller) appends and checks the PEC; a bad PEC
  comes back as ``EBADMSG`` without the expected/received values, so ``pec=software`` is the
  mode for diagnosing one.
* **With PEC, ``pec=software``** (and ``auto`` otherwise: the CP2112 and many USB bridges do not
  offer SMBus PEC — cp2112.md §5): raw ``I2C_RDWR`` messages (write + read with a repeated
  start), PEC computed and checked here, including the STOP+START diagnosis.
* **Without PEC**: raw ``I2C_RDWR`` messages when the adapter is a plain I2C master
  (``I2C_FUNC_I2C``), else the native SMBus call (SMBus-only controllers). Exception: block read
  and block process call use the native call when the adapter has it
  (``I2C_FUNC_SMBUS_READ_BLOCK_DATA`` / ``…_BLOCK_PROC_CALL``), because the kernel reads the
  count and the data in one transaction.
* **Block read through raw messages** (no native block read, or software PEC): ``I2C_RDWR``
  cannot change a read's length once started (smbus2 offers no ``I2C_M_RECV_LEN``), so it is
  two transactions: command + 1-byte read for the count, then command + count + data + PEC.
  Reading an SBS block register twice has no side effect. Block process calls, which write,
  need the native call.

Every raw message list is ``[i2c_msg.write(addr, bytes)]``, ``[i2c_msg.read(addr, n)]`` or
``[i2c_msg.write(addr, bytes), i2c_msg.read(addr, n)]`` (flags 0 and ``I2C_M_RD``): the shapes
every i2c-dev adapter supports, the CP2112 included (1 message, or write-then-read to one
address; cp2112.md §6).

The adapter timeout is set with the ``I2C_TIMEOUT`` ioctl (units of 10 ms, Linux
``include/uapi/linux/i2c-dev.h``). It is a property of the adapter, so it also applies to
kernel drivers on the same bus. Errors come back as errnos, translated per Linux
``Documentation/i2c/fault-codes.rst`` by :func:`smartbatt.errors.from_oserror`; a node that
disappears (USB adapter unplugged) gives :class:`AdapterGone`.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import glob
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Self

from smartbatt.errors import (
    AdapterGone,
    AdapterUnavailable,
    BadBlockLength,
    BusBusy,
    NoAcknowledge,
    PecMismatch,
    SmartBattError,
    UriError,
    from_oserror,
)
from smartbatt.transports.base import Transport
from smartbatt.transports.capabilities import Capability
from smartbatt.transports.txlog import SMBusProtocol
from smartbatt.uri import DeviceSpec, parse_options

#: ioctl: set the adapter timeout in units of 10 ms (Linux include/uapi/linux/i2c-dev.h).
I2C_TIMEOUT = 0x0702
#: where device nodes appear (one per adapter, once the i2c-dev module is loaded).
DEV_GLOB = "/dev/i2c-*"
#: adapter names (Linux Documentation/i2c/dev-interface.rst: /sys/class/i2c-dev/i2c-N/name).
SYSFS_NAME = "/sys/class/i2c-dev/i2c-{n}/name"

# Adapter functionality bits (Linux include/uapi/linux/i2c.h; smbus2 ``I2cFunc`` uses the same).
FUNC_I2C = 0x00000001
FUNC_SMBUS_PEC = 0x00000008
FUNC_SMBUS_BLOCK_PROC_CALL = 0x00008000
FUNC_SMBUS_QUICK = 0x00010000
FUNC_SMBUS_READ_BYTE = 0x00020000
FUNC_SMBUS_WRITE_BYTE = 0x00040000
FUNC_SMBUS_READ_BYTE_DATA = 0x00080000
FUNC_SMBUS_WRITE_BYTE_DATA = 0x00100000
FUNC_SMBUS_READ_WORD_DATA = 0x00200000
FUNC_SMBUS_WRITE_WORD_DATA = 0x00400000
FUNC_SMBUS_PROC_CALL = 0x00800000
FUNC_SMBUS_READ_BLOCK_DATA = 0x01000000
FUNC_SMBUS_WRITE_BLOCK_DATA = 0x02000000

#: SMBus protocol → (smbus2 method, functionality bit it needs).
NATIVE: dict[SMBusProtocol, tuple[str, int]] = {
    SMBusProtocol.QUICK: ("write_quick", FUNC_SMBUS_QUICK),
    SMBusProtocol.SEND_BYTE: ("write_byte", FUNC_SMBUS_WRITE_BYTE),
    SMBusProtocol.RECEIVE_BYTE: ("read_byte", FUNC_SMBUS_READ_BYTE),
    SMBusProtocol.WRITE_BYTE: ("write_byte_data", FUNC_SMBUS_WRITE_BYTE_DATA),
    SMBusProtocol.READ_BYTE: ("read_byte_data", FUNC_SMBUS_READ_BYTE_DATA),
    SMBusProtocol.WRITE_WORD: ("write_word_data", FUNC_SMBUS_WRITE_WORD_DATA),
    SMBusProtocol.READ_WORD: ("read_word_data", FUNC_SMBUS_READ_WORD_DATA),
    SMBusProtocol.PROCESS_CALL: ("process_call", FUNC_SMBUS_PROC_CALL),
    SMBusProtocol.WRITE_BLOCK: ("write_block_data", FUNC_SMBUS_WRITE_BLOCK_DATA),
    SMBusProtocol.READ_BLOCK: ("read_block_data", FUNC_SMBUS_READ_BLOCK_DATA),
    SMBusProtocol.BLOCK_PROCESS_CALL: ("block_process_call", FUNC_SMBUS_BLOCK_PROC_CALL),
}
#: protocols for which the native call is preferred even without PEC (one transaction, not two).
NATIVE_FIRST = frozenset({SMBusProtocol.READ_BLOCK, SMBusProtocol.BLOCK_PROCESS_CALL})

PERMISSION_HINT = (
    "add yourself to the i2c group (sudo usermod -aG i2c $USER, then log in again) or install a udev rule "
    'KERNEL=="i2c-[0-9]*", GROUP="i2c", MODE="0660"'
)

Ioctl = Callable[[int, int, int], Any]


@dataclass(frozen=True)
class I2CDevOptions:
    """Options of ``i2c:`` URIs."""

    #: adapter timeout, seconds (sent to the kernel in 10 ms units, rounded up).
    timeout: float = 0.1
    #: use I2C_SLAVE_FORCE for native SMBus calls (an address claimed by a kernel driver such as
    #: sbs-battery). Raw I2C_RDWR messages never need it.
    force: bool = False
    #: who computes PEC: ``auto``, ``hardware`` (kernel/adapter) or ``software`` (module docstring).
    pec: str = "auto"

    def __post_init__(self) -> None:
        if self.timeout <= 0:
            raise ValueError("timeout must be positive")
        if self.pec not in ("auto", "hardware", "software"):
            raise ValueError(f"pec must be auto, hardware or software, not {self.pec!r}")


def node_path(target: str) -> str:
    """``1`` → ``/dev/i2c-1``; an absolute path stays as is. Raises :class:`UriError`."""
    if target.isdigit():
        return f"/dev/i2c-{int(target)}"
    if target.startswith("/"):
        return target
    raise UriError(f"i2c: target {target!r} is neither a bus number (i2c:1) nor a device node (i2c:/dev/i2c-1)")


def list_nodes(pattern: str | None = None) -> list[str]:
    """I2C device nodes present (``DEV_GLOB`` by default), in bus-number order."""

    def number(path: str) -> int:
        match = re.search(r"(\d+)$", path)
        return int(match.group(1)) if match else -1

    return sorted(glob.glob(pattern or DEV_GLOB), key=number)


def adapter_name(path: str) -> str:
    """The kernel's name for the adapter behind ``path`` ('' if unknown)."""
    match = re.search(r"i2c-(\d+)$", path)
    if not match:
        return ""
    try:
        with open(SYSFS_NAME.format(n=match.group(1)), encoding="utf-8") as fh:
            return fh.read().strip()
    except OSError:
        return ""


class I2CDevTransport(Transport):
    """SMBus through a Linux i2c-dev node (module docstring for how each call is made).

    :param bus: an open ``smbus2.SMBus`` (or an object with its API: ``fd``, ``funcs``, ``pec``,
        ``i2c_rdwr`` and the SMBus calls).
    :param path: the device node, for messages and to tell an unplugged adapter apart.
    :param pec_mode: ``auto``, ``hardware`` or ``software``.
    :param force: use I2C_SLAVE_FORCE for native SMBus calls.
    :param ioctl: the ioctl function (tests pass a recorder).
    :param node_exists: checks whether ``path`` still exists (tests pass a fake).
    :raises AdapterUnavailable: ``pec_mode='hardware'`` on an adapter without SMBus PEC, or the
        adapter timeout cannot be set.
    """

    scheme = "i2c"
    #: baseline through I2C_RDWR; the instance narrows or widens it from the adapter's functions.
    capabilities = Capability.REPEATED_START | Capability.PLAIN_READ

    def __init__(
        self,
        bus: Any,
        *,
        path: str = "",
        pec_mode: str = "auto",
        force: bool = False,
        timeout_s: float = 0.1,
        ioctl: Ioctl = fcntl.ioctl,
        node_exists: Callable[[str], bool] = os.path.exists,
        **kw: Any,
    ) -> None:
        if pec_mode not in ("auto", "hardware", "software"):
            raise ValueError("pec_mode must be auto, hardware or software")
        super().__init__(timeout_s=timeout_s, **kw)
        self._bus = bus
        self.path = path
        self.pec_mode = pec_mode
        self.force = force
        self._ioctl = ioctl
        self._node_exists = node_exists
        self.funcs = int(bus.funcs)
        self._pec_state: int | None = None
        # what this adapter can do is only known once it is open
        self.capabilities = self._capabilities()
        try:
            if pec_mode == "hardware" and not self.funcs & FUNC_SMBUS_PEC:
                raise AdapterUnavailable(f"{self.describe()} has no SMBus PEC support; use ?pec=software")
            if not self.funcs & FUNC_I2C and not any(self.funcs & bit for _, bit in NATIVE.values()):
                raise AdapterUnavailable(f"{self.describe()} offers neither plain I2C nor SMBus transfers")
            self._set_timeout(timeout_s)
        except BaseException:
            self.close()
            raise

    # ----------------------------------------------------------------------------------------
    # opening
    # ----------------------------------------------------------------------------------------

    @classmethod
    def from_spec(cls, spec: DeviceSpec) -> Self:
        if not spec.target:
            raise UriError("i2c: needs a bus number or device node, e.g. i2c:1 or i2c:/dev/i2c-1")
        options = parse_options(I2CDevOptions, spec.options)
        return cls.open(node_path(spec.target), options)

    @classmethod
    def open(
        cls,
        path: str,
        options: I2CDevOptions | None = None,
        *,
        bus_factory: Callable[..., Any] | None = None,
        nodes: Callable[[], list[str]] = list_nodes,
        **kw: Any,
    ) -> Self:
        """Open ``path`` with smbus2 (or ``bus_factory(path, force=…)`` in tests).

        :raises AdapterUnavailable: smbus2 missing, no such node (the message lists the nodes
            present), permission denied (the message gives the fix), not an I2C adapter.
        """
        opts = options or I2CDevOptions()
        if bus_factory is None:
            try:
                from smbus2 import SMBus
            except ImportError:
                raise AdapterUnavailable("the i2c adapter needs smbus2: pip install smbus2") from None
            bus_factory = SMBus
        try:
            bus = bus_factory(path, force=opts.force)
        except FileNotFoundError:
            present = ", ".join(nodes()) or "none (load the i2c-dev module: sudo modprobe i2c-dev)"
            raise AdapterUnavailable(f"no I2C device node {path} (present: {present})") from None
        except PermissionError:
            raise AdapterUnavailable(f"permission denied opening {path}: {PERMISSION_HINT}") from None
        except OSError as exc:
            if exc.errno == errno.ENOTTY:
                raise AdapterUnavailable(f"{path} is not an I2C adapter") from None
            raise AdapterUnavailable(f"cannot open {path}: {exc.strerror or exc}") from None
        return cls(bus, path=path, pec_mode=opts.pec, force=opts.force, timeout_s=opts.timeout, **kw)

    @classmethod
    def detect(cls) -> list[str]:
        return [f"i2c:{path}" for path in list_nodes()]

    def describe(self) -> str:
        name = adapter_name(self.path) if self.path else ""
        where = f"i2c-dev {self.path}" if self.path else "i2c-dev adapter"
        return f"{where} ({name})" if name else where

    def _close(self) -> None:
        with contextlib.suppress(Exception):
            self._bus.close()

    def _capabilities(self) -> Capability:
        caps = Capability.NONE
        if self.funcs & FUNC_I2C:
            caps |= Capability.REPEATED_START | Capability.PLAIN_READ
        if self.funcs & FUNC_SMBUS_QUICK:
            caps |= Capability.QUICK
        if self.funcs & FUNC_SMBUS_READ_BLOCK_DATA:
            caps |= Capability.BLOCK_READ
        if self.funcs & FUNC_SMBUS_BLOCK_PROC_CALL:
            caps |= Capability.BLOCK_PROCESS_CALL
        if self.funcs & FUNC_SMBUS_PEC and self.pec_mode != "software":
            caps |= Capability.HARDWARE_PEC
        if self.funcs & FUNC_SMBUS_READ_BYTE:
            caps |= Capability.PLAIN_READ
        return caps

    def _set_timeout(self, timeout_s: float) -> None:
        ticks = max(1, math.ceil(timeout_s / 0.01 - 1e-9))
        try:
            self._ioctl(self._bus.fd, I2C_TIMEOUT, ticks)
        except OSError as exc:
            raise AdapterUnavailable(f"{self.describe()}: cannot set the adapter timeout: {exc.strerror}") from None

    # ----------------------------------------------------------------------------------------
    # choosing the path of each transaction
    # ----------------------------------------------------------------------------------------

    def _has(self, protocol: SMBusProtocol) -> bool:
        return bool(self.funcs & NATIVE[protocol][1])

    def _route(self, protocol: SMBusProtocol, pec: bool) -> str:
        """``native`` (smbus2 SMBus call) or ``raw`` (I2C_RDWR with software PEC)."""
        raw = bool(self.funcs & FUNC_I2C)
        native = self._has(protocol)
        if pec:
            hardware = bool(self.funcs & FUNC_SMBUS_PEC) and native
            if self.pec_mode == "hardware" or (self.pec_mode == "auto" and hardware):
                if not hardware:
                    raise AdapterUnavailable(f"{self.describe()} cannot do {protocol.value} with hardware PEC")
                return "native"
        elif native and (protocol in NATIVE_FIRST or not raw):
            return "native"
        if raw and protocol is not SMBusProtocol.BLOCK_PROCESS_CALL:
            return "raw"
        raise AdapterUnavailable(f"{self.describe()} cannot do {protocol.value}" + (" with PEC" if pec else ""))

    def _transact(
        self,
        protocol: SMBusProtocol,
        address: int,
        command: int | None,
        data: bytes,
        read_len: int,
        pec: bool,
    ) -> bytes:
        if protocol is SMBusProtocol.QUICK:
            # no PEC, and raw I2C_RDWR cannot send an empty message: only the SMBus call
            if not self._has(protocol):
                raise AdapterUnavailable(f"{self.describe()} cannot send a quick command")
            if read_len:
                raise AdapterUnavailable("i2c-dev through smbus2 sends only the write quick command")
            return self._native(protocol, address, None, b"", False)
        if self._route(protocol, pec) == "native":
            received = self._native(protocol, address, command, data, pec)
            if protocol in NATIVE_FIRST and not received:
                raise BadBlockLength("block length 0 is outside 1..32", length=0, received=0)
            return received
        return super()._transact(protocol, address, command, data, read_len, pec)

    # ----------------------------------------------------------------------------------------
    # native SMBus calls
    # ----------------------------------------------------------------------------------------

    def _native(self, protocol: SMBusProtocol, address: int, command: int | None, data: bytes, pec: bool) -> bytes:
        """One smbus2 SMBus call (``bus.pec`` set as asked); returns the data bytes read."""
        method = getattr(self._bus, NATIVE[protocol][0])
        args: list[Any] = [address]
        if command is not None:
            args.append(command)
        if protocol in (SMBusProtocol.SEND_BYTE, SMBusProtocol.WRITE_BYTE):
            args.append(data[0])
        elif protocol in (SMBusProtocol.WRITE_WORD, SMBusProtocol.PROCESS_CALL):
            args.append(data[0] | (data[1] << 8))
        elif protocol in (SMBusProtocol.WRITE_BLOCK, SMBusProtocol.BLOCK_PROCESS_CALL):
            args.append(list(data[1:]))  # smbus2 adds the count byte itself
        with self._oserrors(address, command):
            self._use_pec(pec)
            result = method(*args, force=self.force) if self.force else method(*args)
        return _result_bytes(protocol, result)

    def _use_pec(self, pec: bool) -> None:
        """Switch the kernel's PEC flag (I2C_PEC ioctl) only when it changes."""
        wanted = int(pec)
        if self._pec_state == wanted:
            return
        if wanted or self.funcs & FUNC_SMBUS_PEC:
            self._bus.pec = wanted
        self._pec_state = wanted

    # ----------------------------------------------------------------------------------------
    # raw I2C messages (software PEC comes from the base class)
    # ----------------------------------------------------------------------------------------

    def _msgs(self) -> Any:
        from smbus2 import i2c_msg

        return i2c_msg

    def _rdwr(self, address: int, *msgs: Any) -> None:
        with self._oserrors(address, None):
            self._bus.i2c_rdwr(*msgs)

    def _write(self, address: int, data: bytes) -> None:
        self._rdwr(address, self._msgs().write(address, data))

    def _write_read(self, address: int, data: bytes, length: int) -> bytes:
        msg = self._msgs()
        read = msg.read(address, length)
        self._rdwr(address, msg.write(address, data), read)
        return bytes(read)

    def _read(self, address: int, length: int) -> bytes:
        read = self._msgs().read(address, length)
        self._rdwr(address, read)
        return bytes(read)

    # ----------------------------------------------------------------------------------------
    # errors
    # ----------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _oserrors(self, address: int, command: int | None) -> Any:
        """Translate OSError from the kernel (fault-codes.rst) into the SmartBattError tree."""
        try:
            yield
        except OSError as exc:
            raise self._translate(exc, address, command) from None

    def _translate(self, exc: OSError, address: int, command: int | None) -> SmartBattError:
        if self.path and not self._node_exists(self.path):
            return AdapterGone(f"{self.describe()} disappeared (adapter unplugged?)")
        code = exc.errno
        if code == errno.EBADMSG:
            return PecMismatch(
                "the kernel reported a PEC mismatch (EBADMSG); open with ?pec=software to see the expected "
                "and received PEC and whether the adapter breaks the repeated start",
                check="read",
            )
        if code == errno.EBUSY:
            return BusBusy(
                f"bus busy (EBUSY), or address 0x{address:02X} is claimed by a kernel driver such as sbs-battery "
                "(then open with ?force=1)"
            )
        if code in (errno.ENXIO, errno.EREMOTEIO):
            return NoAcknowledge(f"no acknowledge ({os.strerror(code)})")
        if code == errno.ETIMEDOUT:
            err = from_oserror(exc)
            err.message += "; note: a CP2112 reports an unacknowledged address as ETIMEDOUT (cp2112.md §3)"
            return err
        if code == errno.EOPNOTSUPP:
            return AdapterUnavailable(f"{self.describe()} does not support this transfer (EOPNOTSUPP)")
        return from_oserror(exc)


def _result_bytes(protocol: SMBusProtocol, result: Any) -> bytes:
    """smbus2's return value as the data bytes the base class returns."""
    if result is None:
        return b""
    if protocol in (SMBusProtocol.READ_WORD, SMBusProtocol.PROCESS_CALL):
        return bytes((result & 0xFF, (result >> 8) & 0xFF))
    if protocol in (SMBusProtocol.RECEIVE_BYTE, SMBusProtocol.READ_BYTE):
        return bytes((result & 0xFF,))
    if protocol in (SMBusProtocol.READ_BLOCK, SMBusProtocol.BLOCK_PROCESS_CALL):
        return bytes(result)
    return b""
