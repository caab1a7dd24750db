"""The recorder's SQLite store: packs, sessions, samples, events; replay and CSV export.

Layout (measured in ``benchmarks/bench_store.py``; figures in ``benchmarks/README.md``):

* ``samples(k INTEGER PRIMARY KEY, n, span_ms, data BLOB)`` — one row per *chunk* of up to
  1024 consecutive samples of one session. The key packs the session and the time of the
  chunk's first sample: ``k = session_id << 40 | (t_ms − session.t0_ms)`` (2^40 ms = 34 years
  per session), so a window is one primary-key range scan. ``data`` is column-wise: per channel
  a fixed-point first value and fixed-width deltas (int8 … int64, the narrowest that fits),
  a presence bitmap only if something was missing, then zlib (level 1) when that is smaller.
  Measured alternative, rejected: one row per sample with a varint blob (39 B/row, but a one-day
  window took 160–260 ms, most of it creating 86 400 Python row objects and decoding varints);
  chunks: ~8 B/row and ~35 ms.
* The open (last) chunk of a session is decoded, extended and rewritten in the same
  transaction as the new samples, so a commit never leaves a half-written chunk.
* ``channels(session_id, idx, name, kind, resolution)`` — the per-session layout, append-only:
  a channel first seen mid-session is appended; older samples read as missing for it.
* Times are stored to the millisecond; values to their channel's resolution (:data:`RESOLUTION`),
  which for gauge data is lossless.

Durability: WAL journal with ``synchronous=NORMAL``. The SQLite documentation of ``PRAGMA
synchronous`` (https://www.sqlite.org/pragma.html#pragma_synchronous) says: "WAL mode is safe from
corruption with synchronous=NORMAL … WAL mode is always consistent with synchronous=NORMAL, but
WAL mode does lose durability. A transaction committed in WAL mode with synchronous=NORMAL might
roll back following a power loss or system crash. Transactions are durable across application
crashes regardless of the synchronous setting or journal mode." A ``kill -9`` is an application
crash: every committed transaction survives and the file stays consistent; FULL would only add an
``fsync`` per commit against power loss. The :class:`Recorder` commits at least every
``commit_interval_s`` (default 0.5 s), so a killed recorder loses at most about one second
(tested with a real subprocess in ``tests/test_store.py``).

Every failure is a :class:`StoreError` (a :class:`~smartbatt.errors.SmartBattError`).
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import math
import sqlite3
import struct
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from smartbatt.errors import StoreError
from smartbatt.monitor.sample import Event, Sample, SampleBus, Severity, Subscription

#: bumped on every schema change; :data:`MIGRATIONS` upgrades older files.
SCHEMA_VERSION = 1
#: ``PRAGMA application_id`` of a smartbatt store ("SBAT"), so a foreign SQLite file is refused.
APPLICATION_ID = 0x53424154
#: bits of the sample key holding the time offset in ms.
TIME_BITS = 40
_TIME_MASK = (1 << TIME_BITS) - 1
_MAX_SESSION = (1 << (63 - TIME_BITS)) - 1

#: from-version → function upgrading a connection's schema to from-version + 1 (in a transaction).
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {}

VALUE = "value"
STATUS = "status"

#: default fixed-point resolution of a value channel, by exact name, then by prefix; in the
#: channel's display unit (sample.py). SBS quantises V/I to 1 mV/1 mA and T to 0.1 K, so these
#: resolutions store gauge data without loss.
RESOLUTION: dict[str, float] = {
    "Voltage": 0.001,
    "Current": 0.001,
    "AverageCurrent": 0.001,
    "Temperature": 0.01,
    "RelativeStateOfCharge": 0.01,
    "AbsoluteStateOfCharge": 0.01,
    "RemainingCapacity": 0.001,
    "FullChargeCapacity": 0.001,
}
_PREFIX_RESOLUTION: tuple[tuple[str, float], ...] = (
    ("CellVoltage", 0.001),
    ("Temperature", 0.01),
    ("est_", 0.0001),
)
DEFAULT_RESOLUTION = 0.001

_SCHEMA = """
CREATE TABLE packs (
    id INTEGER PRIMARY KEY,
    manufacturer TEXT NOT NULL DEFAULT '',
    device_name TEXT NOT NULL DEFAULT '',
    serial TEXT NOT NULL DEFAULT '',
    manufacture_date TEXT NOT NULL DEFAULT '',
    chemistry TEXT NOT NULL DEFAULT '',
    design_capacity_ah REAL,
    design_voltage_v REAL,
    cells INTEGER,
    pack_type TEXT NOT NULL DEFAULT '',
    first_seen REAL NOT NULL,
    UNIQUE (manufacturer, device_name, serial, manufacture_date)
);
CREATE TABLE sessions (
    id INTEGER PRIMARY KEY,
    pack_id INTEGER REFERENCES packs(id),
    started REAL NOT NULL,
    t0_ms INTEGER NOT NULL,
    ended REAL,
    source TEXT NOT NULL DEFAULT '',
    note TEXT NOT NULL DEFAULT ''
);
CREATE TABLE channels (
    session_id INTEGER NOT NULL REFERENCES sessions(id),
    idx INTEGER NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('value', 'status')),
    resolution REAL NOT NULL,
    PRIMARY KEY (session_id, idx),
    UNIQUE (session_id, name)
) WITHOUT ROWID;
CREATE TABLE samples (
    k INTEGER PRIMARY KEY,
    n INTEGER NOT NULL,
    span_ms INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE TABLE events (
    session_id INTEGER NOT NULL,
    id INTEGER NOT NULL,
    time REAL NOT NULL,
    severity INTEGER NOT NULL,
    source TEXT NOT NULL,
    code TEXT NOT NULL,
    message TEXT NOT NULL,
    value REAL,
    limit_value REAL,
    latched INTEGER NOT NULL,
    acknowledged INTEGER NOT NULL,
    cleared REAL,
    ack_time REAL,
    PRIMARY KEY (session_id, id)
);
CREATE INDEX events_time ON events(time);
"""


def resolution_for(name: str) -> float:
    """Default fixed-point resolution of value channel ``name`` (in its display unit)."""
    if name in RESOLUTION:
        return RESOLUTION[name]
    for prefix, res in _PREFIX_RESOLUTION:
        if name.startswith(prefix):
            return res
    return DEFAULT_RESOLUTION


# --- records -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PackInfo:
    """Identity of a pack, from its SBS identification registers."""

    manufacturer: str = ""
    device_name: str = ""
    #: SerialNumber (SBS 0x1C) as text (``"4660"``; other sources may use any string).
    serial: str = ""
    #: ManufactureDate as ISO ``YYYY-MM-DD``; empty if unknown.
    manufacture_date: str = ""
    chemistry: str = ""
    #: DesignCapacity in Ah (Wh if the gauge reports in 10 mWh).
    design_capacity_ah: float | None = None
    #: DesignVoltage in V.
    design_voltage_v: float | None = None
    cells: int | None = None
    #: name of the alarm-limits file in use (``drone-4s-lipo``).
    pack_type: str = ""
    id: int | None = None


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """One recording session."""

    id: int
    pack_id: int | None
    #: unix seconds.
    started: float
    ended: float | None
    source: str
    note: str
    #: number of samples recorded.
    samples: int = 0
    #: times of the first and last samples (unix s), None if empty.
    first: float | None = None
    last: float | None = None


@dataclass(frozen=True, slots=True)
class Channel:
    """One column of a session layout."""

    name: str
    #: ``"value"`` (float, display unit) or ``"status"`` (raw unsigned word).
    kind: str
    #: fixed-point step of a value channel, in its unit; 1 for status words.
    resolution: float


@dataclass(frozen=True)
class Window:
    """Samples of one session between two times, as arrays (one element per sample)."""

    #: sample times, unix seconds, ascending.
    t: npt.NDArray[np.float64]
    #: channel → values in display units; NaN where missing or not yet recorded.
    values: dict[str, npt.NDArray[np.float64]] = field(default_factory=dict)
    #: status word → raw values; −1 where missing.
    status: dict[str, npt.NDArray[np.int64]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.t)


# --- chunk codec ---------------------------------------------------------------------------------
#
# A chunk holds up to CHUNK_SAMPLES consecutive samples of one session, spanning less than
# CHUNK_SPAN_MS. Its key is the time of its first sample; its blob is column-wise:
#
#   u8  format (1 = plain, 2 = zlib-compressed body)
#   body: u16 n samples, u16 c channels, u8 time dtype, (n−1) time deltas (ms),
#         then per channel: u8 flags (bits 0–2 delta dtype, 0 = constant; bit 3 = presence mask
#         follows; bit 4 = never present), i64 first value, (n−1) deltas, packbits(present).
#
# Values are fixed-point integers (value / resolution); a missing value repeats the previous one
# in the delta stream so deltas stay small, and the presence mask restores it as missing.

#: most samples in one chunk (a chunk is rewritten as it fills: keep a rewrite cheap).
CHUNK_SAMPLES = 1024
#: a chunk spans less than this (ms), so a window query looks back at most this far.
CHUNK_SPAN_MS = 1 << 20
_PLAIN, _ZLIB = 1, 2
_DTYPES: tuple[type[np.signedinteger[Any]], ...] = (np.int8, np.int16, np.int32, np.int64)
_LE = [np.dtype(d).newbyteorder("<") for d in _DTYPES]
_MASK, _NEVER = 0x08, 0x10


@dataclass
class Block:
    """Decoded samples in fixed-point form: the unit the chunk codec reads and writes."""

    #: time offsets from the session's t0, ms, ascending.
    t: npt.NDArray[np.int64]
    #: (n × channels) fixed-point values (status words as they are).
    q: npt.NDArray[np.int64]
    #: (n × channels) True where the value was read.
    present: npt.NDArray[np.bool_]

    def __len__(self) -> int:
        return len(self.t)

    def widen(self, width: int) -> Block:
        """The same samples with channels appended (not present) up to ``width``."""
        n, c = self.q.shape
        if c >= width:
            return self
        q = np.zeros((n, width), dtype=np.int64)
        q[:, :c] = self.q
        present = np.zeros((n, width), dtype=bool)
        present[:, :c] = self.present
        return Block(self.t, q, present)


def _delta_dtype(d: npt.NDArray[np.int64]) -> int:
    lo, hi = int(d.min()), int(d.max())
    if lo == hi == 0:
        return 0
    for code, dtype in enumerate(_DTYPES, start=1):
        info = np.iinfo(dtype)
        if info.min <= lo and hi <= info.max:
            return code
    raise AssertionError("int64 deltas always fit int64")  # pragma: no cover


def encode_chunk(block: Block) -> bytes:
    """Encode ≤ CHUNK_SAMPLES samples (times relative to the first) into a chunk blob."""
    n, c = block.q.shape
    t = block.t - block.t[0]
    parts: list[bytes] = []
    dt_code = _delta_dtype(np.diff(t)) if n > 1 else 0
    parts.append(struct.pack("<HHB", n, c, dt_code))
    if dt_code:
        parts.append(np.diff(t).astype(_LE[dt_code - 1]).tobytes())
    for i in range(c):
        present = block.present[:, i]
        if not present.any():
            parts.append(struct.pack("<Bq", _NEVER, 0))
            continue
        q = block.q[:, i]
        full = bool(present.all())
        if not full:  # carry the last present value forward through gaps
            idx = np.where(present, np.arange(n), 0)
            np.maximum.accumulate(idx, out=idx)
            first = int(np.argmax(present))
            idx[:first] = first
            q = q[idx]
        d = np.diff(q)
        code = _delta_dtype(d) if n > 1 else 0
        parts.append(struct.pack("<Bq", code | (0 if full else _MASK), int(q[0])))
        if code:
            parts.append(d.astype(_LE[code - 1]).tobytes())
        if not full:
            parts.append(np.packbits(present).tobytes())
    body = b"".join(parts)
    packed = zlib.compress(body, 1)
    return bytes([_ZLIB]) + packed if len(packed) < len(body) else bytes([_PLAIN]) + body


def decode_chunk(blob: bytes, start_ms: int, width: int) -> Block:
    """Decode a chunk blob; ``start_ms`` is its first sample's offset, ``width`` the layout size.

    :raises StoreError: the blob is corrupt or has more channels than ``width``.
    """
    try:
        return _decode_chunk(blob, start_ms, width)
    except (ValueError, IndexError, struct.error, zlib.error) as exc:
        raise StoreError(f"corrupt sample chunk at offset {start_ms} ms: {exc}") from exc


def _decode_chunk(blob: bytes, start_ms: int, width: int) -> Block:
    if not blob:
        raise ValueError("empty blob")
    body = zlib.decompress(blob[1:]) if blob[0] == _ZLIB else blob[1:] if blob[0] == _PLAIN else b""
    if not body:
        raise ValueError(f"unknown chunk format {blob[0]}")
    n, c, dt_code = struct.unpack_from("<HHB", body, 0)
    if n == 0 or c > width or dt_code > len(_DTYPES):
        raise ValueError(f"bad header (n={n}, channels={c}, layout {width})")
    pos = 5
    t = np.full(n, start_ms, dtype=np.int64)
    if dt_code:
        d = np.frombuffer(body, _LE[dt_code - 1], n - 1, pos)
        pos += d.nbytes
        t[1:] += np.cumsum(d, dtype=np.int64)
    q = np.zeros((n, width), dtype=np.int64)
    present = np.zeros((n, width), dtype=bool)
    mask_bytes = (n + 7) // 8
    for i in range(c):
        flags, first = struct.unpack_from("<Bq", body, pos)
        pos += 9
        if flags & _NEVER:
            continue
        code = flags & 0x07
        if code > len(_DTYPES):
            raise ValueError(f"bad dtype {code}")
        col = q[:, i]
        col[:] = first
        if code:
            d = np.frombuffer(body, _LE[code - 1], n - 1, pos)
            pos += d.nbytes
            col[1:] += np.cumsum(d, dtype=np.int64)
        if flags & _MASK:
            bits = np.frombuffer(body, np.uint8, mask_bytes, pos)
            pos += mask_bytes
            present[:, i] = np.unpackbits(bits, count=n).astype(bool)
        else:
            present[:, i] = True
    if pos != len(body):
        raise ValueError(f"{len(body) - pos} trailing bytes")
    return Block(t, q, present)


def to_fixed(values: npt.ArrayLike, resolution: float) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """Fixed-point codes of a value column and its presence (NaN/inf = missing).

    Values beyond ±2^62 steps are clipped (far outside any battery quantity).
    """
    v = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(v)
    q = np.clip(np.rint(np.where(ok, v, 0.0) / resolution), -_Q_LIMIT, _Q_LIMIT).astype(np.int64)
    return q, ok


_Q_LIMIT = float(2**62)


def _decimals(resolution: float) -> int:
    return max(0, min(12, math.ceil(-math.log10(resolution) - 1e-9)))


def _chunk_bounds(t: npt.NDArray[np.int64]) -> list[tuple[int, int]]:
    """Split sorted offsets greedily into chunks of ≤ CHUNK_SAMPLES spanning < CHUNK_SPAN_MS."""
    bounds = []
    i, n = 0, len(t)
    while i < n:
        end = min(n, i + CHUNK_SAMPLES)
        end = i + int(np.searchsorted(t[i:end], t[i] + CHUNK_SPAN_MS, side="left"))
        bounds.append((i, end))
        i = end
    return bounds


# --- the store -------------------------------------------------------------------------------------


def _key(session_id: int, offset_ms: int) -> int:
    return (session_id << TIME_BITS) | offset_ms


class Store:
    """One SQLite recording database. A Store (its connection) belongs to the thread that made it.

    :param path: database file; created with the current schema if absent (unless ``readonly``).
    :param readonly: open read-only (``replay``, ``events``, ``export``); a missing file is an error.
    :param timeout_s: how long to wait for a lock held by another connection.
    :raises StoreError: not a database, not a smartbatt store, a newer schema, cannot create.
    """

    def __init__(self, path: str | Path, *, readonly: bool = False, timeout_s: float = 5.0) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self._layouts: dict[int, list[Channel]] = {}
        self._t0: dict[int, int] = {}
        if readonly and not self.path.exists():
            raise StoreError(f"{self.path}: no such recording database")
        try:
            if readonly:
                uri = f"{self.path.resolve().as_uri()}?mode=ro"
                self.db = sqlite3.connect(uri, uri=True, timeout=timeout_s, isolation_level=None)
            else:
                self.db = sqlite3.connect(self.path, timeout=timeout_s, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open: {exc}") from exc
        try:
            self._prepare()
        except sqlite3.DatabaseError as exc:
            self.db.close()
            raise StoreError(f"{self.path}: not a usable recording database: {exc}") from exc
        except StoreError:
            self.db.close()
            raise

    # schema ------------------------------------------------------------------------------------

    def _prepare(self) -> None:
        db = self.db
        app = db.execute("PRAGMA application_id").fetchone()[0]
        version = db.execute("PRAGMA user_version").fetchone()[0]
        tables = db.execute("SELECT count(*) FROM sqlite_schema WHERE type = 'table'").fetchone()[0]
        fresh = app == 0 and version == 0 and tables == 0
        if not fresh and app != APPLICATION_ID:  # checked before anything is changed in the file
            raise StoreError(f"{self.path}: SQLite file is not a smartbatt recording (application_id 0x{app:08X})")
        if fresh and self.readonly:
            raise StoreError(f"{self.path}: empty file, not a recording database")
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path}: schema version {version} is newer than this smartbatt ({SCHEMA_VERSION}); upgrade"
            )
        if not self.readonly:
            mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(f"{self.path}: cannot switch to WAL journal (got {mode})")
            db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA foreign_keys=ON")
        if fresh:
            with self.transaction():
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA application_id={APPLICATION_ID}")
                db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        elif version < SCHEMA_VERSION:
            self._migrate(version)

    def _migrate(self, version: int) -> None:
        if self.readonly:
            raise StoreError(f"{self.path}: schema version {version} needs migration; open it writable once")
        with self.transaction():
            while version < SCHEMA_VERSION:
                step = MIGRATIONS.get(version)
                if step is None:
                    raise StoreError(f"{self.path}: no migration from schema version {version}")
                step(self.db)
                version += 1
                self.db.execute(f"PRAGMA user_version={version}")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` on any exception)."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _guard(self, what: str) -> contextlib.AbstractContextManager[None]:
        return _translate(self.path, what)

    # packs and sessions ------------------------------------------------------------------------

    def add_pack(self, info: PackInfo, *, when: float | None = None) -> int:
        """Register a pack (or find it by manufacturer, name, serial, date). Returns its id."""
        with self._guard("add pack"):
            row = self.db.execute(
                "SELECT id FROM packs WHERE manufacturer=? AND device_name=? AND serial=? AND manufacture_date=?",
                (info.manufacturer, info.device_name, info.serial, info.manufacture_date),
            ).fetchone()
            if row is not None:
                return int(row[0])
            cur = self.db.execute(
                "INSERT INTO packs (manufacturer, device_name, serial, manufacture_date, chemistry,"
                " design_capacity_ah, design_voltage_v, cells, pack_type, first_seen)"
                " VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    info.manufacturer,
                    info.device_name,
                    info.serial,
                    info.manufacture_date,
                    info.chemistry,
                    info.design_capacity_ah,
                    info.design_voltage_v,
                    info.cells,
                    info.pack_type,
                    time.time() if when is None else when,
                ),
            )
            return int(cur.lastrowid or 0)

    def packs(self) -> list[PackInfo]:
        with self._guard("list packs"):
            rows = self.db.execute(
                "SELECT manufacturer, device_name, serial, manufacture_date, chemistry, design_capacity_ah,"
                " design_voltage_v, cells, pack_type, id FROM packs ORDER BY id"
            ).fetchall()
        return [PackInfo(*row) for row in rows]

    def start_session(
        self,
        pack_id: int | None = None,
        *,
        started: float | None = None,
        source: str = "",
        note: str = "",
        channels: Sequence[Channel] = (),
    ) -> int:
        """Open a session; samples must not be older than ``started`` (unix s, default now)."""
        started = time.time() if started is None else started
        with self._guard("start session"), self.transaction():
            cur = self.db.execute(
                "INSERT INTO sessions (pack_id, started, t0_ms, source, note) VALUES (?,?,?,?,?)",
                (pack_id, started, math.floor(started * 1000), source, note),
            )
            sid = int(cur.lastrowid or 0)
            if sid > _MAX_SESSION:
                raise StoreError(f"session id {sid} exceeds the key space")
            self._layouts[sid] = []
            if channels:
                self._extend_layout(sid, list(channels))
        return sid

    def end_session(self, session_id: int, ended: float | None = None) -> None:
        with self._guard("end session"):
            self.db.execute(
                "UPDATE sessions SET ended=? WHERE id=?", (time.time() if ended is None else ended, session_id)
            )

    def sessions(self) -> list[SessionInfo]:
        """All sessions, oldest first, with sample counts and first/last sample times."""
        out = []
        with self._guard("list sessions"):
            rows = self.db.execute(
                "SELECT id, pack_id, started, ended, source, note, t0_ms FROM sessions ORDER BY id"
            ).fetchall()
            for sid, pack_id, started, ended, source, note, t0 in rows:
                lo, hi = _key(sid, 0), _key(sid, _TIME_MASK)
                n, kmin, kend = self.db.execute(
                    "SELECT total(n), min(k), max(k + span_ms) FROM samples WHERE k BETWEEN ? AND ?", (lo, hi)
                ).fetchone()
                first = (t0 + (kmin & _TIME_MASK)) / 1000 if kmin is not None else None
                last = (t0 + (kend & _TIME_MASK)) / 1000 if kend is not None else None
                out.append(SessionInfo(sid, pack_id, started, ended, source, note, int(n), first, last))
        return out

    def session(self, session_id: int) -> SessionInfo:
        """:raises StoreError: no such session."""
        for info in self.sessions():
            if info.id == session_id:
                return info
        raise StoreError(f"{self.path}: no session {session_id}")

    def layout(self, session_id: int) -> list[Channel]:
        """The channel layout of a session (value channels and status words, in row order)."""
        if session_id not in self._layouts:
            with self._guard("read layout"):
                t0 = self.db.execute("SELECT t0_ms FROM sessions WHERE id=?", (session_id,)).fetchone()
                if t0 is None:
                    raise StoreError(f"{self.path}: no session {session_id}")
                rows = self.db.execute(
                    "SELECT name, kind, resolution FROM channels WHERE session_id=? ORDER BY idx", (session_id,)
                ).fetchall()
            self._t0[session_id] = int(t0[0])
            self._layouts[session_id] = [Channel(*row) for row in rows]
        return self._layouts[session_id]

    def _t0_ms(self, session_id: int) -> int:
        if session_id not in self._t0:
            self._layouts.pop(session_id, None)
            self.layout(session_id)
        return self._t0[session_id]

    def _extend_layout(self, session_id: int, new: list[Channel]) -> None:
        layout = self.layout(session_id)
        have = {c.name for c in layout}
        for ch in new:
            if ch.name in have:
                continue
            if ch.kind not in (VALUE, STATUS) or not ch.resolution > 0:
                raise StoreError(f"bad channel {ch!r}")
            self.db.execute(
                "INSERT INTO channels (session_id, idx, name, kind, resolution) VALUES (?,?,?,?,?)",
                (session_id, len(layout), ch.name, ch.kind, ch.resolution),
            )
            layout.append(ch)
            have.add(ch.name)

    # samples -----------------------------------------------------------------------------------

    def append(self, session_id: int, samples: Sequence[Sample]) -> int:
        """Write ``samples`` to a session in one transaction. Returns the number written.

        Samples may come in any order; new channel names extend the session layout; a sample at
        the same millisecond as an earlier one replaces it.
        :raises StoreError: unknown session, a sample older than the session start, I/O error.
        """
        if not samples:
            return 0
        with self._guard("append samples"), self.transaction():
            self._append_locked(session_id, samples)
        return len(samples)

    def _append_locked(self, session_id: int, samples: Sequence[Sample]) -> None:
        layout = self.layout(session_id)
        known = {c.name for c in layout}
        new: list[Channel] = []
        for s in samples:
            for name in s.values:
                if name not in known:
                    new.append(Channel(name, VALUE, resolution_for(name)))
                    known.add(name)
            for name in s.status:
                if name not in known:
                    new.append(Channel(name, STATUS, 1.0))
                    known.add(name)
        if new:
            self._extend_layout(session_id, new)
        n = len(samples)
        q = np.zeros((n, len(layout)), dtype=np.int64)
        present = np.zeros((n, len(layout)), dtype=bool)
        for i, ch in enumerate(layout):
            if ch.kind == VALUE:
                col = np.fromiter((_value_or_nan(s, ch.name) for s in samples), dtype=np.float64, count=n)
                q[:, i], present[:, i] = to_fixed(col, ch.resolution)
            else:
                words = np.fromiter((_status_or_missing(s, ch.name) for s in samples), dtype=np.int64, count=n)
                present[:, i] = words >= 0
                q[:, i] = np.where(words >= 0, words, 0)
        times = np.fromiter((s.time for s in samples), dtype=np.float64, count=n)
        self._merge(session_id, Block(self._offsets(session_id, times), q, present))

    def append_columns(
        self,
        session_id: int,
        t: npt.ArrayLike,
        values: Mapping[str, npt.ArrayLike] | None = None,
        status: Mapping[str, npt.ArrayLike] | None = None,
    ) -> int:
        """Bulk write: times (unix s) plus one array per channel (NaN / negative = missing).

        The fast path for imports and benchmarks; same storage and rules as :meth:`append`.
        :raises StoreError: as :meth:`append`, or a column whose length differs from ``t``.
        """
        times = np.asarray(t, dtype=np.float64)
        vcols = {name: np.asarray(a, dtype=np.float64) for name, a in (values or {}).items()}
        scols = {name: np.asarray(a, dtype=np.int64) for name, a in (status or {}).items()}
        for name, arr in {**vcols, **scols}.items():
            if arr.shape != times.shape:
                raise StoreError(f"column {name} has {arr.shape} values for {times.shape} times")
        if len(times) == 0:
            return 0
        with self._guard("append samples"), self.transaction():
            layout = self.layout(session_id)
            known = {c.name for c in layout}
            new = [Channel(nm, VALUE, resolution_for(nm)) for nm in vcols if nm not in known]
            new += [Channel(nm, STATUS, 1.0) for nm in scols if nm not in known]
            if new:
                self._extend_layout(session_id, new)
            q = np.zeros((len(times), len(layout)), dtype=np.int64)
            present = np.zeros((len(times), len(layout)), dtype=bool)
            for i, ch in enumerate(layout):
                if ch.name in vcols:
                    q[:, i], present[:, i] = to_fixed(vcols[ch.name], ch.resolution)
                elif ch.name in scols:
                    words = scols[ch.name]
                    present[:, i] = words >= 0
                    q[:, i] = np.where(words >= 0, words, 0)
            self._merge(session_id, Block(self._offsets(session_id, times), q, present))
        return len(times)

    def _offsets(self, session_id: int, times: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
        if not np.all(np.isfinite(times)):
            raise StoreError("sample time is not finite")
        offsets = np.rint(times * 1000.0).astype(np.int64) - self._t0_ms(session_id)
        if int(offsets.min()) < 0 or int(offsets.max()) > _TIME_MASK:
            raise StoreError(f"sample time outside session {session_id} (before its start or 34 years after)")
        return offsets

    def _merge(self, session_id: int, batch: Block) -> None:
        """Merge a batch into the session's chunks: rewrite only the chunks it touches."""
        width = len(self.layout(session_id))
        order = np.argsort(batch.t, kind="stable")
        batch = Block(batch.t[order], batch.q[order], batch.present[order])
        lo, hi = int(batch.t[0]), int(batch.t[-1])
        rows = self.db.execute(
            "SELECT k, n, span_ms, data FROM samples WHERE k BETWEEN ? AND ? ORDER BY k",
            (_key(session_id, max(0, lo - CHUNK_SPAN_MS)), _key(session_id, hi)),
        ).fetchall()
        before = [r for r in rows if (r[0] & _TIME_MASK) + r[2] < lo]
        touched = [r for r in rows if (r[0] & _TIME_MASK) + r[2] >= lo]
        if before:  # the chunk just before the batch is refilled while it has room
            k, n, _, _ = before[-1]
            if n < CHUNK_SAMPLES and lo - (k & _TIME_MASK) < CHUNK_SPAN_MS:
                touched.insert(0, before[-1])
        parts = [decode_chunk(data, k & _TIME_MASK, width) for k, _, _, data in touched]
        merged = _concat([*parts, batch], width)
        order = np.argsort(merged.t, kind="stable")  # batch last: it wins on equal times
        t = merged.t[order]
        last = np.append(t[1:] != t[:-1], True)
        keep = order[last]
        merged = Block(merged.t[keep], merged.q[keep], merged.present[keep])
        if touched:
            self.db.executemany("DELETE FROM samples WHERE k = ?", [(r[0],) for r in touched])
        rows_out = []
        for a, b in _chunk_bounds(merged.t):
            chunk = Block(merged.t[a:b], merged.q[a:b], merged.present[a:b])
            start = int(chunk.t[0])
            rows_out.append((_key(session_id, start), b - a, int(chunk.t[-1]) - start, encode_chunk(chunk)))
        self.db.executemany("INSERT INTO samples (k, n, span_ms, data) VALUES (?,?,?,?)", rows_out)

    def _blocks(self, session_id: int, t0: float | None, t1: float | None, *, per_query: int = 64) -> Iterator[Block]:
        """Decoded blocks with ``t0 ≤ time ≤ t1``, in time order, ``per_query`` chunks at a time."""
        width = len(self.layout(session_id))
        base = self._t0_ms(session_id)
        lo = 0 if t0 is None else min(max(0, math.ceil(round(t0 * 1000, 3)) - base), _TIME_MASK + 1)
        hi = _TIME_MASK if t1 is None else min(_TIME_MASK, math.floor(round(t1 * 1000, 3)) - base)
        if hi < lo:
            return
        after = _key(session_id, max(0, lo - CHUNK_SPAN_MS)) - 1
        while True:
            with self._guard("read samples"):
                rows = self.db.execute(
                    "SELECT k, span_ms, data FROM samples WHERE k > ? AND k <= ? AND k + span_ms >= ?"
                    " ORDER BY k LIMIT ?",
                    (after, _key(session_id, hi), _key(session_id, lo), per_query),
                ).fetchall()
            for k, _, data in rows:
                block = decode_chunk(data, k & _TIME_MASK, width)
                a = int(np.searchsorted(block.t, lo, side="left"))
                b = int(np.searchsorted(block.t, hi, side="right"))
                if b > a:
                    yield block if (a, b) == (0, len(block)) else Block(block.t[a:b], block.q[a:b], block.present[a:b])
            if len(rows) < per_query:
                return
            after = rows[-1][0]

    def window(self, session_id: int, t0: float | None = None, t1: float | None = None) -> Window:
        """Samples with ``t0 ≤ time ≤ t1`` (unix s; None = open end) as numpy arrays.

        Everything in the range is loaded at once (~200 bytes per sample for 13 channels): ask for
        a range, or use :meth:`iter_samples` to stream a long session.
        :raises StoreError: unknown session, corrupt chunk.
        """
        layout = self.layout(session_id)
        block = _concat(list(self._blocks(session_id, t0, t1, per_query=4096)), len(layout))
        return self._window(session_id, layout, block)

    def _window(self, session_id: int, layout: list[Channel], block: Block) -> Window:
        t = (block.t + self._t0_ms(session_id)).astype(np.float64) / 1000.0
        values: dict[str, npt.NDArray[np.float64]] = {}
        status: dict[str, npt.NDArray[np.int64]] = {}
        for i, ch in enumerate(layout):
            present = block.present[:, i]
            if ch.kind == VALUE:
                v = block.q[:, i].astype(np.float64) * ch.resolution
                v[~present] = np.nan
                values[ch.name] = v
            else:
                status[ch.name] = np.where(present, block.q[:, i], -1)
        return Window(t, values, status)

    def iter_samples(self, session_id: int, t0: float | None = None, t1: float | None = None) -> Iterator[Sample]:
        """The recorded samples as :class:`Sample` records, oldest first, read a few chunks at a time."""
        layout = self.layout(session_id)
        for block in self._blocks(session_id, t0, t1, per_query=8):
            yield from _window_samples(self._window(session_id, layout, block), layout, session_id)

    def count(self, session_id: int) -> int:
        """Number of samples recorded in a session."""
        with self._guard("count samples"):
            row = self.db.execute(
                "SELECT total(n) FROM samples WHERE k BETWEEN ? AND ?",
                (_key(session_id, 0), _key(session_id, _TIME_MASK)),
            ).fetchone()
        return int(row[0])

    # events ------------------------------------------------------------------------------------

    def record_event(self, event: Event) -> None:
        """Insert an event, or replace the earlier version with the same session and id."""
        with self._guard("record event"), self.transaction():
            self._record_event_locked(event)

    def _record_event_locked(self, e: Event) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO events (session_id, id, time, severity, source, code, message, value,"
            " limit_value, latched, acknowledged, cleared, ack_time) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                e.session_id or 0,
                e.id,
                e.time,
                int(e.severity),
                e.source,
                e.code,
                e.message,
                None if math.isnan(e.value) else e.value,
                None if math.isnan(e.limit) else e.limit,
                int(e.latched),
                int(e.acknowledged),
                e.cleared,
                e.ack_time,
            ),
        )

    def next_event_id(self, session_id: int | None) -> int:
        """The id an :class:`~smartbatt.monitor.alarms.AlarmEngine` should start from
        (``first_id``) so events of a restarted engine do not overwrite this session's earlier ones."""
        with self._guard("read events"):
            row = self.db.execute(
                "SELECT coalesce(max(id), 0) + 1 FROM events WHERE session_id = ?", (session_id or 0,)
            ).fetchone()
        return int(row[0])

    def events(
        self,
        *,
        since: float | None = None,
        session_id: int | None = None,
        min_severity: Severity = Severity.INFO,
    ) -> list[Event]:
        """Logged events, oldest first; filter by start time (unix s), session, severity."""
        sql = (
            "SELECT id, time, severity, source, code, message, value, limit_value, latched, acknowledged,"
            " cleared, ack_time, session_id FROM events WHERE severity >= ?"
        )
        args: list[Any] = [int(min_severity)]
        if since is not None:
            sql += " AND time >= ?"
            args.append(since)
        if session_id is not None:
            sql += " AND session_id = ?"
            args.append(session_id)
        with self._guard("read events"):
            rows = self.db.execute(sql + " ORDER BY time, session_id, id", args).fetchall()
        return [
            Event(
                id=r[0],
                time=r[1],
                severity=Severity(r[2]),
                source=r[3],
                code=r[4],
                message=r[5],
                value=math.nan if r[6] is None else r[6],
                limit=math.nan if r[7] is None else r[7],
                latched=bool(r[8]),
                acknowledged=bool(r[9]),
                cleared=r[10],
                ack_time=r[11],
                session_id=r[12] or None,
            )
            for r in rows
        ]

    # export ------------------------------------------------------------------------------------

    def export_csv(self, session_id: int, out: IO[str], *, t0: float | None = None, t1: float | None = None) -> int:
        """Write a session as CSV to a text stream. Returns the number of rows.

        Columns: ``time`` (ISO 8601 UTC), ``unix_s``, every value channel (display unit in the
        header, e.g. ``Voltage [V]``; empty = missing) and every status word (decimal).
        """
        layout = self.layout(session_id)
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["time", "unix_s", *(_header(c) for c in layout)])
        fmts = [f"{{:.{_decimals(c.resolution)}f}}" for c in layout]
        n = 0
        for s in self.iter_samples(session_id, t0, t1):
            row: list[str] = [_iso(s.time), f"{s.time:.3f}"]
            for ch, fmt in zip(layout, fmts, strict=True):
                if ch.kind == VALUE:
                    v = s.get(ch.name)
                    row.append("" if v is None else fmt.format(v))
                else:
                    w = s.status.get(ch.name)
                    row.append("" if w is None else str(w))
            writer.writerow(row)
            n += 1
        return n


