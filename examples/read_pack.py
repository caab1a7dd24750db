"""Read a pack's state and identity through the public API.

    python examples/read_pack.py [URI]        # default: the emulated pack
"""

from __future__ import annotations

import sys

from smartbatt import SmartBattError, decode, open_battery


def main(uri: str = "emulated:") -> int:
    try:
        with open_battery(uri) as battery:
            print(f"{battery.manufacturer_name} {battery.device_name} #{battery.serial_number}")
            print(f"voltage      {battery.voltage} mV")
            print(f"current      {battery.current} mA (positive = charging)")
            print(f"temperature  {battery.temperature:.1f} °C")
            print(f"charge       {battery.relative_state_of_charge} % of {battery.full_charge_capacity} mAh")
            status = battery.read("BatteryStatus")
            print(f"status       {status.raw_text}: {status.text}")
    except SmartBattError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    # decoding needs no device: a raw word from a log or a logic-analyser capture
    print(decode("ManufactureDate", 0x4B5B).text)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:2]))
