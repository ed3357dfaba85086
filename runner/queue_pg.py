"""The run queue on PostgreSQL, for workers on several hosts (`--queue postgresql://...`).

Same verbs as runner/queue.py (add, get, list, counts, claim, finish, cancel, retry, clean), plus what a
fleet needs and one machine does not:

- claims take the next due row with `FOR UPDATE SKIP LOCKED`, so workers on any number of hosts never
  wait on each other's rows nor take the same row twice;
- every claim draws a fresh fencing token from one sequence and sets a lease (`lease_until`, on the
  database's clock, the only clock all hosts share); the claiming host renews it while the agent runs;
- an outcome is recorded only `WHERE fence = <the claim's token> AND state = 'running'`: a host that lost
  its lease (partitioned, paused) can never overwrite what happened after the task moved on;
- `expire()` (any worker, every pass) puts rows whose lease ran out back in the queue with a backoff, for
  a native resume (the agent's session id is kept in the row) or marks them `lost` at the cap;
- every transition is a row in `dispatch_queue_events` with the host and worker that caused it;
- `pg_notify('dispatch_queue')` on every row that becomes due, so idle workers LISTEN instead of polling.

A hand-written claim rather than procrastinate/pgqueuer: both are asyncio job frameworks that own the
worker loop and run Python callables; we need a row that outlives a worker, a per-row lease, a fencing
token checked in our own UPDATEs and the sqlite twin's exact semantics, which is ~one statement each.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from runner.queue import QUEUED, RUNNING, STATES, Item, QueueError

CHANNEL = "dispatch_queue"
NOW = "extract(epoch from clock_timestamp())::double precision"
LOST_BACKOFF_S = 1.0  # a first host loss re-queues at once (the host died, not the task); then 1 s, 2 s, ...
LOST_BACKOFF_CAP_S = 30.0
LOST_RETRIES = 3  # host losses a task survives before it is marked lost

SCHEMA = """
CREATE SEQUENCE IF NOT EXISTS dispatch_fence;
CREATE TABLE IF NOT EXISTS dispatch_queue (
    id           BIGSERIAL PRIMARY KEY,
    key          TEXT NOT NULL UNIQUE,
    task_id      TEXT,
    spec         JSONB NOT NULL,
    prompt       BYTEA NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'cancelled')),
    outcome      TEXT,
    error        TEXT,
    priority     INTEGER NOT NULL DEFAULT 0,
    attempts     INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL DEFAULT 1,
    not_before   DOUBLE PRECISION NOT NULL DEFAULT 0,
    worker       TEXT,
    host         TEXT,
    fence        BIGINT NOT NULL DEFAULT 0,
    lease_until  DOUBLE PRECISION,
    renewed_at   DOUBLE PRECISION,
    native_id    TEXT,
    losses       INTEGER NOT NULL DEFAULT 0,
    created_at   DOUBLE PRECISION NOT NULL,
    started_at   DOUBLE PRECISION,
    finished_at  DOUBLE PRECISION
);
ALTER TABLE dispatch_queue ADD COLUMN IF NOT EXISTS renewed_at DOUBLE PRECISION;
CREATE INDEX IF NOT EXISTS dispatch_queue_due ON dispatch_queue (state, priority DESC, id);
CREATE TABLE IF NOT EXISTS dispatch_queue_events (
    seq     BIGSERIAL PRIMARY KEY,
    key     TEXT NOT NULL,
    at      DOUBLE PRECISION NOT NULL,
    host    TEXT,
    worker  TEXT,
    fence   BIGINT,
    kind    TEXT NOT NULL,
    state   TEXT,
    detail  TEXT
);
CREATE INDEX IF NOT EXISTS dispatch_queue_events_key ON dispatch_queue_events (key, seq);
"""

ITEM_FIELDS = (
    "id key task_id spec prompt state outcome error priority attempts max_attempts not_before worker"
    " created_at started_at finished_at host fence lease_until native_id losses renewed_at"
).split()
COLS = ", ".join(ITEM_FIELDS)


class FenceRefused(QueueError):
    """An outcome from a claim whose lease was lost: the row moved on (requeued, resumed elsewhere)."""

    def __init__(self, key: str, fence: int, now_fence: int, state: str) -> None:
        super().__init__("fence_refused", f"{key}: claim {fence} is stale (now {state}, claim {now_fence})")


class QueueUnavailable(QueueError):
    """The queue database cannot be reached or refuses us; an environment problem (exit 3)."""

    exit_status = 3


def host_name(env: Mapping[str, str] | None = None) -> str:
    """This host's name in the fleet: $DISPATCH_HOST, else the machine's host name."""
    return (env or {}).get("DISPATCH_HOST") or socket.gethostname()


def _describe(url: str) -> str:
    """user@host:port/db of a URL, never its password (for error lines)."""
    from psycopg import conninfo

    try:
        d = conninfo.conninfo_to_dict(url)
    except Exception:
        return "<unparsable URL>"
    return f"{d.get('user', '')}@{d.get('host', 'localhost')}:{d.get('port', 5432)}/{d.get('dbname', '')}"


def connect(url: str, timeout: float = 3.0, dead_after: float = 10.0) -> Any:
    """An autocommit connection, or QueueError with one line saying what is wrong (never the password).

    A partitioned peer must not pin rows: the server ends our session when it sits in a transaction
    longer than `dead_after` (its row locks go with it, so SKIP LOCKED sweeps see the row again), and
    our side gives up on a socket whose data goes unacknowledged that long (TCP user timeout and
    keepalives), so a cut link becomes an error, never a hang."""
    import psycopg

    if not url.startswith(("postgresql://", "postgres://")):
        raise QueueError("bad_config", "the queue URL must start with postgresql:// (got another scheme)")
    try:
        ms = max(1000, int(dead_after * 1000))
        return psycopg.connect(url, autocommit=True, connect_timeout=max(1, round(timeout)), tcp_user_timeout=ms,
                               keepalives=1, keepalives_idle=max(1, ms // 3000), keepalives_interval=1,
                               keepalives_count=3, options=f"-c idle_in_transaction_session_timeout={ms}")  # fmt: skip
    except psycopg.ProgrammingError as e:  # a malformed conninfo
        raise QueueError("bad_config", f"bad queue URL: {str(e).splitlines()[0]}") from None
    except psycopg.OperationalError as e:
        raise QueueUnavailable("queue_unavailable", _why(url, e)) from None


def _why(url: str, e: Exception) -> str:
    text = " ".join(str(e).split())
    where = _describe(url)
    if "password authentication failed" in text or "no password supplied" in text:
        return f"the queue database at {where} refused the login: wrong user or password"
    if "does not exist" in text:
        return f"the queue database at {where} refused us: {text.split('FATAL:')[-1].strip()}"
    return f"cannot reach the queue database at {where}: {text.split('FATAL:')[-1].strip()[:160]}"


class PgQueue:
    """The queue tables in a PostgreSQL database; one connection, reopened after a failure."""

    fleet = True

    def __init__(self, url: str, *, host: str | None = None, lease_s: float = 30.0) -> None:
        self.url, self.host, self.lease_s = url, host or host_name(), lease_s
        self.conn: Any = connect(url, dead_after=lease_s / 3)
        self._ddl()

    def _ddl(self) -> None:
        with self._tx() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(16016)")  # concurrent first starts: one creates
            cur.execute(SCHEMA)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()

    def __enter__(self) -> PgQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[Any]:
        """One transaction; a broken connection is reopened on the next call and reported as exit 3."""
        import psycopg

        try:
            if self.conn is None or self.conn.closed or self.conn.broken:
                self.conn = connect(self.url, dead_after=self.lease_s / 3)
            with self.conn.transaction(), self.conn.cursor() as cur:
                yield cur
        except psycopg.OperationalError as e:
            try:
                self.conn.close()
            except Exception:
                pass
            raise QueueUnavailable("queue_unavailable", _why(self.url, e)) from None

    @staticmethod
    def _item(row: tuple[Any, ...]) -> Item:
        d = dict(zip(ITEM_FIELDS, row, strict=True), fleet=True)
        d["prompt"] = bytes(d["prompt"])
        if isinstance(d["spec"], str):
            d["spec"] = json.loads(d["spec"])
        return Item(**d)

    def _event(self, cur: Any, key: str, kind: str, state: str | None, *, worker: str | None = None,
               fence: int | None = None, detail: str | None = None, host: str | None = None) -> None:  # fmt: skip
        cur.execute(
            f"INSERT INTO dispatch_queue_events (key, at, host, worker, fence, kind, state, detail)"
            f" VALUES (%s, {NOW}, %s, %s, %s, %s, %s, %s)",
            (key, host or self.host, worker, fence, kind, state, detail),
        )

    def _row(self, cur: Any, key: str, lock: bool = False) -> Item:
        cur.execute(
            f"SELECT {COLS} FROM dispatch_queue WHERE key = %s" + (" FOR UPDATE" if lock else ""), (key,)
        )
        row = cur.fetchone()
        if row is None:
            raise QueueError("unknown_task", f"no queue item {key!r}")
        return self._item(row)

    # -- the sqlite twin's verbs -------------------------------------------------------------------

    def add(self, key: str, spec: Mapping[str, Any], prompt: bytes, *, priority: int = 0,
            max_attempts: int = 1, now: float | None = None) -> Item:  # fmt: skip
        """Queue a run; `duplicate_task_id` when KEY exists. Wakes one listening worker."""
        if max_attempts < 1:
            raise QueueError("bad_usage", "--max-attempts must be at least 1")
        with self._tx() as cur:
            cur.execute(
                "INSERT INTO dispatch_queue (key, spec, prompt, state, priority, max_attempts, created_at)"
                f" VALUES (%s, %s, %s, 'queued', %s, %s, {NOW}) ON CONFLICT (key) DO NOTHING RETURNING id",
                (key, json.dumps(dict(spec), sort_keys=True), prompt, priority, max_attempts),
            )
            if cur.fetchone() is None:
                raise QueueError("duplicate_task_id", f"queue item {key!r} already exists")
            self._event(cur, key, "added", QUEUED)
            cur.execute("SELECT pg_notify(%s, %s)", (CHANNEL, key))
        return self.get(key)

    def get(self, key: str) -> Item:
        with self._tx() as cur:
            return self._row(cur, key)

    def list(self, states: tuple[str, ...] = STATES) -> list[Item]:
        with self._tx() as cur:
            cur.execute(
                f"SELECT {COLS} FROM dispatch_queue WHERE state = ANY(%s) ORDER BY id", (list(states),)
            )
            return [self._item(r) for r in cur.fetchall()]

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(STATES, 0)
        with self._tx() as cur:
            cur.execute("SELECT state, COUNT(*) FROM dispatch_queue GROUP BY state")
            out.update(dict(cur.fetchall()))
        return out

    def _one(self, sql: str, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """One statement in autocommit (its own transaction: one round trip, the hot paths' way)."""
        import psycopg

        try:
            if self.conn is None or self.conn.closed or self.conn.broken:
                self.conn = connect(self.url, dead_after=self.lease_s / 3)
            with self.conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchone()
        except psycopg.OperationalError as e:
            try:
                self.conn.close()
            except Exception:
                pass
            raise QueueUnavailable("queue_unavailable", _why(self.url, e)) from None

    def claim(self, worker: str, max_running: int, now: float | None = None) -> Item | None:
        """The next due row for this worker if it runs fewer than `max_running` (a per-worker limit here:
        each host brings its own capacity); a new fence token and lease come with it. One statement:
        the pick (SKIP LOCKED), the claim and its event row commit together in one round trip."""
        row = self._one(
            "WITH c AS (SELECT id FROM dispatch_queue WHERE state = 'queued' AND not_before <= " + NOW +
            "   AND (SELECT COUNT(*) FROM dispatch_queue WHERE state = 'running' AND worker = %(w)s) < %(max)s"
            "   ORDER BY priority DESC, id LIMIT 1 FOR UPDATE SKIP LOCKED),"
            " u AS (UPDATE dispatch_queue q SET state = 'running', attempts = q.attempts + 1,"
            "   task_id = CASE WHEN q.attempts = 0 THEN q.key ELSE q.key || '.r' || (q.attempts + 1) END,"
            "   worker = %(w)s, host = %(h)s, fence = nextval('dispatch_fence'), lease_until = " + NOW + " + %(l)s, renewed_at = " + NOW + ","
            "   started_at = " + NOW + ", finished_at = NULL, outcome = NULL, error = NULL"
            "   FROM c WHERE q.id = c.id RETURNING q.*),"
            " e AS (INSERT INTO dispatch_queue_events (key, at, host, worker, fence, kind, state, detail)"
            "   SELECT key, " + NOW + ", %(h)s, %(w)s, fence, 'claimed', 'running',"
            "   CASE WHEN losses > 0 AND native_id IS NOT NULL THEN 'resume ' ELSE 'start ' END"
            "   || task_id || ' attempt ' || attempts FROM u)"
            f" SELECT {COLS} FROM u",
            {"w": worker, "max": max_running, "h": self.host, "l": self.lease_s},
        )  # fmt: skip
        return None if row is None else self._item(row)

    def finish(self, key: str, outcome: str, error: str | None = None, *, retry_after: float | None = None,
               fence: int | None = None, worker: str | None = None, now: float | None = None) -> Item:  # fmt: skip
        """Record how the attempt holding `fence` ended; refused (FenceRefused) if the row moved on.
        The guarded UPDATE, its event row and the wake-up of a re-queue are one statement."""
        row = self._one(
            "WITH u AS (UPDATE dispatch_queue SET"
            "   state = CASE WHEN %(r)s::float8 IS NOT NULL AND attempts < max_attempts THEN 'queued' ELSE 'done' END,"
            "   not_before = CASE WHEN %(r)s::float8 IS NOT NULL THEN " + NOW + " + %(r)s::float8 ELSE not_before END,"
            "   outcome = %(o)s, error = %(e)s, finished_at = " + NOW + ", lease_until = NULL"
            "   WHERE key = %(k)s AND state = 'running' AND fence = %(f)s RETURNING *),"
            " ev AS (INSERT INTO dispatch_queue_events (key, at, host, worker, fence, kind, state, detail)"
            "   SELECT key, " + NOW + ", %(h)s, %(w)s, fence, 'finished', state, %(d)s FROM u),"
            " n AS (SELECT pg_notify(%(ch)s, key) FROM u WHERE state = 'queued')"
            f" SELECT {COLS}, (SELECT COUNT(*) FROM n) FROM u",
            {"r": retry_after, "o": outcome, "e": error, "k": key, "f": fence, "h": self.host, "w": worker,
             "d": f"{outcome}: {error or ''}", "ch": CHANNEL},
        )  # fmt: skip
        if row is not None:
            return self._item(row[:-1])
        return self._refused(key, fence, worker, f"late outcome {outcome}")

    def _refused(self, key: str, fence: int | None, worker: str | None, what: str) -> Item:
        """A stale claim's write: logged (who tried, with which token), then refused."""
        with self._tx() as cur:
            item = self._row(cur, key)
            cur.execute(
                "SELECT 1 FROM dispatch_queue_events WHERE key = %s AND fence = %s AND kind IN ('finished', 'released')",
                (key, fence),
            )
            if item.fence == fence and cur.fetchone() is not None:
                return item  # our own write, retried after a lost reply: already recorded
            self._event(cur, key, "refused", item.state, worker=worker, fence=fence, detail=what)
        raise FenceRefused(key, fence or 0, item.fence, item.state)

    def cancel(self, key: str, now: float | None = None) -> Item:
        with self._tx() as cur:
            item = self._row(cur, key, lock=True)
            if item.state in (QUEUED, RUNNING):
                cur.execute(
                    f"UPDATE dispatch_queue SET state = 'cancelled', finished_at = {NOW}, lease_until = NULL"
                    " WHERE key = %s",
                    (key,),
                )
                self._event(cur, key, "cancelled", "cancelled", fence=item.fence)
        return self.get(key)

    def retry(self, key: str, now: float | None = None) -> Item:
        with self._tx() as cur:
            item = self._row(cur, key, lock=True)
            if item.state in (QUEUED, RUNNING):
                raise QueueError("not_supported", f"queue item {key!r} is {item.state}; nothing to retry")
            cur.execute(
                "UPDATE dispatch_queue SET state = 'queued', max_attempts = GREATEST(max_attempts, attempts + 1),"
                " not_before = 0, finished_at = NULL, losses = 0 WHERE key = %s",
                (key,),
            )
            self._event(cur, key, "retried", QUEUED)
            cur.execute("SELECT pg_notify(%s, %s)", (CHANNEL, key))
        return self.get(key)

    def clean(self, retention_s: float, now: float | None = None) -> list[Item]:
        with self._tx() as cur:
            cur.execute(
                f"DELETE FROM dispatch_queue WHERE state IN ('done', 'cancelled') AND finished_at < {NOW} - %s"
                f" RETURNING {COLS}",
                (retention_s,),
            )
            return [self._item(r) for r in cur.fetchall()]

    # -- the fleet's own -----------------------------------------------------------------------------

    def renew(self, key: str, fence: int, native_id: str | None = None) -> bool:
        """Extend the lease of our claim (and keep the agent's session id); False: the claim is gone."""
        with self._tx() as cur:
            cur.execute(
                f"UPDATE dispatch_queue SET lease_until = {NOW} + %s, renewed_at = {NOW}, native_id = COALESCE(%s, native_id)"
                " WHERE key = %s AND fence = %s AND state = 'running' RETURNING id",
                (self.lease_s, native_id, key, fence),
            )
            return cur.fetchone() is not None

    def release(self, key: str, fence: int, worker: str, reason: str) -> Item:
        """Give back a claim this host cannot finish (it stopped the agent itself): queued for a resume."""
        with self._tx() as cur:
            cur.execute(
                "UPDATE dispatch_queue SET state = 'queued', losses = losses + 1, lease_until = NULL,"
                f" not_before = {NOW}, error = %s WHERE key = %s AND fence = %s AND state = 'running' RETURNING id",
                (reason, key, fence),
            )
            ok = cur.fetchone() is not None
            if ok:
                self._event(cur, key, "released", QUEUED, worker=worker, fence=fence, detail=reason)
                cur.execute("SELECT pg_notify(%s, %s)", (CHANNEL, key))
        return self.get(key) if ok else self._refused(key, fence, worker, f"release: {reason}")

    def expire(self, worker: str | None = None) -> list[Item]:
        """Rows whose lease ran out: back in the queue (backoff, then a resume elsewhere) or, past the
        cap, `done` with outcome `lost` and the reason. Safe from any number of workers at once."""
        with self._tx() as cur:
            cur.execute(
                f"SELECT {COLS} FROM dispatch_queue WHERE state = 'running' AND lease_until < {NOW}"
                " FOR UPDATE SKIP LOCKED"
            )
            items = [self._item(r) for r in cur.fetchall()]
            for it in items:
                why = f"host {it.host} lost: lease (claim {it.fence}) expired"
                if it.losses + 1 > LOST_RETRIES:
                    cur.execute(
                        f"UPDATE dispatch_queue SET state = 'done', outcome = 'lost', error = %s, finished_at = {NOW},"
                        " lease_until = NULL, losses = losses + 1 WHERE id = %s",
                        (f"{why}; {LOST_RETRIES} host losses already", it.id),
                    )
                    self._event(cur, it.key, "lost", "done", worker=worker, fence=it.fence, detail=why)
                    continue
                backoff = (
                    0.0 if it.losses == 0 else min(LOST_BACKOFF_CAP_S, LOST_BACKOFF_S * 2 ** (it.losses - 1))
                )
                cur.execute(
                    f"UPDATE dispatch_queue SET state = 'queued', not_before = {NOW} + %s, lease_until = NULL,"
                    " losses = losses + 1, error = %s WHERE id = %s",
                    (backoff, why, it.id),
                )
                self._event(cur, it.key, "expired", QUEUED, worker=worker, fence=it.fence,
                            detail=f"{why}; again in {backoff:g}s")  # fmt: skip
            if items:
                cur.execute("SELECT pg_notify(%s, %s)", (CHANNEL, "expired"))
        return items

    def mine(self, worker: str) -> list[Item]:
        """This worker's running rows (each host reconciles only what it runs)."""
        with self._tx() as cur:
            cur.execute(
                f"SELECT {COLS} FROM dispatch_queue WHERE state = 'running' AND worker = %s", (worker,)
            )
            return [self._item(r) for r in cur.fetchall()]

    def events(self, key: str | None = None) -> list[dict[str, Any]]:
        """The transition log (all keys, or one), oldest first."""
        with self._tx() as cur:
            cur.execute(
                "SELECT seq, key, at, host, worker, fence, kind, state, detail FROM dispatch_queue_events"
                " WHERE %s::text IS NULL OR key = %s ORDER BY seq",
                (key, key),
            )
            names = [d.name for d in cur.description]
            return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

    def db_now(self) -> float:
        """The database's clock (what leases are measured on), for lease ages in the fleet view."""
        with self._tx() as cur:
            cur.execute(f"SELECT {NOW}")
            return float(cur.fetchone()[0])


class Listener:
    """A LISTEN connection: `wait(timeout)` returns early when a row becomes due anywhere in the fleet."""

    def __init__(self, url: str, dead_after: float = 10.0) -> None:
        self.url, self.dead_after = url, dead_after
        self.conn: Any = None

    def wait(self, timeout: float) -> bool:
        """True if notified; a lost connection is reopened on the next call (the caller's pass re-reads)."""
        import psycopg

        deadline = time.monotonic() + timeout
        try:
            if self.conn is None or self.conn.closed or self.conn.broken:
                self.conn = connect(self.url, timeout=min(3.0, max(1.0, timeout)), dead_after=self.dead_after)
                self.conn.execute(f"LISTEN {CHANNEL}")
                return True  # we may have missed notifications while away: take a pass now
            for _ in self.conn.notifies(timeout=max(0.0, deadline - time.monotonic()), stop_after=1):
                return True
            return False
        except (psycopg.OperationalError, QueueError):
            self.close()
            left = deadline - time.monotonic()
            if left > 0:
                time.sleep(min(left, 0.5))  # the database is away: a short pause before the next try
            return False

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:
                pass
            self.conn = None
