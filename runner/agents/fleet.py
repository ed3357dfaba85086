"""Workers on a PostgreSQL queue (runner/queue_pg.py): one per process, any number per host, many hosts.

On top of the one-machine loop (runner/agents/workers.py) a fleet worker
- keeps a lease per claim it runs: a thread renews each every lease/3 on its own connection, carrying
  the agent's native session id into the row so another host can resume it;
- fences itself: when a renewal says the claim moved on, or no renewal succeeded for half a lease (the
  database or the link is gone), it stops the local agent at once, well before the database lets another
  host claim the task (lease_until is set after our renewal was sent, so our half-lease ends first);
- records outcomes with the claim's fencing token; a refused (late) outcome is logged, never applied;
- expires other hosts' dead leases on every pass, and sleeps on LISTEN rather than polling.
"""

from __future__ import annotations

import os
import signal
import threading
from dataclasses import dataclass, field
from typing import Any

from runner.agents import runs
from runner.agents.backend import RunnerError, is_terminal
from runner.agents.profiles import ProfileError, load
from runner.agents.workers import RETRY_BACKOFF_S, Workers
from runner.clock import mono
from runner.queue import Item
from runner.queue_pg import FenceRefused, Listener, PgQueue, QueueUnavailable

SELF_FENCE = 0.5  # stop our agent when no renewal succeeded for this fraction of a lease


@dataclass
class Claim:
    """A claim this worker runs: the row as claimed, when a renewal last succeeded (sent), why fenced."""

    item: Item
    renewed_at: float
    fenced: str | None = None


