"""Task state in sqlite (WAL, busy_timeout): the one source of truth for the CLI and the wrappers.

Transitions are compare-and-set inside an IMMEDIATE transaction and never leave a terminal state, so
concurrent writers (wrapper, stop, reap, status) cannot undo one another.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from runner import states
from runner.clock import mono, wall
from runner.errors import DispatchError

BUSY_TIMEOUT_MS = 15000

SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    n INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id TEXT UNIQUE NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    exit_code INTEGER,
    signal INTEGER,
    result TEXT,
    session TEXT NOT NULL,
    pane_id TEXT,
    wrapper_pid INTEGER,
    wrapper_start INTEGER,
    agent_pid INTEGER,
    agent_start INTEGER,
    agent_started_at REAL,
    logpipe_pid INTEGER,
    logpipe_start INTEGER,
    log_path TEXT,
    model TEXT,
    argv TEXT NOT NULL,
    label TEXT,
    task_dir TEXT NOT NULL,
    run_marker TEXT NOT NULL,
    max_lifetime REAL NOT NULL DEFAULT 0,
    created_wall REAL NOT NULL,
    created_mono REAL NOT NULL,
    started_at REAL,
    ended_at REAL
);
CREATE TABLE IF NOT EXISTS events (
    task_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    mono REAL NOT NULL,
    wall REAL NOT NULL,
    detail TEXT,
    PRIMARY KEY (task_id, seq)
);
"""

UPDATABLE = {
    "session",  # renamed by start after a duplicate-session collision, before the session exists
    "exit_code",
    "signal",
    "result",
    "pane_id",
    "wrapper_pid",
    "wrapper_start",
    "agent_pid",
    "agent_start",
    "agent_started_at",
    "logpipe_pid",
    "logpipe_start",
    "log_path",
    "started_at",
    "ended_at",
}

PUBLIC_FIELDS = (
    "task_id",
    "state",
    "reason",
    "exit_code",
    "signal",
    "result",
    "session",
    "wrapper_pid",
    "agent_pid",
    "agent_started_at",
    "log_path",
    "model",
    "argv",
    "label",
    "started_at",
    "ended_at",
)


