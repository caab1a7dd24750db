"""PMBus numeric data formats: LINEAR11, LINEAR16 with VOUT_MODE, DIRECT (m, b, R), IEEE half.

Pure functions between raw register values (16-bit words, the VOUT_MODE byte) and real values in
the command's unit. Every decoder returns a value or raises :class:`~smartbatt.errors.DecodeError`;
every encoder returns a raw value or raises :class:`~smartbatt.errors.RangeError`. Nothing here
does I/O.

Facts (../shared/reference/pmbus.md §4, which names PMBus Part II §7-§8 and these sources):

* LINEAR11 — bits 15:11 are a 5-bit two's-complement exponent N, bits 10:0 an 11-bit
  two's-complement mantissa Y; value = Y × 2^N (Linux ``pmbus_reg2data_linear``; TI UCD90320 TRM
  SLVUAW9C "data format"; AMD AM006 "Linear11 Format").
* LINEAR16 (ULINEAR16) — an unsigned 16-bit mantissa V with the exponent N from VOUT_MODE bits
  4:0; value = V × 2^N. Used by the output-voltage commands only.
* VOUT_MODE — bit 7: 0 = absolute, 1 = relative (PMBus 1.3); bits 6:5: 00 linear, 01 VID,
  10 DIRECT, 11 IEEE-754 half precision; bits 4:0: the exponent (linear) or the VID code type
  (oxidecomputer/pmbus ``commands.ron`` VOUT_MODE fields; pmbus.md §4 "Correction (review)").
* DIRECT — device value Y (signed 16-bit) and real value X: X = (Y × 10^-R - b) / m and
  Y = round((m × X + b) × 10^R) (QEMU ``pmbus_direct_mode2data``/``pmbus_data2direct_mode``; Linux
  ``pmbus_reg2data_direct``/``pmbus_data2reg_direct``, which round to the closest integer,
  halves away from zero).
* IEEE half — the word is an IEEE-754 binary16 number (PMBus 1.3; Linux
  ``pmbus_reg2data_ieee754``).
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from enum import StrEnum

from smartbatt.errors import DecodeError, RangeError

#: LINEAR11 / LINEAR16 exponent range: a 5-bit two's-complement number.
EXPONENT_MIN, EXPONENT_MAX = -16, 15
#: LINEAR11 mantissa range: an 11-bit two's-complement number.
MANTISSA_MIN, MANTISSA_MAX = -1024, 1023
#: LINEAR16 mantissa range: an unsigned 16-bit number.
LINEAR16_MAX = 0xFFFF
#: DIRECT device value range: a signed 16-bit number.
DIRECT_MIN, DIRECT_MAX = -0x8000, 0x7FFF


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------


def sign_extend(value: int, bits: int) -> int:
    """Interpret the low ``bits`` bits of ``value`` as a two's-complement number."""
    value &= (1 << bits) - 1
    return value - (1 << bits) if value & (1 << (bits - 1)) else value


def round_half_away(x: float) -> int:
    """Round to the closest integer, halves away from zero (as Linux ``DIV_ROUND_CLOSEST``).

    Python's ``round`` rounds halves to even, which would make 2.5 A encode differently from
    what the kernel and device firmware produce.

    :raises RangeError: ``x`` is not finite (an overflowed intermediate result).
    """
    if not math.isfinite(x):
        raise RangeError(f"{x} cannot be rounded to an integer")
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


def check_word(raw: object, what: str = "word") -> int:
    """Return ``raw`` if it is an int in 0..0xFFFF, else raise :class:`DecodeError`."""
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw <= 0xFFFF:
        raise DecodeError(f"{what} {raw!r} is not a 16-bit value (0..0xFFFF)")
    return raw


def check_byte(raw: object, what: str = "byte") -> int:
    """Return ``raw`` if it is an int in 0..0xFF, else raise :class:`DecodeError`."""
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw <= 0xFF:
        raise DecodeError(f"{what} {raw!r} is not a byte (0..0xFF)")
    return raw


