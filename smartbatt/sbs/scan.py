"""Find the devices on an SMBus segment and name the Smart Battery System ones.

Probing follows i2c-tools ``i2cdetect`` (i2cdetect.c, "auto" mode): a quick write everywhere,
except 0x30–0x37 and 0x50–0x5F, which are probed with a byte read because a quick write can
corrupt or write-protect some EEPROMs (AT24RF08) living there; adapters without a quick command
are probed with a byte read everywhere. A probe is never retried (an empty address NACKs, and
that is the answer), so a full scan costs one transaction per address.

SBS addresses (SMBus reserved assignments, sbs.md §6): 0x09 Smart Battery Charger, 0x0A Smart
Battery Selector / System Manager, 0x0B Smart Battery; 0x08 is the SMBus host and 0x0C the alert
response address. A battery is named from its DeviceName and ManufacturerName blocks; if they
cannot be read it is still listed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from smartbatt.errors import NoAcknowledge, PecMismatch, SmartBattError, TransportError
from smartbatt.sbs.codecs import decode_string
from smartbatt.transports import NO_RETRY, Capability, Transport

#: 7-bit addresses a scan covers by default (0x00–0x02 and 0x78–0x7F are reserved by I2C).
DEFAULT_ADDRESSES = range(0x03, 0x78)

#: address → (role, description) of the SBS and SMBus reserved addresses (sbs.md §6).
KNOWN_ADDRESSES: dict[int, tuple[str, str]] = {
    0x08: ("host", "SMBus host"),
    0x09: ("charger", "Smart Battery Charger"),
    0x0A: ("selector", "Smart Battery Selector / System Manager"),
    0x0B: ("battery", "Smart Battery"),
    0x0C: ("alert", "SMBus Alert Response Address"),
}

#: ranges probed with a read instead of a quick write (i2cdetect.c: EEPROM safety).
_READ_PROBE = (range(0x30, 0x38), range(0x50, 0x60))

_DEVICE_NAME = 0x21
_MANUFACTURER_NAME = 0x20


@dataclass(frozen=True)
class Found:
    """One device that acknowledged its address."""

    address: int
    #: ``battery``, ``charger``, ``selector``, ``host``, ``alert`` or ``unknown``.
    role: str
    #: human description (``Smart Battery smartbatt EMU-4S3000``, ``unknown device``).
    description: str
    #: ManufacturerName / DeviceName of a battery, when they could be read.
    manufacturer: str = ""
    device: str = ""

    def __str__(self) -> str:
        return f"0x{self.address:02X} {self.description}"


def _probe(transport: Transport, address: int) -> bool:
    """True if something acknowledges ``address``; NACK → False, other bus errors propagate."""
    quick = Capability.QUICK in transport.capabilities
    try:
        if quick and not any(address in r for r in _READ_PROBE):
            transport.quick(address, read=False)
        elif Capability.PLAIN_READ in transport.capabilities:
            transport.receive_byte(address, pec=False)
        else:
            transport.read_byte(address, 0x00, pec=False)
    except NoAcknowledge as exc:
        # a device that takes its address but NACKs a later byte is still there
        return exc.byte_index not in (0, None)
    except PecMismatch:
        return True  # something answered, with a PEC we did not ask for or a noisy line
    return True


def _read_text(transport: Transport, address: int, command: int) -> str:
    try:
        return decode_string(transport.read_block(address, command, pec=False))
    except TransportError:
        return ""


def _describe(transport: Transport, address: int) -> Found:
    role, description = KNOWN_ADDRESSES.get(address, ("unknown", "unknown device"))
    if role != "battery":
        return Found(address, role, description)
    manufacturer = _read_text(transport, address, _MANUFACTURER_NAME)
    device = _read_text(transport, address, _DEVICE_NAME)
    names = " ".join(n for n in (manufacturer, device) if n)
    return Found(
        address,
        role,
        f"{description} {names}" if names else f"{description} (name unreadable)",
        manufacturer=manufacturer,
        device=device,
    )


def scan(transport: Transport, addresses: Iterable[int] = DEFAULT_ADDRESSES) -> list[Found]:
    """Probe every address and describe what answers, in address order.

    Probes are not retried and hold the bus for the whole scan. Reads only: nothing is written
    to any device beyond the address-only quick write.

    :raises ValueError: an address outside 0x00..0x7F.
    :raises TransportError: a bus-level failure other than a NACK (stuck bus, adapter gone).
    """
    wanted = sorted(set(addresses))
    for address in wanted:
        if not 0 <= address <= 0x7F:
            raise ValueError(f"address 0x{address:X} is not a 7-bit address")
    found: list[Found] = []
    with transport.exclusive():
        saved = transport.retry
        transport.retry = NO_RETRY
        try:
            present = [a for a in wanted if _probe(transport, a)]
        finally:
            transport.retry = saved
        for address in present:
            try:
                found.append(_describe(transport, address))
            except SmartBattError:
                found.append(Found(address, *KNOWN_ADDRESSES.get(address, ("unknown", "unknown device"))))
    return found
