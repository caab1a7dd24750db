"""``emulated:`` — the in-process transport into an emulated bus (the default device everywhere).

A thin wire: it hands each transaction to an :class:`~smartbatt.emulator.target.SMBusTarget`
through the same :class:`~smartbatt.emulator.faults.FaultyBus` the Bus Pirate responder uses,
turns wire conditions into the typed errors a real adapter gives, and accounts the time the
transactions would take on a real bus (for the factory benchmark's bus-time budget).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Self

from smartbatt.emulator.faults import BusFaults, FaultyBus
from smartbatt.emulator.target import SMBusTarget, TargetBusStuck, TargetNack, TargetStretch
from smartbatt.errors import BusBusy, BusTimeout, NoAcknowledge, UriError
from smartbatt.transports.base import Transport
from smartbatt.transports.capabilities import Capability
from smartbatt.uri import DeviceSpec, parse_options

#: SMBus tBUF at 100 kHz: bus-free time between a STOP and the next START (smbus.md §5).
T_BUF_100K_S = 4.7e-6


@dataclass(frozen=True)
class EmulatedWireOptions:
    """Wire options of ``emulated:``; every other option goes to the emulator."""

    #: time limit of each transaction, seconds.
    timeout: float = 0.1
    #: SCL frequency used to account bus time, Hz.
    bus_hz: int = 100_000
    nack_every: int = 0
    nack_rate: float = 0.0
    corrupt_pec_every: int = 0
    corrupt_pec_rate: float = 0.0
    stretch_ms: float = 0.0
    stuck: bool = False
    fault_seed: int = 0


class EmulatedTransport(Transport):
    """Transport into an in-process :class:`SMBusTarget`."""

    scheme = "emulated"
    capabilities = (
        Capability.REPEATED_START
        | Capability.QUICK
        | Capability.BLOCK_READ
        | Capability.BLOCK_PROCESS_CALL
        | Capability.NACK_POSITION
        | Capability.PLAIN_READ
    )

    def __init__(
        self,
        target: SMBusTarget,
        *,
        faults: BusFaults | None = None,
        bus_hz: int = 100_000,
        timeout_s: float = 0.1,
        **kw: object,
    ) -> None:
        super().__init__(timeout_s=timeout_s, **kw)  # type: ignore[arg-type]
        if bus_hz <= 0:
            raise ValueError("bus_hz must be positive")
        self.bus = FaultyBus(target, faults)
        self.target = target
        self.bus_hz = bus_hz
        #: accumulated time the transactions would have taken on the wire, seconds.
        self.bus_time_s = 0.0
        #: number of transactions put on the wire (each retry counts).
        self.transactions = 0

    @property
    def faults(self) -> BusFaults:
        """The live fault settings; change fields to inject faults mid-session."""
        return self.bus.faults

    @classmethod
    def from_spec(cls, spec: DeviceSpec) -> Self:
        from smartbatt.emulator import build_bus

        wire_keys = {f.name for f in dataclasses.fields(EmulatedWireOptions)}
        wire = parse_options(EmulatedWireOptions, {k: v for k, v in spec.options.items() if k in wire_keys})
        device_options = {k: v for k, v in spec.options.items() if k not in wire_keys}
        target = build_bus(spec.target, device_options)
        faults = BusFaults(
            nack_every=wire.nack_every,
            nack_rate=wire.nack_rate,
            corrupt_pec_every=wire.corrupt_pec_every,
            corrupt_pec_rate=wire.corrupt_pec_rate,
            stretch_s=wire.stretch_ms / 1e3,
            stuck=wire.stuck,
            seed=wire.fault_seed,
        )
        try:
            faults.validate()
        except ValueError as exc:
            raise UriError(f"invalid fault option: {exc}") from None
        return cls(target, faults=faults, bus_hz=wire.bus_hz, timeout_s=wire.timeout)

    def describe(self) -> str:
        return "emulated pack"

    @classmethod
    def detect(cls) -> list[str]:
        return ["emulated:"]

    # --- wire ------------------------------------------------------------------------------

    def _account(self, nbytes: int, conditions: int) -> None:
        # 9 SCL periods per byte (8 data + ACK), one per START/Sr/STOP, plus tBUF (smbus.md §5)
        self.transactions += 1
        self.bus_time_s += (9 * nbytes + conditions) / self.bus_hz + T_BUF_100K_S

    def _call(self, address: int, write: bytes, read: bool) -> bytes:
        try:
            return self.bus.transfer(address, write, read)
        except TargetNack as exc:
            self._account(exc.byte_index + 1, 2)
            raise NoAcknowledge(f"no acknowledge at byte {exc.byte_index}", byte_index=exc.byte_index) from None
        except TargetStretch as exc:
            self.bus_time_s += min(exc.seconds, self.timeout_s)
            raise BusTimeout(
                f"device held the clock low for {exc.seconds * 1e3:.0f} ms, past the SMBus 25 ms timeout"
            ) from None
        except TargetBusStuck:
            raise BusBusy("bus stuck: SDA held low, no START possible") from None

    def _write(self, address: int, data: bytes) -> None:
        self._call(address, data, False)
        self._account(1 + len(data), 2)

    def _write_read(self, address: int, data: bytes, length: int) -> bytes:
        reply = self._call(address, data, True)
        self._account(2 + len(data) + length, 3)
        if len(reply) < length:
            reply += b"\xff" * (length - len(reply))  # released SDA reads as ones
        return reply[:length]

    def _read(self, address: int, length: int) -> bytes:
        reply = self._call(address, b"", True)
        self._account(1 + length, 2)
        return (reply + b"\xff" * length)[:length]

    def _write_read_block(self, address: int, data: bytes, extra: int) -> bytes:
        reply = self._call(address, data, True)
        count = reply[0] if reply else 0
        wanted = min(1 + count + extra, 1 + self.max_block + extra)
        self._account(2 + len(data) + min(wanted, len(reply)), 3)
        return reply[:wanted]

    def _quick(self, address: int, read: bool) -> None:
        try:
            self.bus.quick(address, read)
        except TargetNack:
            self._account(1, 2)
            raise NoAcknowledge("no device answered the quick command", byte_index=0) from None
        except TargetBusStuck:
            raise BusBusy("bus stuck: SDA held low, no START possible") from None
        self._account(1, 2)
