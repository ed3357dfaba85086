"""What every benchmark shares: sandboxes, the dispatchers under test, journals, events, clocks.

Dispatchers are driven only through the contract (``conformance.harness.Impl``), so the seed approach
(``conformance/known_bad/seed_polling.sh``) and ours are measured by the same code. Every process the
bench starts carries the sandbox marker and is ended by identity when the sandbox closes.
"""

from __future__ import annotations

import os
import resource
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance.harness import Impl
from conformance.isolation import Sandbox
from conformance.known_bad import KNOWN_BAD
from fake_agents import journal
from runner.contract import TERMINAL, reference_command

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
FAKE_AGENT = str(VENV_BIN / "fake-agent") if (VENV_BIN / "fake-agent").exists() else "fake-agent"
TMUX = shutil.which("tmux") or "/usr/bin/tmux"

SEED_DEFAULT_POLL_S = 60.0  # seed 001: "Poll every 60 seconds" (sleep 60 in the background loop)
SEED_SCRIPT_POLL_S = 0.25  # seed_polling.sh's own default (the seed's 60 s scaled down for the suite)
SEED_START_SLEEP_S = 12.0  # seed 001: "sleep 12" before trusting that the agent started
SEED_HEALTH_S = (180.0, 300.0)  # seed 002: "every 3-5 minutes" health checks


def raise_fd_limit() -> int:
    """Raise our soft RLIMIT_NOFILE to the hard limit; children (the tmux server) inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def boottime_offset() -> float:
    """CLOCK_BOOTTIME - CLOCK_MONOTONIC: the seed script stamps events with /proc/uptime (boottime)."""
    if not hasattr(time, "CLOCK_BOOTTIME"):
        return 0.0
    best = None
    for _ in range(5):
        a = time.monotonic()
        b = time.clock_gettime(time.CLOCK_BOOTTIME)
        c = time.monotonic()
        if best is None or c - a < best[0]:
            best = (c - a, b - (a + c) / 2)
    assert best is not None
    return best[1]


@dataclass
class Target:
    """One dispatcher under test: a name, how to build its Impl, and the extra environment it needs."""

    name: str  # "ours", "seed", "seed-default"
    cmd: list[str]
    extra_env: dict[str, str] = field(default_factory=dict)
    events_clock_offset: float = 0.0  # subtract from its events' `mono` to get CLOCK_MONOTONIC

    @property
    def is_seed(self) -> bool:
        return self.name.startswith("seed")


def ours() -> Target:

    return Target("ours", reference_command())


def seed(poll_s: float) -> Target:
    name = "seed-default" if poll_s >= SEED_DEFAULT_POLL_S else "seed"
    return Target(
        name,
        list(KNOWN_BAD["seed_polling"].impl),
        {"SEED_POLL_S": f"{poll_s:g}", "SEED_PYTHON": sys.executable},
        events_clock_offset=boottime_offset(),
    )


class Bench:
    """A sandbox plus an Impl bound to it for one target; closes everything it started."""

    def __init__(
        self, target: Target, knobs: dict[str, str] | None = None, socket: Path | None = None
    ) -> None:
        self.target = target
        self.sb = Sandbox.create(prefix="dkb-")
        self.socket = socket or self.sb.socket
        env = self.sb.env(DISPATCH_TMUX_SOCKET=str(self.socket), **target.extra_env, **(knobs or {}))
        env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
        if target.is_seed:  # its hard-coded /tmp files (its P11 flaw) go to a dir the sandbox removes
            (self.sb.root / "hard-tmp").mkdir()
            env["DK_HARD_TMP"] = str(self.sb.root / "hard-tmp")
        self.env = env
        self.impl = Impl(target.cmd, env, scratch=self.sb.tmpdir, workdir=self.sb.workdir, timeout=120.0)
        self.jdir = self.sb.root / "journals"
        self.jdir.mkdir()

    def journal_path(self, task_id: str) -> Path:
        return self.jdir / f"{task_id}.jsonl"

    def agent_argv(self, task_id: str, *flags: str) -> list[str]:
        return [FAKE_AGENT, "--journal", str(self.journal_path(task_id)), *flags]

    def tmux(self, *args: str, timeout: float = 10.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [TMUX, "-S", str(self.socket), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def events(self, task_id: str) -> list[dict[str, Any]]:
        evs = self.impl.events(task_id)
        off = self.target.events_clock_offset
        if off:
            for e in evs:
                e["mono"] = float(e["mono"]) - off
        return evs

    def close(self) -> None:
        """Kill the tmux server, then every marked process by identity; remove the sandbox."""
        try:
            self.tmux("kill-server", timeout=5.0)
        except (subprocess.SubprocessError, OSError):
            pass
        self.sb.cleanup(timeout=10.0)


@contextmanager
def bench(target: Target, knobs: dict[str, str] | None = None) -> Iterator[Bench]:
    b = Bench(target, knobs)
    try:
        yield b
    finally:
        b.close()


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def wait_journal(path: Path, event: str, timeout: float, pred: Any = None) -> journal.Event | None:
    """Poll a fake agent's journal (a few ms apart) until `event` appears (and `pred(ev)` holds)."""
    end = time.monotonic() + timeout
    while True:
        for ev in journal.read(path):
            if ev.event == event and (pred is None or pred(ev)):
                return ev
        if time.monotonic() >= end:
            return None
        time.sleep(0.005)


def terminal_event(evs: list[dict[str, Any]]) -> dict[str, Any] | None:
    return next((e for e in evs if e["state"] in TERMINAL), None)


def wait_terminal(b: Bench, task_id: str, timeout: float) -> dict[str, Any] | None:
    """Block in `wait` (ours sleeps on the wrapper's pidfd), then read the terminal transition."""
    call = b.impl.run("wait", task_id, "--timeout", f"{timeout:g}", timeout=timeout + 30, strict=False)
    if call.exit_code not in (0, 124):
        return None
    return terminal_event(b.events(task_id))


def sampling_note() -> str:
    """Load at the time of the run (other engineers share the machine)."""
    la = os.getloadavg()
    return f"loadavg {la[0]:.2f} {la[1]:.2f} {la[2]:.2f}"
