"""Seal, unseal, full access, keys that never leak, SHA-1 authentication."""

from __future__ import annotations

import pickle
from collections.abc import Iterator

import pytest

from smartbatt.emulator.device import SecurityKeys
from smartbatt.emulator.device import ti_sha1_hmac as device_hmac
from smartbatt.errors import DecodeError, NoAcknowledge, SecurityError
from smartbatt.gauge import security
from smartbatt.gauge.gauge import Gauge
from smartbatt.gauge.security import Key
from smartbatt.profiles.schema import SecurityLevel
from smartbatt.sbs.battery import Battery
from smartbatt.transports import TransactionRecord, Transport, open_transport
from tests.gauge_helpers import emulator, log, no_sleep

#: a non-default key, to be looked for in everything that could leak it.
SECRET = (0x5A17, 0xC0DE)
SECRET_TEXT = "5A17:C0DE"


def key_or_command_writes(records: list[TransactionRecord]) -> list[TransactionRecord]:
    """Word writes to ManufacturerAccess: key words and plain subcommands (reads of the state use
    0x44 block writes that only select a subcommand to read)."""
    return [r for r in records if r.protocol.value == "write_word" and r.command == 0x00]


def gauge_on(t: Transport, chip: str = "bq40z50") -> Gauge:
    return Gauge(Battery(t), chip, sleep=no_sleep)


@pytest.fixture
def sealed() -> Iterator[Transport]:
    with open_transport("emulated:bq40z50?speed=0") as t:
        yield t


# --- keys ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["0414:3672", "0x0414:0x3672", "414:3672", "0414 3672", "0414,3672", "0x04143672", "04143672", " 0414:3672 "],
)
def test_key_formats(text: str) -> None:
    assert Key.parse(text).words == (0x0414, 0x3672)


@pytest.mark.parametrize("text", ["", "1234", "0x1234567", "1234:5678:9abc", "zzzz:3672", "0x10000:1", "-1:2"])
def test_bad_key_text_is_refused_without_repeating_it(text: str) -> None:
    with pytest.raises(DecodeError) as err:
        Key.parse(text)
    assert "WORD1:WORD2" in str(err.value)
    if len(text.strip()) > 3:
        assert text.strip() not in str(err.value)


def test_a_key_never_shows_or_pickles() -> None:
    key = Key(*SECRET)
    for shown in (repr(key), str(key), f"{key}", repr([key])):
        assert "5A17" not in shown.upper() and "C0DE" not in shown.upper()
        assert str(SECRET[0]) not in shown
    with pytest.raises(TypeError, match="not pickled"):
        pickle.dumps(key)
    with pytest.raises(DecodeError):
        Key(0x10000, 0)


# --- unseal / full access / seal --------------------------------------------------------------------


def test_unseal_full_access_and_seal_with_the_default_keys(sealed: Transport) -> None:
    gauge = gauge_on(sealed)
    assert security.unseal(gauge).level is SecurityLevel.UNSEALED
    assert security.full_access(gauge).level is SecurityLevel.FULL_ACCESS
    assert security.seal(gauge).level is SecurityLevel.SEALED
    assert gauge.security_state().level is SecurityLevel.SEALED


def test_the_two_key_words_go_back_to_back_held_and_redacted(sealed: Transport) -> None:
    emulator(sealed).keys = SecurityKeys(unseal=SECRET)
    gauge = gauge_on(sealed)
    gauge.security_state()
    records = log(sealed)
    security.unseal(gauge, SECRET_TEXT)
    writes = [i for i, r in enumerate(records) if r.protocol.value == "write_word" and r.command == 0x00]
    assert len(writes) == 2 and writes[1] == writes[0] + 1  # nothing in between
    for i in writes:
        assert records[i].redacted and records[i].data_out == b"" and "[redacted]" in records[i].summary()
    assert gauge.security_state().level is SecurityLevel.UNSEALED


def test_keys_never_reach_logs_records_or_messages(sealed: Transport) -> None:
    emulator(sealed).keys = SecurityKeys(unseal=SECRET)
    gauge = gauge_on(sealed)
    records = log(sealed)
    wrong = "5A17:C0DF"
    with pytest.raises(SecurityError) as err:
        security.unseal(gauge, wrong)
    security.unseal(gauge, SECRET_TEXT)
    key_bytes = [SECRET[0].to_bytes(2, "little"), SECRET[1].to_bytes(2, "little"), b"\x17\x5a", b"\xdf\xc0"]
    for r in records:
        blob = r.data_out + r.data_in
        assert not any(k in blob for k in key_bytes), r.summary()
        assert "5A 17" not in r.summary().upper() and "C0 DE" not in r.summary().upper()
    text = str(err.value) + repr(err.value) + str(err.value.__dict__)
    for needle in ("5A17", "C0DF", "C0DE", str(SECRET[0]), "23063"):
        assert needle not in text.upper()


def test_a_wrong_key_does_not_unseal_and_says_so(sealed: Transport) -> None:
    gauge = gauge_on(sealed)
    with pytest.raises(SecurityError, match="wrong key: the gauge is still SEALED"):
        security.unseal(gauge, "0414:3673")
    assert gauge.security_state().level is SecurityLevel.SEALED
    with pytest.raises(SecurityError, match="wrong key: the gauge is still SEALED"):
        security.unseal(gauge, "0x36720414")  # the words in the other order
    assert emulator(sealed).security.name == "SEALED"


def test_a_wrong_key_is_confirmed_several_times_before_giving_up(sealed: Transport) -> None:
    waits: list[float] = []
    gauge = Gauge(Battery(sealed), "bq40z50", sleep=waits.append)
    with pytest.raises(SecurityError):
        security.unseal(gauge, "1111:2222")
    assert waits == [w for w in security.CONFIRM_WAITS_S if w]  # each read-back after its wait


