"""A Bus Pirate v3/v4 binary-protocol responder in front of an emulated SMBus target.

It speaks what the Bus Pirate firmware speaks on its serial port, so the ``buspirate:`` backend
(or any other Bus Pirate tool) talks to an emulated pack through a real pseudo-terminal exactly
as it would to the hardware (``smartbatt emulate --pty``).

Protocol facts, as implemented by the firmware (DangerousPrototypes/Bus_Pirate, ``Firmware/``)
and documented on the Dangerous Prototypes wiki:

* User terminal: twenty 0x00 bytes enter binary bitbang mode, which answers ``BBIO1``
  (``baseUI.c`` ``serviceuser``: ``case 0x00: binmodecnt++; if (binmodecnt == 20) binBB()``;
  wiki "Bitbang": "Send 0x00 to the user terminal (max.) 20 times").
* Bitbang mode (``binIO.c`` ``binBB``): 0x00 answers ``BBIO1``; 0x02 enters binary I2C mode,
  which answers ``I2C1``; 0x0F answers 0x01 and resets to the user terminal. Other modes (SPI,
  UART, 1-Wire…) are not emulated here: they answer 0x00, as an unknown command does.
* Binary I2C mode (``I2C.c`` ``binI2C``; wiki "I2C (binary)"): 0x00 back to bitbang (``BBIO1``);
  0x01 ``I2C1``; 0x02 START → 0x01; 0x03 STOP → 0x01; 0x04 read byte → the byte (the host must
  then send ACK or NACK); 0x06 ACK → 0x01; 0x07 NACK → 0x01; 0x08 write-then-read (two
  big-endian 16-bit lengths, then the bytes to write; 0x00 on a NACK or on a length above the
  4096-byte ``TERMINAL_BUFFER``, else 0x01 and the bytes read); 0x09 AUX sub-command → 0x01 then
  a result byte; 0x1n bulk write of n+1 bytes → 0x01, then per byte 0x00 (ACK) or 0x01 (NACK);
  0x4x peripherals (power, pull-ups, AUX, CS) → 0x01; 0x6x speed (low two bits) → 0x01; anything
  else → 0x00. The bulk write goes on clocking the remaining bytes after a NACK, and the firmware
  ignores the "bus held low" result of its START (``bitbang.c`` ``bbI2Cstart``), so the host
  only learns about a stuck bus from the data.

The I2C side is modelled on real bus semantics: the responder buffers one transaction from START
to STOP and hands its messages to ``target.transfer`` when the device would act on them (a
write when the STOP comes, a read when the repeated-start read address comes). The emulated
target decides ACK/NACK on the whole message, so the replies to the bytes of a write phase are
held back until that phase ends; a pipelining host (everything sent at once) gets the exact
ACK/NACK of every byte. A host that waits for each byte's ACK before sending the next gets them
*provisionally* once its input stops: the address is probed with ``target.quick`` (which counts
as one more transaction for :class:`FaultyBus` schedules) and data bytes are acknowledged; a
NACK the device gives later for a data byte then shows on the next byte (the repeated-start
address) instead, and a write the device rejects at its STOP goes unnoticed by such a host.

Wire faults come from :class:`FaultyBus`: a NACK per ``TargetNack.byte_index``; a clock stretch
past the SMBus timeout stalls the reply for as long as the device holds the clock (the host
times out, as with the hardware); a stuck bus (SDA held low) reads as 0x00 data with every ACK
slot low, since a low SDA during the ninth clock is an acknowledge.
"""

from __future__ import annotations

import contextlib
import enum
import os
import select
import threading
import tty
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Self

from smartbatt.emulator.faults import BusFaults, FaultyBus
from smartbatt.emulator.target import SMBusTarget, TargetBusStuck, TargetNack, TargetStretch

#: bitbang-mode version string (wiki "Bitbang"; binIO.c ``binBBversion``).
BBIO_VERSION = b"BBIO1"
#: binary I2C version string (wiki "I2C (binary)"; I2C.c ``binI2CversionString``).
I2C_VERSION = b"I2C1"
#: 0x00 bytes the user terminal needs before it enters bitbang mode (baseUI.c ``binmodecnt``).
ZEROS_TO_BINARY = 20
#: largest transfer of the 0x08 write-then-read command (busPirateCore.h ``TERMINAL_BUFFER``).
TERMINAL_BUFFER = 4096
#: prompt the emulated user terminal prints after <enter> (the firmware prints the mode name).
TERMINAL_PROMPT = b"\r\nHiZ>"

