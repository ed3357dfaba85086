"""`workers --max N`: start queued runs while fewer than N run, record how each ended, clean old items.

Several worker processes may share one queue: the slot count is enforced inside the claim transaction
(runner/queue.py). Starting an interactive agent waits for its TUI, so each launch runs in its own
thread; the loop itself only claims, reconciles with the runner's states and sleeps until the next pass.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from runner.agents import runs
from runner.agents.backend import Runner, RunnerError, is_terminal
from runner.queue import RUNNING, Item, Queue, attempt_task_id

RETRY_BACKOFF_S = 2.0


@dataclass
class Workers:
    """One worker process; `pass_once` is a full pass, `loop` repeats it until told to stop."""

    runner: Runner
    queue: Queue
    max_running: int
    retention_s: float = 7 * 24 * 3600.0
    poll_s: float = 0.5
    say: Callable[[str], None] = lambda s: None
    name: str = field(default_factory=lambda: f"w{os.getpid()}")
    _launching: dict[str, threading.Thread] = field(default_factory=dict)
    _errors: dict[str, runs.RunError] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)

    def _request(self, item: Item) -> runs.Request:
        assert item.task_id is not None
        return runs.Request.from_spec(item.spec, item.prompt, item.task_id)

    def _launch(self, item: Item) -> None:
        req = self._request(item)
        try:
            launched = runs.launch(req, self.runner, self.say)
            if launched.delivery is not None and not launched.delivery.ok:
                self._errors[item.key] = runs.RunError("not_delivered", launched.delivery.message, 1)
        except runs.RunError as e:
            self._errors[item.key] = e
        except Exception as e:  # a bug must not kill the worker loop; the item records it
            self._errors[item.key] = runs.RunError("internal", f"{type(e).__name__}: {e}", 1)

    def reconcile(self) -> None:
        """Finish running items whose task ended (or never started); run their --on-done hooks."""
        for item in self.queue.list((RUNNING,)):
            t = self._launching.get(item.key)
            if t is not None and t.is_alive():
                continue
            self._launching.pop(item.key, None)
            err = self._errors.pop(item.key, None)
            if err is not None and err.code != "not_delivered":
                self.queue.finish(item.key, "refused", f"{err.code}: {err.message}")
                self.say(f"queue {item.key}: refused: {err.message}")
                continue
            try:
                task = self.runner.status(item.task_id or "")
            except RunnerError as e:
                if item.worker == self.name and t is None:
                    continue  # another pass will see it
                self.queue.finish(item.key, "lost", e.message)
                continue
            if not is_terminal(task.get("state")):
                continue
            ok = task["state"] == "succeeded"
            retry = None if ok else RETRY_BACKOFF_S * (2 ** max(0, item.attempts - 1))
            done = self.queue.finish(item.key, task["state"], task.get("reason"), retry_after=retry)
            self.say(
                f"queue {item.key}: {item.task_id} {task['state']}"
                + (" (requeued)" if done.state == "queued" else "")
            )
            if item.spec.get("on_done"):
                runs.run_notify(item.spec["on_done"], task, self.runner.env)

    def claim_all(self) -> int:
        n = 0
        while not self.stop.is_set():
            item = self.queue.claim(self.name, self.max_running)
            if item is None:
                return n
            self.say(f"queue {item.key}: starting as {item.task_id} (attempt {item.attempts})")
            t = threading.Thread(target=self._launch, args=(item,), daemon=True, name=f"launch-{item.key}")
            self._launching[item.key] = t
            t.start()
            n += 1
        return n

    def clean(self) -> int:
        removed = self.queue.clean(self.retention_s)
        for item in removed:
            for k in range(1, item.attempts + 1):
                shutil.rmtree(self.runner.agents_dir / attempt_task_id(item.key, k), ignore_errors=True)
        return len(removed)

    def pass_once(self) -> None:
        self.reconcile()
        self.claim_all()
        self.clean()

    def idle(self) -> bool:
        c = self.queue.counts()
        return (
            c["queued"] == 0 and c["running"] == 0 and not any(t.is_alive() for t in self._launching.values())
        )

    def _wait(self, seconds: float) -> None:
        """Between passes: a plain wait here; the fleet's workers wake on NOTIFY instead."""
        self.stop.wait(seconds)

    def loop(self, until_empty: bool = False) -> None:
        while not self.stop.is_set():
            self.pass_once()
            if until_empty and self.idle():
                return
            self._wait(self.poll_s)
        for t in list(self._launching.values()):
            t.join(timeout=30)
