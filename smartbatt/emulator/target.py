"""The device side of the wire: what a transport (or the Bus Pirate pty responder) calls into.

Kept apart from the transports, as pymodbus keeps its simulator apart from its framers: the
in-process ``emulated:`` transport and the Bus Pirate responder both drive the same
:class:`SMBusTarget`, so the emulated pack behaves identically whichever wire reaches it.

A target works at the level of I2C messages, like a real slave:

* ``transfer(address, write, read=False)`` — ``S Addr+W write… P``;
* ``transfer(address, write, read=True)`` — ``S Addr+W write… Sr Addr+R …``: the target returns
  every byte it would clock out, PEC included. The master takes as many as it wants; beyond the
  end the bus reads 0xFF (the slave releases SDA and the pull-ups win).

Wire-level conditions are signalled with the exceptions below (not ``SmartBattError``: they are
what the *wire* sees, and each transport turns them into the typed error its adapter would give).
"""

from __future__ import annotations

import abc
from typing import Protocol, runtime_checkable

from smartbatt.pec import TABLE, crc8, pec_for_read, write_address


class TargetNack(Exception):
    """The target did not acknowledge byte ``byte_index`` (0 = address byte, n = n-th after it)."""

    def __init__(self, byte_index: int, reason: str = "") -> None:
        super().__init__(reason or f"NACK at byte {byte_index}")
        self.byte_index = byte_index
        self.reason = reason


class TargetStretch(Exception):
    """The target holds SCL low for ``seconds`` (clock stretching) before the transfer can go on.

    Past the SMBus tTIMEOUT (25-35 ms) a compliant master abandons the transfer.
    """

    def __init__(self, seconds: float) -> None:
        super().__init__(f"clock stretched for {seconds * 1e3:.1f} ms")
        self.seconds = seconds


class TargetBusStuck(Exception):
    """SDA (or SCL) is held low: no START condition can be made."""


@runtime_checkable
class SMBusTarget(Protocol):
    """Anything that answers I2C messages on a bus segment."""

    def transfer(self, address: int, write: bytes, read: bool = False) -> bytes:
        """One transaction; see the module docstring. Raises the Target* exceptions."""
        ...

    def quick(self, address: int, read: bool) -> None:
        """Address-only transfer; raises :class:`TargetNack` if nothing is at ``address``."""
        ...


#: write shape of a command: number of data bytes after the command byte, or BLOCK for a
#: count-prefixed block, or None if the command cannot be written.
BLOCK = -1


class SMBusDevice(abc.ABC):
    """One SMBus slave at one address, with the device-side protocol done once.

    A subclass says how many data bytes a write of each command carries (:meth:`write_shape`)
    and answers reads (:meth:`read_command`) and writes (:meth:`write_command`). This class
    splits off and checks the PEC the host may append, and appends the PEC to every reply, as
    TI gauges do (a host that does not want it simply stops reading before it).
    """

    def __init__(self, address: int) -> None:
        self.address = address
        #: refuse writes without PEC (a gauge configured to require it).
        self.require_pec = False

    # --- what a subclass provides --------------------------------------------------------

    @abc.abstractmethod
    def write_shape(self, command: int) -> int | None:
        """Data bytes a write to ``command`` carries (2 = word, 1 = byte, BLOCK, 0 = send byte);
        None if the command is not writable (the device NACKs its data)."""

    @abc.abstractmethod
    def read_command(self, command: int, written: bytes) -> bytes:
        """Reply to a read of ``command``: 2 bytes for a word, count + data for a block.

        ``written`` holds the data of a process call's write phase (empty for a plain read).
        Raise :class:`TargetNack` with index 1 if the command is not readable.
        """

    @abc.abstractmethod
    def write_command(self, command: int, data: bytes) -> None:
        """Apply a write (``data`` without count byte and without PEC)."""

    def receive_byte(self) -> int:
        """Reply to a receive byte (no command). Devices that do not support it NACK."""
        raise TargetNack(0, "receive byte not supported")

    # --- the protocol ------------------------------------------------------------------------

    def transfer(self, address: int, write: bytes, read: bool = False) -> bytes:
        if not write:
            if not read:
                return b""
            value = bytes((self.receive_byte(),))
            return value + bytes((pec_for_read(address, b"", value),))
        command = write[0]
        if read:
            reply = self.read_command(command, bytes(write[1:]))
            return reply + bytes((pec_for_read(address, bytes(write), reply),))
        self._apply_write(address, bytes(write))
        return b""

    def quick(self, address: int, read: bool) -> None:
        return None

    def _apply_write(self, address: int, write: bytes) -> None:
        command, rest = write[0], write[1:]
        shape = self.write_shape(command)
        if shape is None:
            raise TargetNack(2 if rest else 1, f"command 0x{command:02X} is not writable")
        if shape == BLOCK:
            if not rest:
                raise TargetNack(2, "block write without a count byte")
            expected = 1 + rest[0]
        else:
            expected = shape
        if len(rest) == expected + 1:
            body = write[: 1 + expected]
            if rest[-1] != crc8(body, TABLE[write_address(address)]):
                raise TargetNack(len(write), "PEC mismatch")
        elif len(rest) == expected:
            if self.require_pec:
                raise TargetNack(len(write), "PEC required")
        else:
            # a real device NACKs the first byte beyond what it can take, or sees a short frame
            raise TargetNack(min(len(write), 2 + expected), f"write of {len(rest)} bytes, expected {expected}")
        data = rest[1:expected] if shape == BLOCK else rest[:expected]
        self.write_command(command, bytes(data))


class EmulatedBus:
    """A bus segment with several devices on it; nothing at an address means a NACK of the address."""

    def __init__(self, devices: list[SMBusDevice] | None = None) -> None:
        self.devices: dict[int, SMBusDevice] = {}
        for device in devices or []:
            self.attach(device)

    def attach(self, device: SMBusDevice) -> None:
        self.devices[device.address] = device

    def detach(self, address: int) -> None:
        self.devices.pop(address, None)

    def transfer(self, address: int, write: bytes, read: bool = False) -> bytes:
        device = self.devices.get(address)
        if device is None:
            raise TargetNack(0, "no device at this address")
        return device.transfer(address, write, read)

    def quick(self, address: int, read: bool) -> None:
        if address not in self.devices:
            raise TargetNack(0, "no device at this address")
