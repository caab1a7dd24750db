"""The end-of-line results database: SQLite by default, PostgreSQL for a line of stations.

Every run is stored with its pack serial, plan name and hash, station, operator, lot, timestamps,
outcome, every step, and every measured value with its limits and verdict. The same schema lives
in both databases; the tool creates it and migrates it forward (:data:`MIGRATIONS`), recording each
applied version in ``schema_version``. A database newer than this smartbatt is refused, never
written.

Concurrency (many stations, one database):

* Each record is written in one transaction: a run is stored whole or not at all.
* Serial numbers are claimed atomically in ``serial_claims`` (primary key product + serial,
  ``INSERT … ON CONFLICT DO NOTHING``): two stations testing two packs with one serial at the same
  time cannot both pass. A failed or aborted run releases its claim; a passed run keeps it for good.
* Serial allocation locks the product's counter row (PostgreSQL ``SELECT … FOR UPDATE``; SQLite
  ``BEGIN IMMEDIATE``), so concurrent stations never hand out one serial twice.
* SQLite runs in WAL mode with a busy timeout (several processes on one machine); PostgreSQL
  migrations take an advisory lock so two stations starting at once migrate once.

Timestamps are UTC: ``TIMESTAMPTZ`` in PostgreSQL, ISO-8601 text (``…+00:00``, sortable) in SQLite.
"""

from __future__ import annotations

import contextlib
import datetime
import importlib
import os
import re
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar, Self
from urllib.parse import urlsplit, urlunsplit

from smartbatt.errors import SmartBattError
from smartbatt.factory.runner import Outcome, RunResult, StepResult, StepStatus
from smartbatt.factory.steps import Measurement, Verdict

__all__ = [
    "DB_ENV",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "STALE_CLAIM_S",
    "ResultsDb",
    "ResultsDbError",
    "default_db_path",
    "redact",
]

#: environment variable naming the default database (a path or a ``postgresql://`` URL).
DB_ENV = "SMARTBATT_EOL_DB"
#: a pending serial claim older than this belongs to a station that crashed mid-run; it may be taken.
STALE_CLAIM_S = 3600.0
#: PostgreSQL advisory-lock key that serialises migrations (any constant; "sbat" in ASCII).
_MIGRATION_LOCK_KEY = 0x73626174


class ResultsDbError(SmartBattError):
    """The results database cannot be opened, migrated, read or written.

    :ivar run_result: the run that could not be recorded, so the caller can keep it elsewhere.
    """

    def __init__(self, message: str, *, run_result: RunResult | None = None) -> None:
        super().__init__(message)
        self.run_result = run_result


# --- schema -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Migration:
    """One schema version: DDL with ``{ts}`` (timestamp) and ``{real}`` (float) type placeholders."""

    version: int
    description: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "results: runs, steps, measurements",
        (
            """CREATE TABLE runs (
                run_id TEXT PRIMARY KEY,
                plan_name TEXT NOT NULL,
                plan_title TEXT NOT NULL,
                plan_hash TEXT NOT NULL,
                plan_file TEXT NOT NULL,
                product TEXT NOT NULL,
                station TEXT NOT NULL,
                operator TEXT NOT NULL,
                serial INTEGER,
                device_name TEXT NOT NULL,
                started_at {ts} NOT NULL,
                finished_at {ts} NOT NULL,
                outcome TEXT NOT NULL,
                failed_step TEXT,
                message TEXT NOT NULL,
                bus_time_s {real},
                transactions INTEGER,
                interrupted INTEGER NOT NULL
            )""",
            """CREATE TABLE steps (
                run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
                position INTEGER NOT NULL,
                step_id TEXT NOT NULL,
                kind TEXT NOT NULL,
                title TEXT NOT NULL,
                status TEXT NOT NULL,
                started_at {ts},
                duration_s {real} NOT NULL,
                message TEXT NOT NULL,
                PRIMARY KEY (run_id, position)
            )""",
            """CREATE TABLE measurements (
                run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
                step_position INTEGER NOT NULL,
                position INTEGER NOT NULL,
                name TEXT NOT NULL,
                value_kind TEXT NOT NULL,
                value_num {real},
                value_text TEXT,
                unit TEXT NOT NULL,
                low {real},
                high {real},
                expected TEXT NOT NULL,
                verdict TEXT NOT NULL,
                detail TEXT NOT NULL,
                PRIMARY KEY (run_id, step_position, position)
            )""",
            "CREATE INDEX runs_started_at ON runs (started_at)",
            "CREATE INDEX runs_serial ON runs (product, serial)",
            "CREATE INDEX measurements_name ON measurements (name)",
        ),
    ),
    Migration(
        2,
        "production lots and the serial registry",
        (
            "ALTER TABLE runs ADD COLUMN lot TEXT NOT NULL DEFAULT ''",
            "CREATE INDEX runs_lot ON runs (lot, started_at)",
            """CREATE TABLE serial_claims (
                product TEXT NOT NULL,
                serial INTEGER NOT NULL,
                run_id TEXT NOT NULL,
                station TEXT NOT NULL,
                state TEXT NOT NULL,
                claimed_at {ts} NOT NULL,
                PRIMARY KEY (product, serial)
            )""",
            "CREATE INDEX serial_claims_run ON serial_claims (run_id)",
            """CREATE TABLE serial_counters (
                product TEXT PRIMARY KEY,
                next_serial INTEGER NOT NULL
            )""",
        ),
    ),
)

