"""The SQLite recorder: schema, chunk codec, windows, events, CSV, recorder thread, replay, kill -9."""

from __future__ import annotations

import contextlib
import io
import itertools
import math
import os
import select
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from smartbatt.errors import SmartBattError, StoreError
from smartbatt.monitor import store as store_mod
from smartbatt.monitor.sample import Event, Sample, SampleBus, Severity
from smartbatt.monitor.store import (
    CHUNK_SAMPLES,
    Block,
    PackInfo,
    Recorder,
    Store,
    decode_chunk,
    encode_chunk,
    replay,
)

ROOT = Path(__file__).resolve().parents[1]
T0 = 1_750_000_000.0


def _sample(i: int, *, dt: float = 1.0, session: int | None = None) -> Sample:
    return Sample(
        T0 + i * dt,
        {
            "Voltage": round(16.0 + 0.001 * (i % 500), 3),
            "Current": round(-12.5 + 0.01 * (i % 77), 3),
            "Temperature": round(25.0 + 0.1 * (i % 30), 1),
            "RelativeStateOfCharge": float(100 - i % 100),
            "CellVoltage1": round(4.0 + 0.001 * (i % 13), 3),
            "CellVoltage2": round(4.0 - 0.001 * (i % 11), 3),
        },
        {"BatteryStatus": 0x00C0 | (0x0800 if i % 50 == 0 else 0), "SafetyStatus": 0},
        session_id=session,
    )


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "rec.db") as s:
        yield s


# --- opening, schema, migration --------------------------------------------------------------------


def test_new_store_is_wal_with_schema_version(tmp_path: Path):
    path = tmp_path / "a.db"
    Store(path).close()
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert con.execute("PRAGMA user_version").fetchone()[0] == store_mod.SCHEMA_VERSION
    assert con.execute("PRAGMA application_id").fetchone()[0] == store_mod.APPLICATION_ID
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_schema WHERE type='table'")}
    assert {"packs", "sessions", "channels", "samples", "events"} <= tables
    con.close()


def test_foreign_sqlite_file_is_refused_and_left_unchanged(tmp_path: Path):
    path = tmp_path / "other.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE t (x)")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="not a smartbatt recording"):
        Store(path)
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # not switched to WAL
    con.close()


def test_non_database_file_is_a_store_error(tmp_path: Path):
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError) as err:
        Store(path)
    assert isinstance(err.value, SmartBattError)


def test_readonly_needs_an_existing_store(tmp_path: Path):
    with pytest.raises(StoreError, match="no such recording"):
        Store(tmp_path / "missing.db", readonly=True)
    (tmp_path / "empty.db").write_bytes(b"")
    with pytest.raises(StoreError, match="empty file"):
        Store(tmp_path / "empty.db", readonly=True)


def test_newer_schema_is_refused(tmp_path: Path):
    path = tmp_path / "a.db"
    Store(path).close()
    con = sqlite3.connect(path)
    con.execute(f"PRAGMA user_version={store_mod.SCHEMA_VERSION + 1}")
    con.close()
    with pytest.raises(StoreError, match="newer"):
        Store(path)


def test_migration_hook_runs_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "a.db"
    Store(path).close()
    ran: list[int] = []

    def to_2(con: sqlite3.Connection) -> None:
        ran.append(1)
        con.execute("ALTER TABLE sessions ADD COLUMN operator TEXT NOT NULL DEFAULT ''")

    monkeypatch.setattr(store_mod, "SCHEMA_VERSION", 2)
    monkeypatch.setitem(store_mod.MIGRATIONS, 1, to_2)
    with Store(path) as s:
        assert s.db.execute("PRAGMA user_version").fetchone()[0] == 2
        s.db.execute("SELECT operator FROM sessions")
    assert ran == [1]
    Store(path).close()  # already migrated: runs nothing
    assert ran == [1]


def test_missing_migration_is_a_store_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "a.db"
    Store(path).close()
    monkeypatch.setattr(store_mod, "SCHEMA_VERSION", 3)
    with pytest.raises(StoreError, match="no migration from schema version 1"):
        Store(path)
    monkeypatch.setattr(store_mod, "SCHEMA_VERSION", 1)
    Store(path).close()  # the failed migration rolled back: still a valid version-1 store


