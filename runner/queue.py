"""The run queue: our own tables in the runner's sqlite file (STATE_DIR/dispatch.sqlite3).

An item is a `run` request kept until a worker has a free slot (`dispatch workers --max N`). Claiming is
one IMMEDIATE transaction that counts running items and flips one queued row, so any number of worker
processes together never exceed the limit. Each attempt gets its own runner task id (KEY, KEY.r2, ...)
because runner task ids are never reused. The prompt bytes are stored in the row, so the caller's file
may change or vanish after `queue add`.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

QUEUED, RUNNING, DONE, CANCELLED = "queued", "running", "done", "cancelled"
STATES = (QUEUED, RUNNING, DONE, CANCELLED)

SCHEMA = """
CREATE TABLE IF NOT EXISTS agent_queue (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    key          TEXT NOT NULL UNIQUE,
    task_id      TEXT,
    spec         TEXT NOT NULL,
    prompt       BLOB NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'cancelled')),
    outcome      TEXT,
    error        TEXT,
    priority     INTEGER NOT NULL DEFAULT 0,
    attempts     INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL DEFAULT 1,
    not_before   REAL NOT NULL DEFAULT 0,
    worker       TEXT,
    created_at   REAL NOT NULL,
    started_at   REAL,
    finished_at  REAL
);
CREATE INDEX IF NOT EXISTS agent_queue_state ON agent_queue (state, priority, id);
"""


class QueueError(ValueError):
    """A refused queue operation; `code` is a contract error code, `exit_status` its exit (2: bad input)."""

    exit_status = 2

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Item:
    """One queue row."""

    id: int
    key: str
    task_id: str | None
    spec: dict[str, Any]
    prompt: bytes
    state: str
    outcome: str | None
    error: str | None
    priority: int
    attempts: int
    max_attempts: int
    not_before: float
    worker: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    # the fleet's (runner/queue_pg.py): who holds the claim, its fencing token and lease; unset in sqlite
    host: str | None = None
    fence: int = 0
    lease_until: float | None = None
    native_id: str | None = None
    losses: int = 0
    renewed_at: float | None = None
    fleet: bool = False  # a PostgreSQL row: its JSON carries the fields above

    def to_json(self) -> dict[str, Any]:
        """The item for `--json` output (the prompt as its length; the text stays in the store).
        The fleet's fields appear only for a PostgreSQL queue, so sqlite documents stay as they were."""
        fleet = FLEET_FIELDS if self.fleet else ()
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k in BASE_FIELDS or k in fleet}
        d["prompt_bytes"] = len(self.prompt)
        return d


FLEET_FIELDS = ("host", "fence", "lease_until", "native_id", "losses", "renewed_at")
BASE_FIELDS = tuple(
    "id key task_id spec state outcome error priority attempts max_attempts not_before worker"
    " created_at started_at finished_at".split()
)


def open_queue(
    db_path: str | Path, url: str | None = None, env: Mapping[str, str] | None = None, **kw: Any
) -> Any:
    """The queue to use: `url` or $DISPATCH_QUEUE_URL (PostgreSQL, for several hosts), else the sqlite
    tables beside the runner's own (one machine, zero setup)."""
    url = url or (env or {}).get("DISPATCH_QUEUE_URL") or None
    if not url:
        return Queue(db_path)
    try:
        from runner.queue_pg import PgQueue, host_name
    except ImportError:  # psycopg missing: say so in one line
        raise QueueError(
            "bad_config", "a PostgreSQL queue needs psycopg: pip install 'psycopg[binary]'"
        ) from None
    lease = (env or {}).get("DISPATCH_QUEUE_LEASE_S")
    if lease:
        try:
            kw.setdefault("lease_s", float(lease))
        except ValueError:
            raise QueueError("bad_config", f"DISPATCH_QUEUE_LEASE_S must be seconds, got {lease!r}") from None
        if not kw["lease_s"] > 0:
            raise QueueError("bad_config", "DISPATCH_QUEUE_LEASE_S must be more than 0")
    return PgQueue(url, host=host_name(env), **kw)


def attempt_task_id(key: str, attempt: int) -> str:
    """The runner task id of the attempt'th try (1-based): KEY, then KEY.r2, KEY.r3 ..."""
    return key if attempt <= 1 else f"{key}.r{attempt}"