def test_nothing_is_sent_when_already_unsealed() -> None:
    with open_transport("emulated:bq40z50?speed=0&security=unsealed") as t:
        gauge = gauge_on(t)
        records = log(t)
        assert security.unseal(gauge).level is SecurityLevel.UNSEALED
        assert key_or_command_writes(records) == []


def test_full_access_needs_unsealed_first(sealed: Transport) -> None:
    gauge = gauge_on(sealed)
    records = log(sealed)
    with pytest.raises(SecurityError, match="SEALED: unseal it first"):
        security.full_access(gauge)
    assert key_or_command_writes(records) == []
    security.unseal(gauge)
    with pytest.raises(SecurityError, match="wrong key: the gauge is still UNSEALED"):
        security.full_access(gauge, "ffff:fffe")


def test_key_words_spread_over_the_window_are_refused(sealed: Transport, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([100.0, 105.0])  # a slow adapter: 5 s between the two words
    monkeypatch.setattr("smartbatt.gauge.security.time.monotonic", lambda: next(clock))
    gauge = gauge_on(sealed)
    with pytest.raises(SecurityError, match=r"5.0 s apart; bq40z50 needs them within 4 s"):
        security.unseal(gauge)


def test_a_bus_error_during_the_key_is_a_transport_error_without_the_key(
    sealed: Transport, monkeypatch: pytest.MonkeyPatch
) -> None:
    gauge = gauge_on(sealed)
    state = gauge.security_state()
    monkeypatch.setattr(gauge, "security_state", lambda: state)  # the fault must hit the key itself
    sealed.faults.nack_every = 1  # type: ignore[attr-defined]
    records = log(sealed)
    with pytest.raises(NoAcknowledge) as err:
        security.unseal(gauge, "0414:3672")
    assert [(r.command, r.redacted, r.data_out) for r in records] == [(0x00, True, b"")]
    assert err.value.record is not None and err.value.record.redacted
    assert "0414" not in str(err.value) and "14 04" not in str(err.value)


def test_seal_confirms_and_is_a_no_op_when_sealed(sealed: Transport) -> None:
    gauge = gauge_on(sealed)
    records = log(sealed)
    assert security.seal(gauge).level is SecurityLevel.SEALED
    assert key_or_command_writes(records) == []


def test_a_seal_that_does_not_take_is_reported() -> None:
    with open_transport("emulated:bq40z50?speed=0&security=unsealed") as t:
        em = emulator(t)
        em.mac_table.pop(0x0030)  # a firmware that ignores SealDevice
        with pytest.raises(SecurityError, match="did not seal: it is still UNSEALED"):
            security.seal(gauge_on(t))


def test_profiles_without_a_key_scheme_get_no_keys() -> None:
    with open_transport("emulated:bq40z50?speed=0") as t:
        gauge = Gauge(Battery(t), "bq28z610", sleep=no_sleep)  # method "none": keys unpublished
        records = log(t)
        with pytest.raises(SecurityError, match="no known security scheme"):
            security.unseal(gauge, "0414:3672")
        assert records == []
        gauge = Gauge(Battery(t), "bq20z65", sleep=no_sleep)  # a scheme, but no state register to confirm
        with pytest.raises(SecurityError, match="could not be confirmed; no key was sent"):
            security.unseal(gauge)
        assert key_or_command_writes(records) == []


# --- SHA-1 authentication ----------------------------------------------------------------------------------

#: TI E2E FAQ 886762 (bq28z610 authentication flow): key, challenge and the two-pass result.
TI_KEY = bytes.fromhex("0123456789abcdeffedcba9876543210")
TI_CHALLENGE = bytes.fromhex("00112233445566778899aabbccddeeff11223344")
TI_RESULT = bytes.fromhex("0f83ec417cb4dbd2442af5f51c61abbef061685f")


def test_the_ti_hmac_matches_ti_s_worked_example_in_driver_and_emulator() -> None:
    assert security.ti_sha1_hmac(TI_KEY, TI_CHALLENGE) == TI_RESULT
    assert device_hmac(TI_KEY, TI_CHALLENGE) == TI_RESULT


def test_authentication_with_the_right_and_a_wrong_key(sealed: Transport) -> None:
    gauge = gauge_on(sealed)  # works SEALED: that is what it is for
    waits: list[float] = []
    gauge.sleep = waits.append
    records = log(sealed)
    response = security.authenticate(gauge, TI_KEY, TI_CHALLENGE)
    assert response == TI_RESULT and waits == [0.25]
    written = [r for r in records if r.command == 0x2F and r.protocol.value == "write_block"]
    assert written[0].data_out[1:] == bytes(reversed(TI_CHALLENGE))  # least significant byte first
    assert all(TI_KEY not in r.data_out + r.data_in for r in records)  # the key never goes on the bus
    assert len(security.authenticate(gauge, TI_KEY)) == 20  # a random challenge
    other = bytes(16)
    with pytest.raises(SecurityError, match="authentication failed"):
        security.authenticate(gauge, other)
    with pytest.raises(DecodeError, match="16 bytes"):
        security.authenticate(gauge, b"short")
    with pytest.raises(DecodeError, match="20 bytes"):
        security.authenticate(gauge, TI_KEY, b"short")


def test_authentication_needs_a_chip_that_has_it() -> None:
    with open_transport("emulated:generic-sbs?speed=0") as t:
        gauge = Gauge(Battery(t), "generic-sbs", sleep=no_sleep)
        with pytest.raises(SecurityError, match="no SHA-1 authentication"):
            security.authenticate(gauge, TI_KEY)
