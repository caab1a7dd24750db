"""Typed reading of data files (chip profiles, test plans): one reader, many file kinds.

TOML gives plain strings, numbers, booleans, lists and tables; :class:`TableReader` checks each
value against what the schema expects and raises one typed error that names the file, the dotted
key path (``steps[2].limits.voltage.min``) and the reason. A loader subclasses it only to choose
its error class (and, where needed, its wording).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from collections.abc import Set as AbstractSet
from enum import Enum
from typing import Any, ClassVar, Self, TypeVar

from smartbatt.errors import ProfileError, SmartBattError

E = TypeVar("E", bound=Enum)


class TableReader:
    """A table of a data file plus the file and key path it came from.

    Values are taken as the TOML parser gives them (plain strings and numbers) and checked here,
    never through a format's own guessing; every failure is one typed error naming the file and
    the key path, made by :meth:`error` (a subclass returns its own error class).
    """

    #: inclusive integer range messages also show hexadecimal (register codes, addresses).
    hex_ranges: ClassVar[bool] = True

    def __init__(self, file: str, path: str, data: Mapping[str, Any]) -> None:
        self.file = file
        self.path = path
        self.data = data

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def error(self, file: str, key_path: str, reason: str) -> SmartBattError:
        """The error this reader raises; override to raise the data file's own error class."""
        return ProfileError(file, key_path, reason)

    def fail(self, name: str, reason: str) -> SmartBattError:
        return self.error(self.file, self.key(name) if name else self.path, reason)

    def check_keys(self, allowed: AbstractSet[str]) -> None:
        for k in self.data:
            if k not in allowed:
                raise self.fail(str(k), f"unknown key (allowed: {', '.join(sorted(allowed))})")

    def has(self, name: str) -> bool:
        return name in self.data

    def get(self, name: str, required: bool = False) -> Any:
        if name not in self.data:
            if required:
                raise self.fail(name, "missing")
            return None
        return self.data[name]

    def opt_int(self, name: str, lo: int, hi: int, *, required: bool = False) -> int | None:
        v = self.get(name, required)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.fail(name, f"expected an integer, got {_show(v)}")
        if not lo <= v <= hi:
            if not self.hex_ranges:
                raise self.fail(name, f"{v} is outside {lo}..{hi}")
            shown = f"{v} (0x{v:X})" if v >= 0 else str(v)
            raise self.fail(name, f"{shown} is outside {lo}..{hi} (0x{lo:X}..0x{hi:X})")
        return v

    def req_int(self, name: str, lo: int, hi: int) -> int:
        v = self.opt_int(name, lo, hi, required=True)
        assert v is not None
        return v

    def opt_float(self, name: str, lo: float, hi: float, *, required: bool = False) -> float | None:
        v = self.get(name, required)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise self.fail(name, f"expected a number, got {_show(v)}")
        if not math.isfinite(v) or not lo <= v <= hi:
            raise self.fail(name, f"{v} is outside {lo:g}..{hi:g}")
        return float(v)

    def opt_str(self, name: str, *, required: bool = False, nonempty: bool = False) -> str | None:
        v = self.get(name, required)
        if v is None:
            return None
        if not isinstance(v, str):
            raise self.fail(name, f"expected a string, got {_show(v)}")
        if nonempty and not v.strip():
            raise self.fail(name, "must not be empty")
        return v

    def req_str(self, name: str) -> str:
        v = self.opt_str(name, required=True, nonempty=True)
        assert v is not None
        return v

    def opt_bool(self, name: str, default: bool) -> bool:
        v = self.get(name, False)
        if v is None:
            return default
        if not isinstance(v, bool):
            raise self.fail(name, f"expected true or false, got {_show(v)}")
        return v

    def enum(self, name: str, enum: type[E], default: E | None = None) -> E:
        v = self.get(name, default is None)
        if v is None:
            assert default is not None
            return default
        values = [m.value for m in enum]
        if not isinstance(v, str) or v not in values:
            raise self.fail(name, f"expected one of {values}, got {_show(v)}")
        return enum(v)

    def str_list(self, name: str) -> tuple[str, ...]:
        v = self.get(name, False)
        if v is None:
            return ()
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise self.fail(name, f"expected a list of strings, got {_show(v)}")
        return tuple(v)

    def int_list(self, name: str, lo: int, hi: int) -> tuple[int, ...]:
        v = self.get(name, False)
        if v is None:
            return ()
        if not isinstance(v, list):
            raise self.fail(name, f"expected a list of integers, got {_show(v)}")
        for i, x in enumerate(v):
            if isinstance(x, bool) or not isinstance(x, int) or not lo <= x <= hi:
                raise self.fail(f"{name}[{i}]", f"expected an integer in 0x{lo:X}..0x{hi:X}, got {_show(x)}")
        return tuple(v)

    def choice(self, name: str, allowed: tuple[str, ...], default: str) -> str:
        v = self.opt_str(name)
        if v is None:
            return default
        if v not in allowed:
            raise self.fail(name, f"expected one of {', '.join(allowed)}, got {v!r}")
        return v

    def regex(self, name: str) -> str | None:
        v = self.opt_str(name)
        if v is None:
            return None
        try:
            re.compile(v)
        except re.error as exc:
            raise self.fail(name, f"not a valid regular expression: {exc}") from None
        return v

    def table(self, name: str, *, required: bool = False) -> Self | None:
        v = self.get(name, required)
        if v is None:
            return None
        if not isinstance(v, dict):
            raise self.fail(name, f"expected a table, got {_show(v)}")
        return type(self)(self.file, self.key(name), v)

    def tables(self, name: str) -> Iterator[Self]:
        v = self.get(name, False)
        if v is None:
            return
        if not isinstance(v, list) or not all(isinstance(x, dict) for x in v):
            raise self.fail(name, "expected an array of tables ([[...]])")
        for i, item in enumerate(v):
            yield type(self)(self.file, f"{self.key(name)}[{i}]", item)


def _show(v: Any) -> str:
    kind = type(v).__name__
    text = repr(v)
    return f"{kind} {text[:40]}"
