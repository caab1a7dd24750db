"""``buspirate:/dev/ttyUSB0`` — a Bus Pirate v3/v4 in binary I2C mode, over pyserial.

Protocol (verified against the firmware, DangerousPrototypes/Bus_Pirate ``Firmware/``, and the
Dangerous Prototypes wiki pages "Bitbang" and "I2C (binary)"):

* Serial line 115200 8N1 (the v3's FTDI bridge; the v4's USB CDC ignores the rate).
* Bitbang mode: send 0x00 to the user terminal up to 20 times, checking for ``BBIO1`` in
  between (wiki "Bitbang"; ``baseUI.c`` counts twenty 0x00 before ``binBB()``). In any binary
  mode 0x00 returns to bitbang mode, which answers ``BBIO1``. 0x0F in bitbang mode answers 0x01
  and resets to the user terminal (``binIO.c`` ``binBB``). A terminal stuck in a menu is left by
  sending <enter> several times first (wiki "Bitbang", note on entering binary mode).
* 0x02 in bitbang mode enters binary I2C mode, answering ``I2C1``.
* I2C mode (``I2C.c`` ``binI2C``; wiki "I2C (binary)"): 0x02 START → 0x01; 0x03 STOP → 0x01;
  0x04 read one byte → the byte, after which the host must send 0x06 ACK or 0x07 NACK (→ 0x01);
  0x1n bulk write of n+1 (1..16) bytes → 0x01, then one reply per byte, 0x00 = ACK, 0x01 = NACK
  (the firmware goes on clocking the remaining bytes after a NACK); 0x4w peripherals,
  w = power<<3 | pull-ups<<2 | AUX<<1 | CS → 0x01; 0x60|s speed, s = 0 ~5 kHz, 1 ~50 kHz,
  2 ~100 kHz, 3 ~400 kHz → 0x01. Leaving I2C mode (0x00) turns power and pull-ups off
  (``binReset``).
* Not used: 0x08 write-then-read. It sends no repeated start between its write and its read,
  and after a NACK it answers 0x00 without a STOP, so it cannot make SMBus reads.

Every reply length is fixed by the commands sent, so a whole SMBus transaction is sent as one
write and its replies are read back at once: one serial round trip per transaction
(``pipeline=1``, the default; ``pipeline=0`` sends one command per round trip, for comparison).

The firmware ignores the "bus held low" result of its START in binary mode (``bitbang.c``
``bbI2Cstart``), so a stuck bus is only visible in the data. With ``busprobe=1`` (default) each
transaction starts with an address-only write to 0x7F. The I2C-bus specification reserves
1111 1XX (NXP UM10204 rev. 3 §3.1.12 table 3: "reserved for future purposes"; later revisions use
1111 100 with R/W = 1 for Device ID reads), so no device answers a write to 1111 111 and an ACK
there means SDA is held low → :class:`BusBusy`. A system that gave a device address 0x7F (the
specification allows a reserved address to be reused) must set ``busprobe=0``. The probe costs
4 serial bytes each way inside the same round trip, and one address-only bus transaction; with
fault injection it counts as a bus transaction too.

Block reads (the count decides the length, and the Bus Pirate ACKs/NACKs each byte on command):

* ``block=predict`` (default): remember the count last seen for this address and command and
  read count + data + PEC in one transaction, NACKing the last byte, so a stable block (names,
  fixed-size MAC results) costs one round trip. The first read of a command, or a count larger
  than predicted, costs a second transaction. A smaller count is accepted as is (all its bytes
  are in). The bus never waits on the serial line in the middle of a transaction.
* ``block=split``: one transaction in two round trips: read the count with ACK, then the rest.
  The clock is held low for one serial round trip mid-transaction, which on a USB bridge can
  exceed the SMBus 10 ms master extension (tLOW:MEXT, smbus.md §6); used for block process
  calls always, because they write and must not be repeated.

Every serial read has the transport timeout: a silent or stalled Bus Pirate gives
:class:`BusTimeout` and the next transaction re-synchronises (0x00 → ``BBIO1`` → 0x02 →
``I2C1``). A closed or unplugged port gives :class:`AdapterGone`.
"""

from __future__ import annotations

