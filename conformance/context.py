"""What a check works with: a sandbox, the implementation bound to it, fake agents, and observations.

``Ctx`` is handed to every check by the ``dispatch`` fixture (conformance/plugin.py). Observations
(who holds a file open, which processes carry a marker, which tmux sessions exist) read the real
system; nothing is mocked.
"""

from __future__ import annotations

import itertools
import os
import secrets
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from conformance.harness import TERMINAL, Call, Capabilities, ContractViolation, Impl
from conformance.isolation import Sandbox, find_marked
from conformance.timing import Knobs

AGENT_MARKER_VAR = "FAKE_AGENT_MARKER"

# The checks that cover the preconditions other checks demand (named in every `blocked` outcome).
COVERS_SUCCESS = "P10.exit-recorded.exit0 and P05.result.complete"
COVERS_SOCKET = "EX.socket.sessions-on-socket"
COVERS_TASK_ENV = "EX.env.caller-not-server"
COVERS_LOG = "no other check: log_path may be null (CONTRACT.md), the captured output is judged by P03.log.*"


class Blocked(pytest.skip.Exception):  # type: ignore[misc,name-defined]
    """A check's precondition is unmet: its own outcome (``blocked``), never a failure of its pitfall.

    A skip to pytest (so nothing of the check runs on), reported as ``blocked`` by the plugin, naming
    the check (or capability) that covers the precondition.
    """

    def __init__(self, precondition: str, covered_by: str, detail: str = "") -> None:
        self.precondition = precondition
        self.covered_by = covered_by
        self.detail = detail
        why = f" ({detail})" if detail else ""
        super().__init__(f"blocked: {precondition}{why}; covered by {covered_by}")


def fake_program(name: str = "fake-agent") -> list[str]:
    """The argv prefix that runs a fake agent: its console script if installed, else ``python -m``."""
    script = Path(sysconfig.get_path("scripts")) / name
    if not script.exists():
        script = Path(sys.executable).with_name(name)
    if script.exists():
        return [str(script)]
    module = {"fake-agent": "generic", "fake-claude": "claude", "fake-codex": "codex"}.get(
        name, name.removeprefix("fake-")
    )
    return [sys.executable, "-m", f"fake_agents.{module}"]


def journal_api() -> Any:
    """``fake_agents.journal``, or a skip naming what is missing."""
    try:
        from fake_agents import journal
    except ImportError as e:  # pragma: no cover - while fake_agents is being built
        import pytest

        pytest.skip(f"fake_agents.journal is not available yet ({e})")
    return journal


@dataclass
class Agent:
    """A fake-agent invocation: its argv, its journal, and the marker all its processes carry."""

    argv: list[str]
    journal: Path
    marker: str

    def events(self) -> list[Any]:
        return journal_api().read(self.journal)

    def names(self) -> list[str]:
        return [e.event for e in self.events()]

    def first(self, name: str) -> Any:
        return journal_api().first(self.events(), name)

    def all(self, name: str) -> list[Any]:
        return journal_api().all_of(self.events(), name)

    def wait_for(self, event: str, timeout: float = 10.0, **kw: Any) -> Any:
        try:
            return journal_api().wait_for(self.journal, event, timeout, **kw)
        except TimeoutError as e:
            raise ContractViolation(f"the agent never journaled {event!r}: {e}") from None

    def processes(self) -> list[Any]:
        """Live processes (the agent, its children, its daemon) carrying this agent's marker."""
        return find_marked(self.marker, AGENT_MARKER_VAR)


