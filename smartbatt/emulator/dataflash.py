"""The emulated gauge's data flash: bytes at physical addresses, laid out by the chip profile.

TI bq40z-family gauges keep their configuration in data flash and reach it through
ManufacturerBlockAccess with the physical address as the subcommand (ti_gauges.md §7). The emulator
keeps one byte array for the data-flash range and places every profile entry that has a published
address in it. Entries that configure something the emulator models are *live*:

* the protection thresholds, delays and recoveries (class ``Protections``) are the keys of the
  protection parameter set (:class:`~smartbatt.emulator.protections.ProtectionParameters`), so a
  data-flash write of ``Protections:COV:Threshold Rec Temp`` changes when COV trips;
* the enable bits whose meaning a source gives turn rules on and off
  (:data:`ENABLE_BITS`).

At start every addressed entry holds its profile default when the profile gives one, else the value
the emulated pack is configured with (protection parameters; the design values the device passes in
``initial``) so data flash and behaviour agree, else zeros; enable bytes without a published default
start with every bit set (the emulator enables all its rules). Design values are not live: writing
them changes the stored bytes, not the simulated gauge.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

from smartbatt.emulator.protections import ProtectionParameters
from smartbatt.errors import SmartBattError
from smartbatt.profiles.schema import DataFlashEntry, DFType, DFValue, Profile

#: Data-flash range used when the profile publishes none. 0x4000–0x5FFF is the range TI gives for
#: bq28z610-R2 (SLUUCO0) and the range bq40z50 drivers use; for other chips it is an assumption.
DEFAULT_FIRST = 0x4000
DEFAULT_LAST = 0x5FFF

#: Profile data-flash names that differ from the protection parameter set's keys. The bq4050 map
#: has one "Standard Temp" COV threshold where the bq40z50 family splits it into Low/High
#: (Lawmate/BQ4050 Lorro_BQ4050.h vs the bq40z50-R1 .gg.csv): one entry drives both.
ALIASES: Mapping[str, tuple[str, ...]] = {
    "COV:Threshold Standard Temp": ("COV:Threshold Standard Temp Low", "COV:Threshold Standard Temp High"),
    "COV:Recovery Standard Temp": ("COV:Recovery Standard Temp Low", "COV:Recovery Standard Temp High"),
}

#: (data-flash key, bit) → protection rule the bit enables. Only bits a source names:
#: Enabled Protections A bit 0 = CUV (PX4 batt_smbus writes 0xCF normally, 0xCE to turn CUV off);
#: Enabled Protections D bit 2 = UTC, bit 3 = UTD (TI SLUUAQ3A, bq4050).
ENABLE_BITS: Mapping[tuple[str, int], str] = {
    ("Settings:Protection:Enabled Protections A", 0): "CUV",
    ("Settings:Protection:Enabled Protections D", 2): "UTC",
    ("Settings:Protection:Enabled Protections D", 3): "UTD",
}


class DataFlashMemory:
    """Data flash of one emulated gauge.

    :param profile: the chip profile (its addressed data-flash entries are placed in memory).
    :param params: the live protection parameter set the ``Protections`` entries drive.
    :param initial: start values of other entries by ``Class:Subclass:Name`` (display values).
    """

    def __init__(
        self, profile: Profile, params: ProtectionParameters, initial: Mapping[str, DFValue] | None = None
    ) -> None:
        self._initial = dict(initial or {})
        access = profile.data_flash_access
        self.first = access.first if access.first is not None else DEFAULT_FIRST
        self.last = access.last if access.last is not None else DEFAULT_LAST
        self.block_size = access.block_size
        self.params = params
        self.memory = bytearray(self.last - self.first + 1)
        self.entries: tuple[DataFlashEntry, ...] = tuple(
            sorted((e for e in profile.data_flash if e.address is not None), key=lambda e: e.address or 0)
        )
        #: number of block writes accepted (a flash-wear counter, for tests).
        self.writes = 0
        for entry in self.entries:
            self._initialise(entry)

    # --- addressing -----------------------------------------------------------------------------

    def contains(self, address: int) -> bool:
        return self.first <= address <= self.last

    def read(self, address: int, length: int) -> bytes:
        """Up to ``length`` bytes from ``address`` (fewer at the end of the range)."""
        start = address - self.first
        return bytes(self.memory[start : min(start + length, len(self.memory))])

    def write(self, address: int, data: bytes) -> bool:
        """Program ``data`` at ``address`` and apply the entries it touched; False if the span does
        not lie inside the data flash (the gauge ignores such a write)."""
        if not data or not self.contains(address) or not self.contains(address + len(data) - 1):
            return False
        start = address - self.first
        self.memory[start : start + len(data)] = data
        self.writes += 1
        end = address + len(data)
        for entry in self.entries:
            assert entry.address is not None
            if entry.address < end and address < entry.address + entry.size:
                self._apply(entry)
        return True

    # --- typed access (tests, initial values) -------------------------------------------------------

    def entry(self, key: str) -> DataFlashEntry:
        """The addressed entry ``Class:Subclass:Name``.

        :raises KeyError: not an addressed entry of this profile.
        """
        for entry in self.entries:
            if entry.key == key:
                return entry
        raise KeyError(key)

    def value(self, key: str) -> DFValue:
        """Display value of an addressed entry as stored now."""
        entry = self.entry(key)
        assert entry.address is not None
        return entry.decode(self.read(entry.address, entry.size))

    def set_value(self, key: str, value: DFValue) -> None:
        """Store a display value (as a host write would) and apply it.

        :raises KeyError: unknown entry. RangeError/DecodeError: value does not fit.
        """
        entry = self.entry(key)
        assert entry.address is not None
        self.write(entry.address, entry.encode(value))

    # --- live entries ---------------------------------------------------------------------------------

    def _parameter_keys(self, entry: DataFlashEntry) -> tuple[str, ...]:
        if entry.class_name != "Protections":
            return ()
        key = f"{entry.subclass}:{entry.name}"
        keys = ALIASES.get(key, (key,))
        return tuple(k for k in keys if k in self.params)

    def _enable_bits(self, entry: DataFlashEntry) -> dict[int, str]:
        return {bit: rule for (key, bit), rule in ENABLE_BITS.items() if key == entry.key}

    def _initialise(self, entry: DataFlashEntry) -> None:
        assert entry.address is not None
        value: DFValue | None = entry.default if entry.default is not None else self._initial.get(entry.key)
        keys = self._parameter_keys(entry)
        bits = self._enable_bits(entry)
        if value is None and keys:
            value = self.params[keys[0]]
        if value is None and entry.type is DFType.H and entry.name.startswith("Enabled Protections"):
            value = (1 << (8 * entry.size)) - 1
        if value is None:
            return
        try:
            data = entry.encode(value)
        except SmartBattError:
            return  # the configured value does not fit this chip's type: leave zeros
        start = entry.address - self.first
        self.memory[start : start + entry.size] = data
        if bits:
            self._apply(entry)

    def _apply(self, entry: DataFlashEntry) -> None:
        """Make the stored value of ``entry`` take effect."""
        assert entry.address is not None
        try:
            value = entry.decode(self.read(entry.address, entry.size))
        except SmartBattError:
            return
        for key in self._parameter_keys(entry):
            if isinstance(value, int | float):
                # outside what the emulated protection accepts: the stored bytes stay, no effect
                with contextlib.suppress(ValueError):
                    self.params[key] = value
        for bit, rule in self._enable_bits(entry).items():
            if isinstance(value, int) and value >> bit & 1:
                self.params.enabled.add(rule)
            else:
                self.params.enabled.discard(rule)