import contextlib
import errno
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, Self

from smartbatt.errors import (
    AdapterGone,
    AdapterUnavailable,
    BusBusy,
    BusTimeout,
    NoAcknowledge,
    TransportError,
    UriError,
)
from smartbatt.pec import read_address, write_address
from smartbatt.transports.base import Transport
from smartbatt.transports.capabilities import Capability
from smartbatt.transports.txlog import SMBusProtocol
from smartbatt.uri import DeviceSpec, parse_options

BAUD = 115200
BBIO = b"BBIO1"
I2C1 = b"I2C1"
#: kHz → speed code of the 0x60 command (wiki "I2C (binary)": 3=~400kHz, 2=~100kHz, 1=~50kHz, 0=~5kHz).
SPEED_CODES: dict[int, int] = {5: 0, 50: 1, 100: 2, 400: 3}
#: bytes one bulk-write command carries (0001xxxx, "send 1-16 bytes (0=1byte!)").
BULK_MAX = 16
#: address-only probe target: 0x7F (1111 111), reserved by the I2C specification (UM10204 §3.1.12).
PROBE_ADDRESS = 0x7F
#: 0x00 bytes sent one at a time while looking for BBIO1 (20 for the terminal, plus margin for
#: a Bus Pirate left inside a bulk write (up to 16 data bytes) or a command's parameters).
ENTRY_ATTEMPTS = 40
#: bound on draining a chatty port (a Bus Pirate left streaming ADC readings never goes quiet).
DRAIN_LIMIT_S = 0.5

OP_START = 0x02
OP_STOP = 0x03
OP_READ = 0x04
OP_ACK = 0x06
OP_NACK = 0x07
OP_RESET_TO_TERMINAL = 0x0F
OK = 0x01


class SerialPort(Protocol):
    """The part of ``serial.Serial`` this backend uses."""

    timeout: float | None
    write_timeout: float | None

    def read(self, size: int = 1) -> bytes: ...

    def write(self, data: bytes) -> int | None: ...

    def reset_input_buffer(self) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class BusPirateOptions:
    """Options of ``buspirate:`` URIs."""

    #: I2C clock in kHz: 5, 50, 100 or 400 (Bus Pirate speed codes 0-3).
    speed: int = 100
    #: switch the Bus Pirate's 3.3 V / 5 V supplies on (powers the target through the probe).
    power: bool = False
    #: switch the on-board pull-ups on (they pull to Vpu; the v3 needs power or an external Vpu).
    pullups: bool = False
    #: time limit of each transaction's serial exchange, seconds.
    timeout: float = 0.25
    #: check for a stuck bus before each transaction (module docstring).
    busprobe: bool = True
    #: block-read strategy: ``predict`` or ``split`` (module docstring).
    block: str = "predict"
    #: send a whole transaction per serial write (False: one command per round trip).
    pipeline: bool = True

    def __post_init__(self) -> None:
        if self.speed not in SPEED_CODES:
            raise ValueError(f"speed must be one of {sorted(SPEED_CODES)} kHz, not {self.speed}")
        if self.timeout <= 0:
            raise ValueError("timeout must be positive")
        if self.block not in ("predict", "split"):
            raise ValueError(f"block must be 'predict' or 'split', not {self.block!r}")


class _Program:
    """The Bus Pirate commands of one exchange and the reply bytes they produce.

    Each command is kept separately (with its reply length and kind), so the same program runs
    pipelined (one write, one read) or one command per round trip.
    """

    def __init__(self, pipelined: bool) -> None:
        self.pipelined = pipelined
        #: (command bytes, one letter per reply byte): "o" a 0x01 status, "a" an ACK (0x00) or
        #: NACK (0x01) bit, "d" a data byte.
        self.commands: list[tuple[bytes, str]] = []

    def start(self) -> None:
        self.commands.append((bytes((OP_START,)), "o"))

    def stop(self) -> None:
        self.commands.append((bytes((OP_STOP,)), "o"))

    def write(self, data: bytes) -> None:
        step = BULK_MAX if self.pipelined else 1
        for i in range(0, len(data), step):
            chunk = data[i : i + step]
            self.commands.append((bytes((0x10 | (len(chunk) - 1),)) + chunk, "o" + "a" * len(chunk)))

    def read(self, count: int, *, nack_last: bool = True) -> None:
        for i in range(count):
            last = i == count - 1 and nack_last
            if self.pipelined:
                self.commands.append((bytes((OP_READ, OP_NACK if last else OP_ACK)), "do"))
            else:
                self.commands.append((bytes((OP_READ,)), "d"))
                self.commands.append((bytes((OP_NACK if last else OP_ACK,)), "o"))

    def probe(self) -> None:
        self.start()
        self.write(bytes((write_address(PROBE_ADDRESS),)))
        self.stop()

    @property
    def kinds(self) -> str:
        return "".join(kinds for _, kinds in self.commands)


