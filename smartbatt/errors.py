"""The one error tree of smartbatt.

Every failure a user can hit ends in a subclass of :class:`SmartBattError`. Bus errors carry the
7-bit address, the command code and, where one exists, the :class:`~smartbatt.transports.txlog.
TransactionRecord` of the failed transaction, so a message can always name the transaction.

Errors must pickle, because they cross from the I/O worker thread/process to the GUI: the generic
``__reduce__`` below rebuilds an instance from its ``args`` and its attribute dict, whatever
keyword-only constructor a subclass has.
"""

from __future__ import annotations

import errno
from typing import Any


def _rebuild(cls: type[SmartBattError], args: tuple[Any, ...], state: dict[str, Any]) -> SmartBattError:
    obj = cls.__new__(cls)
    Exception.__init__(obj, *args)
    obj.__dict__.update(state)
    return obj


class SmartBattError(Exception):
    """Root of every error raised by smartbatt.

    :param message: one readable sentence; the CLI prints exactly this (plus context).
    :param address: 7-bit device address involved, if any.
    :param command: command code involved, if any.
    :param record: the transaction record of the failed transaction, if any.
    """

    def __init__(
        self,
        message: str,
        *,
        address: int | None = None,
        command: int | None = None,
        record: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.address = address
        self.command = command
        self.record = record

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self.__class__, self.args, dict(self.__dict__)))

    def context(self) -> str:
        """``address 0x0B, command 0x09`` — the part of a message that names the transaction."""
        parts = []
        if self.address is not None:
            parts.append(f"address 0x{self.address:02X}")
        if self.command is not None:
            parts.append(f"command 0x{self.command:02X}")
        return ", ".join(parts)

    def __str__(self) -> str:
        ctx = self.context()
        return f"{self.message} ({ctx})" if ctx else self.message


# --- configuration and usage -------------------------------------------------------------------


class UriError(SmartBattError, ValueError):
    """A device URI could not be parsed, names an unknown scheme, or has an unknown option."""


class AdapterUnavailable(SmartBattError):
    """The adapter cannot be opened: missing optional dependency, no such device node, no permission."""


# --- bus-level errors ----------------------------------------------------------------------------


class TransportError(SmartBattError):
    """Base of every error that happened on the bus or in the adapter."""


class NoAcknowledge(TransportError):
    """The device did not acknowledge (its address, or a byte of the transaction).

    :ivar byte_index: position of the unacknowledged byte, if the adapter reports it.
    :ivar diagnosis: what a NACK at this address usually means and what to try; filled by the
        SBS layer for the battery address (asleep, shipping mode, deeply discharged, not connected).
    """

    def __init__(
        self, message: str = "no acknowledge", *, diagnosis: str = "", byte_index: int | None = None, **kw: Any
    ) -> None:
        super().__init__(message, **kw)
        self.diagnosis = diagnosis
        #: which byte was not acknowledged: 0 = the address byte, n = the n-th byte after it;
        #: None when the adapter cannot tell.
        self.byte_index = byte_index

    def __str__(self) -> str:
        text = super().__str__()
        return f"{text}. {self.diagnosis}" if self.diagnosis else text


class PecMismatch(TransportError):
    """The Packet Error Code received did not match the one computed.

    :ivar expected: PEC computed over the whole transaction.
    :ivar got: PEC byte received.
    :ivar check: which check failed (``"read"``: PEC sent by the device; ``"write"``: the device
        rejected our PEC).
    :ivar likely_cause: a diagnosis when the received PEC fits a known adapter fault.
    """

    def __init__(
        self,
        message: str = "PEC mismatch",
        *,
        expected: int | None = None,
        got: int | None = None,
        check: str = "read",
        likely_cause: str = "",
        **kw: Any,
    ) -> None:
        super().__init__(message, **kw)
        self.expected = expected
        self.got = got
        self.check = check
        self.likely_cause = likely_cause

    def __str__(self) -> str:
        text = super().__str__()
        if self.expected is not None and self.got is not None:
            text += f": expected 0x{self.expected:02X}, got 0x{self.got:02X}"
        if self.likely_cause:
            text += f". {self.likely_cause}"
        return text


class BusTimeout(TransportError, TimeoutError):
    """The transaction did not complete in time (clock held low, adapter silent)."""


class BusBusy(TransportError):
    """The bus is busy (another master, or SDA/SCL stuck low)."""


class ArbitrationLost(BusBusy):
    """Another master won arbitration (e.g. a gauge broadcasting AlarmWarning to the charger)."""


