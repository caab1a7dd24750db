"""Transaction records: what the bus monitor, ``--verbose`` and bug reports show."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum


class SMBusProtocol(StrEnum):
    """SMBus transaction types (SMBus 2.0 §5.5; ../shared/reference/smbus.md §2)."""

    QUICK = "quick"
    SEND_BYTE = "send_byte"
    RECEIVE_BYTE = "receive_byte"
    WRITE_BYTE = "write_byte"
    READ_BYTE = "read_byte"
    WRITE_WORD = "write_word"
    READ_WORD = "read_word"
    PROCESS_CALL = "process_call"
    WRITE_BLOCK = "write_block"
    READ_BLOCK = "read_block"
    BLOCK_PROCESS_CALL = "block_process_call"


@dataclass(frozen=True)
class TransactionRecord:
    """One SMBus transaction as it happened (one record per attempt)."""

    #: wall-clock time at the start (``time.time()``).
    time: float
    #: 7-bit device address.
    address: int
    protocol: SMBusProtocol
    #: command code, or None for quick / send / receive byte.
    command: int | None
    #: bytes the host sent after the command byte (data, count); PEC not included.
    data_out: bytes
    #: data bytes received (block: without the count byte); PEC not included.
    data_in: bytes
    #: whether PEC was used.
    pec: bool
    #: ``"ok"`` or the error class name (``"NoAcknowledge"``).
    result: str
    #: the error message when result is not ok.
    error: str
    #: duration in seconds (host time; the emulated bus adds simulated bus time separately).
    duration_s: float
    #: 1 for the first try, 2 for the first retry…
    attempt: int = 1
    #: the data bytes were withheld (security keys sent inside :meth:`Transport.redacted`);
    #: ``data_out`` is then empty.
    redacted: bool = False

    @property
    def ok(self) -> bool:
        return self.result == "ok"

    def summary(self) -> str:
        """One line for logs: ``0x0B read_word 0x09 -> 80 3E PEC ok 0.4 ms``."""
        cmd = f" 0x{self.command:02X}" if self.command is not None else ""
        out = f" <- {self.data_out.hex(' ').upper()}" if self.data_out else ""
        if self.redacted:
            out = " <- [redacted]"
        inn = f" -> {self.data_in.hex(' ').upper()}" if self.data_in else ""
        pec = " PEC" if self.pec else ""
        res = self.result if self.ok else f"{self.result}: {self.error}"
        retry = f" (try {self.attempt})" if self.attempt > 1 else ""
        took = f"{self.duration_s * 1e3:.2f} ms"
        return f"0x{self.address:02X} {self.protocol.value}{cmd}{out}{inn}{pec} {res} {took}{retry}"


#: a transaction-log subscriber; called on the I/O thread, so it must be quick and must not raise.
Listener = Callable[[TransactionRecord], None]
