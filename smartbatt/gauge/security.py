"""Seal, unseal, full access and SHA-1 authentication of TI gauges.

Timing the hardware demands (ti_gauges.md §6; TI SLUUAQ3A security pages; TI E2E 664067): the two
key words go as two Write Word commands to ManufacturerAccess (0x00), the second within
``key_window_s`` (4 s) of the first, with no other traffic to the gauge in between. Both words are
sent inside :meth:`Transport.redacted` — the bus is held (no other thread's transaction can slip in
between) and the transaction log gets the two writes without their data. Afterwards the security
bits are read back (OperationStatus SEC[1:0]) and a key that changed nothing raises
:class:`~smartbatt.errors.SecurityError`.

Keys are never logged, printed, pickled or written to disk: :class:`Key` hides its words in
``repr``/``str``, refuses to pickle, and no message here includes a key.

Key text (:meth:`Key.parse`): ``WORD1:WORD2`` — two 16-bit hex words in the order they are sent
(``0414:3672``, ``0x0414:0x3672``) — or one 32-bit hex number whose high word is sent first
(``0x04143672`` sends 0x0414 then 0x3672). A document that prints a key as one 32-bit number may
mean either order; the ``WORD1:WORD2`` form is unambiguous.

SHA-1 authentication (:func:`authenticate`) follows TI's published method (TI E2E
``Authentication.txt`` quoting the BQ78350-R1 TRM steps; TI E2E FAQ 886762 for bq28z610): the host
writes a 160-bit random challenge to Authenticate()/ManufacturerInput() (0x2F) least significant
byte first, waits 250 ms, reads the 20-byte response (also LSB first) and compares it with
SHA1(key ‖ SHA1(key ‖ challenge)) — TI's two-pass construction, not RFC 2104 HMAC.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from typing import NoReturn

from smartbatt.errors import DecodeError, SecurityError
from smartbatt.gauge.gauge import Gauge, SecurityState
from smartbatt.gauge.mac import MANUFACTURER_ACCESS
from smartbatt.profiles.schema import SecurityLevel, SecurityMethod

__all__ = [
    "AUTHENTICATE",
    "KEY_FORMAT_HELP",
    "Key",
    "authenticate",
    "full_access",
    "seal",
    "ti_sha1_hmac",
    "unseal",
]

#: Authenticate() / ManufacturerInput() (ti_gauges.md §2).
AUTHENTICATE = 0x2F
#: TI: "Wait 250 ms, then read ManufacturerInput() for HMAC3" (BQ78350-R1 TRM via TI E2E).
AUTH_WAIT_S = 0.25
#: waits before each read-back of the security bits after a key or seal (s). The first read comes at
#: once; RRC's BQ40Z50R1 driver reads 100 ms after SealDevice, so the last try is well after that.
CONFIRM_WAITS_S = (0.0, 0.05, 0.1, 0.25)

KEY_FORMAT_HELP = (
    "a key is two 16-bit hex words in the order they are sent, WORD1:WORD2 (e.g. 0414:3672), or one "
    "32-bit hex number whose high word is sent first (0x04143672 sends 0x0414, then 0x3672)"
)

_WORD = r"(?:0[xX])?([0-9A-Fa-f]{1,4})"
_PAIR_RE = re.compile(rf"^{_WORD}\s*[:,\s]\s*{_WORD}$")
_LONG_RE = re.compile(r"^(?:0[xX])?([0-9A-Fa-f]{8})$")


class Key:
    """An unseal or full-access key: two 16-bit words, sent first word first.

    ``repr``/``str`` never show the words and the object refuses to pickle, so a key cannot end up
    in a log, a traceback's locals summary, a GUI message or a file by accident.
    """

    __slots__ = ("_words",)

    def __init__(self, first: int, second: int) -> None:
        for word in (first, second):
            if isinstance(word, bool) or not isinstance(word, int) or not 0 <= word <= 0xFFFF:
                raise DecodeError("each key word must be an integer 0..0xFFFF")
        self._words = (first, second)

    @classmethod
    def parse(cls, text: str) -> Key:
        """A key from text (see :data:`KEY_FORMAT_HELP`).

        :raises DecodeError: not a key; the message never repeats the text.
        """
        text = text.strip()
        pair = _PAIR_RE.match(text)
        if pair is not None:
            return cls(int(pair.group(1), 16), int(pair.group(2), 16))
        long = _LONG_RE.match(text)
        if long is not None:
            value = int(long.group(1), 16)
            return cls(value >> 16, value & 0xFFFF)
        raise DecodeError(f"not a key: {KEY_FORMAT_HELP}")

    @property
    def words(self) -> tuple[int, int]:
        """The two words, in sending order (for the code that sends them, nothing else)."""
        return self._words

    def __repr__(self) -> str:
        return "Key(****:****)"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("security keys are not pickled (they must never reach a file)")


def _require_scheme(gauge: Gauge) -> None:
    if gauge.profile.security.method is not SecurityMethod.MAC_WORD_PAIR:
        raise SecurityError(f"{gauge.profile.name} has no known security scheme; smartbatt sends no keys to it")


def _key(key: Key | str | None, default: tuple[int, int] | None, what: str, gauge: Gauge) -> Key:
    if isinstance(key, Key):
        return key
    if isinstance(key, str):
        return Key.parse(key)
    if default is None:
        raise SecurityError(f"no {what} key given and {gauge.profile.name} publishes no default")
    return Key(*default)


def _readable_state(gauge: Gauge, action: str) -> SecurityState:
    state = gauge.security_state()
    if state.level is None:
        raise SecurityError(
            f"the security state cannot be read ({state.source}), so a {action} could not be confirmed; no key was sent"
        )
    return state


def _send_key(gauge: Gauge, key: Key) -> None:
    """Both key words back to back, bus held, data kept out of the log, window checked."""
    battery = gauge.battery
    transport = battery.transport
    pec = battery.pec  # decided before the sequence: deciding may itself need a transaction
    window = gauge.profile.security.key_window_s
    first, second = key.words
    with transport.redacted():
        started = time.monotonic()
        transport.write_word(battery.address, MANUFACTURER_ACCESS, first, pec=pec)
        transport.write_word(battery.address, MANUFACTURER_ACCESS, second, pec=pec)
        elapsed = time.monotonic() - started
    if window is not None and elapsed > window:
        raise SecurityError(
            f"the two key words were {elapsed:.1f} s apart; {gauge.profile.name} needs them within {window:g} s "
            "(a slow or busy adapter?)"
        )


def _confirm(gauge: Gauge, wanted: set[SecurityLevel]) -> SecurityState:
    """Read the state back until it is one of ``wanted`` or the waits are used up."""
    for wait in CONFIRM_WAITS_S:
        if wait:
            gauge.sleep(wait)
        state = gauge.security_state()
        if state.level in wanted:
            return state
    return state


def unseal(gauge: Gauge, key: Key | str | None = None) -> SecurityState:
    """SEALED → UNSEALED with ``key`` (default: the profile's published unseal key).

    Nothing is sent when the gauge is already UNSEALED or in FULL ACCESS.

    :returns: the security state read back.
    :raises SecurityError: wrong key ("wrong key: the gauge is still SEALED"), the words could not be
        sent within the window, no key known, or the state cannot be read to confirm.
    :raises DecodeError: ``key`` text is not a key.
    :raises TransportError: the bus failed.
    """
    _require_scheme(gauge)
    chosen = _key(key, gauge.profile.security.default_unseal_key, "unseal", gauge)
    before = _readable_state(gauge, "unseal")
    if before.level in (SecurityLevel.UNSEALED, SecurityLevel.FULL_ACCESS):
        return before
    _send_key(gauge, chosen)
    after = _confirm(gauge, {SecurityLevel.UNSEALED, SecurityLevel.FULL_ACCESS})
    if after.level not in (SecurityLevel.UNSEALED, SecurityLevel.FULL_ACCESS):
        hint = "" if key is None else f" (check the word order: {KEY_FORMAT_HELP})"
        raise SecurityError(f"wrong key: the gauge is still {after}{hint}", address=gauge.address)
    return after


def full_access(gauge: Gauge, key: Key | str | None = None) -> SecurityState:
    """UNSEALED → FULL ACCESS with ``key`` (default: the profile's published full-access key).

    :raises SecurityError: the gauge is SEALED (unseal first), wrong key, no key known, state unreadable.
    :raises DecodeError: ``key`` text is not a key.
    """
    _require_scheme(gauge)
    chosen = _key(key, gauge.profile.security.default_full_access_key, "full-access", gauge)
    before = _readable_state(gauge, "full access")
    if before.level is SecurityLevel.FULL_ACCESS:
        return before
    if before.level is SecurityLevel.SEALED:
        raise SecurityError(
            "the gauge is SEALED: unseal it first (smartbatt unseal), then request full access", address=gauge.address
        )
    _send_key(gauge, chosen)
    after = _confirm(gauge, {SecurityLevel.FULL_ACCESS})
    if after.level is not SecurityLevel.FULL_ACCESS:
        hint = "" if key is None else f" (check the word order: {KEY_FORMAT_HELP})"
        raise SecurityError(f"wrong key: the gauge is still {after}{hint}", address=gauge.address)
    return after


def seal(gauge: Gauge) -> SecurityState:
    """Seal the gauge (the profile's seal subcommand, MAC 0x0030 on bq40z parts) and confirm it.

    :raises SecurityError: no seal command known, or the gauge did not seal.
    """
    _require_scheme(gauge)
    sec = gauge.profile.security
    if sec.seal_mac is None:
        raise SecurityError(f"{gauge.profile.name} publishes no seal command")
    before = gauge.security_state()
    if before.level is SecurityLevel.SEALED:
        return before
    gauge.mac.write(sec.seal_mac)
    after = _confirm(gauge, {SecurityLevel.SEALED})
    if after.level is not SecurityLevel.SEALED:
        raise SecurityError(f"the gauge did not seal: it is still {after}", address=gauge.address)
    return after


def ti_sha1_hmac(key: bytes, message: bytes) -> bytes:
    """TI's authentication digest SHA1(key ‖ SHA1(key ‖ message)), both in TI's written byte order."""
    return hashlib.sha1(key + hashlib.sha1(key + message).digest()).digest()


def authenticate(gauge: Gauge, key: bytes, challenge: bytes | None = None) -> bytes:
    """Check that the pack knows ``key`` (SHA-1 challenge/response; the key never goes on the bus).

    :param key: the 16-byte authentication key, in TI's written order.
    :param challenge: 20 bytes; a fresh random one by default.
    :returns: the response digest (20 bytes, TI's written order).
    :raises SecurityError: the profile has no SHA-1 authentication, or the response does not match.
    :raises DecodeError: key or challenge of the wrong size.
    :raises TransportError: the bus failed.
    """
    profile = gauge.profile
    if not profile.security.sha1_authentication or not any(c.code == AUTHENTICATE for c in profile.commands):
        raise SecurityError(f"{profile.name} has no SHA-1 authentication (or no Authenticate() command)")
    if len(key) != 16:
        raise DecodeError("an authentication key is 16 bytes (128 bits)")
    message = secrets.token_bytes(20) if challenge is None else bytes(challenge)
    if len(message) != 20:
        raise DecodeError("an authentication challenge is 20 bytes (160 bits)")
    battery = gauge.battery
    pec = battery.pec
    battery.transport.write_block(battery.address, AUTHENTICATE, bytes(reversed(message)), pec=pec)
    gauge.sleep(AUTH_WAIT_S)
    response = bytes(reversed(battery.transport.read_block(battery.address, AUTHENTICATE, pec=pec)))
    if len(response) != 20 or not secrets.compare_digest(response, ti_sha1_hmac(key, message)):
        raise SecurityError(
            "authentication failed: the pack's response does not match the key (another key, or not a genuine pack)",
            address=battery.address,
            command=AUTHENTICATE,
        )
    return response
