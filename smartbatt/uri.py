"""Device URIs: ``scheme:target?key=value&key=value``.

Examples: ``emulated:``, ``emulated:bq40z50?cells=4&seed=7``, ``i2c:1``, ``i2c:/dev/i2c-1``,
``buspirate:/dev/ttyUSB0?speed=100``. Options are parsed into a backend's own frozen dataclass;
an unknown key is an error that lists the valid ones (never a silently ignored ``**kwargs``).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from smartbatt.errors import UriError

T = TypeVar("T")

#: URI used wherever no device is given.
DEFAULT_URI = "emulated:"


@dataclass(frozen=True)
class DeviceSpec:
    """A parsed device URI."""

    #: registry name of the backend (``i2c``, ``buspirate``, ``emulated``).
    scheme: str
    #: backend-specific target: bus number, device node, serial port, profile name.
    target: str = ""
    #: raw ``key=value`` options, still strings.
    options: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        query = "&".join(f"{k}={v}" for k, v in self.options.items())
        return f"{self.scheme}:{self.target}" + (f"?{query}" if query else "")


def parse_uri(uri: str) -> DeviceSpec:
    """Split a device URI. Raises :class:`UriError` on malformed input."""
    text = uri.strip()
    if ":" not in text:
        raise UriError(f"device URI {uri!r} has no scheme: write it as scheme:target, e.g. i2c:1 or emulated:")
    scheme, _, rest = text.partition(":")
    scheme = scheme.lower()
    if not scheme.isidentifier():
        raise UriError(f"device URI {uri!r}: {scheme!r} is not a scheme name")
    target, _, query = rest.partition("?")
    options: dict[str, str] = {}
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError as exc:
        raise UriError(f"device URI {uri!r}: malformed options {query!r}") from exc
    for key, value in pairs:
        if key in options:
            raise UriError(f"device URI {uri!r}: option {key!r} given twice")
        options[key] = value
    return DeviceSpec(scheme=scheme, target=target, options=options)


def _convert(name: str, text: str, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if text.lower() in ("", "none") and len(args) < len(typing.get_args(hint)):
            return None
        hint = args[0]
    try:
        if hint is bool:
            lowered = text.lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if hint is int:
            return int(text, 0)
        if hint is float:
            return float(text)
        if hint is str:
            return text
    except ValueError:
        raise UriError(f"option {name}={text!r} is not a valid {getattr(hint, '__name__', hint)}") from None
    raise UriError(f"option {name}: unsupported option type {hint!r}")


def parse_options(cls: type[T], options: dict[str, str]) -> T:
    """Build the options dataclass ``cls`` from string options, converting each to its field type.

    Unknown keys raise :class:`UriError` naming the valid keys.
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(options) - names)
    if unknown:
        valid = ", ".join(sorted(names)) or "none"
        raise UriError(f"unknown option {unknown[0]!r} (valid options: {valid})")
    kwargs = {k: _convert(k, v, hints[k]) for k, v in options.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise UriError(f"invalid options: {exc}") from None
