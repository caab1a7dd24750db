"""Read a PMBus converter's rails and status (emulated two-rail converter at 0x40 by default).

    python examples/pmbus_rails.py [URI] [ADDRESS]
"""

from __future__ import annotations

import sys

from smartbatt import SmartBattError, open_transport
from smartbatt.pmbus.device import PMBusDevice


def main(uri: str = "emulated:?model=static&pmbus=0x40", address: str = "0x40") -> int:
    try:
        with open_transport(uri) as transport:
            device = PMBusDevice(transport, int(address, 0))
            for page in (0, 1):
                vout, iout = device.read_vout(page), device.read_iout(page)
                print(f"page {page}: VOUT {vout:.3f} V, IOUT {iout:.2f} A, {device.read('READ_TEMPERATURE_1').text}")
            print(device.status(0))
    except SmartBattError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