#: the schema version this smartbatt writes.
SCHEMA_VERSION = MIGRATIONS[-1].version

_RUN_COLUMNS = (
    "run_id",
    "plan_name",
    "plan_title",
    "plan_hash",
    "plan_file",
    "product",
    "station",
    "operator",
    "lot",
    "serial",
    "device_name",
    "started_at",
    "finished_at",
    "outcome",
    "failed_step",
    "message",
    "bus_time_s",
    "transactions",
    "interrupted",
)
_STEP_COLUMNS = ("run_id", "position", "step_id", "kind", "title", "status", "started_at", "duration_s", "message")
_MEASUREMENT_COLUMNS = (
    "run_id",
    "step_position",
    "position",
    "name",
    "value_kind",
    "value_num",
    "value_text",
    "unit",
    "low",
    "high",
    "expected",
    "verdict",
    "detail",
)


# --- dialects -----------------------------------------------------------------------------------


class _Dialect:
    """What differs between SQLite and PostgreSQL: placeholders, types, timestamps, row locks."""

    name: ClassVar[str] = "sqlite"
    types: ClassVar[Mapping[str, str]] = MappingProxyType({"ts": "TEXT", "real": "REAL"})
    for_update: ClassVar[str] = ""

    def sql(self, text: str) -> str:
        return text

    def ts(self, value: datetime.datetime | None) -> Any:
        if value is None:
            return None
        return value.astimezone(datetime.UTC).isoformat(timespec="microseconds")

    def ts_out(self, value: Any) -> datetime.datetime | None:
        if value is None:
            return None
        if isinstance(value, datetime.datetime):
            return value.astimezone(datetime.UTC)
        return datetime.datetime.fromisoformat(str(value)).astimezone(datetime.UTC)


class _Postgres(_Dialect):
    name: ClassVar[str] = "postgresql"
    types: ClassVar[Mapping[str, str]] = MappingProxyType({"ts": "TIMESTAMPTZ", "real": "DOUBLE PRECISION"})
    for_update: ClassVar[str] = " FOR UPDATE"

    def sql(self, text: str) -> str:
        return text.replace("?", "%s")

    def ts(self, value: datetime.datetime | None) -> Any:
        return None if value is None else value.astimezone(datetime.UTC)


# --- locations ----------------------------------------------------------------------------------