# --- packs and sessions ----------------------------------------------------------------------------


def test_packs_are_deduplicated_by_identity(db: Store):
    info = PackInfo("smartbatt", "EMU-4S3000", "4660", "2025-03-14", "LION", 3.0, 14.4, 4, "default")
    a = db.add_pack(info)
    assert db.add_pack(info) == a
    b = db.add_pack(PackInfo("smartbatt", "EMU-4S3000", "4661", "2025-03-14"))
    assert b != a
    packs = db.packs()
    assert [p.id for p in packs] == [a, b]
    assert packs[0].design_capacity_ah == 3.0 and packs[0].cells == 4


def test_sessions_report_counts_and_span(db: Store):
    pack = db.add_pack(PackInfo(serial="1"))
    sid = db.start_session(pack, started=T0, source="emulated:", note="bench")
    empty = db.start_session(started=T0)
    db.append(sid, [_sample(i) for i in range(10)])
    db.end_session(sid, T0 + 20)
    infos = {s.id: s for s in db.sessions()}
    assert infos[sid].samples == 10 and infos[sid].first == T0 and infos[sid].last == T0 + 9
    assert infos[sid].ended == T0 + 20 and infos[sid].source == "emulated:" and infos[sid].pack_id == pack
    assert infos[empty].samples == 0 and infos[empty].first is None
    with pytest.raises(StoreError, match="no session 99"):
        db.session(99)
    with pytest.raises(StoreError, match="no session 99"):
        db.window(99)


# --- samples -------------------------------------------------------------------------------------


def test_window_round_trips_values_status_and_missing(db: Store):
    sid = db.start_session(started=T0)
    samples = [_sample(i) for i in range(3000)]
    samples[5] = Sample(samples[5].time, {"Voltage": 15.5}, {"BatteryStatus": 0xC0}, missing=frozenset({"Current"}))
    db.append(sid, samples)
    w = db.window(sid)
    assert len(w) == 3000
    np.testing.assert_allclose(w.t, [s.time for s in samples])
    for name in ("Voltage", "Current", "Temperature", "CellVoltage1", "CellVoltage2", "RelativeStateOfCharge"):
        expected = [s.values.get(name, math.nan) for s in samples]
        np.testing.assert_allclose(w.values[name], expected, atol=1e-9, equal_nan=True)
    assert math.isnan(w.values["Current"][5]) and math.isnan(w.values["Temperature"][5])
    assert w.status["BatteryStatus"][0] == 0x08C0 and w.status["BatteryStatus"][1] == 0xC0
    assert w.status["SafetyStatus"][5] == -1  # missing status word
    assert db.count(sid) == 3000


def test_window_bounds_are_inclusive_and_cross_chunks(db: Store):
    sid = db.start_session(started=T0)
    db.append(sid, [_sample(i) for i in range(3 * CHUNK_SAMPLES + 7)])
    w = db.window(sid, T0 + 1000, T0 + 2100)
    assert w.t[0] == T0 + 1000 and w.t[-1] == T0 + 2100 and len(w) == 1101
    assert len(db.window(sid, T0 + 5000, T0 + 6000)) == 0
    assert len(db.window(sid, T0 + 10, T0 + 5)) == 0
    assert len(db.window(sid, None, T0 + 0.5)) == 1


def test_trickle_appends_equal_one_bulk_append(tmp_path: Path):
    samples = [_sample(i) for i in range(CHUNK_SAMPLES + 30)]
    with Store(tmp_path / "a.db") as a, Store(tmp_path / "b.db") as b:
        sa, sb = a.start_session(started=T0), b.start_session(started=T0)
        a.append(sa, samples)
        for s in samples:  # the open chunk is rewritten each time
            b.append(sb, [s])
        wa, wb = a.window(sa), b.window(sb)
        for name in wa.values:
            np.testing.assert_array_equal(wa.values[name], wb.values[name])
        chunks = b.db.execute("SELECT n FROM samples ORDER BY k").fetchall()
        assert [n for (n,) in chunks] == [CHUNK_SAMPLES, 30]