def _check_finite(value: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RangeError(f"{what}: {value!r} is not a number")
    if not math.isfinite(value):
        raise RangeError(f"{what}: {value} is not a finite number")
    return float(value)


def _check_exponent(exponent: object) -> int:
    if isinstance(exponent, bool) or not isinstance(exponent, int) or not EXPONENT_MIN <= exponent <= EXPONENT_MAX:
        raise DecodeError(f"exponent {exponent!r} is outside {EXPONENT_MIN}..{EXPONENT_MAX}")
    return exponent


# ------------------------------------------------------------------------------------------------
# LINEAR11
# ------------------------------------------------------------------------------------------------


def linear11_fields(raw: int) -> tuple[int, int]:
    """Split a LINEAR11 word into ``(exponent N, mantissa Y)``. Raises DecodeError if not a word."""
    raw = check_word(raw, "LINEAR11 word")
    return sign_extend(raw >> 11, 5), sign_extend(raw, 11)


def decode_linear11(raw: int) -> float:
    """LINEAR11 word → value (Y × 2^N). Every 16-bit word is valid; exact (no rounding).

    :raises DecodeError: ``raw`` is not an int in 0..0xFFFF.
    """
    exponent, mantissa = linear11_fields(raw)
    return math.ldexp(mantissa, exponent)


def encode_linear11(value: float) -> int:
    """Value → LINEAR11 word, choosing the exponent that keeps the most precision.

    The smallest exponent whose rounded mantissa still fits -1024..1023 is used, so the result
    decodes to within half a mantissa step of ``value``. Zero (and magnitudes below 2^-17,
    which round to zero) encode as 0x0000.

    :raises RangeError: ``value`` is not finite or its magnitude exceeds what LINEAR11 can hold
        (about -1024 × 2^15 … 1023 × 2^15).
    """
    x = _check_finite(value, "LINEAR11")
    if abs(x) > (MANTISSA_MAX + 1) * 2**EXPONENT_MAX:
        # checked first: scaling a huge value by 2^16 below would overflow the float
        raise _linear11_range_error(value)
    for exponent in range(EXPONENT_MIN, EXPONENT_MAX + 1):
        mantissa = round_half_away(math.ldexp(x, -exponent))
        if MANTISSA_MIN <= mantissa <= MANTISSA_MAX:
            if mantissa == 0:
                return 0
            return ((exponent & 0x1F) << 11) | (mantissa & 0x7FF)
    raise _linear11_range_error(value)


def _linear11_range_error(value: float) -> RangeError:
    low, high = MANTISSA_MIN * 2**EXPONENT_MAX, MANTISSA_MAX * 2**EXPONENT_MAX
    return RangeError(f"{value} does not fit LINEAR11 (range {low}..{high})")


# ------------------------------------------------------------------------------------------------
# LINEAR16 and VOUT_MODE
# ------------------------------------------------------------------------------------------------


def decode_linear16(raw: int, exponent: int) -> float:
    """LINEAR16 (ULINEAR16) word with the VOUT_MODE exponent → volts (V × 2^N).

    :raises DecodeError: ``raw`` not in 0..0xFFFF or ``exponent`` not in -16..15.
    """
    return math.ldexp(check_word(raw, "LINEAR16 word"), _check_exponent(exponent))


def encode_linear16(value: float, exponent: int) -> int:
    """Volts → LINEAR16 word for the given VOUT_MODE exponent (rounded to the closest step).

    :raises RangeError: ``value`` negative, not finite, or above 65535 × 2^N.
    :raises DecodeError: ``exponent`` outside -16..15.
    """
    x = _check_finite(value, "LINEAR16")
    exponent = _check_exponent(exponent)
    try:
        mantissa = round_half_away(math.ldexp(x, -exponent))
    except OverflowError:
        mantissa = -1 if x < 0 else LINEAR16_MAX + 1
    if not 0 <= mantissa <= LINEAR16_MAX:
        top = math.ldexp(LINEAR16_MAX, exponent)
        raise RangeError(f"{value} V does not fit LINEAR16 with exponent {exponent} (range 0..{top})")
    return mantissa


class VoutModeKind(StrEnum):
    """VOUT_MODE bits 6:5."""

    LINEAR = "linear"
    VID = "vid"
    DIRECT = "direct"
    IEEE_HALF = "ieee_half"


_MODE_BY_BITS = (VoutModeKind.LINEAR, VoutModeKind.VID, VoutModeKind.DIRECT, VoutModeKind.IEEE_HALF)


@dataclass(frozen=True)
class VoutMode:
    """A decoded VOUT_MODE byte (0x20)."""

    #: the byte as read.
    raw: int
    kind: VoutModeKind
    #: bits 4:0 as an unsigned number: the exponent's bit pattern (linear) or the VID code type.
    parameter: int
    #: bit 7 (PMBus 1.3): VOUT commands are relative adjustments; their format is device specific.
    relative: bool

    @property
    def exponent(self) -> int:
        """The LINEAR16 exponent N (bits 4:0 as a signed number); meaningful in linear mode."""
        return sign_extend(self.parameter, 5)

    def describe(self) -> str:
        """``linear, exponent -9`` / ``VID, code type 1`` / ``DIRECT`` / ``IEEE half``."""
        if self.kind is VoutModeKind.LINEAR:
            text = f"linear, exponent {self.exponent}"
        elif self.kind is VoutModeKind.VID:
            text = f"VID, code type {self.parameter}"
        elif self.kind is VoutModeKind.DIRECT:
            text = "DIRECT"
        else:
            text = "IEEE half"
        return text + (", relative" if self.relative else "")


def parse_vout_mode(raw: int) -> VoutMode:
    """Decode VOUT_MODE. The mode is bits 6:5, not 7:5 (a 0xE0 mask would turn a relative
    linear device into an unknown mode; pmbus.md §4 correction).

    :raises DecodeError: ``raw`` is not a byte.
    """
    raw = check_byte(raw, "VOUT_MODE")
    return VoutMode(raw=raw, kind=_MODE_BY_BITS[(raw >> 5) & 3], parameter=raw & 0x1F, relative=bool(raw & 0x80))


def vout_mode_byte(kind: VoutModeKind, parameter: int = 0, relative: bool = False) -> int:
    """Build a VOUT_MODE byte; ``parameter`` is the signed exponent for linear mode (-16..15)
    or the VID code type (0..31)."""
    if kind is VoutModeKind.LINEAR:
        parameter = _check_exponent(parameter) & 0x1F
    elif not 0 <= parameter <= 0x1F:
        raise RangeError(f"VOUT_MODE parameter {parameter} is outside 0..31")
    return (0x80 if relative else 0) | (_MODE_BY_BITS.index(kind) << 5) | parameter


# ------------------------------------------------------------------------------------------------
# DIRECT
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DirectCoefficients:
    """DIRECT-format coefficients of one command (from the datasheet or COEFFICIENTS 0x30).

    X = (Y × 10^-R - b) / m. ``m`` is the slope, ``b`` the offset, ``R`` the decimal exponent.

    :raises RangeError: a coefficient is not an integer, or ``m`` is 0 (nothing decodes).
    """

    m: int
    b: int
    R: int  # upper case: the PMBus specification's name

    def __post_init__(self) -> None:
        for name in ("m", "b", "R"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise RangeError(f"DIRECT coefficient {name}={value!r} is not an integer")
        if self.m == 0:
            raise RangeError("DIRECT coefficient m must not be 0")


def _times_ten_power(x: float, power: int) -> float:
    # multiply or divide by an exact integer power of ten: 24000 / 100 is exactly 240.0,
    # while 24000 * 0.01 is not (0.01 has no binary representation)
    scale = float(10 ** abs(power))
    return x * scale if power >= 0 else x / scale


def decode_direct(raw: int, coefficients: DirectCoefficients) -> float:
    """DIRECT word (signed 16-bit device value Y) → real value X = (Y × 10^-R - b) / m.

    :raises DecodeError: ``raw`` is not in 0..0xFFFF.
    """
    y = sign_extend(check_word(raw, "DIRECT word"), 16)
    c = coefficients
    return (_times_ten_power(y, -c.R) - c.b) / c.m


def encode_direct(value: float, coefficients: DirectCoefficients) -> int:
    """Real value → DIRECT word: Y = round((m × X + b) × 10^R), halves away from zero.

    Returns Y as an unsigned 16-bit word (two's complement for negative Y).

    :raises RangeError: ``value`` not finite, or Y outside -32768..32767.
    """
    x = _check_finite(value, "DIRECT")
    c = coefficients
    y = round_half_away(_times_ten_power(c.m * x + c.b, c.R))
    if not DIRECT_MIN <= y <= DIRECT_MAX:
        raise RangeError(f"{value} gives DIRECT device value {y}, outside {DIRECT_MIN}..{DIRECT_MAX}")
    return y & 0xFFFF


# ------------------------------------------------------------------------------------------------
# IEEE-754 half precision (PMBus 1.3)
# ------------------------------------------------------------------------------------------------


def decode_ieee_half(raw: int) -> float:
    """IEEE-754 binary16 word → value.

    :raises DecodeError: not a 16-bit word, or an infinity/NaN (no reading is infinite).
    """
    value: float = struct.unpack("<e", check_word(raw, "IEEE half word").to_bytes(2, "little"))[0]
    if not math.isfinite(value):
        raise DecodeError(f"IEEE half word 0x{raw:04X} is {value}, not a reading")
    return value


def encode_ieee_half(value: float) -> int:
    """Value → IEEE-754 binary16 word (rounded to nearest).

    :raises RangeError: not finite or beyond ±65504.
    """
    x = _check_finite(value, "IEEE half")
    try:
        packed = struct.pack("<e", x)
    except OverflowError:
        raise RangeError(f"{value} is beyond the IEEE half range ±65504") from None
    return int.from_bytes(packed, "little")


# ------------------------------------------------------------------------------------------------
# output voltage, whatever VOUT_MODE says
# ------------------------------------------------------------------------------------------------


def decode_vout(raw: int, mode: VoutMode, coefficients: DirectCoefficients | None = None) -> float:
    """Decode a VOUT-format word (READ_VOUT, VOUT_COMMAND, VOUT limits) as VOUT_MODE says.

    :param coefficients: DIRECT coefficients of this command; required when the mode is DIRECT.
    :raises DecodeError: the word is not 16-bit; the mode is DIRECT and no coefficients were
        given; the mode is VID (VID tables are specific to the VR standard the device follows)
        or relative (its data format is device specific).
    """
    raw = check_word(raw, "VOUT word")
    if mode.relative:
        raise DecodeError(
            f"VOUT_MODE 0x{mode.raw:02X} selects relative mode (PMBus 1.3 bit 7); the format of relative "
            "VOUT values is device specific — check the datasheet"
        )
    if mode.kind is VoutModeKind.LINEAR:
        return decode_linear16(raw, mode.exponent)
    if mode.kind is VoutModeKind.DIRECT:
        if coefficients is None:
            raise DecodeError(
                "VOUT_MODE selects DIRECT format: give this command's coefficients (m, b, R) from the datasheet"
            )
        return decode_direct(raw, coefficients)
    if mode.kind is VoutModeKind.IEEE_HALF:
        return decode_ieee_half(raw)
    raise DecodeError(
        f"VOUT_MODE selects VID format (code type {mode.parameter}): VID codes are not decoded, the "
        "table depends on the VR standard the device follows"
    )


def encode_vout(value: float, mode: VoutMode, coefficients: DirectCoefficients | None = None) -> int:
    """Encode volts as VOUT_MODE says (the inverse of :func:`decode_vout`).

    :raises RangeError: the value does not fit.
    :raises DecodeError: the mode cannot be encoded (VID, relative, DIRECT without coefficients).
    """
    if mode.relative or mode.kind is VoutModeKind.VID:
        raise DecodeError(f"cannot encode a voltage for VOUT_MODE 0x{mode.raw:02X} ({mode.describe()})")
    if mode.kind is VoutModeKind.LINEAR:
        return encode_linear16(value, mode.exponent)
    if mode.kind is VoutModeKind.DIRECT:
        if coefficients is None:
            raise DecodeError("VOUT_MODE selects DIRECT format: coefficients (m, b, R) are needed")
        return encode_direct(value, coefficients)
    return encode_ieee_half(value)