OK = 0x01
ERROR = 0x00
ACK = 0x00  # bulk-write reply for an acknowledged byte ("return ACK0 or NACK1")
NACK = 0x01
#: what a read returns when no device drives SDA (the pull-ups win).
IDLE_BYTE = 0xFF


class Mode(enum.Enum):
    """Which firmware loop the responder is in."""

    TERMINAL = "terminal"
    BBIO = "bbio"
    I2C = "i2c"


class _Phase(enum.Enum):
    ADDRESS = "address"  # after START / Sr: the next byte is an address
    WRITE = "write"  # device receiving
    READ_ADDRESS = "read_address"  # address+R seen, not yet decided whether reads follow
    READ = "read"  # device transmitting
    FAILED = "failed"  # device no longer listening: writes NACKed, reads 0xFF
    DONE = "done"  # write applied before the STOP (0x08): as FAILED until the STOP
    STUCK = "stuck"  # SDA held low: every ACK slot low, reads 0x00


@dataclass
class _Slot:
    """One reply byte; ``value`` None while the device has not decided yet (ACK/NACK held back)."""

    value: int | None = None


@dataclass
class _Segment:
    """One I2C transaction from START to STOP as the device sees it."""

    address: int = 0
    phase: _Phase = _Phase.ADDRESS
    #: bytes after the address byte in the write phase (command, data, PEC).
    written: bytearray = field(default_factory=bytearray)
    #: reply slots of the write phase: index 0 = address byte, n = n-th byte after it.
    slots: list[_Slot] = field(default_factory=list)
    #: slot of the read address byte (address+R) while it is pending.
    read_slot: _Slot | None = None
    #: the write phase has been resolved provisionally (address probed with ``quick``).
    probed: bool = False
    #: bytes the device clocks out in the read phase (data and PEC).
    reply: bytes = b""
    read_pos: int = 0
    #: the host NACKed a byte: the device stops transmitting.
    host_nacked: bool = False