def test_out_of_order_and_duplicate_samples_merge(db: Store):
    sid = db.start_session(started=T0)
    db.append(sid, [_sample(i) for i in range(0, 2000, 2)])
    db.append(sid, [_sample(i) for i in range(1, 2000, 2)])  # fills every gap, touches every chunk
    late = Sample(T0 + 10, {"Voltage": 1.234}, {})
    db.append(sid, [late])  # same millisecond: replaces the earlier sample
    w = db.window(sid)
    assert len(w) == 2000
    assert np.all(np.diff(w.t) == 1.0)
    assert w.values["Voltage"][10] == 1.234 and math.isnan(w.values["Current"][10])
    spans = db.db.execute("SELECT k, span_ms FROM samples ORDER BY k").fetchall()
    for (k1, span1), (k2, _) in itertools.pairwise(spans):
        assert k1 + span1 < k2  # chunks never overlap


def test_channels_added_mid_session_read_as_missing_before(db: Store):
    sid = db.start_session(started=T0)
    db.append(sid, [Sample(T0 + i, {"Voltage": 16.0}) for i in range(5)])
    db.append(sid, [Sample(T0 + 5 + i, {"Voltage": 16.0, "est_soc": 50.5}, {"PFStatus": 4}) for i in range(5)])
    w = db.window(sid)
    assert np.isnan(w.values["est_soc"][:5]).all() and (w.values["est_soc"][5:] == 50.5).all()
    assert list(w.status["PFStatus"]) == [-1] * 5 + [4] * 5
    assert [c.name for c in db.layout(sid)] == ["Voltage", "est_soc", "PFStatus"]


def test_extreme_values_survive(db: Store):
    sid = db.start_session(started=T0)
    vals = [0.0, 1e12, -1e12, 0.001, 1e12, math.inf, -0.001]
    db.append_columns(
        sid, [T0 + i for i in range(len(vals))], {"Voltage": vals}, {"SafetyStatus": [0, 2**32 - 1, 0, 1, 2**31, 0, -1]}
    )
    w = db.window(sid)
    np.testing.assert_allclose(w.values["Voltage"], [0.0, 1e12, -1e12, 0.001, 1e12, math.nan, -0.001], equal_nan=True)
    assert list(w.status["SafetyStatus"]) == [0, 2**32 - 1, 0, 1, 2**31, 0, -1]


def test_sample_before_session_start_is_refused(db: Store):
    sid = db.start_session(started=T0)
    with pytest.raises(StoreError, match="outside session"):
        db.append(sid, [Sample(T0 - 1, {"Voltage": 1.0})])
    with pytest.raises(StoreError, match="not finite"):
        db.append_columns(sid, [math.nan], {"Voltage": [1.0]})
    with pytest.raises(StoreError, match="has"):
        db.append_columns(sid, [T0, T0 + 1], {"Voltage": [1.0]})
    assert db.count(sid) == 0  # nothing half-written


def test_corrupt_chunk_is_a_store_error(db: Store):
    sid = db.start_session(started=T0)
    db.append(sid, [_sample(i) for i in range(10)])
    db.db.execute("UPDATE samples SET data = ?", (b"\x01\x05\x00",))
    with pytest.raises(StoreError, match="corrupt sample chunk"):
        db.window(sid)


def test_blob_layout_is_pinned():
    block = Block(np.array([0, 1000]), np.array([[16000, 0], [16001, 0]]), np.array([[True, False], [True, False]]))
    blob = encode_chunk(block)
    # plain: n=2, c=2, time int16 delta 1000; ch0 int8 delta +1 from 16000; ch1 never present
    assert blob == bytes.fromhex("010200020002e80301803e00000000000001100000000000000000")