class Queue:
    """The queue tables, opened on the runner's database file (WAL, busy timeout like runner/store.py)."""

    def __init__(self, db_path: str | Path, timeout: float = 10.0) -> None:
        self.path = Path(db_path)
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:  # the runner's own tables first, by the runner's own code, so its readers never see a bare file
            from runner.store import Store

            Store(self.path).close()
        except ImportError:
            pass
        self.db = sqlite3.connect(str(self.path), timeout=timeout, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.db.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.executescript(SCHEMA)
        try:
            self.path.chmod(0o600)
        except OSError:
            pass

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Queue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    @staticmethod
    def _item(row: sqlite3.Row) -> Item:
        d = dict(row)
        d["spec"] = json.loads(d["spec"])
        d["prompt"] = bytes(d["prompt"])
        return Item(**d)

    def add(
        self,
        key: str,
        spec: Mapping[str, Any],
        prompt: bytes,
        *,
        priority: int = 0,
        max_attempts: int = 1,
        now: float | None = None,
    ) -> Item:
        """Queue a run; `duplicate_task_id` when KEY is already queued or kept."""
        if max_attempts < 1:
            raise QueueError("bad_usage", "--max-attempts must be at least 1")
        now = time.time() if now is None else now
        try:
            with self._tx() as db:
                db.execute(
                    "INSERT INTO agent_queue (key, spec, prompt, state, priority, max_attempts, created_at)"
                    " VALUES (?, ?, ?, 'queued', ?, ?, ?)",
                    (key, json.dumps(dict(spec), sort_keys=True), prompt, priority, max_attempts, now),
                )
        except sqlite3.IntegrityError:
            raise QueueError("duplicate_task_id", f"queue item {key!r} already exists") from None
        return self.get(key)

    def get(self, key: str) -> Item:
        row = self.db.execute("SELECT * FROM agent_queue WHERE key = ?", (key,)).fetchone()
        if row is None:
            raise QueueError("unknown_task", f"no queue item {key!r}")
        return self._item(row)

    def list(self, states: tuple[str, ...] = STATES) -> list[Item]:
        """Items in the given states, oldest first."""
        marks = ",".join("?" * len(states))
        rows = self.db.execute(f"SELECT * FROM agent_queue WHERE state IN ({marks}) ORDER BY id", states)
        return [self._item(r) for r in rows]

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(STATES, 0)
        for state, n in self.db.execute("SELECT state, COUNT(*) FROM agent_queue GROUP BY state"):
            out[state] = n
        return out

    def claim(self, worker: str, max_running: int, now: float | None = None) -> Item | None:
        """Take the next due queued item if fewer than `max_running` are running; None otherwise."""
        now = time.time() if now is None else now
        with self._tx() as db:
            (running,) = db.execute("SELECT COUNT(*) FROM agent_queue WHERE state = 'running'").fetchone()
            if running >= max_running:
                return None
            row = db.execute(
                "SELECT * FROM agent_queue WHERE state = 'queued' AND not_before <= ?"
                " ORDER BY priority DESC, id LIMIT 1",
                (now,),
            ).fetchone()
            if row is None:
                return None
            attempt = row["attempts"] + 1
            db.execute(
                "UPDATE agent_queue SET state = 'running', attempts = ?, task_id = ?, worker = ?,"
                " started_at = ?, finished_at = NULL, outcome = NULL, error = NULL WHERE id = ?",
                (attempt, attempt_task_id(row["key"], attempt), worker, now, row["id"]),
            )
        return self.get(row["key"])

    def finish(
        self,
        key: str,
        outcome: str,
        error: str | None = None,
        *,
        retry_after: float | None = None,
        now: float | None = None,
    ) -> Item:
        """Record how a running item's attempt ended; with `retry_after` it goes back to the queue."""
        now = time.time() if now is None else now
        with self._tx() as db:
            row = db.execute("SELECT * FROM agent_queue WHERE key = ?", (key,)).fetchone()
            if row is None:
                raise QueueError("unknown_task", f"no queue item {key!r}")
            if row["state"] != RUNNING:
                return self._item(row)  # cancelled meanwhile: keep that
            if retry_after is not None and row["attempts"] < row["max_attempts"]:
                db.execute(
                    "UPDATE agent_queue SET state = 'queued', outcome = ?, error = ?, not_before = ?,"
                    " finished_at = ? WHERE id = ?",
                    (outcome, error, now + retry_after, now, row["id"]),
                )
            else:
                db.execute(
                    "UPDATE agent_queue SET state = 'done', outcome = ?, error = ?, finished_at = ? WHERE id = ?",
                    (outcome, error, now, row["id"]),
                )
        return self.get(key)

    def cancel(self, key: str, now: float | None = None) -> Item:
        """Cancel a queued item (it never starts) or mark a running one cancelled (the caller stops it)."""
        now = time.time() if now is None else now
        with self._tx() as db:
            row = db.execute("SELECT * FROM agent_queue WHERE key = ?", (key,)).fetchone()
            if row is None:
                raise QueueError("unknown_task", f"no queue item {key!r}")
            if row["state"] in (QUEUED, RUNNING):
                db.execute(
                    "UPDATE agent_queue SET state = 'cancelled', finished_at = ? WHERE id = ?",
                    (now, row["id"]),
                )
        return self.get(key)

    def retry(self, key: str, now: float | None = None) -> Item:
        """Put a finished or cancelled item back in the queue for one more attempt."""
        now = time.time() if now is None else now
        with self._tx() as db:
            row = db.execute("SELECT * FROM agent_queue WHERE key = ?", (key,)).fetchone()
            if row is None:
                raise QueueError("unknown_task", f"no queue item {key!r}")
            if row["state"] in (QUEUED, RUNNING):
                raise QueueError("not_supported", f"queue item {key!r} is {row['state']}; nothing to retry")
            db.execute(
                "UPDATE agent_queue SET state = 'queued', max_attempts = MAX(max_attempts, attempts + 1),"
                " not_before = 0, finished_at = NULL WHERE id = ?",
                (row["id"],),
            )
        return self.get(key)

    def clean(self, retention_s: float, now: float | None = None) -> list[Item]:
        """Delete done/cancelled items finished more than `retention_s` ago; return what was removed."""
        now = time.time() if now is None else now
        with self._tx() as db:
            rows = db.execute(
                "SELECT * FROM agent_queue WHERE state IN ('done', 'cancelled') AND finished_at < ?",
                (now - retention_s,),
            ).fetchall()
            db.executemany("DELETE FROM agent_queue WHERE id = ?", [(r["id"],) for r in rows])
        return [self._item(r) for r in rows]
