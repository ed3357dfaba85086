"""Contract v1's shared words, defined once: states, error codes and exits, the task document, knobs,
the tmux floor and how to run the reference.

Everything that speaks the contract (runner, runner.agents, conformance, chaos, bench, tests) imports
these names from here; tests/test_contract_single.py fails when one of them is defined a second time.
The state set is read from conformance/schemas/task.json, so the schema stays the one source of truth.
Stdlib only and no imports of ours: this module sits at the bottom of the layers.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    Knobs = _Knobs  # noqa: F821  (dataclasses made on first use: see __getattr__ at the end)
    Invocation = _Invocation  # noqa: F821

CONTRACT_VERSION = "1"

# -- states ---------------------------------------------------------------------------------------------

# The ended states: a task in one never changes again (CONTRACT.md, "States").
TERMINAL: frozenset[str] = frozenset({"succeeded", "failed", "crashed", "hung", "timed_out", "stopped"})


def is_terminal(state: str | None) -> bool:
    """True for an ended state (None, unknown and live states are not ended)."""
    return state in TERMINAL


# -- errors and exit statuses ---------------------------------------------------------------------------

EXIT_OK = 0
EXIT_INTERNAL = 1  # also: a followed run that ended in any state but succeeded
EXIT_BAD_INPUT = 2
EXIT_ENV = 3
EXIT_TIMEOUT = 124
EXIT_INTERRUPTED = 130

# error code -> exit status (contract v1 table, CONTRACT.md "Errors")
CODES: dict[str, int] = {
    "bad_usage": EXIT_BAD_INPUT,
    "bad_task_id": EXIT_BAD_INPUT,
    "duplicate_task_id": EXIT_BAD_INPUT,
    "unknown_task": EXIT_BAD_INPUT,
    "bad_label": EXIT_BAD_INPUT,
    "model_not_allowed": EXIT_BAD_INPUT,
    "bad_prompt_file": EXIT_BAD_INPUT,
    "bad_text_file": EXIT_BAD_INPUT,
    "bad_cwd": EXIT_BAD_INPUT,
    "bad_argv": EXIT_BAD_INPUT,
    "bad_config": EXIT_BAD_INPUT,
    "not_running": EXIT_BAD_INPUT,
    "not_supported": EXIT_BAD_INPUT,
    "tmux_missing": EXIT_ENV,
    "tmux_too_old": EXIT_ENV,
    "tmux_unreachable": EXIT_ENV,
    "state_dir_unusable": EXIT_ENV,
    "internal": EXIT_INTERNAL,
    # agent layer (dispatch run/resume/queue): not contract verbs, same table
    "not_delivered": EXIT_INTERNAL,
    "queue_item_unknown": EXIT_BAD_INPUT,
}


# The suites (`dispatch conformance`, `dispatch chaos`): one table for both.
SUITE_PASSED = 0
SUITE_FAILED = 1  # a check failed, or the implementation under test cannot be run at all
SUITE_USAGE = 2


def exit_status(code: str) -> int:
    """The exit status of an error code; an unknown code is an internal error."""
    return CODES.get(code, EXIT_INTERNAL)


class DispatchError(Exception):
    """The one error type: a contract error code, a one-line message and the exit status it maps to."""

    def __init__(self, code: str, message: str, exit_status: int | None = None) -> None:
        message = " ".join(str(message).split())  # always one line
        super().__init__(message)
        self.code = code
        self.message = message
        self.exit_status = CODES.get(code, EXIT_INTERNAL) if exit_status is None else exit_status

    def to_json(self) -> dict[str, dict[str, str]]:
        return {"error": {"code": self.code, "message": self.message}}


# -- knobs ----------------------------------------------------------------------------------------------


def _slack_scale() -> float:
    """DK_CONFORMANCE_SLACK_SCALE multiplies every slack, for slower machines."""
    try:
        return max(0.1, float(os.environ.get("DK_CONFORMANCE_SLACK_SCALE", "1")))
    except ValueError:
        return 1.0


class _Knobs:
    """DISPATCH_STALE_AFTER_S / DISPATCH_GRACE_S / DISPATCH_MAX_LIFETIME_S, and the detection bounds a
    correct implementation meets with them (knob-derived plus a slack that holds on a loaded 2-core
    machine, where each `status` may be a fresh process that takes a few hundred ms to start)."""

    # Heartbeat supervision stays on in every check, with a grace long enough that an agent booting on
    # a loaded machine is never judged hung; the heartbeat checks tighten it (0.6/0.6).
    stale: float = 0.6
    grace: float = 3.0
    max_lifetime: float = 20.0  # a safety net; the lifetime check sets it small (3 s)

    def env(self) -> dict[str, str]:
        return {
            "DISPATCH_STALE_AFTER_S": f"{self.stale:g}",
            "DISPATCH_GRACE_S": f"{self.grace:g}",
            "DISPATCH_MAX_LIFETIME_S": f"{self.max_lifetime:g}",
        }

    def but(self, **kw: float) -> Knobs:
        from dataclasses import replace

        return replace(self, **kw)

    # -- bounds, in seconds from the injected event -------------------------------------------------
    @property
    def slack(self) -> float:
        """What a correct implementation may need beyond the knobs on a loaded machine."""
        return 2.5 * _slack_scale()

    @property
    def crash_bound(self) -> float:
        """Agent died (killed, session gone) -> terminal state observed."""
        return 2.0 + self.slack

    @property
    def hung_bound(self) -> float:
        """Last heartbeat change -> `hung` observed."""
        return self.stale + self.grace + self.slack

    @property
    def lifetime_bound(self) -> float:
        """Start -> `timed_out` observed."""
        return self.max_lifetime + self.slack

    @property
    def cleanup_bound(self) -> float:
        """`stop`/`reap` returned -> the last process of the task gone."""
        return 1.5 * _slack_scale()


# -- the contract client ------------------------------------------------------------------------------


class _Invocation:
    """One run of `IMPL VERB ...`: what came back, how long it took, whether it was killed at the limit."""

    exit_code: int
    stdout: bytes
    stderr: bytes
    duration_s: float
    timed_out: bool = False

    def document(self) -> Any:
        """stdout as JSON (None when it is not)."""
        import json

        try:
            return json.loads(self.stdout) if self.stdout.strip() else None
        except ValueError:
            return None


def invoke(argv: list[str], env: Mapping[str, str], *, timeout: float, cwd: str | None = None) -> Invocation:
    """The one place a contract command is run (conformance's Impl, the agent layer's SubprocessBackend,
    chaos and bench through Impl, the tests). Its own process group, so a timed-out call's children go
    with it (SIGKILL to the group); raises OSError when the program cannot be run at all."""
    import signal
    import subprocess
    import time

    t0 = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=dict(env), cwd=cwd, start_new_session=True)  # fmt: skip
    timed_out = False
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the group we created, led by our own child
        except ProcessLookupError:
            pass
        try:
            out, err = proc.communicate(timeout=2.0)
        except subprocess.TimeoutExpired:
            # Our pipes are still held outside the group (a tmux client hands its stdio to the
            # server, which may be frozen): stop reading rather than block past the limit.
            for pipe in (proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()
            proc.wait()
            out, err = b"", b"(output pipes held by another process after the timeout)"
    return __getattr__("Invocation")(proc.returncode, out, err, time.monotonic() - t0, timed_out)


# -- tmux and the reference -----------------------------------------------------------------------------

# The supported floor: `new-session -e` arrived in 3.2; libtmux 0.62's floor is 3.2a too. Older: exit 3.
TMUX_MIN_VERSION = "3.2a"


def reference_command(installed: bool = True) -> list[str]:
    """How to run the reference as a contract command: the `dispatch` script beside this interpreter,
    else (or with installed=False: the code on PYTHONPATH) `python -m runner.cli`."""
    script = os.path.join(os.path.dirname(sys.executable), "dispatch")
    if installed and os.path.exists(script):
        return [script]
    return [sys.executable, "-m", "runner.cli"]


def reference_shell() -> str:
    """The reference command as one shell string (what IMPL / --impl / DISPATCH_CMD take)."""
    import shlex

    return shlex.join(reference_command())


def dispatch_command(env: dict[str, str] | None = None) -> list[str]:
    """The implementation under use: shell words of $DISPATCH_CMD, else the reference."""
    import shlex

    env = dict(os.environ) if env is None else env
    if env.get("DISPATCH_CMD"):
        return shlex.split(env["DISPATCH_CMD"])
    return reference_command()


# -- the words made on first use ------------------------------------------------------------------------
# The supervisor in every pane imports this module for TERMINAL; reading the schema (json), the dataclasses
# and TypedDict (dataclasses, inspect, typing) would cost it ~4 MiB of its idle memory and ~50 ms of its
# start (docs/benchmarks.md). So these are made when first asked for (PEP 562), then kept as globals.


def _schema_dir() -> Any:
    from pathlib import Path

    return Path(__file__).resolve().parent.parent / "conformance" / "schemas"


def _schema_states() -> tuple[str, ...]:
    """The `state` enum of conformance/schemas/task.json, in the schema's order: the state set's one source."""
    import json

    doc = json.loads((_schema_dir() / "task.json").read_text())
    states = tuple(doc["properties"]["state"]["enum"])
    assert TERMINAL <= frozenset(states), "contract.TERMINAL names a state the schema does not list"
    return states


def _task_doc() -> type:
    from typing import TypedDict

    class TaskDoc(TypedDict, total=False):
        """The task document (conformance/schemas/task.json): what status, wait and stop print."""

        task_id: str
        state: str
        reason: str | None
        exit_code: int | None
        signal: int | None
        session: str
        agent_pid: int | None
        wrapper_pid: int | None
        argv: list[str]
        cwd: str
        label: str | None
        model: str | None
        started_at: float | None
        ended_at: float | None
        log_path: str | None
        result: Any

    return TaskDoc


def _dataclass(cls: type, name: str, **kw: bool) -> type:
    from dataclasses import dataclass

    cls.__name__ = cls.__qualname__ = name
    return dataclass(**kw)(cls)


_LAZY: dict[str, Any] = {
    "SCHEMA_DIR": _schema_dir,
    "STATES": _schema_states,
    "LIVE": lambda: frozenset(__getattr__("STATES")) - TERMINAL,
    "TaskDoc": _task_doc,
    "Knobs": lambda: _dataclass(_Knobs, "Knobs", frozen=True),
    "Invocation": lambda: _dataclass(_Invocation, "Invocation"),
}


def __getattr__(name: str) -> Any:
    """A lazy word, made once (also how this module's own functions reach one)."""
    if name in globals():
        return globals()[name]
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = globals()[name] = _LAZY[name]()
    return value