# --- helpers ----------------------------------------------------------------------------------------


@contextlib.contextmanager
def _translate(path: Path, what: str) -> Iterator[None]:
    """Turn sqlite3 errors into :class:`StoreError` naming the file and the operation."""
    try:
        yield
    except sqlite3.Error as exc:
        raise StoreError(f"{path}: cannot {what}: {exc}") from exc


def _value_or_nan(s: Sample, name: str) -> float:
    if name in s.missing:
        return math.nan
    v = s.values.get(name)
    return math.nan if v is None else float(v)


def _status_or_missing(s: Sample, name: str) -> int:
    if name in s.missing:
        return -1
    w = s.status.get(name)
    return -1 if w is None else int(w)


_UNITS: dict[str, str] = {
    "Voltage": "V",
    "Current": "A",
    "AverageCurrent": "A",
    "Temperature": "°C",
    "RelativeStateOfCharge": "%",
    "AbsoluteStateOfCharge": "%",
    "RemainingCapacity": "Ah",
    "FullChargeCapacity": "Ah",
}


def unit_of(name: str) -> str:
    """Display unit of a channel per the sample.py table, or '' if not known."""
    if name in _UNITS:
        return _UNITS[name]
    if name.startswith("CellVoltage"):
        return "V"
    if name.startswith("Temperature"):
        return "°C"
    if name == "est_soc":
        return "%"
    return ""


