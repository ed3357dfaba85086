"""The queue store on a real sqlite file: claim limits across connections, retry, cancel, retention."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from runner.queue import Queue, QueueError, attempt_task_id


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state" / "dispatch.sqlite3"


def spec() -> dict[str, str]:
    return {"agent": "cmd", "cwd": "/"}


def test_add_get_list(db: Path) -> None:
    with Queue(db) as q:
        q.add("a", spec(), b"\x00\xffprompt")
        item = q.get("a")
        assert item.state == "queued" and item.prompt == b"\x00\xffprompt" and item.spec == spec()
        assert item.to_json()["prompt_bytes"] == 8
        with pytest.raises(QueueError) as e:
            q.add("a", spec(), b"")
        assert e.value.code == "duplicate_task_id"
        with pytest.raises(QueueError):
            q.get("zzz")
    assert oct(db.stat().st_mode & 0o777) == "0o600"


def test_claim_respects_limit_and_priority(db: Path) -> None:
    with Queue(db) as q:
        q.add("low", spec(), b"")
        q.add("high", spec(), b"", priority=5)
        q.add("third", spec(), b"")
        first = q.claim("w1", max_running=2)
        assert first is not None and first.key == "high" and first.task_id == "high" and first.attempts == 1
        assert q.claim("w1", max_running=2).key == "low"
        assert q.claim("w1", max_running=2) is None
        q.finish("high", "succeeded")
        assert q.claim("w1", max_running=2).key == "third"


def test_claim_limit_holds_across_processes_worth_of_connections(db: Path) -> None:
    with Queue(db) as q:
        for i in range(20):
            q.add(f"t{i}", spec(), b"")
    got: list[str] = []
    lock = threading.Lock()

    def worker(name: str) -> None:
        with Queue(db) as q:
            while True:
                item = q.claim(name, max_running=3)
                if item is None:
                    return
                with lock:
                    got.append(item.key)

    ts = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=30)
    assert len(got) == 3 and len(set(got)) == 3
    with Queue(db) as q:
        assert q.counts()["running"] == 3


def test_failed_attempt_requeues_with_backoff_until_cap(db: Path) -> None:
    with Queue(db) as q:
        q.add("k", spec(), b"", max_attempts=2)
        q.claim("w", 1, now=100.0)
        item = q.finish("k", "failed", "exited", retry_after=10.0, now=101.0)
        assert item.state == "queued" and item.not_before == 111.0
        assert q.claim("w", 1, now=105.0) is None  # not yet due
        again = q.claim("w", 1, now=112.0)
        assert again.task_id == "k.r2" and again.attempts == 2
        final = q.finish("k", "failed", retry_after=10.0, now=113.0)
        assert final.state == "done" and final.outcome == "failed"


def test_cancel_and_retry(db: Path) -> None:
    with Queue(db) as q:
        q.add("k", spec(), b"")
        assert q.cancel("k").state == "cancelled"
        assert q.claim("w", 5) is None
        item = q.retry("k")
        assert item.state == "queued"
        q.claim("w", 5)
        with pytest.raises(QueueError):
            q.retry("k")  # running
        assert q.finish("k", "succeeded").state == "done"
        assert q.retry("k").max_attempts == 2
        assert q.claim("w", 5).task_id == attempt_task_id("k", 2) == "k.r2"


def test_cancelled_while_running_stays_cancelled(db: Path) -> None:
    with Queue(db) as q:
        q.add("k", spec(), b"")
        q.claim("w", 1)
        q.cancel("k")
        assert q.finish("k", "stopped").state == "cancelled"


def test_clean_after_retention(db: Path) -> None:
    with Queue(db) as q:
        q.add("old", spec(), b"")
        q.add("new", spec(), b"")
        q.add("waiting", spec(), b"")
        q.claim("w", 5, now=0)
        q.claim("w", 5, now=0)
        q.finish("old", "succeeded", now=10.0)
        q.finish("new", "failed", now=90.0)
        removed = q.clean(retention_s=50.0, now=100.0)
        assert [i.key for i in removed] == ["old"]
        assert [i.key for i in q.list()] == ["new", "waiting"]


def test_queue_tables_live_beside_the_runner_tables(sandbox) -> None:  # noqa: ANN001
    from runner.store import Store

    db = sandbox.state_dir / "dispatch.sqlite3"
    Store(db).close()
    with Queue(db) as q:
        q.add("x", spec(), b"")
    names = {r[0] for r in __import__("sqlite3").connect(db).execute("SELECT name FROM sqlite_master")}
    assert {"tasks", "events", "agent_queue"} <= names