@dataclass(frozen=True)
class _Reply:
    #: ACK bits of the written bytes, in order (True = acknowledged).
    acks: list[bool]
    #: bytes read.
    data: bytes


class BusPirateTransport(Transport):
    """SMBus through a Bus Pirate v3/v4 in binary I2C mode (module docstring for the protocol).

    :param port: an open serial port (``serial.Serial`` or anything with its read/write API).
    :param name: port name, for messages.
    :param speed_khz: 5, 50, 100 or 400.
    :param power: switch the Bus Pirate's power supplies on.
    :param pullups: switch its pull-up resistors on.
    :param busprobe: check for a stuck bus in every transaction.
    :param block: ``predict`` or ``split`` block-read strategy.
    :param pipeline: one serial round trip per transaction (False: one per command).
    :raises AdapterUnavailable: nothing answering like a Bus Pirate (the port is closed again).
    :raises AdapterGone: the port failed while setting up.
    """

    scheme = "buspirate"
    capabilities = (
        Capability.REPEATED_START
        | Capability.QUICK
        | Capability.BLOCK_READ
        | Capability.BLOCK_PROCESS_CALL
        | Capability.NACK_POSITION
        | Capability.PLAIN_READ
    )
    #: how long to wait for ``BBIO1`` after each 0x00, and the quiet time that ends a drain, s.
    #: A v3's FTDI bridge holds back small replies for up to its 16 ms latency timer.
    PROBE_S: ClassVar[float] = 0.025

    def __init__(
        self,
        port: SerialPort,
        *,
        name: str = "",
        speed_khz: int = 100,
        power: bool = False,
        pullups: bool = False,
        busprobe: bool = True,
        block: str = "predict",
        pipeline: bool = True,
        timeout_s: float = 0.25,
        **kw: Any,
    ) -> None:
        if speed_khz not in SPEED_CODES:
            raise ValueError(f"speed_khz must be one of {sorted(SPEED_CODES)}")
        if block not in ("predict", "split"):
            raise ValueError("block must be 'predict' or 'split'")
        super().__init__(timeout_s=timeout_s, **kw)
        self._port = port
        self.name = name
        self.speed_khz = speed_khz
        self.power = power
        self.pullups = pullups
        self.busprobe = busprobe
        self.block = block
        self.pipeline = pipeline
        #: serial round trips made (for the benchmark and tests).
        self.round_trips = 0
        self._gone = False
        self._dirty = True
        self._counts: dict[tuple[int, bytes], int] = {}
        self._protocol: SMBusProtocol | None = None
        try:
            self._enter_i2c(opening=True)
        except BaseException:
            self.close()
            raise

    # ----------------------------------------------------------------------------------------
    # opening and closing
    # ----------------------------------------------------------------------------------------

    @classmethod
    def from_spec(cls, spec: DeviceSpec) -> Self:
        if not spec.target:
            raise UriError("buspirate: needs a serial port, e.g. buspirate:/dev/ttyUSB0")
        options = parse_options(BusPirateOptions, spec.options)
        return cls.open(spec.target, options)

    @classmethod
    def open(cls, path: str, options: BusPirateOptions | None = None, **kw: Any) -> Self:
        """Open the serial port ``path`` and bring the Bus Pirate into binary I2C mode.

        ``kw`` goes to the constructor (``pec``, ``retry``).
        """
        opts = options or BusPirateOptions()
        try:
            import serial
        except ImportError:
            raise AdapterUnavailable("the buspirate adapter needs pyserial: pip install pyserial") from None
        try:
            port = serial.Serial(path, BAUD, timeout=opts.timeout, write_timeout=opts.timeout)
        except serial.SerialException as exc:
            raise _open_error(path, exc) from None
        except (OSError, ValueError) as exc:
            raise AdapterUnavailable(f"cannot open serial port {path}: {exc}") from None
        return cls(
            port,
            name=path,
            speed_khz=opts.speed,
            power=opts.power,
            pullups=opts.pullups,
            busprobe=opts.busprobe,
            block=opts.block,
            pipeline=opts.pipeline,
            timeout_s=opts.timeout,
            **kw,
        )

    @classmethod
    def detect(cls) -> list[str]:
        """Nothing: a Bus Pirate cannot be told from another serial device without writing to
        it, and probing unknown serial devices is not safe. Name the port in the URI."""
        return []

    def describe(self) -> str:
        return f"Bus Pirate on {self.name}" if self.name else "Bus Pirate"

    def _close(self) -> None:
        """Leave binary mode cleanly (0x00 → bitbang, 0x0F → user terminal) if the port lives."""
        if not self._gone:
            try:
                self._port.write(bytes((0x00, OP_RESET_TO_TERMINAL)))
                self._port.timeout = self.PROBE_S
                self._port.read(len(BBIO) + 1)
            except Exception:  # noqa: BLE001 - closing must not fail on a dying port
                pass
        with contextlib.suppress(Exception):
            self._port.close()

    # ----------------------------------------------------------------------------------------
    # serial I/O with deadlines and error translation
    # ----------------------------------------------------------------------------------------

    def _io_error(self, exc: BaseException) -> TransportError:
        """Translate a pyserial/OS error: a write timeout is a timeout, anything else a lost port."""
        if type(exc).__name__ == "SerialTimeoutException":
            self._dirty = True
            return BusTimeout(f"{self.describe()}: serial write timed out after {self.timeout_s:g} s")
        self._gone = True
        return AdapterGone(f"{self.describe()} is gone (unplugged or port closed): {exc}")

    def _send(self, data: bytes) -> None:
        try:
            self._port.write(data)
        except Exception as exc:  # noqa: BLE001 - pyserial raises SerialException or OSError
            raise self._io_error(exc) from None

    def _recv(self, count: int, deadline: float) -> bytes:
        """Read exactly ``count`` bytes before ``deadline`` (monotonic), else BusTimeout."""
        buf = bytearray()
        while len(buf) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._dirty = True
                raise BusTimeout(f"{self.describe()} answered {len(buf)} of {count} bytes within {self.timeout_s:g} s")
            try:
                self._port.timeout = remaining
                chunk = self._port.read(count - len(buf))
            except Exception as exc:  # noqa: BLE001
                raise self._io_error(exc) from None
            buf += chunk
        return bytes(buf)

    def _read_window(self, window_s: float, size: int = 64) -> bytes:
        """Up to ``size`` bytes, whatever arrives within ``window_s`` seconds (mode entry, drains)."""
        try:
            self._port.timeout = window_s
            return bytes(self._port.read(size))
        except Exception as exc:  # noqa: BLE001
            raise self._io_error(exc) from None

    def _drain(self) -> None:
        """Discard input until the port stays quiet for one probe window."""
        try:
            self._port.reset_input_buffer()
        except Exception as exc:  # noqa: BLE001
            raise self._io_error(exc) from None
        limit = time.monotonic() + DRAIN_LIMIT_S
        while self._read_window(self.PROBE_S) and time.monotonic() < limit:
            pass

    # ----------------------------------------------------------------------------------------
    # mode entry and recovery
    # ----------------------------------------------------------------------------------------

    def _enter_i2c(self, *, opening: bool = False) -> None:
        """From any state (terminal, menu, bitbang, I2C, garbage) into configured binary I2C mode."""
        self._drain()
        if not self._find_bbio():
            self._send(b"\r" * 10)  # leave a terminal menu that swallows 0x00 (wiki "Bitbang")
            self._drain()
            if not self._find_bbio():
                what = f"no Bus Pirate answers on {self.name or 'the port'}"
                hint = " (no BBIO1 after 0x00 x 40): is it a Bus Pirate v3/v4 with firmware 2.6 or later?"
                if opening:
                    raise AdapterUnavailable(what + hint)
                raise BusTimeout(what + hint)
        self._drain()  # BBIO1 echoes of 0x00 bytes queued while the firmware was busy
        deadline = time.monotonic() + self.timeout_s
        self._send(b"\x00")
        self._expect(BBIO, deadline, "re-entering bitbang mode")
        self._send(b"\x02")
        self._expect(I2C1, deadline, "entering binary I2C mode")
        peripherals = 0x40 | (self.power << 3) | (self.pullups << 2)
        self._send(bytes((0x60 | SPEED_CODES[self.speed_khz], peripherals)))
        self._expect(bytes((OK, OK)), deadline, "setting speed and power")
        self._dirty = False

    def _find_bbio(self) -> bool:
        """Send 0x00 one at a time until ``BBIO1`` appears (up to ENTRY_ATTEMPTS)."""
        seen = bytearray()
        for _ in range(ENTRY_ATTEMPTS):
            self._send(b"\x00")
            seen += self._read_window(self.PROBE_S, len(BBIO))
            if BBIO in seen:
                return True
            del seen[: -len(BBIO)]
        return False

    def _expect(self, wanted: bytes, deadline: float, doing: str) -> None:
        got = self._recv(len(wanted), deadline)
        if got != wanted:
            self._dirty = True
            raise TransportError(f"{self.describe()} answered {got!r} instead of {wanted!r} while {doing}")

    def _ready(self) -> None:
        if self._gone:
            raise AdapterGone(f"{self.describe()} is gone (unplugged or port closed)")
        if self._dirty:
            self._enter_i2c()

    # ----------------------------------------------------------------------------------------
    # running programs
    # ----------------------------------------------------------------------------------------

    def _program(self) -> _Program:
        prog = _Program(self.pipeline)
        if self.busprobe:
            prog.probe()
        return prog

    def _exchange(self, prog: _Program, deadline: float | None = None) -> _Reply:
        """Send the program and check its replies: one round trip when pipelined."""
        self._ready()
        if deadline is None:
            deadline = time.monotonic() + self.timeout_s
        kinds = prog.kinds
        if self.pipeline:
            self._send(b"".join(cmd for cmd, _ in prog.commands))
            raw = self._recv(len(kinds), deadline)
            self.round_trips += 1
        else:
            parts = []
            for cmd, cmd_kinds in prog.commands:
                self._send(cmd)
                parts.append(self._recv(len(cmd_kinds), deadline))
                self.round_trips += 1
            raw = b"".join(parts)
        return self._parse(kinds, raw)

    def _parse(self, kinds: str, raw: bytes) -> _Reply:
        acks: list[bool] = []
        data = bytearray()
        for kind, value in zip(kinds, raw, strict=True):
            if kind == "o" and value != OK:
                self._dirty = True
                raise TransportError(f"{self.describe()} refused a command (status 0x{value:02X}): out of sync")
            if kind == "a":
                if value not in (0, 1):
                    self._dirty = True
                    raise TransportError(f"{self.describe()} sent 0x{value:02X} as an ACK bit: out of sync")
                acks.append(value == 0)
            elif kind == "d":
                data.append(value)
        return _Reply(acks, bytes(data))

    def _check(self, reply: _Reply) -> bytes:
        """Raise for a stuck bus (probe acknowledged) or the first unacknowledged byte."""
        acks = reply.acks
        if self.busprobe:
            if acks[0]:
                raise BusBusy(
                    f"bus stuck: the reserved address 0x{PROBE_ADDRESS:02X} was acknowledged, so SDA is held low "
                    "(a device stuck mid-byte, or a short); power-cycle the device or clock the bus free"
                )
            acks = acks[1:]
        for index, ack in enumerate(acks):
            if not ack:
                raise NoAcknowledge(f"no acknowledge at byte {index}", byte_index=index)
        return reply.data

    # ----------------------------------------------------------------------------------------
    # raw operations
    # ----------------------------------------------------------------------------------------

    def _transact(
        self,
        protocol: SMBusProtocol,
        address: int,
        command: int | None,
        data: bytes,
        read_len: int,
        pec: bool,
    ) -> bytes:
        self._protocol = protocol  # the block strategy depends on it (process calls never repeat)
        try:
            return super()._transact(protocol, address, command, data, read_len, pec)
        finally:
            self._protocol = None

    def _write(self, address: int, data: bytes) -> None:
        prog = self._program()
        prog.start()
        prog.write(bytes((write_address(address),)) + data)
        prog.stop()
        self._check(self._exchange(prog))

    def _write_read(self, address: int, data: bytes, length: int) -> bytes:
        prog = self._program()
        _combined(prog, address, data)
        prog.read(length)
        prog.stop()
        return self._check(self._exchange(prog))

    def _read(self, address: int, length: int) -> bytes:
        prog = self._program()
        prog.start()
        prog.write(bytes((read_address(address),)))
        prog.read(length)
        prog.stop()
        return self._check(self._exchange(prog))

    def _quick(self, address: int, read: bool) -> None:
        prog = self._program()
        prog.start()
        prog.write(bytes((write_address(address) | int(read),)))
        prog.stop()
        self._check(self._exchange(prog))

    def _write_read_block(self, address: int, data: bytes, extra: int) -> bytes:
        if self.block == "split" or self._protocol is SMBusProtocol.BLOCK_PROCESS_CALL:
            return self._block_split(address, data, extra)
        return self._block_predict(address, data, extra)

    def _block_split(self, address: int, data: bytes, extra: int) -> bytes:
        """One transaction, two round trips: the count (ACKed), then count + extra bytes."""
        deadline = time.monotonic() + self.timeout_s
        prog = self._program()
        _combined(prog, address, data)
        prog.read(1, nack_last=False)
        first = self._exchange(prog, deadline)
        tail = _Program(self.pipeline)
        try:
            head = self._check(first)
        except (NoAcknowledge, BusBusy):
            tail.stop()  # end the transaction the first round trip left open
            self._exchange(tail, deadline)
            raise
        count = head[0]
        valid = 0 < count <= self.max_block
        tail.read(count + extra if valid else 1)  # a bad count: read one more byte and NACK it
        tail.stop()
        rest = self._exchange(tail, deadline).data
        return head + rest if valid else head

    def _block_predict(self, address: int, data: bytes, extra: int) -> bytes:
        """One transaction sized by the last count seen; a larger count costs one more."""
        key = (address, data)
        predicted = self._counts.get(key)
        for _ in range(3):
            wanted = 1 if predicted is None else 1 + predicted + extra
            raw = self._write_read(address, data, wanted)
            count = raw[0]
            if not 0 < count <= self.max_block:
                self._counts.pop(key, None)
                return raw[:1]
            if len(self._counts) > 512:
                self._counts.clear()
            self._counts[key] = count
            if len(raw) >= 1 + count + extra:
                return raw[: 1 + count + extra]
            predicted = count
        return raw  # the count keeps changing: let the base report the short block


def _combined(prog: _Program, address: int, data: bytes) -> None:
    """``S Addr+W data… Sr Addr+R`` (the reads and the STOP are added by the caller)."""
    prog.start()
    prog.write(bytes((write_address(address),)) + data)
    prog.start()
    prog.write(bytes((read_address(address),)))


def _open_error(path: str, exc: Any) -> AdapterUnavailable:
    """A helpful message for a serial port that cannot be opened."""
    code = getattr(exc, "errno", None)
    if code == errno.ENOENT:
        present = ", ".join(_serial_ports()) or "none"
        return AdapterUnavailable(f"no serial port {path} (ports present: {present})")
    if code in (errno.EACCES, errno.EPERM):
        return AdapterUnavailable(
            f"permission denied opening {path}: add yourself to the group owning it "
            "(Debian/Ubuntu: sudo usermod -aG dialout $USER, then log in again)"
        )
    if code == errno.EBUSY:
        return AdapterUnavailable(f"serial port {path} is busy (another program has it open)")
    return AdapterUnavailable(f"cannot open serial port {path}: {exc}")


def _serial_ports() -> Iterator[str]:
    try:
        from serial.tools import list_ports
    except ImportError:
        return iter(())
    return iter(sorted(p.device for p in list_ports.comports()))
