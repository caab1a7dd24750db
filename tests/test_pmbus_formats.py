"""PMBus numeric formats: literal vectors from public documents, round trips, every error path.

Vectors: ../shared/reference/pmbus.md §4 tables (LINEAR11, LINEAR16, DIRECT), AMD AM006
"Linear11 Format" (0xEA81 -> 80.125), TI TPS53676 datasheet (0xE804 -> 0.5; 5.25 at exponent -4 ->
0xE054; 1.00 V with VOUT_MODE 0x16 -> 0x0400), TI TPS549B22 (VOUT_MODE 0x17 = linear, exponent -9).
Encoder expectations that differ from those tables (the encoder picks the most precise exponent)
were worked by hand in the comments.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smartbatt.errors import DecodeError, RangeError, SmartBattError
from smartbatt.pmbus import formats
from smartbatt.pmbus.formats import (
    DirectCoefficients,
    VoutModeKind,
    decode_direct,
    decode_ieee_half,
    decode_linear11,
    decode_linear16,
    decode_vout,
    encode_direct,
    encode_ieee_half,
    encode_linear11,
    encode_linear16,
    encode_vout,
    linear11_fields,
    parse_vout_mode,
    vout_mode_byte,
)

# --- LINEAR11 ------------------------------------------------------------------------------------

LINEAR11_VECTORS = [
    (0xE0C0, 12.0),  # pmbus.md §4: N = -4, Y = 192
    (0xF7F6, -2.5),  # N = -2, Y = -10
    (0xF0B5, 45.25),  # N = -2, Y = 181
    (0xB200, 0.5),  # N = -10, Y = 512
    (0x00FA, 250.0),  # N = 0, Y = 250
    (0xD3E8, 15.625),  # N = -6, Y = 1000
    (0xE8C8, 25.0),  # N = -3, Y = 200
    (0x0BB8, 1904.0),  # N = 1, Y = 952
    (0xEA81, 80.125),  # AMD AM006
    (0xE804, 0.5),  # TI TPS53676
    (0xE054, 5.25),  # TI TPS53676 (exponent -4)
    (0x0000, 0.0),
    (0x7BFF, 1023 * 2.0**15),  # largest: N = 15, Y = 1023
    (0x7C00, -1024 * 2.0**15),  # most negative: N = 15, Y = -1024
    (0x8001, 2.0**-16),  # smallest positive: N = -16, Y = 1
]


@pytest.mark.parametrize(("raw", "value"), LINEAR11_VECTORS)
def test_linear11_decode_vectors(raw: int, value: float) -> None:
    assert decode_linear11(raw) == value


def test_linear11_fields() -> None:
    assert linear11_fields(0xE0C0) == (-4, 192)
    assert linear11_fields(0xF7F6) == (-2, -10)
    assert linear11_fields(0x0BB8) == (1, 952)


@pytest.mark.parametrize(
    ("value", "raw"),
    [
        # 12 x 2^6 = 768 fits 1023, 12 x 2^7 = 1536 does not: N = -6 -> (26 << 11) | 768
        (12.0, 0xD300),
        # -2.5 x 2^8 = -640 fits, x 2^9 = -1280 does not: N = -8 -> (24 << 11) | (2048 - 640)
        (-2.5, 0xC580),
        # 5.25 x 2^7 = 672: N = -7 -> (25 << 11) | 672
        (5.25, 0xCAA0),
        (0.0, 0x0000),
        (1023 * 2.0**15, 0x7BFF),
        (-1024 * 2.0**15, 0x7C00),
        # below half of the smallest step 2^-16: rounds to zero
        (2.0**-18, 0x0000),
    ],
)
def test_linear11_encode_picks_the_most_precise_exponent(value: float, raw: int) -> None:
    assert encode_linear11(value) == raw


def test_linear11_encode_rounds_halves_away_from_zero() -> None:
    # 1000.5 needs N = 0 (1000.5 x 2 = 2001 > 1023): Y = 1000.5 rounds to 1001, not to even 1000
    assert linear11_fields(encode_linear11(1000.5)) == (0, 1001)
    assert linear11_fields(encode_linear11(-1000.5)) == (0, -1001)


@pytest.mark.parametrize("bad", [1024 * 2.0**15, -1025 * 2.0**15, 1e300, -1e300, math.inf, -math.inf, math.nan])
def test_linear11_encode_out_of_range(bad: float) -> None:
    with pytest.raises(RangeError):
        encode_linear11(bad)


@pytest.mark.parametrize("bad", ["12", None, True])
def test_linear11_encode_rejects_non_numbers(bad: object) -> None:
    with pytest.raises(RangeError):
        encode_linear11(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [-1, 0x10000, 1.5, "0xE0C0", None, True])
def test_linear11_decode_rejects_non_words(bad: object) -> None:
    with pytest.raises(DecodeError):
        decode_linear11(bad)  # type: ignore[arg-type]


LINEAR11_RANGE = st.floats(min_value=-1024 * 2.0**15, max_value=1023 * 2.0**15, allow_nan=False)


@given(LINEAR11_RANGE)
def test_linear11_round_trip_within_half_a_step(value: float) -> None:
    raw = encode_linear11(value)
    exponent, _ = linear11_fields(raw)
    assert abs(decode_linear11(raw) - value) <= 2.0 ** (exponent - 1) + 2.0**-17


@given(LINEAR11_RANGE)
def test_linear11_no_smaller_exponent_would_fit(value: float) -> None:
    exponent, mantissa = linear11_fields(encode_linear11(value))
    if mantissa == 0 or exponent == formats.EXPONENT_MIN:
        return
    finer = formats.round_half_away(math.ldexp(value, -(exponent - 1)))
    assert not formats.MANTISSA_MIN <= finer <= formats.MANTISSA_MAX


def test_linear11_every_word_survives_decode_encode() -> None:
    # exhaustive: whatever a device sends, re-encoding it gives the same value (normalised form)
    for raw in range(0x10000):
        value = decode_linear11(raw)
        assert decode_linear11(encode_linear11(value)) == value, hex(raw)


@given(st.integers())
def test_linear11_decode_any_int_is_value_or_typed_error(raw: int) -> None:
    try:
        assert isinstance(decode_linear11(raw), float)
    except SmartBattError:
        assert not 0 <= raw <= 0xFFFF


# --- VOUT_MODE and LINEAR16 -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "kind", "exponent", "relative"),
    [
        (0x17, VoutModeKind.LINEAR, -9, False),  # TI TPS549B22
        (0x14, VoutModeKind.LINEAR, -12, False),
        (0x13, VoutModeKind.LINEAR, -13, False),
        (0x16, VoutModeKind.LINEAR, -10, False),  # TI TPS53676
        (0x00, VoutModeKind.LINEAR, 0, False),
        (0x0F, VoutModeKind.LINEAR, 15, False),
        (0x97, VoutModeKind.LINEAR, -9, True),  # bit 7: relative, the mode is still linear
        (0x40, VoutModeKind.DIRECT, 0, False),
        (0x60, VoutModeKind.IEEE_HALF, 0, False),
    ],
)
def test_parse_vout_mode(raw: int, kind: VoutModeKind, exponent: int, relative: bool) -> None:
    mode = parse_vout_mode(raw)
    assert (mode.kind, mode.relative) == (kind, relative)
    if kind is VoutModeKind.LINEAR:
        assert mode.exponent == exponent
    assert vout_mode_byte(mode.kind, mode.exponent if kind is VoutModeKind.LINEAR else 0, mode.relative) == raw


def test_parse_vout_mode_vid() -> None:
    mode = parse_vout_mode(0x21)
    assert (mode.kind, mode.parameter) == (VoutModeKind.VID, 1)
    assert mode.describe() == "VID, code type 1"


@pytest.mark.parametrize("bad", [-1, 0x100, "0x17", None])
def test_parse_vout_mode_rejects_non_bytes(bad: object) -> None:
    with pytest.raises(DecodeError):
        parse_vout_mode(bad)  # type: ignore[arg-type]


def test_vout_mode_byte_rejects_bad_parameters() -> None:
    with pytest.raises(DecodeError):
        vout_mode_byte(VoutModeKind.LINEAR, -17)
    with pytest.raises(RangeError):
        vout_mode_byte(VoutModeKind.VID, 32)


def test_linear16_vectors() -> None:
    assert decode_linear16(0x0266, -9) == 1.19921875  # pmbus.md §4, VOUT_MODE 0x17
    assert encode_linear16(1.8, -12) == 0x1CCD
    assert decode_linear16(0x1CCD, -12) == 1.800048828125
    assert encode_linear16(3.3, -13) == 0x699A
    assert decode_linear16(0x699A, -13) == 3.300048828125
    assert encode_linear16(1.0, -10) == 0x0400  # TI TPS53676, VOUT_MODE 0x16
    assert encode_linear16(0.0, -9) == 0


@pytest.mark.parametrize(
    ("value", "exponent"), [(-0.001, -9), (128.0, -9), (1e300, -16), (math.nan, -9), (math.inf, -9)]
)
def test_linear16_encode_out_of_range(value: float, exponent: int) -> None:
    # -9: steps of 1/512 V, largest 65535/512 = 127.998 V
    with pytest.raises(RangeError):
        encode_linear16(value, exponent)


@pytest.mark.parametrize(("raw", "exponent"), [(0x10000, -9), (-1, -9), (0x100, 16), (0x100, -17)])
def test_linear16_decode_rejects_bad_input(raw: int, exponent: int) -> None:
    with pytest.raises(DecodeError):
        decode_linear16(raw, exponent)


@given(st.integers(formats.EXPONENT_MIN, formats.EXPONENT_MAX), st.data())
def test_linear16_round_trip_within_half_a_step(exponent: int, data: st.DataObject) -> None:
    top = math.ldexp(formats.LINEAR16_MAX, exponent)
    value = data.draw(st.floats(min_value=0.0, max_value=top))
    raw = encode_linear16(value, exponent)
    assert abs(decode_linear16(raw, exponent) - value) <= math.ldexp(1, exponent - 1)


# --- DIRECT -------------------------------------------------------------------------------------

DIRECT_VECTORS = [  # pmbus.md §4 (illustrative coefficients)
    (DirectCoefficients(20, 0, 2), 12.0, 0x5DC0),
    (DirectCoefficients(3000, 0, -1), 1.25, 0x0177),
    (DirectCoefficients(500, 100, 1), -3.0, 0xC950),
]


@pytest.mark.parametrize(("coefficients", "value", "raw"), DIRECT_VECTORS)
def test_direct_vectors(coefficients: DirectCoefficients, value: float, raw: int) -> None:
    assert encode_direct(value, coefficients) == raw
    assert decode_direct(raw, coefficients) == value


def test_direct_rounds_halves_away_from_zero() -> None:
    unit = DirectCoefficients(1, 0, 0)
    assert encode_direct(2.5, unit) == 3
    assert encode_direct(-2.5, unit) == 0xFFFD  # -3
    assert encode_direct(2.4999, unit) == 2


def test_direct_encode_out_of_range() -> None:
    unit = DirectCoefficients(1, 0, 0)
    assert encode_direct(32767, unit) == 0x7FFF
    assert encode_direct(-32768, unit) == 0x8000
    for bad in (32767.5, -32768.6, 1e300, math.nan):
        with pytest.raises(RangeError):
            encode_direct(bad, unit)


@pytest.mark.parametrize(("m", "b", "r"), [(0, 0, 0), (1.5, 0, 0), (1, "0", 0), (1, 0, None), (True, 0, 0)])
def test_direct_coefficients_are_validated(m: object, b: object, r: object) -> None:
    with pytest.raises(RangeError):
        DirectCoefficients(m, b, r)  # type: ignore[arg-type]


@given(
    st.integers(-2000, 2000).filter(bool),
    st.integers(-1000, 1000),
    st.integers(-3, 3),
    st.integers(-0x8000, 0x7FFF),
)
def test_direct_decode_encode_identity(m: int, b: int, r: int, y: int) -> None:
    # every device value decodes to an X that encodes back to the same device value
    coefficients = DirectCoefficients(m, b, r)
    raw = y & 0xFFFF
    assert encode_direct(decode_direct(raw, coefficients), coefficients) == raw


@given(st.integers(), st.integers(-5, 5))
def test_direct_decode_any_int_is_value_or_typed_error(raw: int, r: int) -> None:
    try:
        assert isinstance(decode_direct(raw, DirectCoefficients(7, 3, r)), float)
    except SmartBattError:
        assert not 0 <= raw <= 0xFFFF


# --- IEEE half and decode_vout ------------------------------------------------------------------


def test_ieee_half() -> None:
    assert decode_ieee_half(0x3C00) == 1.0  # binary16: sign 0, exponent 15, fraction 0
    assert decode_ieee_half(0x4266) == 3.19921875
    assert encode_ieee_half(1.0) == 0x3C00
    assert encode_ieee_half(-2.0) == 0xC000
    for bad in (0x7C00, 0xFC00, 0x7E00):  # +inf, -inf, NaN: not readings
        with pytest.raises(DecodeError):
            decode_ieee_half(bad)
    with pytest.raises(RangeError):
        encode_ieee_half(70000.0)


def test_decode_vout_follows_the_mode() -> None:
    assert decode_vout(0x0266, parse_vout_mode(0x17)) == 1.19921875
    assert decode_vout(0x3C00, parse_vout_mode(0x60)) == 1.0
    direct = DirectCoefficients(20, 0, 2)
    assert decode_vout(0x5DC0, parse_vout_mode(0x40), direct) == 12.0
    assert encode_vout(12.0, parse_vout_mode(0x40), direct) == 0x5DC0
    assert encode_vout(3.3, parse_vout_mode(0x13)) == 0x699A
    assert encode_vout(1.0, parse_vout_mode(0x60)) == 0x3C00


@pytest.mark.parametrize(
    ("mode", "fragment"),
    [(0x40, "coefficients"), (0x21, "VID"), (0x97, "relative")],
)
def test_decode_vout_refuses_what_it_cannot_know(mode: int, fragment: str) -> None:
    with pytest.raises(DecodeError, match=fragment):
        decode_vout(0x0266, parse_vout_mode(mode))
    with pytest.raises(DecodeError):
        encode_vout(1.0, parse_vout_mode(mode))


@given(st.integers(), st.integers(0, 0xFF))
def test_decode_vout_any_input_is_value_or_typed_error(raw: int, mode: int) -> None:
    try:
        value = decode_vout(raw, parse_vout_mode(mode), DirectCoefficients(3, 1, -1))
    except SmartBattError:
        return
    assert math.isfinite(value)
