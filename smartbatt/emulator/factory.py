"""Build the emulated bus a device URI describes (``emulated:<profile>?key=value``)."""

from __future__ import annotations

from dataclasses import dataclass

from smartbatt.emulator.register_file import RegisterFileDevice
from smartbatt.emulator.target import EmulatedBus
from smartbatt.uri import parse_options


@dataclass(frozen=True)
class EmulatorOptions:
    """Options of the emulated pack taken from the URI query."""

    #: ``static``: a fixed SBS register file (benchmarks, transport tests).
    model: str = "static"

    def __post_init__(self) -> None:
        if self.model not in ("static",):
            raise ValueError(f"model must be 'static', not {self.model!r}")


def build_bus(target: str, options: dict[str, str]) -> EmulatedBus:
    """The devices behind an ``emulated:`` URI. Unknown options raise ``UriError``."""
    parse_options(EmulatorOptions, options)
    return EmulatedBus([RegisterFileDevice()])
