"""The sqlite store and the one atomic write, with real files and concurrent processes."""

from __future__ import annotations

import multiprocessing as mp
import os
import sqlite3
import stat

import pytest

from runner import states
from runner.atomicio import copy_private, ensure_dir, write_atomic, write_json
from runner.store import Store


def _row(tid: str, tmp) -> dict:
    return {
        "task_id": tid,
        "session": "dk_000000000000",
        "argv": ["a", "b c"],
        "task_dir": str(tmp),
        "run_marker": "m",
    }


def test_write_atomic_private_whole_and_no_temp_left(tmp_path):
    p = tmp_path / "f.json"
    write_atomic(p, b"one")
    write_json(p, {"a": 1})
    assert p.read_text() == '{"a": 1}'
    assert stat.S_IMODE(p.stat().st_mode) == 0o600
    assert sorted(os.listdir(tmp_path)) == ["f.json"]
    with pytest.raises(FileNotFoundError):
        write_atomic(tmp_path / "missing" / "x", b"y")
    d = ensure_dir(tmp_path / "a" / "b")
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    src = tmp_path / "src"
    src.write_bytes(b"\x00\xff")
    assert copy_private(src, d / "copy") == 2 and (d / "copy").read_bytes() == b"\x00\xff"
    assert stat.S_IMODE((d / "copy").stat().st_mode) == 0o600


def test_store_wal_insert_duplicate_and_terminal_is_final(tmp_path):
    s = Store(tmp_path / "db.sqlite3")
    assert s.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert s.insert(_row("t", tmp_path))
    assert not s.insert(_row("t", tmp_path))
    assert s.get("t")["argv"] == ["a", "b c"] and s.get("t")["state"] == "starting"
    assert not s.transition("t", states.STALLED, "x", expect=[states.RUNNING])
    assert s.transition("t", states.RUNNING, "spawned")
    assert s.transition("t", states.FAILED, "exited", exit_code=3, result={"r": 1})
    for st in states.ALL:
        assert not s.transition("t", st, "again")
    t = s.get("t")
    assert (t["state"], t["exit_code"], t["result"]) == ("failed", 3, {"r": 1}) and t["ended_at"]
    assert [e["state"] for e in s.events("t")] == ["starting", "running", "failed"]
    with pytest.raises(ValueError):
        s.transition("t", "bogus", None)
    with pytest.raises(ValueError):
        s.update("t", state="running")


def test_missing_db_is_not_created_on_read(tmp_path):
    with pytest.raises(FileNotFoundError):
        Store(tmp_path / "none.sqlite3", create=False)
    assert not (tmp_path / "none.sqlite3").exists()


def _race(db: str, state: str, q) -> None:
    s = Store(db)
    q.put((state, s.transition("race", state, "r")))


def test_concurrent_writers_exactly_one_terminal_wins(tmp_path):
    db = str(tmp_path / "db.sqlite3")
    s = Store(db)
    s.insert(_row("race", tmp_path))
    s.transition("race", states.RUNNING, "spawned")
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    terms = sorted(states.TERMINAL)
    procs = [ctx.Process(target=_race, args=(db, st, q)) for st in terms * 2]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    results = [q.get(timeout=5) for _ in procs]
    winners = [st for st, ok in results if ok]
    assert len(winners) == 1
    assert s.get("race")["state"] == winners[0]
    assert [e["state"] for e in s.events("race")].count(winners[0]) == 1
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT COUNT(*) FROM events WHERE task_id='race'").fetchone()[0] == 3


def test_a_database_left_without_its_schema_is_completed_by_the_next_reader(tmp_path):
    """`start` SIGKILLed after sqlite created the file but before the schema's commit (chaos crash_start
    at 0.15 s) left a database with no tables; `list` then failed with "no such table: tasks"."""
    path = tmp_path / "dispatch.sqlite3"
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")  # what the killed start had done: the file, no schema
    db.close()
    store = Store(path, create=False)
    assert store.get("t1") is None
    row = {"task_id": "t1", "session": "s", "argv": ["true"], "task_dir": str(tmp_path), "run_marker": "m"}
    assert store.insert(row) and store.get("t1")["state"] == states.STARTING