@given(
    n=st.integers(1, CHUNK_SAMPLES),
    seed=st.integers(0, 2**32 - 1),
    magnitude=st.sampled_from([0, 1, 100, 2**15, 2**31, 2**62]),
    p_missing=st.sampled_from([0.0, 0.1, 0.9, 1.0]),
)
def test_chunk_codec_round_trips(n: int, seed: int, magnitude: int, p_missing: float):
    rng = np.random.default_rng(seed)
    t = np.cumsum(rng.integers(1, 70_000, n))  # up to int32 time deltas
    q = rng.integers(-magnitude, magnitude + 1, (n, 3), dtype=np.int64)  # every delta width
    present = rng.random((n, 3)) >= p_missing
    block = Block(t, q, present)
    back = decode_chunk(encode_chunk(block), int(t[0]), 4)
    np.testing.assert_array_equal(back.t, t)
    np.testing.assert_array_equal(back.present[:, :3], present)
    assert not back.present[:, 3].any()  # a wider layout reads as missing
    np.testing.assert_array_equal(back.q[:, :3][present], q[present])


@given(st.binary(max_size=200))
def test_any_blob_decodes_or_raises_store_error(blob: bytes):
    with contextlib.suppress(StoreError):  # anything else escaping fails the test
        decode_chunk(blob, 0, 4)


# --- events --------------------------------------------------------------------------------------


def test_events_upsert_by_session_and_id(db: Store):
    sid = db.start_session(started=T0)
    e = Event(
        1, T0 + 5, Severity.ALARM, "CellVoltage2", "cell_over_voltage", "too high", 4.3, 4.25, True, session_id=sid
    )
    db.record_event(e)
    db.record_event(e.with_clear(T0 + 9))
    db.record_event(Event(1, T0 + 1, Severity.INFO, "link", "x", "other session", session_id=None))
    db.record_event(Event(2, T0 + 50, Severity.WARNING, "Temperature", "over_temperature", "warm", session_id=sid))
    got = db.events(session_id=sid)
    assert [(x.id, x.cleared) for x in got] == [(1, T0 + 9), (2, None)]
    assert got[0].value == 4.3 and got[0].latched and got[0].session_id == sid
    assert math.isnan(got[1].value) and math.isnan(got[1].limit)
    assert [x.id for x in db.events(since=T0 + 10)] == [2]
    assert [x.code for x in db.events(min_severity=Severity.ALARM)] == ["cell_over_voltage"]
    assert len(db.events()) == 3 and db.events()[0].session_id is None
    assert db.next_event_id(sid) == 3 and db.next_event_id(None) == 2 and db.next_event_id(999) == 1


# --- CSV -----------------------------------------------------------------------------------------


def test_export_csv(db: Store):
    sid = db.start_session(started=T0)
    db.append(
        sid, [_sample(0), Sample(T0 + 1, {"Voltage": 16.5}, {"BatteryStatus": 0xC0}, missing=frozenset({"Current"}))]
    )
    out = io.StringIO()
    assert db.export_csv(sid, out) == 2
    lines = out.getvalue().splitlines()
    assert lines[0] == (
        "time,unix_s,Voltage [V],Current [A],Temperature [°C],RelativeStateOfCharge [%],"
        "CellVoltage1 [V],CellVoltage2 [V],BatteryStatus,SafetyStatus"
    )
    assert lines[1] == "2025-06-15T15:06:40.000Z,1750000000.000,16.000,-12.500,25.00,100.00,4.000,4.000,2240,0"
    assert lines[2] == "2025-06-15T15:06:41.000Z,1750000001.000,16.500,,,,,,192,"


# --- recorder thread -------------------------------------------------------------------------------


def test_recorder_records_bus_samples_and_events(tmp_path: Path):
    path = tmp_path / "rec.db"
    with Store(path) as s:
        sid = s.start_session(started=T0)
    with SampleBus() as bus:
        rec = Recorder(path, sid)
        rec.attach(bus)
        for i in range(2500):
            bus.publish(_sample(i))
        bus.publish(Event(1, T0 + 3, Severity.WARNING, "Temperature", "over_temperature", "warm"))
        assert bus.wait_idle(5.0)
        assert rec.flush(5.0)
        rec.close(end_session=True)
    assert rec.samples_written == 2500 and rec.events_written == 1 and rec.dropped == 0
    with Store(path, readonly=True) as s:
        assert s.count(sid) == 2500
        assert s.events()[0].session_id == sid  # filled in from the recorder's session
        assert s.session(sid).ended is not None


