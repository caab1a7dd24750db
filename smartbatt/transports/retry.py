"""Retry policy for bus transactions.

Reads are retried on transient errors (a gauge that is busy servicing a MAC command NACKs or
stretches; a PEC error on a noisy harness). Writes are never retried blindly: a write that the
device received but whose ACK was lost would be applied twice (ManufacturerAccess subcommands,
key sequences, data-flash writes are not idempotent). Callers that know a write is idempotent
verify it by reading back instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from smartbatt.errors import NoAcknowledge, PecMismatch, TransportError


@dataclass(frozen=True)
class RetryPolicy:
    """How a transport retries an idempotent transaction."""

    #: total tries of a read (1 = no retry).
    attempts: int = 3
    #: first back-off delay in seconds; doubles each retry. TI gauges need ~1-4 ms after a MAC write.
    backoff_s: float = 0.002
    #: error classes worth another try.
    retry_on: tuple[type[TransportError], ...] = (NoAcknowledge, PecMismatch)
    #: also retry a NACK of the command or a data byte. Off by default: a busy gauge NACKs its
    #: address (or stretches the clock), while a refused command byte (unsupported, or not allowed
    #: while sealed; PMBus CML) is refused again every time, so retrying it only costs bus time.
    retry_command_nack: bool = False

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("RetryPolicy.attempts must be at least 1")
        if self.backoff_s < 0:
            raise ValueError("RetryPolicy.backoff_s must not be negative")

    def should_retry(self, exc: TransportError) -> bool:
        """Whether ``exc`` is worth another try under this policy."""
        if not isinstance(exc, self.retry_on):
            return False
        if isinstance(exc, NoAcknowledge) and not self.retry_command_nack:
            return exc.byte_index in (None, 0)
        return True

    def delay(self, attempt: int) -> float:
        """Back-off before retry number ``attempt`` (1 = first retry)."""
        return self.backoff_s * float(2 ** (attempt - 1))


#: a policy that never retries (tests of error paths, factory steps that count every NACK).
NO_RETRY = RetryPolicy(attempts=1)
