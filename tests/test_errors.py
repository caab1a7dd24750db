"""The error tree: context in messages, builtin mirrors, pickling, errno translation."""

from __future__ import annotations

import errno
import pickle

import pytest

from smartbatt import errors as e


@pytest.mark.parametrize(
    "exc",
    [
        e.NoAcknowledge("no ack", address=0x0B, command=0x09, byte_index=0, diagnosis="pack asleep"),
        e.PecMismatch(expected=0x67, got=0x66, address=0x0B, command=0x09, likely_cause="stop+start"),
        e.BusTimeout("clock held", address=0x0B),
        e.BadBlockLength(length=40, received=3, address=0x0B, command=0x20),
        e.AdapterGone("unplugged"),
        e.NotReady(raw=0xFFFF, address=0x0B, command=0x09),
        e.ProfileError("bq40z50.toml", "commands.CellVoltage1.code", "not a byte"),
        e.UnknownCommand("no command named 'Voltag'"),
    ],
)
def test_errors_pickle_with_all_context(exc: e.SmartBattError) -> None:
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is type(exc)
    assert back.__dict__ == exc.__dict__
    assert str(back) == str(exc)


def test_messages_name_the_transaction() -> None:
    exc = e.PecMismatch(expected=0x67, got=0x66, address=0x0B, command=0x09)
    assert str(exc) == "PEC mismatch (address 0x0B, command 0x09): expected 0x67, got 0x66"
    nack = e.NoAcknowledge(address=0x0B, command=0x09, diagnosis="Check the wiring.")
    assert str(nack) == "no acknowledge (address 0x0B, command 0x09). Check the wiring."
    assert str(e.UnknownCommand("no command named 'X'")) == "no command named 'X'"


def test_builtin_mirrors() -> None:
    assert issubclass(e.BusTimeout, TimeoutError)
    assert issubclass(e.AdapterGone, ConnectionError)
    assert issubclass(e.UriError, ValueError)
    assert issubclass(e.ArbitrationLost, e.BusBusy)
    for cls in (e.NoAcknowledge, e.PecMismatch, e.BusTimeout, e.BusBusy, e.BadBlockLength, e.AdapterGone):
        assert issubclass(cls, e.TransportError)
        assert issubclass(cls, e.SmartBattError)


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (errno.ENXIO, e.NoAcknowledge),
        (errno.EREMOTEIO, e.NoAcknowledge),
        (errno.EBADMSG, e.PecMismatch),
        (errno.EPROTO, e.BadBlockLength),
        (errno.EAGAIN, e.ArbitrationLost),
        (errno.EBUSY, e.BusBusy),
        (errno.ETIMEDOUT, e.BusTimeout),
        (errno.ENODEV, e.AdapterGone),
    ],
)
def test_errno_translation_follows_kernel_fault_codes(code: int, cls: type[e.SmartBattError]) -> None:
    exc = e.from_oserror(OSError(code, "boom"), address=0x0B, command=0x16)
    assert type(exc) is cls
    assert (exc.address, exc.command) == (0x0B, 0x16)
    assert f"errno {code}" in str(exc)


def test_unknown_errno_is_still_a_transport_error() -> None:
    exc = e.from_oserror(OSError(errno.EPERM, "not permitted"))
    assert type(exc) is e.TransportError
    assert "not permitted" in str(exc)