class Store:
    """A connection to STATE_DIR/dispatch.sqlite3; cheap to open, one per process is enough."""

    def __init__(self, path: str | os.PathLike[str], create: bool = True) -> None:
        self.path = Path(path)
        if not create and not self.path.exists():
            raise FileNotFoundError(str(self.path))
        try:
            self.db = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
            self.db.row_factory = sqlite3.Row
            self.db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            if create:
                try:
                    os.chmod(self.path, 0o600)
                except OSError:
                    pass
            if create or not self._has_schema():
                # a `start` killed between sqlite's connect (which creates the file) and the schema's
                # commit leaves an empty database: the next reader completes it rather than fail on
                # "no such table" (found by chaos: crash_start at 0.15 s, then `list` exit 1)
                self._retry(lambda: self.db.execute("PRAGMA journal_mode=WAL"))
                with self.tx() as db:
                    for stmt in SCHEMA.split(";"):
                        if stmt.strip():
                            db.execute(stmt)
            self.db.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as e:
            raise DispatchError(
                "state_dir_unusable", f"cannot open state database {self.path}: {e}"
            ) from None

    def _has_schema(self) -> bool:
        q = "SELECT count(*) FROM sqlite_master WHERE type='table' AND name IN ('tasks','events')"
        return bool(self._retry(lambda: self.db.execute(q).fetchone()[0] == 2))

    @staticmethod
    def _retry(fn: Any, attempts: int = 50) -> Any:
        for i in range(attempts):
            try:
                return fn()
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) and "busy" not in str(e) or i == attempts - 1:
                    raise
                time.sleep(0.02 * (1 + i % 5))
        return None

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, so a read-check-write is atomic against other processes."""
        self._retry(lambda: self.db.execute("BEGIN IMMEDIATE"))
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        else:
            self.db.execute("COMMIT")

    # -- tasks ---------------------------------------------------------------------------------

    def insert(self, row: dict[str, Any], detail: dict[str, Any] | None = None) -> bool:
        """Create a task in `starting`; False if the id is taken (the caller reports duplicate)."""
        row = dict(row)
        row.setdefault("state", states.STARTING)
        row["argv"] = json.dumps(row["argv"])
        row.setdefault("created_wall", wall())
        row.setdefault("created_mono", mono())
        cols = ",".join(row)
        marks = ",".join("?" for _ in row)
        with self.tx() as db:
            if db.execute("SELECT 1 FROM tasks WHERE task_id=?", (row["task_id"],)).fetchone():
                return False
            db.execute(f"INSERT INTO tasks ({cols}) VALUES ({marks})", tuple(row.values()))
            self._event(db, row["task_id"], row["state"], "created", detail)
        return True

    def delete(self, task_id: str) -> None:
        """Undo an insert whose start was refused after all (nothing of a refused start remains)."""
        with self.tx() as db:
            db.execute("DELETE FROM tasks WHERE task_id=?", (task_id,))
            db.execute("DELETE FROM events WHERE task_id=?", (task_id,))

    def get(self, task_id: str) -> dict[str, Any] | None:
        r = self.db.execute("SELECT * FROM tasks WHERE task_id=?", (task_id,)).fetchone()
        return _row(r) if r else None

    def all(self) -> list[dict[str, Any]]:
        return [_row(r) for r in self.db.execute("SELECT * FROM tasks ORDER BY n")]

    def non_terminal(self) -> list[dict[str, Any]]:
        marks = ",".join("?" * len(states.NON_TERMINAL))
        q = f"SELECT * FROM tasks WHERE state IN ({marks}) ORDER BY n"
        return [_row(r) for r in self.db.execute(q, tuple(states.NON_TERMINAL))]

    def update(self, task_id: str, **fields: Any) -> None:
        """Set bookkeeping fields (never `state`; use transition)."""
        bad = set(fields) - UPDATABLE
        if bad:
            raise ValueError(f"not updatable: {sorted(bad)}")
        if not fields:
            return
        sets = ",".join(f"{k}=?" for k in fields)
        with self.tx() as db:
            db.execute(f"UPDATE tasks SET {sets} WHERE task_id=?", (*_enc(fields).values(), task_id))

    def transition(
        self,
        task_id: str,
        state: str,
        reason: str | None,
        expect: Iterable[str] | None = None,
        detail: dict[str, Any] | None = None,
        at: tuple[float, float] | None = None,
        **fields: Any,
    ) -> bool:
        """Compare-and-set: move to `state` unless the task is terminal (or not in `expect`).

        `at` = (mono, wall) of the decision, for the event: a caller that records through a forked child
        (the wrapper's recorder) would otherwise stamp the event with the child's late write time.
        """
        if state not in states.ALL:
            raise ValueError(state)
        bad = set(fields) - UPDATABLE
        if bad:
            raise ValueError(f"not updatable: {sorted(bad)}")
        with self.tx() as db:
            r = db.execute("SELECT state FROM tasks WHERE task_id=?", (task_id,)).fetchone()
            if r is None or states.is_terminal(r["state"]):
                return False
            if expect is not None and r["state"] not in set(expect):
                return False
            if r["state"] == state and not fields:
                return False
            if states.is_terminal(state):
                fields.setdefault("ended_at", at[1] if at else wall())
            f = _enc(fields)
            f["state"], f["reason"] = state, reason
            sets = ",".join(f"{k}=?" for k in f)
            db.execute(f"UPDATE tasks SET {sets} WHERE task_id=?", (*f.values(), task_id))
            if r["state"] != state:
                self._event(db, task_id, state, reason, detail, at)
        return True

    # -- events --------------------------------------------------------------------------------

    @staticmethod
    def _event(
        db: sqlite3.Connection,
        task_id: str,
        state: str,
        reason: str | None,
        detail: Any,
        at: tuple[float, float] | None = None,
    ) -> None:
        at_mono, at_wall = at if at is not None else (mono(), wall())
        seq = db.execute(
            "SELECT COALESCE(MAX(seq), 0) + 1 FROM events WHERE task_id=?", (task_id,)
        ).fetchone()[0]
        db.execute(
            "INSERT INTO events (task_id, seq, state, reason, mono, wall, detail) VALUES (?,?,?,?,?,?,?)",
            (
                task_id,
                seq,
                state,
                reason,
                at_mono,
                at_wall,
                json.dumps(detail) if detail is not None else None,
            ),
        )

    def events(self, task_id: str) -> list[dict[str, Any]]:
        out = []
        for r in self.db.execute("SELECT * FROM events WHERE task_id=? ORDER BY seq", (task_id,)):
            out.append(
                {
                    "seq": r["seq"],
                    "state": r["state"],
                    "reason": r["reason"],
                    "mono": r["mono"],
                    "wall": r["wall"],
                    "detail": json.loads(r["detail"]) if r["detail"] else None,
                }
            )
        return out


def _enc(fields: dict[str, Any]) -> dict[str, Any]:
    out = dict(fields)
    if "result" in out and out["result"] is not None:
        out["result"] = json.dumps(out["result"])
    return out


def _row(r: sqlite3.Row) -> dict[str, Any]:
    d = dict(r)
    d["argv"] = json.loads(d["argv"])
    d["result"] = json.loads(d["result"]) if d["result"] is not None else None
    return d


def public(task: dict[str, Any]) -> dict[str, Any]:
    """The contract's task object."""
    return {k: task.get(k) for k in PUBLIC_FIELDS}
