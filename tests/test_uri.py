"""Device URI parsing and typed options."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from smartbatt.errors import UriError
from smartbatt.uri import DeviceSpec, parse_options, parse_uri


def test_parse_forms() -> None:
    assert parse_uri("emulated:") == DeviceSpec("emulated", "", {})
    assert parse_uri("i2c:1") == DeviceSpec("i2c", "1", {})
    assert parse_uri("I2C:/dev/i2c-1") == DeviceSpec("i2c", "/dev/i2c-1", {})
    spec = parse_uri("emulated:bq40z50?cells=4&scenario=drone&seed=7&speed=10")
    assert spec.target == "bq40z50"
    assert spec.options == {"cells": "4", "scenario": "drone", "seed": "7", "speed": "10"}
    assert str(spec) == "emulated:bq40z50?cells=4&scenario=drone&seed=7&speed=10"


@pytest.mark.parametrize("bad", ["", "noscheme", "1x:foo", "emulated:?cells", "emulated:?a=1&a=2"])
def test_malformed_uris_are_usage_errors(bad: str) -> None:
    with pytest.raises(UriError):
        parse_uri(bad)


@dataclass(frozen=True)
class _Opts:
    speed: int = 100
    timeout: float = 0.1
    power: bool = False
    name: str = ""
    limit: int | None = None


def test_options_are_typed() -> None:
    opts = parse_options(_Opts, {"speed": "0x190", "timeout": "0.5", "power": "yes", "name": "x", "limit": "none"})
    assert opts == _Opts(speed=400, timeout=0.5, power=True, name="x", limit=None)
    assert parse_options(_Opts, {"limit": "3"}).limit == 3


def test_unknown_option_lists_valid_ones() -> None:
    with pytest.raises(UriError, match=r"unknown option 'sped' \(valid options: limit, name, power, speed, timeout\)"):
        parse_options(_Opts, {"sped": "1"})


@pytest.mark.parametrize(("key", "value"), [("speed", "fast"), ("power", "maybe"), ("timeout", "1s")])
def test_bad_values_name_the_option(key: str, value: str) -> None:
    with pytest.raises(UriError, match=key):
        parse_options(_Opts, {key: value})