class BusPirateResponder:
    """The serial side of a Bus Pirate, answering from an :class:`SMBusTarget`.

    :param target: the device(s) on the emulated bus.
    :param faults: wire faults; the target is put behind a :class:`FaultyBus` with them (keep a
        reference and change fields to inject faults mid-session).
    :param latency_s: added serial latency per direction, seconds (models a USB-serial bridge).
    :param settle_s: how long to wait for more input before deciding held-back ACKs
        provisionally (see the module docstring), seconds.
    :param mode: firmware state at start (a Bus Pirate left in binary I2C mode by a crashed
        program, or sitting at its user terminal).

    Use :meth:`feed` to drive it from a byte string (tests), or :meth:`serve` to answer a file
    descriptor (a pty master) in a background thread; :meth:`stop` ends the thread.
    """

    def __init__(
        self,
        target: SMBusTarget,
        *,
        faults: BusFaults | None = None,
        latency_s: float = 0.0,
        settle_s: float = 0.0005,
        mode: Mode = Mode.TERMINAL,
    ) -> None:
        if latency_s < 0 or settle_s < 0:
            raise ValueError("latency_s and settle_s must not be negative")
        self.bus = FaultyBus(target, faults)
        self.latency_s = latency_s
        self.settle_s = settle_s
        self.mode = mode
        #: peripherals byte last set with 0x4x (power, pull-ups, AUX, CS in the low four bits).
        self.peripherals = 0
        #: speed code last set with 0x6x (0 = 5 kHz, 1 = 50 kHz, 2 = 100 kHz, 3 = 400 kHz).
        self.speed = 3  # binI2C starts the bitbang library at its highest speed
        #: every byte received, for tests that pin the serial trace.
        self.received = bytearray()
        self._zeros = 0
        self._seg: _Segment | None = None
        self._out: list[_Slot] = []
        # multi-byte commands: bulk-write bytes still to come, or a parameter collector
        self._bulk_left = 0
        self._collect: Callable[[int], None] | None = None
        self._args = bytearray()
        # serving
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._wake_r, self._wake_w = -1, -1
        self._mute_after: int | None = None
        self._hang_up = False
        self._fd = -1

    # ----------------------------------------------------------------------------------------
    # test hooks
    # ----------------------------------------------------------------------------------------

    def mute(self, after: int = 0) -> None:
        """Stop answering after ``after`` more reply bytes (a peer that dies mid-reply)."""
        with self._lock:
            self._mute_after = after

    def unmute(self) -> None:
        with self._lock:
            self._mute_after = None

    def inject(self, data: bytes) -> None:
        """Send unsolicited bytes (terminal chatter, line noise) ahead of the next reply."""
        with self._lock:
            self._out.extend(_Slot(b) for b in data)
        self._wake()

    def hang_up(self) -> None:
        """Close the pty master under the host (an unplugged adapter)."""
        self._hang_up = True
        self._wake()

    # ----------------------------------------------------------------------------------------
    # byte-stream interface
    # ----------------------------------------------------------------------------------------

    def feed(self, data: bytes) -> bytes:
        """Process ``data`` as if it arrived in one piece and return every reply byte.

        Held-back ACKs are decided provisionally at the end, since no more input follows.
        """
        with self._lock:
            self._process(data)
            self._settle()
            return self._take_ready()

    # ----------------------------------------------------------------------------------------
    # serving a file descriptor
    # ----------------------------------------------------------------------------------------

    def serve(self, fd: int) -> None:
        """Answer ``fd`` (a pty master) in a daemon thread until :meth:`stop`."""
        if self._thread is not None:
            raise RuntimeError("responder is already serving")
        os.set_blocking(fd, False)
        self._fd = fd
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._loop, name="buspirate-responder", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        """End the serving thread (interrupts a stall). Idempotent."""
        self._stop.set()
        self._wake()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._wake_r = self._wake_w = -1

    @property
    def hung_up(self) -> bool:
        """True once :meth:`hang_up` has closed the master."""
        return self._fd < 0 and self._hang_up

    def _wake(self) -> None:
        if self._wake_w >= 0:
            with contextlib.suppress(OSError):
                os.write(self._wake_w, b"!")

    def _loop(self) -> None:
        fd = self._fd
        while not self._stop.is_set():
            if self._hang_up:
                os.close(fd)
                self._fd = -1
                return
            with self._lock:
                waiting = any(s.value is None for s in self._out)
            try:
                readable, _, _ = select.select([fd, self._wake_r], [], [], self.settle_s if waiting else None)
            except (OSError, ValueError):
                return
            if self._wake_r in readable:
                with contextlib.suppress(OSError):
                    os.read(self._wake_r, 512)
            if fd in readable:
                try:
                    data = os.read(fd, 4096)
                except BlockingIOError:
                    data = b""
                except OSError:
                    return  # the other side is gone for good
                if data:
                    if self.latency_s:
                        self._stop.wait(self.latency_s)  # host -> adapter
                    with self._lock:
                        self._process(data)
            elif not readable:
                with self._lock:
                    self._settle()  # the host is waiting for replies it has not sent bytes for
            self._flush(fd)

    def _flush(self, fd: int) -> None:
        with self._lock:
            ready = self._take_ready()
            if self._mute_after is not None:
                ready = ready[: self._mute_after]
                self._mute_after -= len(ready)
        if not ready:
            return
        if self.latency_s:
            self._stop.wait(self.latency_s)
        view = memoryview(ready)
        while view and not self._stop.is_set():
            try:
                written = os.write(fd, view)
            except BlockingIOError:
                select.select([], [fd], [], 0.05)
                continue
            except OSError:
                return
            view = view[written:]

    def _take_ready(self) -> bytes:
        """Pop the reply bytes that are decided, in order (a held-back slot blocks the rest)."""
        n = 0
        for slot in self._out:
            if slot.value is None:
                break
            n += 1
        ready = bytes(s.value for s in self._out[:n] if s.value is not None)
        del self._out[:n]
        return ready

    # ----------------------------------------------------------------------------------------
    # the firmware state machine
    # ----------------------------------------------------------------------------------------

    def _emit(self, *values: int) -> None:
        self._out.extend(_Slot(v) for v in values)

    def _emit_bytes(self, data: bytes) -> None:
        self._out.extend(_Slot(b) for b in data)

    def _process(self, data: bytes) -> None:
        self.received += data
        for byte in data:
            if self.mode is Mode.TERMINAL:
                self._terminal(byte)
            elif self.mode is Mode.BBIO:
                self._bitbang(byte)
            else:
                self._i2c(byte)

    def _terminal(self, byte: int) -> None:
        if byte == 0x00:
            self._zeros += 1
            if self._zeros >= ZEROS_TO_BINARY:
                self._enter_bbio()
        elif byte in (0x0A, 0x0D):
            self._emit_bytes(TERMINAL_PROMPT)
        elif 0x20 <= byte < 0x7F:
            self._emit(byte)  # the terminal echoes printable characters

    def _enter_bbio(self) -> None:
        self.mode = Mode.BBIO
        self._zeros = 0
        self._emit_bytes(BBIO_VERSION)

    def _bitbang(self, byte: int) -> None:
        if byte == 0x00:
            self._emit_bytes(BBIO_VERSION)
        elif byte == 0x02:
            self.mode = Mode.I2C
            self._seg = None
            self.speed = 3
            self._emit_bytes(I2C_VERSION)
        elif byte == 0x0F:
            self._emit(OK)  # then the firmware resets into the user terminal
            self.mode = Mode.TERMINAL
            self._zeros = 0
        else:
            self._emit(ERROR)  # modes other than I2C are not emulated

    def _i2c(self, byte: int) -> None:
        if self._bulk_left:
            self._bulk_left -= 1
            self._out.append(self._write_byte(byte))
            return
        if self._collect is not None:
            self._collect(byte)
            return
        high = byte >> 4
        if high == 0x1:
            self._bulk_left = (byte & 0x0F) + 1
            self._emit(OK)
        elif high == 0x4:
            self.peripherals = byte & 0x0F
            self._emit(OK)
        elif high == 0x6:
            self.speed = byte & 0x03
            self._emit(OK)
        elif high == 0x0:
            self._i2c_command(byte)
        else:
            self._emit(ERROR)

    def _i2c_command(self, byte: int) -> None:
        if byte == 0x00:
            self._abandon()
            self.mode = Mode.BBIO
            self._emit_bytes(BBIO_VERSION)
        elif byte == 0x01:
            self._emit_bytes(I2C_VERSION)
        elif byte == 0x02:
            self._start()
            self._emit(OK)
        elif byte == 0x03:
            self._stop_condition()
            self._emit(OK)
        elif byte == 0x04:
            self._emit(self._read_byte())
        elif byte in (0x06, 0x07):
            if byte == 0x07 and self._seg is not None:
                self._seg.host_nacked = True
            self._emit(OK)
        elif byte == 0x08:
            self._args = bytearray()
            self._collect = self._collect_write_read_header
        elif byte == 0x09:
            self._emit(OK)
            self._collect = self._collect_aux
        else:
            self._emit(ERROR)  # 0x05, 0x0A-0x0E; 0x0F (sniffer) is not emulated

    # --- 0x08 write-then-read and 0x09 AUX ------------------------------------------------------

    def _collect_aux(self, byte: int) -> None:
        self._collect = None
        # sub-commands 0x00-0x03 drive or read AUX, 0x10/0x20 choose AUX or CS; AUX reads low
        self._emit(0x00 if byte == 0x03 else OK)

    def _collect_write_read_header(self, byte: int) -> None:
        self._args.append(byte)
        if len(self._args) < 4:
            return
        to_write = (self._args[0] << 8) | self._args[1]
        to_read = (self._args[2] << 8) | self._args[3]
        self._collect = None
        if to_write > TERMINAL_BUFFER or to_read > TERMINAL_BUFFER:
            self._emit(ERROR)  # the firmware refuses before reading the bytes to write
            return
        self._args = bytearray()
        if to_write == 0:
            self._write_then_read(b"", to_read)
            return

        def collect(b: int) -> None:
            self._args.append(b)
            if len(self._args) == to_write:
                self._collect = None
                self._write_then_read(bytes(self._args), to_read)

        self._collect = collect

    def _write_then_read(self, data: bytes, to_read: int) -> None:
        """0x08: START, write ``data`` (stop at the first NACK, without a STOP), read, STOP.

        There is no repeated start between the write and the read (I2C.c ``binI2C`` case 8), so
        the device sees a write (applied here, as it would be at the STOP) followed by clocks
        it does not answer; with a read address first it is a plain read.
        """
        self._start()
        slots = [self._write_byte(byte) for byte in data]
        seg = self._seg
        if seg is not None and seg.phase is _Phase.WRITE:
            self._resolve_write(seg)
            if seg.phase is _Phase.WRITE:
                seg.phase = _Phase.DONE
        elif seg is not None and seg.phase is _Phase.READ_ADDRESS:
            self._resolve_read_address(reading=to_read > 0)
        if any(slot.value != ACK for slot in slots):
            self._emit(ERROR)  # the firmware leaves the bus as it is (no STOP)
            return
        values = [self._read_byte() for _ in range(to_read)]
        if self._seg is not None:
            self._seg.host_nacked = True
        self._stop_condition()
        self._emit(OK)
        self._emit_bytes(bytes(values))

    # --- the I2C bus ------------------------------------------------------------------------

    def _start(self) -> None:
        seg = self._seg
        if seg is not None and seg.phase is _Phase.WRITE:
            seg.phase = _Phase.ADDRESS  # repeated start: the write phase stays pending
            return
        if seg is not None and seg.phase is _Phase.READ_ADDRESS:
            self._resolve_read_address(reading=False)
        if seg is not None and seg.phase is _Phase.STUCK:
            return
        self._seg = _Segment()

    def _stop_condition(self) -> None:
        seg = self._seg
        if seg is None:
            return
        if seg.phase is _Phase.WRITE or (seg.phase is _Phase.ADDRESS and seg.slots):
            self._resolve_write(seg)
        elif seg.phase is _Phase.READ_ADDRESS:
            self._resolve_read_address(reading=False)
        self._seg = None

    def _abandon(self) -> None:
        """Leave I2C mode mid-transaction: no STOP, so the device applies nothing."""
        self._settle()
        self._seg = None
        self._bulk_left = 0
        self._collect = None

    def _write_byte(self, byte: int) -> _Slot:
        """A byte the host clocks out; returns its ACK slot (possibly decided later)."""
        seg = self._seg
        if seg is None or seg.phase in (_Phase.FAILED, _Phase.DONE, _Phase.READ, _Phase.READ_ADDRESS):
            return _Slot(NACK)  # nobody is receiving
        if seg.phase is _Phase.STUCK:
            return _Slot(ACK)  # SDA low reads as an acknowledge
        slot = _Slot()
        if seg.phase is _Phase.WRITE:
            seg.written.append(byte)
            seg.slots.append(slot)
            return slot
        # an address byte (after START or a repeated start)
        address, read = byte >> 1, bool(byte & 1)
        if seg.slots:  # a write phase is pending behind a repeated start
            if read and address == seg.address:
                seg.read_slot = slot
                self._resolve_combined(seg)
                return slot
            self._resolve_write(seg)
            if _stuck(seg):  # the call above may have found the bus stuck
                slot.value = ACK
                return slot
            self._seg = seg = _Segment()
        seg.address = address
        if read:
            seg.phase = _Phase.READ_ADDRESS
            seg.read_slot = slot
        else:
            seg.phase = _Phase.WRITE
            seg.slots.append(slot)
        return slot

    def _read_byte(self) -> int:
        seg = self._seg
        if seg is None:
            return IDLE_BYTE
        if seg.phase is _Phase.READ_ADDRESS:
            self._resolve_read_address(reading=True)
        if seg.phase is _Phase.STUCK:
            return 0x00
        if seg.phase is not _Phase.READ or seg.host_nacked:
            return IDLE_BYTE
        value = seg.reply[seg.read_pos] if seg.read_pos < len(seg.reply) else IDLE_BYTE
        seg.read_pos += 1
        return value

    # --- calling the target -----------------------------------------------------------------

    def _call(self, seg: _Segment, fn: Callable[[], bytes | None]) -> tuple[int | None, bytes]:
        """Run a target call; returns (index of the first NACKed byte or None, reply)."""
        try:
            reply = fn()
        except TargetNack as exc:
            return exc.byte_index, b""
        except TargetStretch as exc:
            # the device holds SCL low this long, then abandons the transfer
            self._stop.wait(exc.seconds)
            return 0, b""
        except TargetBusStuck:
            seg.phase = _Phase.STUCK
            return None, b""
        return None, reply or b""

    def _fill(self, seg: _Segment, nack_at: int | None) -> None:
        """Decide every pending slot of the segment: ACK before ``nack_at``, NACK from it on."""
        slots = [*seg.slots, *([seg.read_slot] if seg.read_slot is not None else [])]
        for index, slot in enumerate(slots):
            if slot.value is None:
                slot.value = NACK if nack_at is not None and index >= nack_at else ACK
        if nack_at is not None:
            seg.phase = _Phase.FAILED

    def _resolve_write(self, seg: _Segment) -> None:
        """The write phase ended (STOP, or a START to a new address): the device applies it."""
        if seg.probed and not seg.written:
            self._fill(seg, None)  # the provisional probe was the whole transaction
            return
        data = bytes(seg.written)
        if data:
            nack_at, _ = self._call(seg, lambda: self.bus.transfer(seg.address, data, False))
        else:
            nack_at, _ = self._call(seg, lambda: self.bus.quick(seg.address, False))
        if seg.phase is _Phase.STUCK:
            self._fill(seg, None)
            return
        self._fill(seg, nack_at)

    def _resolve_combined(self, seg: _Segment) -> None:
        """Sr + address+R after a write phase: one ``transfer(read=True)`` (an SMBus read)."""
        data = bytes(seg.written)
        nack_at, reply = self._call(seg, lambda: self.bus.transfer(seg.address, data, True))
        if seg.phase is _Phase.STUCK:
            self._fill(seg, None)
            return
        self._fill(seg, nack_at)
        if nack_at is None:
            seg.phase = _Phase.READ
            seg.reply = reply

    def _resolve_read_address(self, *, reading: bool) -> None:
        """address+R with no write phase: a receive byte if reads follow, else a quick read."""
        seg = self._seg
        if seg is None or seg.read_slot is None:
            return
        if not reading and seg.read_slot.value is not None:
            return  # _settle's quick probe already was this quick read
        if reading:
            nack_at, reply = self._call(seg, lambda: self.bus.transfer(seg.address, b"", True))
        else:
            nack_at, reply = self._call(seg, lambda: self.bus.quick(seg.address, True))
        if seg.phase is _Phase.STUCK:
            if seg.read_slot.value is None:
                seg.read_slot.value = ACK
            return
        if seg.read_slot.value is None:  # else already decided provisionally by _settle
            seg.read_slot.value = ACK if nack_at is None else NACK
        seg.phase = _Phase.READ if nack_at is None else _Phase.FAILED
        seg.reply = reply

    def _settle(self) -> None:
        """No more input for now: decide held-back ACKs provisionally (module docstring)."""
        seg = self._seg
        if seg is None:
            return
        if seg.phase is _Phase.READ_ADDRESS:
            if seg.read_slot is not None and seg.read_slot.value is None:
                nack_at, _ = self._call(seg, lambda: self.bus.quick(seg.address, True))
                seg.read_slot.value = ACK if nack_at is None or _stuck(seg) else NACK
                if nack_at is not None:
                    seg.phase = _Phase.FAILED
            return
        pending = [s for s in seg.slots if s.value is None]
        if not pending:
            return
        if seg.slots[0].value is None and not seg.probed:
            seg.probed = True
            nack_at, _ = self._call(seg, lambda: self.bus.quick(seg.address, False))
            if seg.phase is _Phase.STUCK:
                self._fill(seg, None)
                return
            if nack_at is not None:
                self._fill(seg, 0)
                return
        for slot in pending:
            if slot.value is None:
                slot.value = ACK


