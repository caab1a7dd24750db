"""The abstract SMBus transport.

A backend implements a handful of raw I2C operations (``_write``, ``_write_read`` and optionally
``_read``, ``_quick``, ``_write_read_block``) and declares its :class:`Capability` flags. This base
class turns them into the SMBus primitives and owns everything they share: PEC generation and
checking in software, block-length validation, the retry policy, the closed state, the per-bus
lock and the transaction-log hook. Backends never compute PEC themselves unless they declare
``HARDWARE_PEC`` and override :meth:`Transport._transact`.

Every method raises only :class:`~smartbatt.errors.SmartBattError` subclasses. Every backend
enforces :attr:`Transport.timeout_s` on each raw operation, so nothing hangs.
"""

from __future__ import annotations

import abc
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import ClassVar, Self

from smartbatt.errors import (
    AdapterGone,
    AdapterUnavailable,
    BadBlockLength,
    NoAcknowledge,
    PecMismatch,
    SmartBattError,
    TransportError,
)
from smartbatt.pec import TABLE, crc8, pec_for_read, read_address, write_address
from smartbatt.transports.capabilities import Capability
from smartbatt.transports.retry import RetryPolicy
from smartbatt.transports.txlog import Listener, SMBusProtocol, TransactionRecord
from smartbatt.uri import DeviceSpec

#: CRC-8 state after "Addr+W <command phase> Sr Addr+R", per (address, command phase); see _check_pec.
_READ_PREFIX: dict[tuple[int, bytes], int] = {}

#: SMBus 2.0 block limit (data bytes, excluding count and PEC).
SMBUS_BLOCK_MAX = 32

STOP_START_HINT = (
    "The received PEC matches a CRC over the read phase alone: the adapter sent STOP+START "
    "instead of a repeated start between the command and the read. Use an adapter (or driver "
    "mode) that supports repeated start, or disable PEC for this adapter."
)


