"""Deliberately broken profiles give one exact ProfileError (file, key path, reason) and cache nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from smartbatt.errors import ProfileError
from smartbatt.profiles.loader import available_profiles, clear_cache, is_cached, load_profile

BROKEN = Path(__file__).parent / "data" / "profiles_broken"

#: file stem -> (key path, reason); a reason ending in "..." is compared as a prefix.
EXPECTED: dict[str, tuple[str, str]] = {
    "missing-schema-version": ("schema_version", "missing"),
    "wrong-schema-version": ("schema_version", "unsupported schema_version 2 (this smartbatt reads 1)"),
    "not-toml": ("", "not valid TOML: Unclosed inline table (at line 6, column 40)"),
    "name-mismatch": ("name", "'other-name' does not match the file name 'name-mismatch'"),
    "unknown-top-key": ("colour", "unknown key (allowed: bitfields, bus, commands, ..."),
    "missing-sources": ("sources", "missing: every profile cites its documents"),
    "wrong-type": ("commands[0].code", "expected an integer, got str '0x3C'"),
    "bad-enum": ("commands[0].access", "expected one of ['r', 'w', 'rw'], got str 'read'"),
    "duplicate-command-code": ("commands[1].code", "duplicate 0x3C (also at commands[0])"),
    "duplicate-command-name": ("commands[1].name", "'CellVoltage1' is also command 0x3C"),
    "sbs-standard-code": ("commands[0].code", "0x09 is an SBS 1.1 standard command"),
    "bit-out-of-width": ("bitfields[0].flags[0].bit", "16 (0x10) is outside 0..15 (0x0..0xF)"),
    "duplicate-bit": ("bitfields[0].flags[1].bit", "bit 3 is already CUV"),
    "group-overlaps-flag": ("bitfields[0].groups[0].low", "bit 9 is already SEC1"),
    "layout-overflow": ("layouts[0].fields[1].offset", "field ends at byte 5, beyond the layout size 4"),
    "layout-overlap": ("layouts[0].fields[1].offset", "bytes 1..2 overlap field 'A'"),
    "mac-unknown-layout": ("mac[0].layout", "no layout named 'Nope'"),
    "status-source-bad-register": ("status_sources[0].register", "no bit map named 'Nope'"),
    "security-seal-not-in-mac": ("security.seal_mac", "MAC 0x0030 is not in the mac table"),
    "df-overlapping-address": ("data_flash[1].address", "0x4001 overlaps Protections:CUV:Threshold (0x4000)"),
    "df-default-out-of-range": ("data_flash[0].default", "200 is above the maximum 100"),
    "df-min-above-max": ("data_flash[0].max", "10 is below min 20"),
    "df-string-without-length": ("data_flash[0].length", "missing (required for type S)"),
    "df-outside-range": ("data_flash[0].address", "0x5FFF..0x6000 is outside the data flash 0x4000..0x5FFF"),
    "extends-missing": ("extends", "no shipped profile named 'no-such-chip'; available: ['bq20z65', ..."),
    "variant-broken": ("variants.R9.bitfields[0].flags[0].bit", "20 (0x14) is outside 0..15 (0x0..0xF)"),
}


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_cache()
    yield
    clear_cache()


def test_every_broken_file_has_an_expectation():
    assert sorted(p.stem for p in BROKEN.glob("*.toml")) == sorted(EXPECTED)


def _check(err: ProfileError, file: str, key_path: str, reason: str) -> None:
    assert err.file == file
    assert err.key_path == key_path
    if reason.endswith("..."):
        assert err.reason.startswith(reason[:-3]), err.reason
    else:
        assert err.reason == reason
    assert str(err) == (f"{file}: {key_path}: {err.reason}" if key_path else f"{file}: {err.reason}")


@pytest.mark.parametrize("stem", sorted(EXPECTED))
def test_broken_profile_gives_the_expected_error(stem):
    path = BROKEN / f"{stem}.toml"
    key_path, reason = EXPECTED[stem]
    with pytest.raises(ProfileError) as err:
        load_profile(path)
    _check(err.value, str(path), key_path, reason)
    assert not is_cached(path), "nothing is cached half-loaded"


def test_broken_variant_fails_every_load_of_that_file():
    path = BROKEN / "variant-broken.toml"
    for variant in (None, "R9"):
        with pytest.raises(ProfileError):
            load_profile(path, variant=variant)
        assert not is_cached(path, variant=variant)


def test_extends_cycle_is_reported_with_the_chain():
    a = BROKEN / "cycle" / "cycle-a.toml"
    b = BROKEN / "cycle" / "cycle-b.toml"
    with pytest.raises(ProfileError) as err:
        load_profile(a)
    _check(err.value, str(a), "extends", f"cycle: {a} -> {b} -> {a}")
    assert not is_cached(a)


def test_a_failed_load_leaves_the_shipped_profiles_untouched():
    with pytest.raises(ProfileError):
        load_profile(BROKEN / "extends-missing.toml")
    assert not any(is_cached(name) for name in available_profiles())
    assert load_profile("generic-sbs").name == "generic-sbs"


def test_broken_file_fixed_on_disk_loads_after_the_failure(tmp_path):
    path = tmp_path / "fixme.toml"
    path.write_text('schema_version = 1\nname = "fixme"\ntitle = "Fix me"\n', encoding="utf-8")
    with pytest.raises(ProfileError) as err:
        load_profile(path)
    assert (err.value.key_path, err.value.reason) == ("sources", "missing: every profile cites its documents")
    path.write_text('schema_version = 1\nname = "fixme"\ntitle = "Fix me"\nsources = ["x"]\n', encoding="utf-8")
    assert load_profile(path).title == "Fix me"


@pytest.mark.parametrize(
    ("body", "key_path", "reason"),
    [
        ('[bus]\nkind = "smbus"\naddress = 0x80\n', "bus.address", "128 (0x80) is outside 8..119 (0x8..0x77)"),
        ("[timing]\nbus_hz = -5\n", "timing.bus_hz", "-5 is outside 1000..1000000 (0x3E8..0xF4240)"),
        (
            '[security]\nmethod = "none"\ndefault_unseal_key = [1, 2]\n',
            "security.method",
            "keys or a seal command given but method is 'none'",
        ),
        (
            '[security]\nmethod = "mac_word_pair"\ndefault_unseal_key = [1]\n',
            "security.default_unseal_key",
            "expected two 16-bit words, got 1",
        ),
        (
            '[identity]\ndevice_name_patterns = ["(unclosed"]\n',
            "identity.device_name_patterns[0]",
            "invalid regular expression: ...",
        ),
        (
            "[identity]\ndevice_types = [0x10000]\n",
            "identity.device_types[0]",
            "expected an integer in 0x0..0xFFFF, got int 65536",
        ),
        (
            '[data_flash_access]\nmethod = "mac_block"\nfirst = 0x5000\n',
            "data_flash_access.last",
            "first and last must be given together",
        ),
        (
            'mac = [{ code = 0x0010, name = "Shutdown", access = "w", layout = "X" }]\n',
            "mac[0].access",
            "a write-only subcommand has no result layout",
        ),
        (
            'status_sources = [{ register = "BatteryStatus", size = 2 }]\n',
            "status_sources[0].sbs",
            "give sbs, mac or both",
        ),
        (
            'commands = [{ code = 0x3C, name = "Cell", access = "r", kind = "word", size = 4 }]\n',
            "commands[0].size",
            "a word is 2 bytes, not 4",
        ),
        (
            'data_flash = [{ class = "A", subclass = "B", name = "C", type = "U1", length = 2 }]\n',
            "data_flash[0].length",
            "only S and H entries have a length (U1 is 1 bytes)",
        ),
        (
            '[[layouts]]\nname = "L"\nsize = 4\nfields = []\n',
            "layouts[0].fields",
            "missing: a layout needs at least one field",
        ),
        (
            '[[bitfields]]\nname = "B"\nwidth = 12\n',
            "bitfields[0].width",
            "12 is not a whole number of bytes",
        ),
    ],
)
def test_more_validation_rules(tmp_path, body, key_path, reason):
    path = tmp_path / "rules.toml"
    path.write_text(f'schema_version = 1\nname = "rules"\ntitle = "Rules"\nsources = ["x"]\n{body}', encoding="utf-8")
    with pytest.raises(ProfileError) as err:
        load_profile(path)
    _check(err.value, str(path), key_path, reason)
    assert not is_cached(path)