@dataclass
class Ctx:
    """One check's world. Everything it starts lives in ``sandbox`` and carries its marker."""

    impl_cmd: str
    sandbox: Sandbox
    caps: Capabilities
    knobs: Knobs
    record: Callable[[str, Any], None]
    impl: Impl = field(init=False)
    _ids: Any = field(default_factory=lambda: itertools.count(1), init=False)
    started: list[str] = field(default_factory=list, init=False)  # sessions named by accepted starts
    socket_seen: bool = field(default=False, init=False)  # the socket existed right after a start
    calls: list[Call] = field(default_factory=list, init=False)  # every call, for a failure's details
    smoke_failed: Any = field(default=None, init=False)  # the failed smoke stage, with --dispatch-keep-going

    def __post_init__(self) -> None:
        self.impl = self.make_impl()

    # -- implementation ------------------------------------------------------------------------
    def env(self, knobs: Knobs | None = None, **extra: str) -> dict[str, str]:
        """The sandbox environment plus the timing knobs: what every call of the implementation gets."""
        env = self.sandbox.env()
        env.update((knobs or self.knobs).env())
        env.pop("DISPATCH_MODELS", None)
        env.update(extra)
        return env

    def make_impl(self, knobs: Knobs | None = None, env: dict[str, str] | None = None, **extra: str) -> Impl:
        """A (new) Impl bound to this sandbox; ``knobs`` overrides the check's timing knobs."""
        if knobs is not None:
            self.knobs = knobs
        return Impl(
            self.impl_cmd,
            env if env is not None else self.env(**extra),
            scratch=self.sandbox.root / "inputs",
            workdir=self.sandbox.workdir,
            on_call=self._observe,
        )

    def _observe(self, call: Call) -> None:
        """Note every call, every accepted start, and whether a tmux server was on the given socket then."""
        self.calls.append(call)
        if call.verb == "start" and call.exit_code == 0 and isinstance(call.doc, dict):
            self.started.append(str(call.doc.get("session", "")))
            self.socket_seen = self.socket_seen or self.sandbox.socket.exists()

    # -- preconditions: an unmet one blocks the check instead of failing it --------------------
    def require(self, ok: Any, precondition: str, covered_by: str, detail: str = "") -> None:
        """Block the check (outcome ``blocked``) unless ``ok``; ``covered_by`` names the covering check."""
        if not ok:
            raise Blocked(precondition, covered_by, detail)

    def require_succeeded(self, task: dict[str, Any], what: str = "") -> None:
        """A check that needs a task to have succeeded first (its own pitfall lies elsewhere)."""
        if task.get("state") != "succeeded":
            name = what or f"task {task.get('task_id', '?')}"
            raise Blocked(
                f"{name} must succeed first",
                COVERS_SUCCESS,
                f"it ended {task.get('state')!r}, reason {task.get('reason')!r}",
            )

    def require_task_env(self, env: dict[str, Any], task_id: str) -> None:
        """A check that identifies an agent by its DISPATCH_TASK_ID (the agent environment is EX.env's)."""
        got = env.get("DISPATCH_TASK_ID")
        if got is None:
            raise Blocked(f"the agent of {task_id} must get DISPATCH_TASK_ID", COVERS_TASK_ENV, "it is unset")

    def require_log(self, task: dict[str, Any], timeout: float = 5.0) -> str:
        """A check that reads the task's log file: ``log_path`` absolute and existing while it runs."""
        log = task.get("log_path")
        self.require(
            isinstance(log, str) and os.path.isabs(log),
            "the task must report an absolute log_path",
            COVERS_LOG,
            f"log_path is {log!r}",
        )
        found, _ = wait_until(lambda: os.path.exists(log), timeout)
        self.require(found, "the task's log file must exist while it runs", COVERS_LOG, f"no file {log}")
        return str(log)

    def require_sessions_on_socket(self) -> None:
        """Session inspection means something only if the sessions are on DISPATCH_TMUX_SOCKET."""
        if self.started and not (self.socket_seen or self.sandbox.socket.exists()):
            raise Blocked(
                "the implementation's sessions must be on DISPATCH_TMUX_SOCKET",
                COVERS_SOCKET,
                f"{len(self.started)} task(s) started, no tmux server ever listened on {self.sandbox.socket}",
            )

    def reachable_paths(self) -> list[str]:
        """What the implementation needs reachable when /tmp is replaced (P11.no-tmp-writes)."""
        from conformance.reach import install_roots

        return install_roots(self.impl.prefix, cwd=self.impl.cwd or os.getcwd())

    def set_knobs(self, **kw: float) -> Impl:
        """Change the timing knobs for the rest of the check; returns the rebound Impl."""
        self.impl = self.make_impl(self.knobs.but(**kw))
        return self.impl

    def task_id(self, stem: str = "t") -> str:
        return f"{stem}{next(self._ids)}-{secrets.token_hex(3)}"

    # -- fake agents ---------------------------------------------------------------------------
    def agent(
        self,
        *flags: str,
        heartbeat: float | None = 0.1,
        program: str = "fake-agent",
        name: str | None = None,
    ) -> Agent:
        """A fake agent argv with a journal and a marker; heartbeats every 0.1 s unless told otherwise."""
        marker = "fa" + secrets.token_hex(6)
        jdir = self.sandbox.root / "journals"
        jdir.mkdir(exist_ok=True)
        journal = jdir / f"{name or marker}.jsonl"
        argv = [*fake_program(program), "--journal", str(journal), "--marker", marker]
        if heartbeat is not None:
            argv += ["--heartbeat", f"{heartbeat:g}"]
        argv += list(flags)
        return Agent(argv=argv, journal=journal, marker=marker)

    def run_agent(self, agent: Agent, task_id: str | None = None, **kw: Any) -> str:
        """Start ``agent`` as a task; return its task id."""
        tid = task_id or self.task_id()
        self.impl.start(tid, agent.argv, **kw)
        return tid

    def wait_running(self, task_id: str, agent: Agent | None = None, timeout: float = 15.0) -> dict[str, Any]:
        """Wait until the agent is really running (journal `start`, when given) and status says so.

        A task that does not get there while no tmux server ever listened on DISPATCH_TMUX_SOCKET blocks
        the check (EX.socket's failure) rather than failing its pitfall: under load a dispatcher with its
        sessions elsewhere was blamed for P09 (bookworm container, CI).
        """
        try:
            if agent is not None:
                agent.wait_for("start", timeout)
            # stalled is transient here: an agent behind a slow start beats for the first time after STALE
            poll = self.impl.wait_for_state(task_id, {"running", "needs_input", *TERMINAL}, timeout)
            if poll.state != "running":
                raise ContractViolation(
                    f"task {task_id} should be running, status says {poll.state!r} (seen {poll.states})"
                )
        except ContractViolation:
            self.require_sessions_on_socket()
            raise
        return poll.task

    def latency(self, name: str, seconds: float) -> None:
        """Record a measured detection latency (shown in every report)."""
        self.record("latency", {"name": name, "ms": round(seconds * 1000.0, 1)})

    # -- tmux on the sandbox socket (ours to inspect and to inject into) -----------------------
    def tmux(self, *args: str, timeout: float = 5.0, check: bool = False, env: dict[str, str] | None = None):
        """tmux on the sandbox socket, through the kit's one tmux gateway (runner.tmux)."""
        from runner.tmux import Tmux

        gw = Tmux(socket_path=str(self.sandbox.socket), timeout=timeout, env=env or self.sandbox.env())
        cp = gw.run(*args, check=False)
        if check and cp.returncode != 0:
            raise subprocess.CalledProcessError(cp.returncode, cp.args, cp.stdout, cp.stderr)
        return cp

    def sessions(self) -> dict[str, str]:
        """{session name: session id} on the implementation's socket (empty when no server).

        Blocks the check when tasks were started but never had a tmux server on the given socket: an
        empty answer would make "the session is gone" pass vacuously.
        """
        self.require_sessions_on_socket()
        if not self.sandbox.socket.exists():
            return {}
        r = self.tmux("list-sessions", "-F", "#{session_name}\t#{session_id}")
        if r.returncode != 0:
            return {}
        return dict(line.split("\t", 1) for line in r.stdout.splitlines() if "\t" in line)

    def server_running(self) -> bool:
        return self.sandbox.socket.exists() and self.tmux("list-sessions").returncode == 0


def holders(path: str | os.PathLike[str]) -> list[int]:
    """PIDs with ``path`` open (any fd), by scanning /proc/*/fd; works for files deleted meanwhile."""
    target = os.path.realpath(path)
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(f"{fd_dir}/{fd}")
            except OSError:
                continue
            if link == target or link == target + " (deleted)":
                out.append(int(pid))
                break
    return out


def wait_until(pred: Callable[[], Any], timeout: float, interval: float = 0.05) -> tuple[Any, float]:
    """Poll ``pred`` until truthy or timeout; returns (last value, seconds waited)."""
    t0 = time.monotonic()
    while True:
        v = pred()
        waited = time.monotonic() - t0
        if v or waited >= timeout:
            return v, waited
        time.sleep(interval)


def pid_alive(pid: int, start_time: float | None = None) -> bool:
    """True when ``pid`` is a live (non-zombie) process, with the same start time when given."""
    import psutil

    try:
        p = psutil.Process(pid)
        if p.status() == psutil.STATUS_ZOMBIE:
            return False
        return start_time is None or abs(p.create_time() - start_time) < 0.05
    except psutil.Error:
        return False


def describe_procs(procs: Sequence[Any]) -> str:
    return "; ".join(str(p) for p in procs[:5])