def test_recorder_commits_without_being_asked(tmp_path: Path):
    path = tmp_path / "rec.db"
    with Store(path) as s:
        sid = s.start_session(started=T0)
    with Recorder(path, sid, commit_interval_s=0.05) as rec, Store(path, readonly=True) as reader:
        rec.submit(_sample(0))
        deadline = time.monotonic() + 5.0
        while reader.count(sid) == 0 and time.monotonic() < deadline:
            threading.Event().wait(0.01)
        assert reader.count(sid) == 1  # visible to another connection without flush()


def test_recorder_reports_write_errors(tmp_path: Path):
    path = tmp_path / "rec.db"
    with Store(path) as s:
        sid = s.start_session(started=T0)
    rec = Recorder(path, sid)
    rec.submit(_sample(0))
    rec.submit(Sample(T0 - 100, {"Voltage": 1.0}))  # before the session start
    rec.submit(_sample(1))
    assert rec.flush(5.0)
    assert rec.dropped == 1 and rec.samples_written == 2  # only the bad sample is lost
    with pytest.raises(StoreError, match="outside session"):
        rec.close()
    with pytest.raises(StoreError, match="closed"):
        rec.submit(_sample(1))


def test_recorder_on_a_bad_path_fails_at_construction(tmp_path: Path):
    (tmp_path / "junk.db").write_bytes(b"x" * 4096)
    with pytest.raises(StoreError):
        Recorder(tmp_path / "junk.db", 1)
    with pytest.raises(ValueError):
        Recorder(tmp_path / "ok.db", 1, commit_interval_s=5.0)


def test_recorder_queue_bound_drops_oldest(tmp_path: Path):
    path = tmp_path / "rec.db"
    with Store(path) as s:
        sid = s.start_session(started=T0)
    with Store(path) as blocker:
        blocker.db.execute("BEGIN IMMEDIATE")  # hold the write lock: the writer waits
        rec = Recorder(path, sid, maxlen=10)
        for i in range(100):
            rec.submit(_sample(i))
        blocker.db.execute("COMMIT")
    rec.close()
    assert rec.dropped >= 89  # at most one batch was taken before the queue overflowed
    with Store(path, readonly=True) as s:
        assert s.count(sid) == 100 - rec.dropped


# --- replay --------------------------------------------------------------------------------------


def test_replay_as_fast_as_possible_delivers_everything_in_order(db: Store):
    sid = db.start_session(started=T0)
    originals = [_sample(i) for i in range(3000)]
    db.append(sid, originals)
    got: list[Sample] = []
    with SampleBus(maxlen=16) as bus:
        sub = bus.subscribe(got.append)
        assert replay(db, sid, bus, speed=0) == 3000
        assert bus.wait_idle(5.0)
        assert sub.dropped == 0  # speed 0 waits for slow subscribers instead of dropping
    assert [s.time for s in got] == [s.time for s in originals]
    assert got[7].values == originals[7].values and got[7].status == originals[7].status
    assert got[7].session_id == sid


def test_replay_at_speed_keeps_the_timing(db: Store):
    sid = db.start_session(started=T0)
    db.append(sid, [_sample(i, dt=0.5) for i in range(21)])  # 10 s of data
    arrivals: list[float] = []
    with SampleBus() as bus:
        bus.subscribe(lambda s: arrivals.append(time.monotonic()))
        start = time.monotonic()
        assert replay(db, sid, bus, speed=100.0) == 21  # 10 s at 100x = 0.1 s
        assert bus.wait_idle(5.0)
    assert time.monotonic() - start >= 0.095
    assert arrivals[-1] - arrivals[0] >= 0.09


def test_replay_stops_on_request_and_rejects_bad_speed(db: Store):
    sid = db.start_session(started=T0)
    db.append(sid, [_sample(i) for i in range(100)])
    stop = threading.Event()
    stop.set()
    with SampleBus() as bus:
        assert replay(db, sid, bus, speed=1.0, stop=stop) == 0
        with pytest.raises(ValueError):
            replay(db, sid, bus, speed=-1)
        assert replay(db, sid, bus, speed=0, t0=T0 + 10, t1=T0 + 19) == 10


# --- crash safety with a real process -----------------------------------------------------------------

