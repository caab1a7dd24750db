"""Profile detection: DeviceType wins, names help, generic SBS whenever the evidence is weak."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from smartbatt.errors import NoAcknowledge, SmartBattError
from smartbatt.profiles.detect import detect_profile
from smartbatt.profiles.loader import load_profile


def returns(value: str) -> Callable[[], str]:
    return lambda: value


def fails(exc: SmartBattError) -> Callable[[], str]:
    def read() -> str:
        raise exc

    return read


class MacProbe:
    """A DeviceType reader that records whether it was called (i.e. whether a MAC write happened)."""

    def __init__(self, value: int | SmartBattError) -> None:
        self.value = value
        self.calls = 0

    def __call__(self) -> int:
        self.calls += 1
        if isinstance(self.value, SmartBattError):
            raise self.value
        return self.value


def test_device_type_identifies_the_chip():
    result = detect_profile(returns("Pack X1"), returns("ACME"), MacProbe(0x4500), allow_mac=True)
    assert (result.profile, result.confirmed, result.device_type) == ("bq40z50", True, 0x4500)
    assert result.reason == "DeviceType 0x4500 identifies bq40z50 (ManufacturerName 'ACME')"
    assert result.variant is None


@pytest.mark.parametrize(
    ("device_type", "profile"),
    [(0x4800, "bq40z80"), (0x9E34, "bq4050"), (0x2610, "bq28z610"), (0x0650, "bq20z65"), (0x1E9B, "bq78350")],
)
def test_each_known_device_type(device_type, profile):
    assert detect_profile(None, None, MacProbe(device_type), allow_mac=True).profile == profile


def test_variant_from_device_name_after_device_type():
    result = detect_profile(returns("bq40z50-R3"), None, MacProbe(0x4500), allow_mac=True)
    assert (result.profile, result.variant) == ("bq40z50", "R3")
    assert result.reason.endswith("; DeviceName names variant R3")
    assert load_profile(result.profile, variant=result.variant).variant == "R3"


def test_device_type_wins_over_a_misleading_name():
    result = detect_profile(returns("bq40z80 pack"), None, MacProbe(0x4500), allow_mac=True)
    assert result.profile == "bq40z50"
    assert "looks like bq40z80; DeviceType wins" in result.reason


def test_unknown_device_type_is_generic_even_if_the_name_matches():
    result = detect_profile(returns("bq40z50"), None, MacProbe(0x1234), allow_mac=True)
    assert result.is_generic and not result.confirmed
    assert result.reason == "DeviceType 0x1234 is in no chip profile (clone or unsupported chip): using generic-sbs"


def test_device_type_read_failure_is_generic_not_a_guess():
    probe = MacProbe(NoAcknowledge("no acknowledge", address=0x0B, command=0x00))
    result = detect_profile(returns("bq40z50-R1"), None, probe, allow_mac=True)
    assert result.is_generic
    assert probe.calls == 1
    assert result.reason.startswith("DeviceType (MAC 0x0001) could not be read: no acknowledge")
    assert result.reason.endswith("not guessing from the name: using generic-sbs")


def test_no_mac_write_unless_allowed():
    probe = MacProbe(0x4500)
    result = detect_profile(returns("bq40z50-R1"), None, probe)
    assert probe.calls == 0, "a ManufacturerAccess write was sent without permission"
    assert (result.profile, result.variant, result.confirmed) == ("bq40z50", "R1", False)
    assert "DeviceType not checked (ManufacturerAccess writes not allowed)" in result.reason


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("SANYO", "DeviceName 'SANYO' matches no chip profile"),
        ("   ", "no DeviceName"),
        ("\x00\x00", "no DeviceName"),
    ],
)
def test_unknown_or_empty_names_are_generic(name, reason):
    result = detect_profile(returns(name))
    assert result.is_generic
    assert result.reason.startswith(reason)
    assert result.reason.endswith(": using generic-sbs")


def test_unreadable_name_is_generic_with_the_error():
    result = detect_profile(fails(NoAcknowledge("no acknowledge", address=0x0B, command=0x21)))
    assert result.is_generic
    assert result.reason.startswith("DeviceName unreadable: no acknowledge (address 0x0B, command 0x21)")


def test_manufacturer_read_failure_does_not_matter():
    result = detect_profile(returns("bq4050"), fails(SmartBattError("timeout")))
    assert (result.profile, result.manufacturer) == ("bq4050", None)


def test_ambiguous_device_type_falls_back_unless_the_name_decides():
    base = load_profile("bq40z50")
    twin = load_profile("bq40z80")
    clone_of_type = type(twin)(**{**twin.__dict__, "identity": type(twin.identity)(device_types=(0x4500,))})
    candidates = [load_profile("generic-sbs"), base, clone_of_type]
    undecided = detect_profile(returns("Pack"), None, MacProbe(0x4500), allow_mac=True, profiles=candidates)
    assert undecided.is_generic
    assert "matches several profiles (bq40z50, bq40z80)" in undecided.reason
    decided = detect_profile(returns("bq40z50"), None, MacProbe(0x4500), allow_mac=True, profiles=candidates)
    assert decided.profile == "bq40z50"


def test_ambiguous_name_falls_back():
    generic = load_profile("generic-sbs")
    a = load_profile("bq4050")
    b = type(a)(**{**a.__dict__, "name": "bq4050-copy"})
    result = detect_profile(returns("bq4050"), profiles=[generic, a, b])
    assert result.is_generic
    assert "matches several profiles (bq4050, bq4050-copy)" in result.reason


def test_allow_mac_without_reader_uses_the_name():
    result = detect_profile(returns("bq28z610"), allow_mac=True)
    assert result.profile == "bq28z610"
    assert "no DeviceType reader given" in result.reason