def _header(ch: Channel) -> str:
    unit = unit_of(ch.name) if ch.kind == VALUE else ""
    return f"{ch.name} [{unit}]" if unit else ch.name


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _concat(blocks: list[Block], width: int) -> Block:
    if not blocks:
        return Block(np.empty(0, np.int64), np.empty((0, width), np.int64), np.empty((0, width), bool))
    blocks = [b.widen(width) for b in blocks]
    if len(blocks) == 1:
        return blocks[0]
    return Block(
        np.concatenate([b.t for b in blocks]),
        np.concatenate([b.q for b in blocks]),
        np.concatenate([b.present for b in blocks]),
    )


def _window_samples(win: Window, layout: list[Channel], session_id: int) -> Iterator[Sample]:
    vnames = [c.name for c in layout if c.kind == VALUE]
    snames = [c.name for c in layout if c.kind == STATUS]
    vcols = [win.values[n].tolist() for n in vnames]
    scols = [win.status[n].tolist() for n in snames]
    for i, t in enumerate(win.t.tolist()):
        values: dict[str, float] = {}
        status: dict[str, int] = {}
        missing: list[str] = []
        for name, col in zip(vnames, vcols, strict=True):
            v = col[i]
            if math.isnan(v):
                missing.append(name)
            else:
                values[name] = v
        for name, scol in zip(snames, scols, strict=True):
            w = scol[i]
            if w < 0:
                missing.append(name)
            else:
                status[name] = w
        yield Sample(t, values, status, frozenset(missing), session_id)