@dataclass
class FleetWorkers(Workers):
    """`workers --queue postgresql://...`; `queue` is a PgQueue, `url` opens the renewer's and listener's."""

    url: str = ""
    _claims: dict[str, Claim] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _down_said: bool = False

    def __post_init__(self) -> None:
        self.lease_s: float = self.queue.lease_s
        self.listener = Listener(self.url, dead_after=self.lease_s / 3)
        self._renewer = threading.Thread(target=self._renew_loop, daemon=True, name="lease-renewer")
        self._renewer.start()
        self._watchdog = threading.Thread(target=self._watch_loop, daemon=True, name="lease-watchdog")
        self._watchdog.start()

    # -- leases --------------------------------------------------------------------------------------

    def _native_id(self, item: Item) -> str | None:
        try:
            kind = load(item.spec["agent"], self.runner.env).native_id
        except (ProfileError, KeyError):
            return None
        if kind == "none" or not item.task_id:
            return None
        return runs.native_id(runs.agent_paths(self.runner, item.task_id), kind)

    def _renew_loop(self) -> None:
        q: PgQueue | None = None
        while not self.stop.wait(self.lease_s / 3):
            with self._lock:
                claims = [c for c in self._claims.values() if c.fenced is None]
            for c in claims:
                sent = mono()
                try:
                    q = q or PgQueue(self.url, host=self.queue.host, lease_s=self.lease_s)
                    ok = q.renew(c.item.key, c.item.fence, self._native_id(c.item))
                except QueueUnavailable:
                    if q is not None:
                        q.close()
                    q = None
                    continue  # the watchdog fences what stays unrenewed
                if ok:
                    c.renewed_at = max(c.renewed_at, sent)
                elif c.fenced is None:
                    self._fence(c, "the lease was lost: the task moved on")
        if q is not None:
            q.close()

    def _watch_loop(self) -> None:
        """Never touches the database (a renewal may hang on a cut link): fences what went unrenewed."""
        while not self.stop.wait(self.lease_s / 10):
            now = mono()
            with self._lock:
                late = [
                    c
                    for c in self._claims.values()
                    if c.fenced is None and now - c.renewed_at > SELF_FENCE * self.lease_s
                ]
            for c in late:
                self._fence(c, f"no lease renewal for {now - c.renewed_at:.1f}s (queue unreachable)")

    def _fence(self, c: Claim, why: str) -> None:
        """Stop our run of a claim we may no longer hold: never two live runs of one task."""
        c.fenced = why
        self.say(f"queue {c.item.key}: {why}; stopping {c.item.task_id}")
        try:
            self.runner.stop(c.item.task_id or "")
        except RunnerError:
            pass  # not started yet or already ended: the launch/reconcile path sees it

    # -- the loop -------------------------------------------------------------------------------------

    def _request(self, item: Item) -> runs.Request:
        """A claim after a lost host resumes the agent's own session when there is one; else it re-runs."""
        req = super()._request(item)
        if not (item.losses and item.native_id):
            return req
        try:
            profile = load(item.spec["agent"], self.runner.env)
        except ProfileError:
            return req
        if profile.resume_id != "none" and not profile.resume_rerun:
            req.native_id, req.prompt = item.native_id, profile.resume_prompt.encode()
        return req

    def _launch(self, item: Item) -> None:
        """Start unless fenced meanwhile (a slow claim or start); stop at once if fenced during the start."""
        c = self._claims.get(item.key)
        if c is not None and c.fenced:
            self._errors[item.key] = runs.RunError("fenced", c.fenced, 1)
            return
        super()._launch(item)
        if c is not None and c.fenced:
            try:
                self.runner.stop(item.task_id or "")
            except RunnerError:
                pass

    def claim_all(self) -> int:
        n = 0
        while not self.stop.is_set():
            sent = mono()
            item = self.queue.claim(self.name, self.max_running)
            if item is None:
                return n
            with self._lock:
                self._claims[item.key] = Claim(item, sent)
            self.say(
                f"queue {item.key}: starting as {item.task_id} (attempt {item.attempts}, claim {item.fence})"
            )
            t = threading.Thread(target=self._launch, args=(item,), daemon=True, name=f"launch-{item.key}")
            self._launching[item.key] = t
            t.start()
            n += 1
        return n

    def _outcome(self, c: Claim) -> tuple[str, str | None, float | None] | None:
        """How our run of a claim ended (outcome, reason, retry delay), or None while it runs."""
        item = c.item
        err = self._errors.pop(item.key, None)
        if err is not None and err.code != "not_delivered":
            return "refused", f"{err.code}: {err.message}", None
        try:
            task = self.runner.status(item.task_id or "")
        except RunnerError as e:
            return "lost", e.message, None
        if not is_terminal(task.get("state")):
            if c.fenced:
                self._fence(c, c.fenced)  # stop again: the first try may have raced the start
            return None
        ok = task["state"] == "succeeded"
        return (
            task["state"],
            task.get("reason"),
            None if ok else RETRY_BACKOFF_S * (2 ** max(0, item.attempts - 1)),
        )

    def reconcile(self) -> None:
        """Record what ended among our claims, with their fencing tokens; a refusal is logged and dropped."""
        with self._lock:
            claims = list(self._claims.values())
        for c in claims:
            t = self._launching.get(c.item.key)
            if t is not None and t.is_alive():
                continue
            self._launching.pop(c.item.key, None)
            ended = self._outcome(c)
            if ended is None:
                continue
            outcome, reason, retry = ended
            try:
                if c.fenced:
                    self.queue.release(c.item.key, c.item.fence, self.name, c.fenced)
                else:
                    done = self.queue.finish(c.item.key, outcome, reason, retry_after=retry,
                                             fence=c.item.fence, worker=self.name)  # fmt: skip
                    self.say(f"queue {c.item.key}: {c.item.task_id} {outcome} -> {done.state}")
                    self._on_done(c.item)
            except FenceRefused as e:
                self.say(f"queue {c.item.key}: outcome refused: {e}")
            with self._lock:
                self._claims.pop(c.item.key, None)

    def _on_done(self, item: Item) -> None:
        if item.spec.get("on_done") and item.task_id:
            try:
                runs.run_notify(item.spec["on_done"], self.runner.status(item.task_id), self.runner.env)
            except RunnerError:
                pass

    def pass_once(self) -> None:
        """Expire dead leases, record, claim, clean; a database outage skips the pass (said once)."""
        try:
            for it in self.queue.expire(self.name):
                self.say(f"queue {it.key}: host {it.host} lost its lease (claim {it.fence})")
            self.reconcile()
            self.claim_all()
            self.clean()
            self._down_said = False
        except QueueUnavailable as e:
            if not self._down_said:
                self.say(f"queue: {e}; retrying")
            self._down_said = True

    def idle(self) -> bool:
        try:
            c = self.queue.counts()
        except QueueUnavailable:
            return False
        return c["queued"] == 0 and c["running"] == 0 and not self._claims

    def _wait(self, seconds: float) -> None:
        """Until a row becomes due (NOTIFY), a quarter lease passes (to expire others' leases), or stop."""
        self.listener.wait(min(seconds, self.lease_s / 4))

    def loop(self, until_empty: bool = False) -> None:
        if threading.current_thread() is threading.main_thread():  # SIGTERM hands back like Ctrl-C
            signal.signal(signal.SIGTERM, _interrupt)
        try:
            super().loop(until_empty)
        finally:
            self.stop.set()
            self.listener.close()
            self._hand_back()

    def _hand_back(self) -> None:
        """A worker that stops (Ctrl-C, SIGTERM) stops its agents and releases their claims for a resume
        elsewhere: nobody would renew the leases, and another host must not start a second live run."""
        with self._lock:
            left = list(self._claims.values())
        for c in left:
            if c.fenced is None:
                self._fence(c, "the worker is stopping")
            try:
                self.queue.release(c.item.key, c.item.fence, self.name, c.fenced or "the worker is stopping")
            except (FenceRefused, QueueUnavailable) as e:
                self.say(f"queue {c.item.key}: not released ({e}); its lease will expire")


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def make(runner: Any, queue: Any, max_running: int, **kw: Any) -> Workers:
    """The worker for this queue: the fleet's on PostgreSQL, the one-machine loop on sqlite."""
    if getattr(queue, "fleet", False):
        kw.setdefault("name", f"{queue.host}/w{os.getpid()}")
        return FleetWorkers(runner, queue, max_running, url=queue.url, **kw)
    return Workers(runner, queue, max_running, **kw)


def fleet_rows(queue: PgQueue) -> list[dict[str, Any]]:
    """Every task in the fleet with its host, state and lease age (seconds since the holder last renewed
    it, on the database's clock) and what is left of the lease; None when nobody holds it."""
    now = queue.db_now()
    rows = []
    for it in queue.list():
        held = it.state == "running" and it.renewed_at is not None
        rows.append({**it.to_json(), "lease_age": round(now - it.renewed_at, 3) if held else None,
                     "lease_left": round(it.lease_until - now, 3) if held and it.lease_until else None})  # fmt: skip
    return rows


def render_fleet(rows: list[dict[str, Any]]) -> str:
    """The `dispatch ls --queue` table: one line per task."""
    out = [f"{'TASK':<28} {'HOST':<14} {'STATE':<10} {'OUTCOME':<10} {'LEASE AGE':>9}  CLAIM  TRIES"]
    for r in rows:
        age = "-" if r["lease_age"] is None else f"{r['lease_age']:.1f}s"
        out.append(f"{r['key']:<28} {r['host'] or '-':<14} {r['state']:<10} {r['outcome'] or '-':<10} {age:>9}"
                   f"  {r['fence']:>5}  {r['attempts']}/{r['max_attempts']}")  # fmt: skip
    return "\n".join(out)
