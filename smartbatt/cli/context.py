"""What every CLI subcommand gets: the parsed global options and lazily opened devices."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from rich.console import Console

from smartbatt.errors import SmartBattError
from smartbatt.transports import Transport, open_transport
from smartbatt.transports.txlog import TransactionRecord


class UsageError(SmartBattError):
    """A command-line argument is invalid (exit code 2)."""


class CliContext:
    """Global options (``--device``, ``--address``, ``--pec``, ``-v``) and the devices they open.

    A subcommand calls :meth:`transport` (or a helper built on it) only when it needs the bus,
    so ``decode`` and ``profiles`` work with no adapter at all. Everything opened here is
    closed by :meth:`close`, which ``main`` always calls.
    """

    def __init__(self, args: argparse.Namespace, console: Console | None = None, err: Console | None = None) -> None:
        self.args = args
        self.device: str = args.device
        self.address: int = args.address
        #: None = decide from SpecificationInfo (PEC when the gauge reports version 3).
        self.pec: bool | None = args.pec
        self.verbose: int = args.verbose
        self.console = console or Console(highlight=False, soft_wrap=True)
        self.err = err or Console(stderr=True, highlight=False, soft_wrap=True)
        self._transport: Transport | None = None
        self._resources: list[Any] = []

    def transport(self) -> Transport:
        """The transport ``--device`` names, opened on first use."""
        if self._transport is None:
            self._transport = open_transport(self.device)
            if self.verbose:
                self._transport.add_listener(self._log_transaction)
        return self._transport

    def _log_transaction(self, record: TransactionRecord) -> None:
        print(record.summary(), file=sys.stderr)

    def keep(self, resource: Any) -> Any:
        """Close ``resource`` (anything with ``close()``) when the command ends."""
        self._resources.append(resource)
        return resource

    def close(self) -> None:
        for resource in reversed(self._resources):
            resource.close()
        self._resources.clear()
        if self._transport is not None:
            self._transport.close()
            self._transport = None