# --- recorder (writer thread) ------------------------------------------------------------------------


class Recorder:
    """Records samples and events from a :class:`SampleBus` on a writer thread of its own.

    :param path: the database (created if needed).
    :param session_id: session for samples that carry none.
    :param commit_interval_s: the longest an accepted item waits before its commit (≤ 1 s keeps a
        ``kill -9`` loss under one second).
    :param maxlen: queue bound (items); beyond it the oldest queued item is dropped and counted.
    :raises StoreError: the database cannot be opened (raised here, not later on the thread).
    """

    def __init__(
        self,
        path: str | Path,
        session_id: int,
        *,
        commit_interval_s: float = 0.5,
        maxlen: int = 1_000_000,
        open_timeout_s: float = 10.0,
    ) -> None:
        if not 0 < commit_interval_s <= 1.0:
            raise ValueError("commit_interval_s must be in (0, 1] s")
        self.path = Path(path)
        self.session_id = session_id
        self.commit_interval_s = commit_interval_s
        self.maxlen = maxlen
        #: most items written in one transaction.
        self.batch_max = 50_000
        #: samples and events committed so far.
        self.samples_written = 0
        self.events_written = 0
        self.commits = 0
        #: items dropped because the queue was full or a write failed.
        self.dropped = 0
        self.last_error: StoreError | None = None
        self._queue: deque[Sample | Event] = deque()
        self._cond = threading.Condition()
        self._accepted = 0
        self._done = 0
        self._stop = False
        self._flush_requested = False
        self._end_session = False
        self._ready = threading.Event()
        self._subscription: Subscription | None = None
        self._thread = threading.Thread(target=self._run, name="smartbatt-recorder", daemon=True)
        self._thread.start()
        if not self._ready.wait(open_timeout_s):
            raise StoreError(f"{self.path}: recorder did not open the database within {open_timeout_s} s")
        error = self._error()
        if error is not None:
            self._thread.join(open_timeout_s)
            raise error

    def _error(self) -> StoreError | None:
        return self.last_error

    def submit(self, item: Sample | Event) -> None:
        """Queue a sample or event for writing; never blocks."""
        with self._cond:
            if self._stop:
                raise StoreError("recorder is closed")
            if len(self._queue) >= self.maxlen:
                self._queue.popleft()
                self.dropped += 1
                self._done += 1
            self._queue.append(item)
            self._accepted += 1
            self._cond.notify_all()

    __call__ = submit

    def attach(self, bus: SampleBus) -> Subscription:
        """Subscribe to samples and events on ``bus`` (detached again by :meth:`close`)."""
        self._subscription = bus.subscribe(self.submit, name="recorder", accept=(Sample, Event))
        return self._subscription

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until everything submitted so far is committed. False on timeout."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            target = self._accepted
            self._flush_requested = True
            self._cond.notify_all()
            while self._done < target and self._thread.is_alive():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return self._done >= target

    def close(self, timeout_s: float = 10.0, *, end_session: bool = False) -> None:
        """Write what is queued, stop the writer thread.

        :raises StoreError: the writer did not finish in ``timeout_s``, or the last write failed.
        """
        if self._subscription is not None:
            self._subscription.unsubscribe(timeout_s)
            self._subscription = None
        with self._cond:
            self._stop = True
            self._end_session = end_session
            self._cond.notify_all()
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            raise StoreError(f"{self.path}: recorder did not finish writing within {timeout_s} s")
        if self.last_error is not None:
            raise self.last_error

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        try:
            store = Store(self.path)
        except StoreError as exc:
            self.last_error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            self._loop(store)
            if self._end_session:
                store.end_session(self.session_id)
        except StoreError as exc:
            self.last_error = exc
        finally:
            store.close()
            with self._cond:
                self._done = self._accepted
                self._cond.notify_all()

    def _loop(self, store: Store) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stop:
                    self._cond.wait()
                if not self._queue:
                    return  # stopped, everything written
                # let a burst accumulate into one transaction, but never hold the first item of
                # a batch longer than the commit interval (the kill -9 loss bound)
                deadline = time.monotonic() + self.commit_interval_s
                while not self._stop and not self._flush_requested and len(self._queue) < self.batch_max:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                self._flush_requested = False
                batch = list(self._queue)
                self._queue.clear()
            self._write(store, batch)
            with self._cond:
                self._done += len(batch)
                self._cond.notify_all()

    def _write(self, store: Store, batch: list[Sample | Event]) -> None:
        """One transaction for the batch; if it fails, item by item so one bad item costs only itself."""
        try:
            self._commit(store, batch)
        except StoreError as exc:
            self.last_error = exc
            if len(batch) == 1:
                with self._cond:
                    self.dropped += 1
                return
            for item in batch:
                try:
                    self._commit(store, [item])
                except StoreError as item_exc:
                    self.last_error = item_exc
                    with self._cond:
                        self.dropped += 1

    def _commit(self, store: Store, batch: list[Sample | Event]) -> None:
        by_session: dict[int, list[Sample]] = {}
        events: list[Event] = []
        for item in batch:
            if isinstance(item, Sample):
                by_session.setdefault(item.session_id or self.session_id, []).append(item)
            else:
                events.append(item)
        with _translate(self.path, "record"), store.transaction():
            for sid, samples in by_session.items():
                store._append_locked(sid, samples)
            for e in events:
                store._record_event_locked(e if e.session_id else _with_session(e, self.session_id))
        self.commits += 1
        self.samples_written += sum(len(v) for v in by_session.values())
        self.events_written += len(events)