class Transport(abc.ABC):
    """One SMBus segment reached through one adapter.

    :param pec: default PEC setting for calls that do not pass ``pec``.
    :param timeout_s: time limit of each raw operation, enforced by the backend.
    :param retry: retry policy for idempotent reads.
    """

    #: URI scheme this backend is registered under.
    scheme: ClassVar[str] = ""
    #: native abilities; the base class emulates what is missing. A backend whose abilities
    #: depend on the adapter found at open time (i2c-dev) sets it per instance.
    capabilities: Capability = Capability.REPEATED_START

    def __init__(self, *, pec: bool = False, timeout_s: float = 0.1, retry: RetryPolicy | None = None) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        self.pec = pec
        self.timeout_s = timeout_s
        self.retry = retry or RetryPolicy()
        self.max_block = SMBUS_BLOCK_MAX
        self._lock = threading.RLock()
        self._closed = False
        self._listeners: list[Listener] = []
        #: >0 while inside :meth:`redacted`: the log gets records without their data bytes.
        self._redact = 0

    # ----------------------------------------------------------------------------------------
    # construction, lifetime
    # ----------------------------------------------------------------------------------------

    @classmethod
    @abc.abstractmethod
    def from_spec(cls, spec: DeviceSpec) -> Self:
        """Open the backend described by a parsed URI. Unknown options raise ``UriError``."""

    @classmethod
    def detect(cls) -> list[str]:
        """URIs of adapters of this kind present on this machine (for ``scan`` and the GUI)."""
        return []

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Release the adapter. Idempotent. Later calls raise :class:`AdapterGone`."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._close()

    def _close(self) -> None:  # noqa: B027 - optional hook, empty by default
        """Backend hook: release OS resources."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def describe(self) -> str:
        """Human name of the adapter, for status lines."""
        return self.scheme

    # ----------------------------------------------------------------------------------------
    # transaction log and locking
    # ----------------------------------------------------------------------------------------

    def add_listener(self, listener: Listener) -> Callable[[], None]:
        """Subscribe to every transaction record; returns a function that unsubscribes."""
        with self._lock:
            self._listeners = [*self._listeners, listener]

        def remove() -> None:
            self.remove_listener(listener)

        return remove

    def remove_listener(self, listener: Listener) -> None:
        with self._lock:
            self._listeners = [x for x in self._listeners if x is not listener]

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[Self]:
        """Hold the bus for a sequence of transactions (no other thread's traffic in between).

        Used for unseal key sequences, where any other traffic between the two key words
        makes the gauge reject them.
        """
        with self._lock:
            yield self

    @contextlib.contextmanager
    def redacted(self) -> Iterator[Self]:
        """Hold the bus like :meth:`exclusive` and keep the data bytes out of the transaction log.

        For secrets on the wire (unseal and full-access key words): listeners still see each
        transaction (address, command, result, timing) but ``data_out`` is empty and
        ``redacted`` is set, and error records carry no data either.
        """
        with self._lock:
            self._redact += 1
            try:
                yield self
            finally:
                self._redact -= 1

    # ----------------------------------------------------------------------------------------
    # raw operations a backend implements
    # ----------------------------------------------------------------------------------------

    @abc.abstractmethod
    def _write(self, address: int, data: bytes) -> None:
        """``S Addr+W data… P``. Raise NoAcknowledge (with the byte index where known)."""

    @abc.abstractmethod
    def _write_read(self, address: int, data: bytes, length: int) -> bytes:
        """``S Addr+W data… Sr Addr+R [length bytes] P`` with a repeated start."""

    def _read(self, address: int, length: int) -> bytes:
        """``S Addr+R [length bytes] P`` (receive byte)."""
        raise AdapterUnavailable(f"{self.describe()} cannot do a plain read (receive byte)")

    def _quick(self, address: int, read: bool) -> None:
        """``S Addr+R/W P``: the address alone. Raise NoAcknowledge if nobody answers."""
        raise AdapterUnavailable(f"{self.describe()} cannot send a quick command")

    def _write_read_block(self, address: int, data: bytes, extra: int) -> bytes:
        """Write ``data``, then read a count byte, that many data bytes and ``extra`` more (PEC).

        Default for adapters without a native variable-length read: two transactions, one
        that reads only the count byte and one that reads count + data + extra. Reading a
        block register twice has no side effect on SBS gauges.
        """
        head = self._write_read(address, data, 1)
        count = head[0]
        if count == 0 or count > self.max_block:
            return head
        return self._write_read(address, data, 1 + count + extra)

    # ----------------------------------------------------------------------------------------
    # the transaction engine
    # ----------------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise AdapterGone(f"{self.describe()} is closed")

    def _transact(
        self,
        protocol: SMBusProtocol,
        address: int,
        command: int | None,
        data: bytes,
        read_len: int,
        pec: bool,
    ) -> bytes:
        """Run one transaction once. ``read_len``: data bytes to read; -1 = a count-prefixed block.

        Returns the data bytes received (no count, no PEC).
        """
        out = data if command is None else bytes((command,)) + data
        if protocol is SMBusProtocol.QUICK:
            self._quick(address, read=bool(read_len))
            return b""
        if read_len == 0:
            if not pec:
                self._write(address, out)
                return b""
            try:
                self._write(address, out + bytes((crc8(out, TABLE[write_address(address)]),)))
            except NoAcknowledge as exc:
                if exc.byte_index == len(out) + 1:  # the PEC byte itself was refused
                    raise PecMismatch(
                        "the device refused the PEC byte of the write (it computed a different PEC)",
                        check="write",
                    ) from exc
                raise
            return b""
        extra = 1 if pec else 0
        if read_len < 0:
            raw = self._write_read_block(address, out, extra)
            count = raw[0] if raw else 0
            if count == 0 or count > self.max_block:
                raise BadBlockLength(
                    f"block length {count} is outside 1..{self.max_block}", length=count, received=len(raw) - 1
                )
            if len(raw) < 1 + count + extra:
                raise BadBlockLength(
                    f"device announced {count} bytes but sent {max(len(raw) - 1 - extra, 0)}",
                    length=count,
                    received=max(len(raw) - 1 - extra, 0),
                )
            body, received = raw[: 1 + count], raw[1 : 1 + count]
        else:
            raw = self._write_read(address, out, read_len + extra) if out else self._read(address, read_len + extra)
            if len(raw) < read_len + extra:
                raise TransportError(f"short read: wanted {read_len + extra} bytes, got {len(raw)}")
            body = received = raw[:read_len]
        if pec:
            self._check_pec(address, out, body, raw[len(body)])
        return received

    def _check_pec(self, address: int, written: bytes, body: bytes, got: int) -> None:
        # Hot path of every PEC'd read: the CRC over "Addr+W command Sr Addr+R" depends only on the
        # address and the command phase, so it is computed once per (address, command) and the
        # reply bytes are folded in here (CRC-8 is a byte-wise state machine; smbus.md §4).
        key = (address, written if type(written) is bytes else bytes(written))
        expected = _READ_PREFIX.get(key)
        if expected is None:
            expected = pec_for_read(address, written, b"")
            if len(written) <= 1:  # bounded: at most 128 addresses × 257 command phases
                _READ_PREFIX[key] = expected
        for byte in body:
            expected = TABLE[expected ^ byte]
        if got == expected:
            return
        cause = ""
        if written and got == crc8(body, TABLE[read_address(address)]):
            cause = STOP_START_HINT
        raise PecMismatch("PEC check of the device's reply failed", expected=expected, got=got, likely_cause=cause)

    def _run(
        self,
        protocol: SMBusProtocol,
        address: int,
        command: int | None,
        data: bytes,
        read_len: int,
        pec: bool | None,
        idempotent: bool,
    ) -> bytes:
        """Lock, retry, log: wraps :meth:`_transact` with everything every primitive shares."""
        if not 0 <= address <= 0x7F:
            raise ValueError(f"address 0x{address:X} is not a 7-bit address")
        use_pec = self.pec if pec is None else pec
        attempts = self.retry.attempts if idempotent else 1
        with self._lock:
            attempt = 1
            while True:
                self._check_open()
                listeners = self._listeners
                start = time.perf_counter() if listeners else 0.0
                try:
                    received = self._transact(protocol, address, command, data, read_len, use_pec)
                except SmartBattError as exc:
                    if exc.address is None:
                        exc.address = address
                    if exc.command is None:
                        exc.command = command
                    if listeners:
                        self._emit(listeners, protocol, address, command, data, b"", use_pec, exc, start, attempt)
                    if attempt >= attempts or not isinstance(exc, TransportError) or not self.retry.should_retry(exc):
                        raise
                    time.sleep(self.retry.delay(attempt))
                    attempt += 1
                    continue
                if listeners:
                    self._emit(listeners, protocol, address, command, data, received, use_pec, None, start, attempt)
                return received

    def _emit(
        self,
        listeners: list[Listener],
        protocol: SMBusProtocol,
        address: int,
        command: int | None,
        data: bytes,
        received: bytes,
        pec: bool,
        exc: SmartBattError | None,
        start: float,
        attempt: int,
    ) -> None:
        duration = time.perf_counter() - start
        redact = self._redact > 0
        record = TransactionRecord(
            time=time.time() - duration,
            address=address,
            protocol=protocol,
            command=command,
            data_out=b"" if redact else data,
            data_in=b"" if redact else received,
            pec=pec,
            result="ok" if exc is None else type(exc).__name__,
            error="" if exc is None else exc.message,
            duration_s=duration,
            attempt=attempt,
            redacted=redact,
        )
        if exc is not None and exc.record is None:
            exc.record = record
        for listener in listeners:
            # a broken log subscriber must not break the bus
            with contextlib.suppress(Exception):
                listener(record)

    # ----------------------------------------------------------------------------------------
    # SMBus primitives (SMBus 2.0 §5.5)
    # ----------------------------------------------------------------------------------------

    def quick(self, address: int, read: bool = False) -> None:
        """Quick command: the R/W bit is the data. Used by ``scan`` to probe presence."""
        self._run(SMBusProtocol.QUICK, address, None, b"", int(read), False, idempotent=True)

    def send_byte(self, address: int, value: int, *, pec: bool | None = None) -> None:
        self._run(SMBusProtocol.SEND_BYTE, address, None, _u8(value), 0, pec, idempotent=False)

    def receive_byte(self, address: int, *, pec: bool | None = None) -> int:
        return self._run(SMBusProtocol.RECEIVE_BYTE, address, None, b"", 1, pec, idempotent=True)[0]

    def write_byte(self, address: int, command: int, value: int, *, pec: bool | None = None) -> None:
        self._run(SMBusProtocol.WRITE_BYTE, address, _cmd(command), _u8(value), 0, pec, idempotent=False)

    def read_byte(self, address: int, command: int, *, pec: bool | None = None) -> int:
        return self._run(SMBusProtocol.READ_BYTE, address, _cmd(command), b"", 1, pec, idempotent=True)[0]

    def write_word(self, address: int, command: int, value: int, *, pec: bool | None = None) -> None:
        """Write a 16-bit word, low byte first. ``value`` is 0..0xFFFF (encode signed values first)."""
        self._run(SMBusProtocol.WRITE_WORD, address, _cmd(command), _u16(value), 0, pec, idempotent=False)

    def read_word(self, address: int, command: int, *, pec: bool | None = None) -> int:
        """Read a 16-bit word (unsigned, low byte first)."""
        rx = self._run(SMBusProtocol.READ_WORD, address, _cmd(command), b"", 2, pec, idempotent=True)
        return rx[0] | (rx[1] << 8)

    def process_call(self, address: int, command: int, value: int, *, pec: bool | None = None) -> int:
        """Write a word and read a word in one transaction. Not retried (it writes)."""
        rx = self._run(SMBusProtocol.PROCESS_CALL, address, _cmd(command), _u16(value), 2, pec, idempotent=False)
        return rx[0] | (rx[1] << 8)

    def write_block(self, address: int, command: int, data: bytes, *, pec: bool | None = None) -> None:
        """Block write: count byte then 1..32 data bytes."""
        payload = self._block_payload(data)
        self._run(SMBusProtocol.WRITE_BLOCK, address, _cmd(command), payload, 0, pec, idempotent=False)

    def read_block(self, address: int, command: int, *, pec: bool | None = None) -> bytes:
        """Block read: returns the data bytes (without count and PEC); 1..32 bytes."""
        return self._run(SMBusProtocol.READ_BLOCK, address, _cmd(command), b"", -1, pec, idempotent=True)

    def block_process_call(self, address: int, command: int, data: bytes, *, pec: bool | None = None) -> bytes:
        """Block write-block read process call (SMBus 2.0). Not retried (it writes)."""
        payload = self._block_payload(data)
        return self._run(SMBusProtocol.BLOCK_PROCESS_CALL, address, _cmd(command), payload, -1, pec, idempotent=False)

    def _block_payload(self, data: bytes) -> bytes:
        if not 1 <= len(data) <= self.max_block:
            raise ValueError(f"block of {len(data)} bytes: SMBus blocks carry 1..{self.max_block} bytes")
        return bytes((len(data),)) + bytes(data)


def _cmd(command: int) -> int:
    if not 0 <= command <= 0xFF:
        raise ValueError(f"command 0x{command:X} is not a byte")
    return command


def _u8(value: int) -> bytes:
    if not 0 <= value <= 0xFF:
        raise ValueError(f"value {value} is not a byte (0..255)")
    return bytes((value,))


def _u16(value: int) -> bytes:
    if not 0 <= value <= 0xFFFF:
        raise ValueError(f"value {value} is not a 16-bit word (0..65535)")
    return bytes((value & 0xFF, value >> 8))