_TRICKLE = textwrap.dedent(
    """
    import sys, time
    from smartbatt.monitor.sample import Sample
    from smartbatt.monitor.store import Recorder, Store

    path = sys.argv[1]
    with Store(path) as s:
        sid = s.start_session(started=time.time() - 1)
    rec = Recorder(path, sid, commit_interval_s=0.5)
    print("session", sid, flush=True)
    i = 0
    while True:  # a 200 Hz poller
        t = round(time.time(), 3)
        rec.submit(Sample(t, {"Voltage": 16.0 + (i % 100) / 1000, "Current": -2.0, "CellVoltage1": 4.0},
                          {"BatteryStatus": 0xC0}))
        print(i, repr(t), flush=True)
        i += 1
        time.sleep(0.005)
    """
)

_BULK = textwrap.dedent(
    """
    import sys
    import numpy as np
    from smartbatt.monitor.store import Store

    n = 50_000
    with Store(sys.argv[1]) as s:
        sid = s.start_session(started=0.0)
        print("session", sid, flush=True)
        k = 0
        while True:  # big transactions back to back: the kill lands inside one
            t = (np.arange(n) + k * n) * 0.01
            s.append_columns(sid, t, {"Voltage": 16.0 + t % 1, "Current": -t % 3})
            k += 1
            print("committed", k, flush=True)
    """
)


def _spawn(tmp_path: Path, script: str, db: Path) -> subprocess.Popen[str]:
    path = tmp_path / "child.py"
    path.write_text(script)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, str(path), str(db)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def _read_lines_until(proc: subprocess.Popen[str], done, timeout_s: float) -> list[str]:
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout_s
    while not done(lines):
        left = deadline - time.monotonic()
        if left <= 0 or proc.poll() is not None:
            proc.kill()
            raise AssertionError(f"child stalled or died: {lines[-3:]} {proc.stderr.read() if proc.stderr else ''}")
        ready, _, _ = select.select([proc.stdout], [], [], left)
        if ready:
            line = proc.stdout.readline()
            if line:
                lines.append(line.strip())
    return lines


def _kill(proc: subprocess.Popen[str]) -> list[str]:
    os.kill(proc.pid, signal.SIGKILL)
    out, _ = proc.communicate(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    return [line.strip() for line in out.splitlines() if line.strip()]


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_kill_9_while_recording_loses_at_most_a_second(tmp_path: Path):
    db = tmp_path / "crash.db"
    proc = _spawn(tmp_path, _TRICKLE, db)

    def two_seconds(lines: list[str]) -> bool:
        data = [ln for ln in lines if not ln.startswith("session")]
        return len(data) > 1 and float(data[-1].split()[1]) - float(data[0].split()[1]) >= 2.0

    lines = _read_lines_until(proc, two_seconds, timeout_s=30.0)
    lines += _kill(proc)  # whatever it printed up to its death
    submitted = [float(ln.split()[1]) for ln in lines if not ln.startswith("session")]
    sid = int(lines[0].split()[1])
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()
    with Store(db, readonly=True) as s:
        w = s.window(sid)
    assert len(w) > 0
    lost_s = submitted[-1] - w.t[-1]
    assert lost_s <= 1.0, f"lost {lost_s:.3f} s of samples"
    # no hole: every sample up to the last recorded one is there, with its value
    kept = [t for t in submitted if t <= w.t[-1] + 1e-6]
    np.testing.assert_allclose(w.t, kept, atol=1e-6)
    assert np.all(w.values["Current"] == -2.0)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_kill_9_during_big_transactions_never_corrupts(tmp_path: Path):
    db = tmp_path / "bulk.db"
    proc = _spawn(tmp_path, _BULK, db)
    lines = _read_lines_until(proc, lambda ls: sum(ln.startswith("committed") for ln in ls) >= 3, timeout_s=60.0)
    lines += _kill(proc)
    committed = max(int(ln.split()[1]) for ln in lines if ln.startswith("committed"))
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()
    with Store(db) as s:
        n = s.count(1)
        assert n % 50_000 == 0  # whole transactions only
        assert committed * 50_000 <= n <= (committed + 1) * 50_000
        w = s.window(1)
        np.testing.assert_allclose(np.diff(w.t), 0.01, atol=1e-9)
