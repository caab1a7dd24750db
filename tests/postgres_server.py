"""A throwaway PostgreSQL server for the tests marked ``postgres``.

``initdb`` a new cluster into a temporary directory and start it with ``pg_ctl`` on a free
localhost port (trust authentication, fsync off: test data only), then stop it and delete the
directory. PostgreSQL refuses to run as root, so when the tests run as root the cluster belongs to
the ``postgres`` user the Debian package creates (or ``nobody``).

Binaries are looked up on ``PATH`` and in ``/usr/lib/postgresql/<version>/bin`` (Debian's layout).
When they are missing the tests skip — unless ``CI`` is set: CI must run them, so there a missing
server or a server that cannot start fails the tests (``dev.py test`` installs the ``postgresql``
package first).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

#: what a developer without PostgreSQL is told.
INSTALL_HINT = "install the server (Debian: apt-get install -y postgresql) and psycopg (pip install 'psycopg[binary]')"


def find_bindir() -> Path | None:
    """Directory holding ``initdb``, ``pg_ctl`` and ``postgres``, or None."""
    initdb = shutil.which("initdb")
    if initdb is not None and shutil.which("pg_ctl") is not None:
        return Path(initdb).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: _version(p.parent.name))
    for bindir in reversed(versions):
        if (bindir / "initdb").exists() and (bindir / "pg_ctl").exists():
            return bindir
    return None


def _version(name: str) -> tuple[int, ...]:
    return tuple(int(x) for x in name.split(".") if x.isdigit())


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class PostgresServer:
    """One temporary cluster. Use as a context manager."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="smartbatt-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.user = "smartbatt"
        self._uid: int | None = None
        self._gid: int | None = None
        if os.geteuid() == 0:
            account = _unprivileged_account()
            self._uid, self._gid = account.pw_uid, account.pw_gid
            os.chown(self.root, self._uid, self._gid)

    def _run(self, *args: str, timeout: float = 60.0) -> None:
        result = subprocess.run(
            [str(self.bindir / args[0]), *args[1:]],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            user=self._uid,
            group=self._gid,
            cwd=self.root,
            env={**os.environ, "LC_ALL": "C", "LANG": "C"},
        )
        if result.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{args[0]} failed ({result.returncode}): {result.stderr.strip()}\n{tail}")

    def start(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", self.user, "-A", "trust", "-E", "UTF8", "--no-sync")
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=40"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-o", options, "-w", "-t", "60",
            "start",
        )  # fmt: skip

    def stop(self) -> None:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "-t", "30", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create database ``name`` and return its URL."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def __enter__(self) -> PostgresServer:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _unprivileged_account() -> pwd.struct_passwd:
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise RuntimeError("running as root and neither a 'postgres' nor a 'nobody' account exists")


def unavailable(reason: str) -> None:
    """Skip (developer machine) or fail (CI) for a missing PostgreSQL."""
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the PostgreSQL tests but {reason}; {INSTALL_HINT}")
    pytest.skip(f"{reason}; {INSTALL_HINT}")


@contextlib.contextmanager
def postgres() -> Iterator[PostgresServer]:
    """A running throwaway server, or a skip/fail (see :func:`unavailable`)."""
    try:
        import psycopg  # noqa: F401 - probe only
    except ImportError:
        unavailable("psycopg is not installed")
    bindir = find_bindir()
    if bindir is None:
        unavailable("the PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    assert bindir is not None
    with PostgresServer(bindir) as server:
        yield server