def _stuck(seg: _Segment) -> bool:
    return seg.phase is _Phase.STUCK


class PtySession:
    """A pseudo-terminal whose master side is answered by a :class:`BusPirateResponder`.

    ``path`` is the slave device name to give to pyserial (``buspirate:<path>``). The session
    keeps its own slave descriptor open, so a host that closes and reopens the port never
    hangs the pty up; :meth:`BusPirateResponder.hang_up` closes the master to simulate an
    unplugged adapter.
    """

    def __init__(self, responder: BusPirateResponder, master: int, slave: int) -> None:
        self.responder = responder
        self._master = master
        self._slave = slave
        self.path = os.ttyname(slave)
        self._closed = False

    def close(self) -> None:
        """Stop the responder and release both sides. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self.responder.stop()
        if not self.responder.hung_up:
            with contextlib.suppress(OSError):
                os.close(self._master)
        with contextlib.suppress(OSError):
            os.close(self._slave)

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_pty(
    target: SMBusTarget,
    latency_s: float = 0.0,
    *,
    faults: BusFaults | None = None,
    mode: Mode = Mode.TERMINAL,
) -> PtySession:
    """Open a pty that behaves like a Bus Pirate with ``target`` on its I2C pins.

    :param latency_s: added serial latency per direction, seconds (0 = as fast as the pty).
    :param faults: wire faults (see :class:`BusPirateResponder`).
    :param mode: firmware state at start; a freshly plugged Bus Pirate sits at its terminal.
    """
    master, slave = os.openpty()
    try:
        tty.setraw(slave)  # no echo, no CR/LF translation: a binary serial line
        responder = BusPirateResponder(target, faults=faults, latency_s=latency_s, mode=mode)
        session = PtySession(responder, master, slave)
        responder.serve(master)
    except BaseException:
        os.close(master)
        os.close(slave)
        raise
    return session