def _with_session(e: Event, session_id: int) -> Event:
    return replace(e, session_id=session_id)


# --- replay ---------------------------------------------------------------------------------------------


def replay(
    store: Store,
    session_id: int,
    bus: SampleBus,
    *,
    speed: float = 1.0,
    t0: float | None = None,
    t1: float | None = None,
    stop: threading.Event | None = None,
    block_s: float = 5.0,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Publish a recorded session's samples to ``bus`` with their original times.

    :param speed: 1 = real time, 10 = ten times faster, 0 = as fast as the subscribers take
        them (publication then waits up to ``block_s`` per full subscriber queue, so nothing is
        dropped by a subscriber that keeps up, and a stuck one cannot hang the replay).
    :param stop: set it from another thread to end the replay early.
    :returns: the number of samples published.
    :raises ValueError: negative speed. :raises StoreError: unknown session, corrupt rows.
    """
    if speed < 0 or not math.isfinite(speed):
        raise ValueError("speed must be ≥ 0 (0 = as fast as possible)")
    stop = stop or threading.Event()
    start_wall: float | None = None
    first_t = 0.0
    n = 0
    for sample in store.iter_samples(session_id, t0, t1):
        if stop.is_set():
            break
        if speed > 0:
            if start_wall is None:
                start_wall, first_t = clock(), sample.time
            due = start_wall + (sample.time - first_t) / speed
            delay = due - clock()
            if delay > 0 and stop.wait(delay):
                break
            bus.publish(sample)
        else:
            bus.publish(sample, block_s=block_s)
        n += 1
    return n
