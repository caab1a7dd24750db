"""A Smart Battery Charger at 0x09 (SBC 1.1) that charges the emulated pack at what the pack requests.

It behaves like a Level 3 charger with AC present: it polls the battery's ChargingCurrent() and
ChargingVoltage() (SBC 1.1: a Level 3 charger may master the bus and read them; sbs.md §6) and runs a
CC-CV charge at that request. It stops when the battery requests 0 (after a valid charge termination,
or when the gauge disables charging), when the battery raises one of the alarms that stop a charger
(OCA, TCA, OTA, TDA: sbs.md §7 AlarmWarning), or when the host sets INHIBIT_CHARGE. A host may also
write ChargingCurrent/ChargingVoltage to the charger; those act as a ceiling on the battery's request.

Commands (sbs.md §6 charger table): 0x11 ChargerSpecInfo (R), 0x12 ChargerMode (W), 0x13
ChargerStatus (R), 0x14 ChargingCurrent (W), 0x15 ChargingVoltage (W), 0x16 AlarmWarning (W).
"""

from __future__ import annotations

from smartbatt.emulator.device import EmulatedGauge
from smartbatt.emulator.gauge import OCA, OTA, TCA, TDA
from smartbatt.emulator.load import CCCVCharger
from smartbatt.emulator.pack import Pack
from smartbatt.emulator.target import SMBusDevice, TargetNack

#: SBS address of a Smart Battery Charger (sbs.md §6).
CHARGER_ADDRESS = 0x09

#: ChargerSpecInfo: bits 3–0 charger spec version (2 chosen for SBC 1.1; the encoding is UNCONFIRMED).
CHARGER_SPEC_INFO = 0x0002

#: ChargerMode bits (sbs.md §6).
INHIBIT_CHARGE, ENABLE_POLLING, POR_RESET, RESET_TO_ZERO = 0x1, 0x2, 0x4, 0x8
#: ChargerStatus bits (sbs.md §6, SBC 1.1 p. 14).
CHARGE_INHIBITED, POLLING_ENABLED, VOLTAGE_NOTREG, CURRENT_NOTREG = 0x0001, 0x0002, 0x0004, 0x0008
LEVEL_3 = 0x0030
CURRENT_OR, VOLTAGE_OR = 0x0040, 0x0080
BATTERY_PRESENT, AC_PRESENT = 0x4000, 0x8000
#: BatteryStatus alarms that stop a charger (sbs.md §7).
STOP_ALARMS = OCA | TCA | OTA | TDA
#: the charger's output limits (chosen), mA and mV.
MAX_CURRENT_MA = 8000
MAX_VOLTAGE_MV = 19200


class SmartCharger(SMBusDevice):
    """Smart Battery Charger at 0x09 feeding current into the battery's :class:`VirtualPack`.

    :param battery: the emulated battery it charges (and polls).
    """

    def __init__(self, battery: EmulatedGauge, address: int = CHARGER_ADDRESS) -> None:
        super().__init__(address)
        self.battery = battery
        self.ac_present = True
        self.mode = ENABLE_POLLING
        #: host-written ChargingCurrent / ChargingVoltage ceilings, mA / mV (None = not written).
        self.host_current_ma: int | None = None
        self.host_voltage_mv: int | None = None
        #: last AlarmWarning received (BatteryStatus format).
        self.alarm_warning = 0
        self._cccv = CCCVCharger(0.0, 0.0, 0.0)
        self.output_a = 0.0
        battery.vpack.sources.append(self._output)

    # --- the charge ---------------------------------------------------------------------------

    def request(self) -> tuple[int, int]:
        """(current mA, voltage mV) the charger regulates to now."""
        voltage_mv, current_ma = self.battery.vpack.charging_request()
        if self.host_current_ma is not None:
            current_ma = min(current_ma, self.host_current_ma)
        if self.host_voltage_mv is not None:
            voltage_mv = min(voltage_mv, self.host_voltage_mv)
        return min(current_ma, MAX_CURRENT_MA), min(voltage_mv, MAX_VOLTAGE_MV)

    @property
    def inhibited(self) -> bool:
        return bool(self.mode & INHIBIT_CHARGE)

    def _output(self, t_s: float, pack: Pack) -> float:
        """Current the charger pushes into the pack now, A (a :class:`VirtualPack` source)."""
        self.output_a = 0.0
        if not self.ac_present or self.inhibited or self.battery.vpack.protections.charge_disabled:
            return 0.0
        status = self.battery.battery_status()
        if status & STOP_ALARMS:
            return 0.0
        current_ma, voltage_mv = self.request()
        self._cccv.set_request(current_ma / 1000.0, voltage_mv / 1000.0)
        self.output_a = self._cccv.current(t_s, pack)
        return self.output_a

    def status(self) -> int:
        """ChargerStatus (sbs.md §6)."""
        word = LEVEL_3 | BATTERY_PRESENT
        if self.mode & ENABLE_POLLING:
            word |= POLLING_ENABLED
        if self.inhibited:
            word |= CHARGE_INHIBITED
        if self.ac_present:
            word |= AC_PRESENT
        if self._cccv.in_cv and self.output_a > 0:
            word |= CURRENT_NOTREG  # regulating voltage, so not current
        elif self.output_a > 0:
            word |= VOLTAGE_NOTREG
        if self.host_current_ma is not None and self.host_current_ma > MAX_CURRENT_MA:
            word |= CURRENT_OR
        if self.host_voltage_mv is not None and self.host_voltage_mv > MAX_VOLTAGE_MV:
            word |= VOLTAGE_OR
        return word

    # --- SMBusDevice hooks ----------------------------------------------------------------------

    def transfer(self, address: int, write: bytes, read: bool = False) -> bytes:
        self.battery.vpack.sync()
        return super().transfer(address, write, read)

    def write_shape(self, command: int) -> int | None:
        return 2 if command in (0x12, 0x14, 0x15, 0x16) else None

    def read_command(self, command: int, written: bytes) -> bytes:
        if written:
            raise TargetNack(2, "process calls are not supported")
        if command == 0x11:
            value = CHARGER_SPEC_INFO
        elif command == 0x13:
            value = self.status()
        else:
            raise TargetNack(1, f"charger command 0x{command:02X} is not readable")
        return bytes((value & 0xFF, value >> 8))

    def write_command(self, command: int, data: bytes) -> None:
        value = data[0] | (data[1] << 8)
        if command == 0x12:
            if value & POR_RESET:
                self.host_current_ma = self.host_voltage_mv = None
                self._cccv.reset()
            if value & RESET_TO_ZERO:
                self.host_current_ma = self.host_voltage_mv = 0
            self.mode = value & (INHIBIT_CHARGE | ENABLE_POLLING)
        elif command == 0x14:
            self.host_current_ma = value
        elif command == 0x15:
            self.host_voltage_mv = value
        elif command == 0x16:
            self.alarm_warning = value
