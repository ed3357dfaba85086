"""The PostgreSQL queue on a real server: SKIP LOCKED claims, fencing, lease expiry, NOTIFY, bad input."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from test_fleet_support import pg  # noqa: F401  (fixture)

from runner.queue import QueueError, open_queue
from runner.queue_pg import LOST_RETRIES, FenceRefused, Listener, PgQueue
from runner.queue_pg_server import PgServer


def spec() -> dict[str, str]:
    return {"agent": "cmd", "cwd": "/"}


@pytest.fixture
def q(pg: PgServer) -> Iterator[PgQueue]:  # noqa: F811
    with PgQueue(pg.url(), host="h1", lease_s=0.5) as q:
        with q._tx() as cur:
            cur.execute("TRUNCATE dispatch_queue, dispatch_queue_events")
        yield q


def test_claims_never_overlap_across_connections(q: PgQueue, pg: PgServer) -> None:  # noqa: F811
    for i in range(60):
        q.add(f"t{i}", spec(), b"")
    got: list[str] = []
    lock = threading.Lock()

    def worker(name: str) -> None:
        with PgQueue(pg.url(), host=name) as mine:
            while (item := mine.claim(name, max_running=100)) is not None:
                with lock:
                    got.append(item.key)

    ts = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=60)
    assert sorted(got) == sorted(f"t{i}" for i in range(60))  # all, each once
    fences = [i.fence for i in q.list()]
    assert len(set(fences)) == 60 and min(fences) > 0


def test_per_worker_limit_and_priority(q: PgQueue) -> None:
    q.add("low", spec(), b"")
    q.add("high", spec(), b"", priority=5)
    assert q.claim("w", 1).key == "high"
    assert q.claim("w", 1) is None
    assert q.claim("other", 1).key == "low"


def test_stale_claim_cannot_record_an_outcome(q: PgQueue) -> None:
    q.add("k", spec(), b"")
    first = q.claim("w1", 1)
    assert q.renew("k", first.fence, "sess-1")
    deadline = time.monotonic() + 10
    while not q.expire("w2"):
        assert time.monotonic() < deadline, "lease never expired"
        time.sleep(0.05)
    assert not q.renew("k", first.fence)
    with pytest.raises(FenceRefused):
        q.finish("k", "succeeded", fence=first.fence, worker="w1")
    with q._tx() as cur:  # the backoff, skipped for the test
        cur.execute("UPDATE dispatch_queue SET not_before = 0")
    second = q.claim("w2", 1)
    assert second.fence > first.fence and second.task_id == "k.r2" and second.native_id == "sess-1"
    with pytest.raises(FenceRefused):
        q.finish("k", "succeeded", fence=first.fence, worker="w1")
    assert q.finish("k", "failed", "x", fence=second.fence, worker="w2").outcome == "failed"
    kinds = [(e["kind"], e["worker"]) for e in q.events("k")]
    assert kinds == [("added", None), ("claimed", "w1"), ("expired", "w2"), ("refused", "w1"), ("claimed", "w2"),
                     ("refused", "w1"), ("finished", "w2")]  # fmt: skip


def test_lost_after_the_cap_with_the_reason(q: PgQueue) -> None:
    q.add("k", spec(), b"")
    for _ in range(LOST_RETRIES + 1):
        with q._tx() as cur:
            cur.execute("UPDATE dispatch_queue SET not_before = 0")
        item = q.claim("w", 1)
        assert item is not None
        with q._tx() as cur:
            cur.execute("UPDATE dispatch_queue SET lease_until = 0")
        q.expire("w")
    item = q.get("k")
    assert item.state == "done" and item.outcome == "lost" and "host h1 lost" in item.error


def test_notify_wakes_a_listener(q: PgQueue, pg: PgServer) -> None:  # noqa: F811
    lis = Listener(pg.url())
    assert lis.wait(1.0)  # the first call connects and asks for a pass
    assert not lis.wait(0.3)  # nothing happened: the full timeout, no wake-up
    q.add("n", spec(), b"")
    t0 = time.monotonic()
    assert lis.wait(30.0)
    assert time.monotonic() - t0 < 10.0
    lis.close()


def test_sqlite_stays_the_default(tmp_path) -> None:  # noqa: ANN001
    q = open_queue(tmp_path / "s" / "dispatch.sqlite3", None, {})
    assert type(q).__name__ == "Queue" and not q.list()
    q.add("x", spec(), b"")
    assert "fence" not in q.get("x").to_json()
    q.close()


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "runner.agents", *args], env=env, capture_output=True, text=True,
                          timeout=60)  # fmt: skip


@pytest.mark.parametrize(
    ("url", "status", "words"),
    [
        ("postgresql://dk:x@127.0.0.1:1/dk", 3, "cannot reach the queue database"),
        ("WRONG", 2, "postgresql://"),
    ],
)
def test_bad_queue_urls_refused_in_one_line(sandbox, url: str, status: int, words: str) -> None:  # noqa: ANN001
    env = sandbox.env()
    for args in (("queue", "ls"), ("queue", "add", "--agent", "cmd", "--prompt", "p"), ("workers",)):
        cp = (
            cli(*args, "--queue", url, "--", "true", env=env)
            if "add" in args
            else cli(*args, "--queue", url, env=env)
        )
        assert cp.returncode == status, (args, cp.stderr)
        assert words in cp.stderr and len(cp.stderr.strip().splitlines()) == 1, cp.stderr
    assert not any(sandbox.state_dir.iterdir())  # nothing half-created


def test_wrong_password_says_so(sandbox, pg: PgServer) -> None:  # noqa: ANN001, F811
    cp = cli("queue", "ls", "--queue", pg.url(password="nope"), env=sandbox.env())
    assert cp.returncode == 3 and "wrong user or password" in cp.stderr and "nope" not in cp.stderr


def test_bad_lease_setting_refused() -> None:
    with pytest.raises(QueueError) as e:
        open_queue("/nonexistent", "postgresql://x@127.0.0.1:1/x", {"DISPATCH_QUEUE_LEASE_S": "soon"})
    assert e.value.code == "bad_config"


def test_cli_queue_verbs_and_fleet_view(sandbox, q: PgQueue, pg: PgServer) -> None:  # noqa: ANN001, F811
    env = sandbox.env(DISPATCH_QUEUE_URL=pg.url())
    for key in ("a", "b"):
        cp = cli("queue", "add", "--agent", "cmd", "--task-id", key, "--prompt", "p", "--", "true", env=env)
        assert cp.returncode == 0, cp.stderr
    claimed = q.claim("h1/w1", 1)
    assert claimed.key == "a"
    cp = cli("ls", "--json", "--queue", pg.url(), env=env)  # --json alone is the contract's list
    rows = {r["key"]: r for r in __import__("json").loads(cp.stdout)}
    assert rows["a"]["host"] == "h1" and rows["a"]["state"] == "running" and 0 <= rows["a"]["lease_age"] < 30
    assert rows["b"]["host"] is None and rows["b"]["lease_age"] is None
    human = cli("ls", "--queue", pg.url(), env={k: v for k, v in env.items() if k != "DISPATCH_QUEUE_URL"})
    assert "HOST" in human.stdout and "LEASE AGE" in human.stdout and "h1" in human.stdout, human.stderr
    assert cli("queue", "cancel", "b", env=env).returncode == 0 and q.get("b").state == "cancelled"
    assert cli("queue", "retry", "b", env=env).returncode == 0 and q.get("b").state == "queued"
    kinds = [e["kind"] for e in q.events("b")]
    assert kinds == ["added", "cancelled", "retried"]
    assert not any(sandbox.state_dir.iterdir())  # a PostgreSQL queue leaves nothing in the local state dir


def test_a_lost_claim_resumes_with_the_native_id(sandbox, q: PgQueue, pg: PgServer) -> None:  # noqa: ANN001, F811
    """After a host loss, a profile with a native session (claude) resumes it; one without re-runs."""
    from runner.agents import plan as plans
    from runner.agents import runs
    from runner.agents.backend import open_backend
    from runner.agents.fleet import make
    from runner.agents.profiles import load

    env = sandbox.env()
    q.add("cl", {"agent": "claude", "cwd": "/", "mode": "batch"}, b"the original prompt")
    q.add("cm", {"agent": "cmd", "cwd": "/", "extra": ["true"]}, b"the original prompt")
    for key in ("cl", "cm"):
        first = q.claim("h1/w", 5)
        assert q.renew(key, first.fence, f"sess-{key}")
    with q._tx() as cur:
        cur.execute("UPDATE dispatch_queue SET lease_until = 0")
    assert len(q.expire("h2/w")) == 2
    with q._tx() as cur:
        cur.execute("UPDATE dispatch_queue SET not_before = 0")
    w = make(open_backend(env), PgQueue(pg.url(), host="h2", lease_s=5.0), 5)
    try:
        again = {k: q.claim("h2/w", 5) for k in ("cl", "cm")}
        by = {it.key: it for it in again.values()}
        claude = w._request(by["cl"])
        profile = load("claude", env)
        assert claude.native_id == "sess-cl" and claude.prompt == profile.resume_prompt.encode()
        argv = plans.build(profile, prompt=claude.prompt, paths=runs.agent_paths(w.runner, by["cl"].task_id),
                           mode="batch", resume_id=claude.native_id).argv  # fmt: skip
        assert argv[argv.index("--resume") + 1] == "sess-cl"
        rerun = w._request(by["cm"])
        assert rerun.native_id is None and rerun.prompt == b"the original prompt"
        assert [e["detail"].split()[0] for e in q.events("cl") if e["kind"] == "claimed"] == [
            "start",
            "resume",
        ]
    finally:
        w.stop.set()
        w.queue.close()