class BadBlockLength(TransportError):
    """A block transfer announced an impossible length (0, > 32) or delivered fewer bytes.

    :ivar length: byte count announced by the device.
    :ivar received: data bytes actually received, if known.
    """

    def __init__(
        self,
        message: str = "bad block length",
        *,
        length: int | None = None,
        received: int | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(message, **kw)
        self.length = length
        self.received = received


class AdapterGone(TransportError, ConnectionError):
    """The adapter disappeared: unplugged, port closed, transport closed."""


# --- device-level errors -------------------------------------------------------------------------


class NotReady(SmartBattError):
    """The device keeps answering with a filler value (0xFFFF, 0x1717, …) instead of data.

    :ivar raw: the last raw value received, kept so nothing is lost.
    """

    def __init__(self, message: str = "device sent a filler value", *, raw: Any = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.raw = raw


class DecodeError(SmartBattError, ValueError):
    """Raw bytes could not be decoded as the command's type (wrong size, bad text, bad field)."""


class FileFormatError(DecodeError):
    """A FlashStream or ``.gg.csv`` file is malformed.

    :ivar file: file name as given.
    :ivar line: 1-based line number, or None for whole-file problems.
    :ivar reason: what is wrong.
    """

    def __init__(self, file: str, line: int | None, reason: str) -> None:
        where = f"{file}:{line}" if line is not None else file
        super().__init__(f"{where}: {reason}")
        self.file = file
        self.line = line
        self.reason = reason


class UnknownCommand(SmartBattError, KeyError):
    """A command name or code is not in the command table in use."""

    def __str__(self) -> str:  # KeyError would quote the message
        return SmartBattError.__str__(self)


class UnknownEvent(SmartBattError, KeyError):
    """No event with this id is known to the alarm engine."""

    def __str__(self) -> str:  # KeyError would quote the message
        return SmartBattError.__str__(self)


class StoreError(SmartBattError):
    """The recording database cannot be opened, read or written (or is not a smartbatt store)."""


class AccessDenied(SmartBattError):
    """The command cannot be used this way (write to a read-only command, read of a write-only one)."""


class RangeError(SmartBattError, ValueError):
    """A value to write is outside the command's or data-flash entry's allowed range."""


class VerifyError(SmartBattError):
    """A write was not confirmed: the value read back differs from the value written."""


class SealedError(SmartBattError):
    """The gauge is sealed (or not in full access) and refuses the operation."""


class SecurityError(SmartBattError):
    """Unseal / full access / authentication failed (wrong key, timing window missed)."""


class InterruptedWrite(SmartBattError):
    """A multi-step write (golden-image import, FlashStream run) stopped part-way.

    The message names where it stopped and why; the attributes say exactly what was done.

    :ivar done: steps completed and verified (data-flash entry names, or FlashStream lines).
    :ivar in_doubt: the step that was running when it failed (written or not: unknown), if any.
    :ivar remaining: steps not started.
    :ivar cause: the error that stopped it.
    :ivar journal: file recording the progress (a re-run reads it), if any.
    """

    def __init__(
        self,
        message: str,
        *,
        done: tuple[str, ...] = (),
        in_doubt: str | None = None,
        remaining: tuple[str, ...] = (),
        cause: SmartBattError | None = None,
        journal: str | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(message, **kw)
        self.done = done
        self.in_doubt = in_doubt
        self.remaining = remaining
        self.cause = cause
        self.journal = journal


class ProfileError(SmartBattError):
    """A chip profile file is invalid.

    :ivar file: the file name.
    :ivar key_path: dotted path of the offending key (``commands.CellVoltage1.code``).
    :ivar reason: what is wrong with it.
    """

    def __init__(self, file: str, key_path: str, reason: str) -> None:
        super().__init__(f"{file}: {key_path}: {reason}" if key_path else f"{file}: {reason}")
        self.file = file
        self.key_path = key_path
        self.reason = reason


# --- errno translation (Linux Documentation/i2c/fault-codes.rst) --------------------------------

#: i2c-dev errno → error class. ENXIO is the documented NACK code; several adapters (and smbus2
#: users' reports) return EREMOTEIO for the same thing, and some EIO.
ERRNO_MAP: dict[int, type[TransportError]] = {
    errno.ENXIO: NoAcknowledge,
    errno.EREMOTEIO: NoAcknowledge,
    errno.EBADMSG: PecMismatch,
    errno.EPROTO: BadBlockLength,
    errno.EAGAIN: ArbitrationLost,
    errno.EBUSY: BusBusy,
    errno.ETIMEDOUT: BusTimeout,
    errno.ENODEV: AdapterGone,
    errno.ESHUTDOWN: AdapterGone,
    errno.EBADF: AdapterGone,
}


def from_oserror(exc: OSError, *, address: int | None = None, command: int | None = None) -> SmartBattError:
    """Translate an :class:`OSError` raised by an adapter driver into our error tree."""
    cls = ERRNO_MAP.get(exc.errno or 0)
    what = exc.strerror or str(exc)
    if cls is None:
        return TransportError(f"adapter error: {what} (errno {exc.errno})", address=address, command=command)
    return cls(f"{what} (errno {exc.errno})", address=address, command=command)
