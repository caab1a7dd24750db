"""A static SBS register file: a device whose registers are fixed values.

It is the cheapest correct SMBus target: the protocol benchmark measures the host stack against
it, transport contract tests use it, and it answers ``emulated:?model=static``. The values
describe a plausible 4-series 3 Ah NMC pack at rest (SBS 1.1 units; ../shared/reference/sbs.md).
"""

from __future__ import annotations

from smartbatt.emulator.target import BLOCK, SMBusDevice, TargetNack

#: SBS address of a smart battery (SBS 1.1 §5; sbs.md §6).
BATTERY_ADDRESS = 0x0B

#: word registers of a 4S 3000 mAh pack at 25 °C, 80 % charged, resting.
DEFAULT_WORDS: dict[int, int] = {
    0x00: 0x0000,  # ManufacturerAccess
    0x01: 300,  # RemainingCapacityAlarm, mAh (10 % of design)
    0x02: 10,  # RemainingTimeAlarm, min
    0x03: 0x6001,  # BatteryMode: ICC, AM, CHGM (a bq40z50 at power-up)
    0x04: 0,  # AtRate
    0x05: 0xFFFF,  # AtRateTimeToFull: AtRate 0 -> not charging
    0x06: 0xFFFF,  # AtRateTimeToEmpty
    0x07: 1,  # AtRateOK
    0x08: 2982,  # Temperature 0.1 K = 25.05 °C
    0x09: 16120,  # Voltage mV (4 x 4.03 V)
    0x0A: 0,  # Current mA
    0x0B: 0,  # AverageCurrent mA
    0x0C: 1,  # MaxError %
    0x0D: 80,  # RelativeStateOfCharge %
    0x0E: 78,  # AbsoluteStateOfCharge %
    0x0F: 2340,  # RemainingCapacity mAh
    0x10: 2925,  # FullChargeCapacity mAh
    0x11: 0xFFFF,  # RunTimeToEmpty: not discharging
    0x12: 0xFFFF,  # AverageTimeToEmpty
    0x13: 0xFFFF,  # AverageTimeToFull: not charging
    0x14: 1500,  # ChargingCurrent mA
    0x15: 16800,  # ChargingVoltage mV
    0x16: 0x00C0,  # BatteryStatus: INIT, DSG
    0x17: 42,  # CycleCount
    0x18: 3000,  # DesignCapacity mAh
    0x19: 14400,  # DesignVoltage mV
    0x1A: 0x0031,  # SpecificationInfo: SBS 1.1 with PEC, no scaling
    0x1B: (2025 - 1980) * 512 + 3 * 32 + 14,  # ManufactureDate 2025-03-14
    0x1C: 0x1234,  # SerialNumber
}

DEFAULT_BLOCKS: dict[int, bytes] = {
    0x20: b"smartbatt",  # ManufacturerName
    0x21: b"EMU-4S3000",  # DeviceName
    0x22: b"LION",  # DeviceChemistry
    0x23: b"\x00\x00",  # ManufacturerData
}

#: SBS 1.1 commands a host may write (sbs.md §1: access R/W).
WRITABLE_WORDS = frozenset({0x00, 0x01, 0x02, 0x03, 0x04})


class RegisterFileDevice(SMBusDevice):
    """A smart battery whose registers only change when the host writes them."""

    def __init__(
        self,
        address: int = BATTERY_ADDRESS,
        words: dict[int, int] | None = None,
        blocks: dict[int, bytes] | None = None,
        writable: frozenset[int] = WRITABLE_WORDS,
    ) -> None:
        super().__init__(address)
        self.words = dict(DEFAULT_WORDS if words is None else words)
        self.blocks = dict(DEFAULT_BLOCKS if blocks is None else blocks)
        self.writable = writable
        # replies precomputed: a static device answers the benchmark's reads at bus speed
        self._word_bytes = {c: bytes((v & 0xFF, v >> 8)) for c, v in self.words.items()}

    def write_shape(self, command: int) -> int | None:
        if command in self.writable:
            return 2 if command in self.words else BLOCK
        return None

    def read_command(self, command: int, written: bytes) -> bytes:
        reply = self._word_bytes.get(command)
        if reply is not None:
            return reply
        block = self.blocks.get(command)
        if block is not None:
            return bytes((len(block),)) + block
        raise TargetNack(1, f"command 0x{command:02X} not implemented")

    def write_command(self, command: int, data: bytes) -> None:
        if command in self.words:
            value = data[0] | (data[1] << 8)
            self.words[command] = value
            self._word_bytes[command] = bytes(data[:2])
        else:
            self.blocks[command] = data
