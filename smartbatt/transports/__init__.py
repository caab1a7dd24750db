"""Transport backends, registered by URI scheme and imported lazily.

A new adapter is one new module plus one line in :data:`BUILTIN`, or — out of tree — an entry
point in the group ``smartbatt.transports`` whose value is ``module:Class``. A backend whose
optional dependency is missing raises :class:`~smartbatt.errors.AdapterUnavailable` when it is
opened, never when smartbatt is imported.
"""

from __future__ import annotations

import importlib
from importlib import metadata

from smartbatt.errors import AdapterUnavailable, UriError
from smartbatt.transports.base import Transport
from smartbatt.transports.capabilities import Capability
from smartbatt.transports.retry import NO_RETRY, RetryPolicy
from smartbatt.transports.txlog import SMBusProtocol, TransactionRecord
from smartbatt.uri import DEFAULT_URI, DeviceSpec, parse_uri

#: scheme → "module:Class" of the backends shipped with smartbatt.
BUILTIN: dict[str, str] = {
    "emulated": "smartbatt.transports.emulated:EmulatedTransport",
    "i2c": "smartbatt.transports.i2cdev:I2CDevTransport",
    "buspirate": "smartbatt.transports.buspirate:BusPirateTransport",
}

ENTRY_POINT_GROUP = "smartbatt.transports"


def registry() -> dict[str, str]:
    """Every known scheme: the built-in ones plus installed entry points (built-ins win)."""
    found = {ep.name: ep.value for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}
    return {**found, **BUILTIN}


def transport_class(scheme: str) -> type[Transport]:
    """Import and return the backend class registered for ``scheme``."""
    schemes = registry()
    ref = schemes.get(scheme)
    if ref is None:
        raise UriError(f"unknown adapter {scheme!r} (known: {', '.join(sorted(schemes))})")
    module_name, _, class_name = ref.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise AdapterUnavailable(f"adapter {scheme!r} cannot be loaded: {exc}") from None
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Transport)):
        raise AdapterUnavailable(f"adapter {scheme!r}: {ref} is not a Transport class")
    return cls


def open_transport(uri: str | DeviceSpec = DEFAULT_URI) -> Transport:
    """Open the adapter a device URI names (``emulated:`` when none is given)."""
    spec = uri if isinstance(uri, DeviceSpec) else parse_uri(uri)
    return transport_class(spec.scheme).from_spec(spec)


def detect_all() -> list[str]:
    """URIs of every adapter found on this machine, emulated first."""
    uris: list[str] = []
    for scheme in registry():
        try:
            uris.extend(transport_class(scheme).detect())
        except AdapterUnavailable:
            continue
    return uris


__all__ = [
    "BUILTIN",
    "NO_RETRY",
    "Capability",
    "RetryPolicy",
    "SMBusProtocol",
    "TransactionRecord",
    "Transport",
    "detect_all",
    "open_transport",
    "registry",
    "transport_class",
]