def default_db_path() -> Path:
    """``$XDG_DATA_HOME/smartbatt/eol.sqlite`` (``~/.local/share/…`` when unset)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "smartbatt" / "eol.sqlite"


def redact(url: str) -> str:
    """The URL with any password replaced by ``***`` (for messages and logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


def _is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def _sqlite_path(url: str) -> Path:
    if url.startswith("sqlite:///"):
        return Path(url[len("sqlite://") :])
    if url.startswith("sqlite:"):
        return Path(url[len("sqlite:") :])
    return Path(url)


# --- the database -------------------------------------------------------------------------------


class ResultsDb:
    """A connection to the results database. Thread-safe (one lock); one per station process.

    Open it with :meth:`open`; use it as a context manager or call :meth:`close`.
    """

    def __init__(self, connection: Any, dialect: _Dialect, label: str) -> None:
        self._conn = connection
        self._dialect = dialect
        #: where the database is, for messages (password redacted).
        self.label = label
        self._lock = threading.RLock()
        self._closed = False

    # --- opening ----------------------------------------------------------------------------------

    @classmethod
    def open(
        cls, url: str | os.PathLike[str] | None = None, *, timeout_s: float = 10.0, schema_version: int = SCHEMA_VERSION
    ) -> Self:
        """Open (and create or migrate) the database ``url`` names.

        :param url: a file path or ``sqlite:`` URL (SQLite), a ``postgresql://user@host/db`` URL, or
            None for ``$SMARTBATT_EOL_DB`` or :func:`default_db_path`.
        :param timeout_s: connection, lock and statement time limit, seconds.
        :param schema_version: migrate up to this version (default: the newest; older values are for
            staged upgrades and migration tests).
        :raises ResultsDbError: cannot connect, the driver is missing, or the schema is newer than
            this smartbatt.
        """
        text = os.fspath(url) if url is not None else os.environ.get(DB_ENV) or str(default_db_path())
        db = cls._connect_postgres(text, timeout_s) if _is_postgres(text) else cls._connect_sqlite(text, timeout_s)
        try:
            db._migrate(schema_version)
        except BaseException:
            db.close()
            raise
        return db

    @classmethod
    def _connect_sqlite(cls, url: str, timeout_s: float) -> Self:
        path = _sqlite_path(url)
        try:
            if str(path) != ":memory:":
                path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(path), timeout=timeout_s, isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {int(timeout_s * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA foreign_keys = ON")
        except (OSError, sqlite3.Error) as exc:
            raise ResultsDbError(f"cannot open the results database {path}: {exc}") from None
        return cls(conn, _Dialect(), str(path))

    @classmethod
    def _connect_postgres(cls, url: str, timeout_s: float) -> Self:
        label = redact(url)
        try:
            psycopg = importlib.import_module("psycopg")
        except ImportError:
            raise ResultsDbError(f"{label}: PostgreSQL needs psycopg 3 (pip install 'psycopg[binary]')") from None
        ms = int(timeout_s * 1000)
        try:
            conn = psycopg.connect(
                url,
                autocommit=True,
                connect_timeout=max(1, round(timeout_s)),
                options=f"-c statement_timeout={ms} -c lock_timeout={ms}",
            )
        except psycopg.Error as exc:
            raise ResultsDbError(f"cannot connect to the results database {label}: {_first_line(exc)}") from None
        return cls(conn, _Postgres(), label)

    def close(self) -> None:
        """Close the connection. Idempotent."""
        with self._lock:
            if not self._closed:
                self._closed = True
                with contextlib.suppress(Exception):
                    self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self._dialect.name

    # --- plumbing ---------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _tx(self, what: str) -> Iterator[Any]:
        """One transaction (a write lock from its start in SQLite); errors become ResultsDbError."""
        with self._lock:
            if self._closed:
                raise ResultsDbError(f"{self.label}: the results database is closed")
            try:
                if self._dialect.name == "sqlite":
                    yield from self._sqlite_tx()
                else:
                    with self._conn.transaction(), self._conn.cursor() as cur:
                        yield cur
            except ResultsDbError:
                raise
            except Exception as exc:
                if not _is_db_error(exc):
                    raise
                raise ResultsDbError(f"{self.label}: cannot {what}: {_first_line(exc)}") from None

    def _sqlite_tx(self) -> Iterator[Any]:
        cur = self._conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            yield cur
        except BaseException:
            self._conn.rollback()
            raise
        else:
            cur.execute("COMMIT")
        finally:
            cur.close()

    def _exec(self, cur: Any, sql: str, params: Sequence[Any] = ()) -> Any:
        cur.execute(self._dialect.sql(sql), tuple(params))
        return cur

    # --- migrations -------------------------------------------------------------------------------

    def _migrate(self, target: int) -> None:
        if not 1 <= target <= SCHEMA_VERSION:
            raise ResultsDbError(f"schema version {target} is not one of 1..{SCHEMA_VERSION}")
        with self._tx("create or migrate the schema") as cur:
            if self._dialect.name == "postgresql":
                self._exec(cur, "SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK_KEY,))
            self._exec(
                cur,
                "CREATE TABLE IF NOT EXISTS schema_version "
                f"(version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at {self._dialect.types['ts']} "
                "NOT NULL)",
            )
            current = self._exec(cur, "SELECT MAX(version) FROM schema_version").fetchone()[0] or 0
            if current > SCHEMA_VERSION:
                raise ResultsDbError(
                    f"{self.label}: the database has schema version {current}, newer than this smartbatt "
                    f"understands ({SCHEMA_VERSION}); upgrade smartbatt on this station"
                )
            for migration in MIGRATIONS:
                if current < migration.version <= target:
                    self._apply(cur, migration)

    def _apply(self, cur: Any, migration: Migration) -> None:
        for statement in migration.statements:
            self._exec(cur, statement.format(**self._dialect.types))
        self._exec(
            cur,
            "INSERT INTO schema_version (version, description, applied_at) VALUES (?, ?, ?)",
            (migration.version, migration.description, self._dialect.ts(_now())),
        )

    def schema_version(self) -> int:
        """The schema version the database is at."""
        with self._tx("read the schema version") as cur:
            value = self._exec(cur, "SELECT MAX(version) FROM schema_version").fetchone()[0]
        return int(value or 0)

    # --- writing runs -----------------------------------------------------------------------------

    def record(self, result: RunResult) -> None:
        """Store one run whole (one transaction) and settle its serial claims.

        A passed run keeps its claims (and registers its serial); any other outcome releases them.

        :raises ResultsDbError: the run could not be stored (``exc.run_result`` is the run).
        """
        try:
            with self._tx(f"record run {result.run_id}") as cur:
                self._insert_run(cur, result)
                self._settle_claims(cur, result)
        except ResultsDbError as exc:
            exc.run_result = result
            raise

    def _insert_run(self, cur: Any, r: RunResult) -> None:
        problem = r.first_problem()
        run = (
            r.run_id, r.plan_name, r.plan_title, r.plan_hash, r.plan_file, r.product, r.station, r.operator, r.lot,
            r.serial, r.device_name, self._dialect.ts(r.started_at), self._dialect.ts(r.finished_at),
            r.outcome.value, problem.step_id if problem else None, r.message, r.bus_time_s, r.transactions,
            int(r.interrupted),
        )  # fmt: skip
        self._exec(cur, _insert("runs", _RUN_COLUMNS), run)
        steps = [
            (r.run_id, i, s.step_id, s.kind, s.title, s.status.value, self._dialect.ts(s.started_at),
             s.duration_s, s.message)
            for i, s in enumerate(r.steps)
        ]  # fmt: skip
        if steps:
            cur.executemany(self._dialect.sql(_insert("steps", _STEP_COLUMNS)), steps)
        rows = [
            (r.run_id, i, j, m.name, *_value_columns(m.value), m.unit, m.low, m.high, m.expected, m.verdict.value,
             m.detail)
            for i, s in enumerate(r.steps)
            for j, m in enumerate(s.measurements)
        ]  # fmt: skip
        if rows:
            cur.executemany(self._dialect.sql(_insert("measurements", _MEASUREMENT_COLUMNS)), rows)

    def _settle_claims(self, cur: Any, r: RunResult) -> None:
        if r.outcome is not Outcome.PASS:
            self._exec(cur, "DELETE FROM serial_claims WHERE run_id = ? AND state = 'pending'", (r.run_id,))
            return
        self._exec(cur, "UPDATE serial_claims SET state = 'passed' WHERE run_id = ?", (r.run_id,))
        if r.serial is not None:
            # the registry holds every passed serial, also from plans that did not claim it
            self._exec(
                cur,
                "INSERT INTO serial_claims (product, serial, run_id, station, state, claimed_at) "
                "VALUES (?, ?, ?, ?, 'passed', ?) ON CONFLICT (product, serial) DO NOTHING",
                (r.product, r.serial, r.run_id, r.station, self._dialect.ts(r.finished_at)),
            )

    # --- serials ----------------------------------------------------------------------------------

    def claim_serial(self, product: str, serial: int, run_id: str, station: str) -> str | None:
        """Claim ``serial`` of ``product`` for this run, atomically.

        :returns: None when granted (new claim, already this run's, or taken over from a stale
            pending claim); otherwise why not — the serial passed before, or another station is
            testing a pack with it right now.
        :raises ResultsDbError: the database failed.
        """
        now = _now()
        with self._tx(f"claim serial {serial}") as cur:
            inserted = self._exec(
                cur,
                "INSERT INTO serial_claims (product, serial, run_id, station, state, claimed_at) "
                "VALUES (?, ?, ?, ?, 'pending', ?) ON CONFLICT (product, serial) DO NOTHING",
                (product, serial, run_id, station, self._dialect.ts(now)),
            ).rowcount
            if inserted == 1:
                return None
            row = self._exec(
                cur,
                "SELECT run_id, station, state, claimed_at FROM serial_claims WHERE product = ? AND serial = ?"
                + self._dialect.for_update,
                (product, serial),
            ).fetchone()
            holder, holder_station, state, claimed_at = row
            claimed = self._dialect.ts_out(claimed_at)
            assert claimed is not None
            if holder == run_id:
                return None
            if state == "pending" and (now - claimed).total_seconds() > STALE_CLAIM_S:
                self._exec(
                    cur,
                    "UPDATE serial_claims SET run_id = ?, station = ?, claimed_at = ? "
                    "WHERE product = ? AND serial = ? AND run_id = ?",
                    (run_id, station, self._dialect.ts(now), product, serial, holder),
                )
                return None
        when = claimed.strftime("%Y-%m-%d %H:%M:%S UTC")
        if state == "passed":
            return f"serial {serial} already passed on station {holder_station} at {when} (run {holder[:8]})"
        return f"serial {serial} is being tested on station {holder_station} since {when} (run {holder[:8]})"

    def allocate_serial(self, product: str, low: int, high: int, run_id: str, station: str) -> int:
        """Claim and return the next unused serial of ``product`` in ``low..high``.

        :raises ResultsDbError: every serial in the range is used, or the database failed.
        """
        if not 0 <= low <= high <= 0xFFFF:
            raise ValueError(f"serial range {low}..{high} is not within 0..65535")
        now = self._dialect.ts(_now())
        with self._tx(f"allocate a serial for {product}") as cur:
            self._exec(
                cur,
                "INSERT INTO serial_counters (product, next_serial) VALUES (?, ?) ON CONFLICT (product) DO NOTHING",
                (product, low),
            )
            row = self._exec(
                cur, "SELECT next_serial FROM serial_counters WHERE product = ?" + self._dialect.for_update, (product,)
            ).fetchone()
            candidate = max(int(row[0]), low)
            while candidate <= high:
                inserted = self._exec(
                    cur,
                    "INSERT INTO serial_claims (product, serial, run_id, station, state, claimed_at) "
                    "VALUES (?, ?, ?, ?, 'pending', ?) ON CONFLICT (product, serial) DO NOTHING",
                    (product, candidate, run_id, station, now),
                ).rowcount
                if inserted == 1:
                    self._exec(
                        cur, "UPDATE serial_counters SET next_serial = ? WHERE product = ?", (candidate + 1, product)
                    )
                    return candidate
                candidate += 1
        raise ResultsDbError(f"{self.label}: no unused serial left in {low}..{high} for product {product!r}")

    # --- reading ----------------------------------------------------------------------------------

    def count_runs(self) -> int:
        with self._tx("count runs") as cur:
            return int(self._exec(cur, "SELECT COUNT(*) FROM runs").fetchone()[0])

    def load_run(self, run_id: str) -> RunResult:
        """One stored run. :raises ResultsDbError: no such run."""
        runs = self._query_runs("run_id = ?", (run_id,))
        if not runs:
            raise ResultsDbError(f"{self.label}: no run {run_id!r}")
        return runs[0]

    def runs(
        self,
        since: datetime.datetime | None = None,
        until: datetime.datetime | None = None,
        *,
        lot: str | None = None,
        serial: int | None = None,
    ) -> list[RunResult]:
        """Stored runs started in ``[since, until)`` (UTC), oldest first, optionally of one lot or serial."""
        where, params = ["1 = 1"], []
        if since is not None:
            where.append("started_at >= ?")
            params.append(self._dialect.ts(since))
        if until is not None:
            where.append("started_at < ?")
            params.append(self._dialect.ts(until))
        if lot is not None:
            where.append("lot = ?")
            params.append(lot)
        if serial is not None:
            where.append("serial = ?")
            params.append(serial)
        return self._query_runs(" AND ".join(where), params)

    def _query_runs(self, where: str, params: Sequence[Any]) -> list[RunResult]:
        sub = f"SELECT run_id FROM runs WHERE {where}"
        with self._tx("read runs") as cur:
            runs = self._exec(
                cur, f"SELECT {', '.join(_RUN_COLUMNS)} FROM runs WHERE {where} ORDER BY started_at, run_id", params
            ).fetchall()
            steps = self._exec(
                cur,
                f"SELECT {', '.join(_STEP_COLUMNS)} FROM steps WHERE run_id IN ({sub}) ORDER BY run_id, position",
                params,
            ).fetchall()
            measurements = self._exec(
                cur,
                f"SELECT {', '.join(_MEASUREMENT_COLUMNS)} FROM measurements WHERE run_id IN ({sub}) "
                "ORDER BY run_id, step_position, position",
                params,
            ).fetchall()
        return self._assemble(runs, steps, measurements)

    def _assemble(self, runs: Sequence[Any], steps: Sequence[Any], measurements: Sequence[Any]) -> list[RunResult]:
        by_step: dict[tuple[str, int], list[Measurement]] = {}
        for row in measurements:
            m = dict(zip(_MEASUREMENT_COLUMNS, row, strict=True))
            by_step.setdefault((m["run_id"], m["step_position"]), []).append(_measurement(m))
        by_run: dict[str, list[StepResult]] = {}
        for row in steps:
            s = dict(zip(_STEP_COLUMNS, row, strict=True))
            by_run.setdefault(s["run_id"], []).append(self._step(s, by_step.get((s["run_id"], s["position"]), [])))
        return [self._run(dict(zip(_RUN_COLUMNS, row, strict=True)), by_run.get(row[0], [])) for row in runs]

    def _step(self, s: Mapping[str, Any], measurements: list[Measurement]) -> StepResult:
        return StepResult(
            step_id=s["step_id"],
            kind=s["kind"],
            title=s["title"],
            status=StepStatus(s["status"]),
            measurements=tuple(measurements),
            started_at=self._dialect.ts_out(s["started_at"]),
            duration_s=float(s["duration_s"]),
            message=s["message"],
        )

    def _run(self, r: Mapping[str, Any], steps: list[StepResult]) -> RunResult:
        started = self._dialect.ts_out(r["started_at"])
        finished = self._dialect.ts_out(r["finished_at"])
        assert started is not None and finished is not None
        return RunResult(
            run_id=r["run_id"],
            plan_name=r["plan_name"],
            plan_title=r["plan_title"],
            plan_hash=r["plan_hash"],
            plan_file=r["plan_file"],
            product=r["product"],
            station=r["station"],
            operator=r["operator"],
            lot=r["lot"],
            serial=r["serial"],
            device_name=r["device_name"],
            started_at=started,
            finished_at=finished,
            outcome=Outcome(r["outcome"]),
            steps=tuple(steps),
            message=r["message"],
            bus_time_s=r["bus_time_s"],
            transactions=r["transactions"],
            interrupted=bool(r["interrupted"]),
        )


# --- helpers ------------------------------------------------------------------------------------


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _insert(table: str, columns: Sequence[str]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


def _value_columns(value: Any) -> tuple[str, float | None, str | None]:
    """(kind, numeric column, text column) of a measured value, so it reads back with its type."""
    if value is None:
        return "none", None, None
    if isinstance(value, bool):
        return "bool", float(value), None
    if isinstance(value, int):
        return "int", float(value), None
    if isinstance(value, float):
        return "float", value, None
    return "text", None, str(value)


def _measurement(m: Mapping[str, Any]) -> Measurement:
    kind = m["value_kind"]
    value: Any
    if kind == "int":
        value = int(m["value_num"])
    elif kind == "bool":
        value = bool(m["value_num"])
    elif kind == "float":
        value = float(m["value_num"])
    elif kind == "text":
        value = m["value_text"]
    else:
        value = None
    return Measurement(
        name=m["name"],
        value=value,
        verdict=Verdict(m["verdict"]),
        unit=m["unit"],
        low=m["low"],
        high=m["high"],
        expected=m["expected"],
        detail=m["detail"],
    )


def _is_db_error(exc: BaseException) -> bool:
    if isinstance(exc, sqlite3.Error):
        return True
    module = type(exc).__module__
    return module.startswith("psycopg")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return re.split(r"\r?\n", text, maxsplit=1)[0]
