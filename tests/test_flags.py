"""Status-register decoding: every bit of every bit map of every shipped profile round-trips."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smartbatt.errors import DecodeError, UnknownCommand
from smartbatt.gauge.flags import decode, diff, encode, to_int
from smartbatt.profiles.loader import available_profiles, load_profile
from smartbatt.profiles.schema import BitField


def _all_bitfields() -> list[tuple[str, BitField]]:
    """Every distinct bit map of every profile and variant (shared ones once)."""
    out: list[tuple[str, BitField]] = []
    for name in available_profiles():
        base = load_profile(name)
        for variant in [None, *(v.name for v in base.variants)]:
            profile = load_profile(name, variant=variant)
            label = f"{name}{'-' + variant if variant else ''}"
            for bf in profile.bitfields.values():
                if not any(bf == other for _, other in out):
                    out.append((label, bf))
    return out


BITFIELDS = _all_bitfields()
FLAG_CASES = [(label, bf, f) for label, bf in BITFIELDS for f in bf.flags]
GROUP_CASES = [(label, bf, g, v) for label, bf in BITFIELDS for g in bf.groups for v in range(1 << g.width)]


def test_there_is_something_to_test():
    registers = {bf.name for _, bf in BITFIELDS}
    for reg in (
        "SafetyAlert",
        "SafetyStatus",
        "PFAlert",
        "PFStatus",
        "OperationStatus",
        "ChargingStatus",
        "GaugingStatus",
        "ManufacturingStatus",
        "BatteryStatus",
    ):
        assert reg in registers
    assert len(FLAG_CASES) > 500


@pytest.mark.parametrize(
    ("label", "bitfield", "flag"), FLAG_CASES, ids=[f"{lab}-{bf.name}-{f.name}" for lab, bf, f in FLAG_CASES]
)
def test_one_bit_set_decodes_to_exactly_that_flag(label, bitfield, flag):
    raw = 1 << flag.bit
    decoded = decode(bitfield, raw)
    assert [f.name for f in decoded.active] == [flag.name]
    assert decoded[flag.name] is True
    assert decoded.unknown_bits == ()
    assert all(g.value == 0 for g in decoded.groups)
    assert encode(bitfield, [flag.name]) == raw
    block = raw.to_bytes(bitfield.width // 8, "little")
    assert decode(bitfield, block) == decoded  # block bytes decode like the integer
    assert flag.label, f"{label} {bitfield.name}.{flag.name} has no label"


@pytest.mark.parametrize(
    ("label", "bitfield", "group", "value"),
    GROUP_CASES,
    ids=[f"{lab}-{bf.name}-{g.name}={v}" for lab, bf, g, v in GROUP_CASES],
)
def test_every_group_value_round_trips(label, bitfield, group, value):
    raw = encode(bitfield, groups={group.name: value})
    assert raw == value << group.low
    decoded = decode(bitfield, raw)
    state = decoded.group(group.name)
    assert state.value == value
    assert decoded.active == ()
    if group.values:
        assert state.meaning == group.values.get(value, f"reserved ({value})")
    else:
        assert state.meaning == str(value)


@pytest.mark.parametrize(("label", "bitfield"), BITFIELDS, ids=[f"{lab}-{bf.name}" for lab, bf in BITFIELDS])
def test_all_described_bits_set_and_reserved_bits_reported(label, bitfield):
    everything = (1 << bitfield.width) - 1
    decoded = decode(bitfield, everything)
    assert {f.name for f in decoded.active} == {f.name for f in bitfield.flags}
    described = bitfield.described_mask
    assert decoded.unknown_bits == tuple(b for b in range(bitfield.width) if not described >> b & 1)


def test_operation_status_security_group_decodes_sealed_state():
    op = load_profile("bq40z50").bitfields["OperationStatus"]
    sealed = decode(op, bytes([0x07, 0x03, 0x00, 0x00]))  # PRES, DSG, CHG; SEC = 11
    assert sealed.group("SEC").meaning == "Sealed"
    assert [f.name for f in sealed.active] == ["PRES", "DSG", "CHG"]
    assert decode(op, 1 << 8).group("SEC").meaning == "Full access"
    assert decode(op, 0).group("SEC").meaning == "reserved (0)"


def test_battery_status_error_code_group():
    bs = load_profile("generic-sbs").bitfields["BatteryStatus"]
    decoded = decode(bs, 0x00C1)  # INIT, DSG, EC=1
    assert decoded.group("EC").meaning == "Busy"
    assert [f.name for f in decoded.active] == ["DSG", "INIT"]
    assert decode(bs, 0x000F).group("EC").meaning == "reserved (15)"


def test_short_block_decodes_known_bits_and_long_block_reports_extra_bits():
    cs = load_profile("bq40z50").bitfields["ChargingStatus"]
    assert decode(cs, b"\x08").active[0].name == "RT"  # 1 of 3 bytes
    long = decode(cs, bytes([0x08, 0x00, 0x00, 0x80]))  # 4th byte beyond the 24-bit map
    assert [f.name for f in long.active] == ["RT"]
    assert long.unknown_bits == (31,)


def test_diff_reports_raised_and_cleared_flags_and_group_changes():
    op = load_profile("bq40z50").bitfields["OperationStatus"]
    old = decode(op, encode(op, ["DSG", "CHG"], {"SEC": 3}))
    new = decode(op, encode(op, ["DSG", "XCHG"], {"SEC": 2}) | 1 << 30)
    changes = diff(old, new)
    assert [(c.name, c.old, c.new) for c in changes] == [
        ("CHG", 1, 0),
        ("SEC", 3, 2),
        ("XCHG", 0, 1),
        ("bit30", 0, 1),
    ]
    assert [c.raised for c in changes] == [False, False, True, True]
    assert diff(new, new) == ()


def test_diff_refuses_different_registers():
    bq = load_profile("bq40z50")
    with pytest.raises(DecodeError, match="cannot compare"):
        diff(decode(bq.bitfields["SafetyStatus"], 0), decode(bq.bitfields["PFStatus"], 0))


@pytest.mark.parametrize("value", [-1, "0x10", 1.5, None, True])
def test_bad_values_raise_decode_error(value):
    with pytest.raises(DecodeError):
        to_int(value, 16)


def test_unknown_names_raise_unknown_command():
    ss = load_profile("bq40z50").bitfields["SafetyStatus"]
    with pytest.raises(UnknownCommand, match="no flag 'NOPE'"):
        encode(ss, ["NOPE"])
    with pytest.raises(UnknownCommand, match="no bit group 'SEC'"):
        encode(ss, groups={"SEC": 1})
    with pytest.raises(UnknownCommand, match="no flag 'NOPE'"):
        _ = decode(ss, 0)["NOPE"]
    with pytest.raises(UnknownCommand):
        decode(ss, 0).group("SEC")
    op = load_profile("bq40z50").bitfields["OperationStatus"]
    with pytest.raises(DecodeError, match="does not fit 2 bits"):
        encode(op, groups={"SEC": 4})


@given(st.integers(min_value=0, max_value=(1 << 40) - 1))
def test_any_value_decodes_and_re_encodes(value):
    op = load_profile("bq40z50", variant="R3").bitfields["OperationStatus"]
    decoded = decode(op, value)
    rebuilt = encode(op, [f.name for f in decoded.active], {g.name: g.value for g in decoded.groups})
    unknown = sum(1 << b for b in decoded.unknown_bits)
    assert rebuilt | unknown == value
    assert rebuilt & unknown == 0
