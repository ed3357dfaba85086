"""Drive any dispatcher through contract v1: one verb per process, JSON out, schema-checked, timed.

``Impl`` is the only way the suite talks to an implementation. Every call gets the sandbox
environment, a timeout, ``--json`` right after the verb, and its stdout validated as exactly one JSON
document against ``conformance/schemas``; a violation raises :class:`ContractViolation` (an
``AssertionError``, so a check fails with the message).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache, lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from runner.contract import LIVE, TERMINAL, invoke

STATES = TERMINAL | LIVE

DEFAULT_TIMEOUT = 20.0  # per call; generous for a loaded 2-core machine, checks set tighter bounds

# verb -> schema for a success document (None: not JSON, e.g. `logs` without --json)
SCHEMA_OF = {
    "capabilities": "capabilities.json",
    "start": "start.json",
    "status": "task.json",
    "wait": "task.json",
    "stop": "stop.json",
    "list": "list.json",
    "reap": "reap.json",
    "send": "send.json",
    "events": "events.json",
    "logs": "logs.json",
}


class ContractViolation(AssertionError):
    """The implementation broke the contract's invocation rules (output, schema, exit code)."""


class StartRefused(ContractViolation):
    """`start` of a task a check needs was refused (a precondition when even the smoke task cannot start)."""


class WaitFailed(ContractViolation):
    """`wait` on a task a check needs did not bring it to an end."""


class ImplUnavailable(Exception):
    """The implementation command cannot be run at all (not found, not executable)."""


@dataclass
class Call:
    """One invocation of the implementation and what came back."""

    argv: list[str]
    exit_code: int
    stdout: bytes
    stderr: str
    doc: Any
    duration_s: float
    problem: str | None = None  # why stdout is not a valid contract document (None when fine)
    timed_out: bool = False

    @property
    def verb(self) -> str:
        return self.argv[0] if self.argv else ""

    @property
    def error_code(self) -> str | None:
        if isinstance(self.doc, dict) and isinstance(self.doc.get("error"), dict):
            return self.doc["error"].get("code")
        return None

    @property
    def stderr_line(self) -> str:
        """The last non-empty stderr line, for one-line messages."""
        lines = [ln.strip() for ln in self.stderr.splitlines() if ln.strip()]
        return lines[-1][:300] if lines else ""

    @property
    def command(self) -> str:
        """The whole command line after the implementation's prefix (for details, never cut)."""
        return shlex.join(self.argv)

    def describe(self, problem: bool = True) -> str:
        """One line, cause first: the verb, its exit, error code, last stderr line, document problem.

        The command line is not part of it (a long argv would push the cause out of a one-line
        message); the plugin puts the calls' command lines in the report's details.
        """
        what = "timed out" if self.timed_out else f"exit {self.exit_code}"
        msg = f"`{self.verb}` {what} after {self.duration_s:.2f}s"
        if self.error_code:
            msg += f", error.code={self.error_code}"
        if self.stderr_line:
            msg += f", stderr: {self.stderr_line}"
        if self.problem and problem:
            msg += f" ({self.problem})"
        return msg


@dataclass(frozen=True)
class Capabilities:
    """The parsed `capabilities --json` document."""

    implementation: str
    version: str
    tmux_min: str
    capabilities: frozenset[str]
    raw: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Capabilities:
        return cls(
            implementation=str(doc.get("implementation", "")),
            version=str(doc.get("version", "")),
            tmux_min=str(doc.get("tmux_min", "")),
            capabilities=frozenset(map(str, doc.get("capabilities", []))),
            raw=dict(doc),
        )

    def has(self, cap: str) -> bool:
        return cap in self.capabilities


@cache
def load_schema(name: str) -> dict[str, Any]:
    return json.loads(resources.files("conformance.schemas").joinpath(name).read_text())


@lru_cache(maxsize=1)
def _registry() -> Any:
    from referencing import Registry, Resource

    names = [p.name for p in resources.files("conformance.schemas").iterdir() if p.name.endswith(".json")]
    return Registry().with_resources((n, Resource.from_contents(load_schema(n))) for n in names)


def schema_errors(doc: Any, name: str) -> list[str]:
    """Every way ``doc`` breaks schema ``name``; empty when it conforms."""
    try:
        import jsonschema
    except ImportError:  # pragma: no cover - the [test] extra installs it
        return _fallback_errors(doc, load_schema(name))
    cls = jsonschema.validators.validator_for(load_schema(name))
    v = cls(load_schema(name), registry=_registry())
    out = []
    for e in sorted(v.iter_errors(doc), key=lambda e: list(e.absolute_path)):
        where = "/".join(map(str, e.absolute_path)) or "(root)"
        out.append(f"{where}: {e.message[:200]}")
    return out


def _fallback_errors(doc: Any, schema: dict[str, Any]) -> list[str]:
    """Required-keys check only, when jsonschema is absent."""
    if schema.get("type") == "object":
        if not isinstance(doc, dict):
            return ["(root): not an object"]
        return [f"(root): missing {k!r}" for k in schema.get("required", []) if k not in doc]
    if schema.get("type") == "array" and not isinstance(doc, list):
        return ["(root): not an array"]
    return []


def parse_document(stdout: bytes) -> tuple[Any, str | None]:
    """Parse stdout as exactly one JSON document plus an optional newline (CONTRACT.md, invocation rules)."""
    try:
        text = stdout.decode("utf-8")
    except UnicodeDecodeError as e:
        return None, f"stdout is not UTF-8: {e}"
    if not text.strip():
        return None, "stdout is empty, expected one JSON document"
    try:
        doc, end = json.JSONDecoder().raw_decode(text)
    except json.JSONDecodeError as e:
        return None, f"stdout is not JSON ({e.msg} at char {e.pos}): {text[:120]!r}"
    rest = text[end:]
    if rest not in ("", "\n"):
        return doc, f"stdout has more than one JSON document or trailing text: {rest[:80]!r}"
    return doc, None


def resolve_command(cmd: str | Sequence[str]) -> list[str]:
    """Split IMPL with POSIX shell word rules and resolve its program on *our* PATH once.

    Resolved once so a check that hides tmux from PATH (or runs in a namespace) still finds the
    implementation itself.
    """
    argv = shlex.split(cmd) if isinstance(cmd, str) else list(cmd)
    if not argv:
        raise ImplUnavailable("the implementation command is empty")
    # `bash ./my-dispatcher.sh`: relative path words are taken against the caller's cwd, once, so
    # the implementation still runs where a check sets another cwd or hides the cwd's tree.
    argv[1:] = [_absolute_if_path(w) for w in argv[1:]]
    prog = argv[0]
    if os.sep not in prog:
        found = shutil.which(prog)
        if not found:
            raise ImplUnavailable(f"{prog!r} not found on PATH")
        argv[0] = found
    elif not os.access(prog, os.X_OK):
        raise ImplUnavailable(f"{prog!r} is not an executable file")
    else:
        argv[0] = os.path.abspath(prog)
    return argv


def _absolute_if_path(word: str) -> str:
    """``./x.sh`` or ``dir/x.sh`` naming an existing file -> its absolute path; anything else as is."""
    if os.path.isabs(word) or word.startswith("-") or "/" not in word:
        return word
    return os.path.abspath(word) if os.path.exists(word) else word


class Impl:
    """One implementation under test, bound to an environment (usually a sandbox's).

    ``wrap`` lets a check run every call through another launcher (a PID or mount namespace):
    it gets the full argv and returns the argv to execute.
    """

    def __init__(
        self,
        cmd: str | Sequence[str],
        env: Mapping[str, str],
        *,
        timeout: float = DEFAULT_TIMEOUT,
        cwd: str | os.PathLike[str] | None = None,
        wrap: Callable[[list[str]], list[str]] | None = None,
        on_call: Callable[[Call], None] | None = None,
        scratch: str | os.PathLike[str] | None = None,
        workdir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.prefix = resolve_command(cmd)
        self.env = dict(env)
        self.timeout = timeout
        self.cwd = os.fspath(cwd) if cwd is not None else None
        self.wrap = wrap
        self.on_call = on_call
        self.scratch = Path(scratch) if scratch is not None else None  # where prompt/text files go
        self.workdir = os.fspath(workdir) if workdir is not None else None  # default --cwd
        self.calls: list[Call] = []

    def _clone(self, env: Mapping[str, str]) -> Impl:
        other = Impl(
            self.prefix,
            env,
            timeout=self.timeout,
            cwd=self.cwd,
            wrap=self.wrap,
            on_call=self.on_call,
            scratch=self.scratch,
            workdir=self.workdir,
        )
        other.calls = self.calls
        return other

    def with_env(self, **changes: str | None) -> Impl:
        """A copy with some variables set (or removed with None)."""
        env = dict(self.env)
        for k, v in changes.items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = v
        return self._clone(env)

    def wrapped(self, wrap: Callable[[list[str]], list[str]] | None) -> Impl:
        """A copy whose calls all run through ``wrap`` (e.g. inside a namespace)."""
        other = self._clone(self.env)
        other.wrap = wrap
        return other

    # -- the one place a process is run -------------------------------------------------------
    def run(
        self,
        verb: str,
        *args: str,
        json_out: bool = True,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
        strict: bool = True,
    ) -> Call:
        """Run ``IMPL verb [--json] args...``; with ``strict`` a malformed document raises ContractViolation."""
        words = [verb, *(["--json"] if json_out else []), *args]
        argv = [*self.prefix, *words]
        if self.wrap is not None:
            argv = self.wrap(argv)
        limit = self.timeout if timeout is None else timeout
        try:
            inv = invoke(argv, self.env if env is None else env, timeout=limit, cwd=self.cwd)
        except OSError as e:
            raise ImplUnavailable(f"cannot run {argv[0]!r}: {e.strerror or e}") from e
        out, err, timed_out, duration = inv.stdout, inv.stderr, inv.timed_out, inv.duration_s
        call = Call(
            argv=words,
            exit_code=inv.exit_code,
            stdout=out,
            stderr=err.decode("utf-8", "replace"),
            doc=None,
            duration_s=duration,
            timed_out=timed_out,
        )
        if json_out and not timed_out:
            call.doc, call.problem = parse_document(out)
            if call.problem is None:
                schema = "error.json" if call.exit_code not in (0, 124) else SCHEMA_OF.get(verb)
                if schema:
                    errs = schema_errors(call.doc, schema)
                    if errs:
                        call.problem = f"does not match {schema}: " + "; ".join(errs[:4])
        self.calls.append(call)
        if self.on_call is not None:
            self.on_call(call)
        if strict and timed_out:
            raise ContractViolation(f"{call.describe()} (the suite's per-call limit is {limit:.1f}s)")
        if strict and call.problem:
            raise ContractViolation(f"{call.problem}: {call.describe(problem=False)}")
        return call

    def ok(self, verb: str, *args: str, expect: int = 0, **kw: Any) -> Any:
        """Run a verb that must exit ``expect``; return its document."""
        call = self.run(verb, *args, **kw)
        if call.exit_code != expect:
            raise ContractViolation(f"expected exit {expect}: {call.describe()}")
        return call.doc

    # -- verbs --------------------------------------------------------------------------------
    def capabilities(self) -> Capabilities:
        return Capabilities.from_doc(self.ok("capabilities"))

    def start_call(
        self,
        task_id: str,
        argv: Sequence[str],
        *,
        prompt: bytes | str = b"",
        prompt_file: str | os.PathLike[str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        label: str | None = None,
        model: str | None = None,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
        strict: bool = True,
    ) -> Call:
        """Run `start` and return the raw call (for checks that expect a refusal)."""
        if prompt_file is None:
            prompt_file = self._prompt_path(task_id)
            data = prompt.encode() if isinstance(prompt, str) else prompt
            Path(prompt_file).write_bytes(data)
        args = [
            "--task-id",
            task_id,
            "--cwd",
            os.fspath(cwd or self._workdir()),
            "--prompt-file",
            os.fspath(prompt_file),
        ]
        if label is not None:
            args += ["--label", label]
        if model is not None:
            args += ["--model", model]
        return self.run("start", *args, "--", *argv, timeout=timeout, env=env, strict=strict)

    def start(self, task_id: str, argv: Sequence[str], **kw: Any) -> dict[str, Any]:
        """Start a task that must be accepted; returns the start document."""
        call = self.start_call(task_id, argv, **kw)
        if call.exit_code != 0:
            raise StartRefused(f"start was refused: {call.describe()}")
        return call.doc

    def status(self, task_id: str, **kw: Any) -> dict[str, Any]:
        return self.ok("status", task_id, **kw)

    def wait(self, task_id: str, timeout: float = 15.0) -> dict[str, Any]:
        """`wait --timeout`; the task must end in time (exit 124 raises)."""
        call = self.run("wait", task_id, "--timeout", f"{timeout:g}", timeout=timeout + DEFAULT_TIMEOUT)
        if call.exit_code == 124:
            raise WaitFailed(
                f"task {task_id} still {call.doc.get('state')!r} after wait --timeout {timeout:g}"
            )
        if call.exit_code != 0:
            raise WaitFailed(f"wait failed: {call.describe()}")
        return call.doc

    def wait_all(self, task_ids: Sequence[str], timeout: float = 15.0) -> dict[str, dict[str, Any]]:
        """Every task ended, with as few calls as the implementation allows: {task id: task object}.

        `wait` on the last task started (the one to end last), then one `list` answers for the rest;
        a task `list` still shows live is waited on by itself, since a dispatcher may settle a state
        only when asked about that one task. One process per task under load costs seconds per check.
        """
        ids = list(task_ids)
        if not ids:
            return {}
        last = self.wait(ids[-1], timeout)
        listed = {str(t.get("task_id")): t for t in self.list()}
        out = {}
        for tid in ids[:-1]:
            task = listed.get(tid)
            out[tid] = task if task is not None and task.get("state") in TERMINAL else self.wait(tid, timeout)
        out[ids[-1]] = last
        return {tid: out[tid] for tid in ids}

    def stop(self, task_id: str, **kw: Any) -> dict[str, Any]:
        return self.ok("stop", task_id, **kw)

    def reap(self, **kw: Any) -> dict[str, Any]:
        return self.ok("reap", **kw)

    def list(self, **kw: Any) -> list[dict[str, Any]]:
        return self.ok("list", **kw)

    def events(self, task_id: str, **kw: Any) -> list[dict[str, Any]]:
        return self.ok("events", task_id, **kw)

    def logs(self, task_id: str, **kw: Any) -> dict[str, Any]:
        return self.ok("logs", task_id, **kw)

    def logs_raw(self, task_id: str, **kw: Any) -> bytes:
        call = self.run("logs", task_id, json_out=False, **kw)
        if call.exit_code != 0:
            raise ContractViolation(f"logs failed: {call.describe()}")
        return call.stdout

    def send_call(self, task_id: str, text: bytes | str, *, strict: bool = True, **kw: Any) -> Call:
        path = self._text_path(task_id)
        Path(path).write_bytes(text.encode() if isinstance(text, str) else text)
        return self.run("send", task_id, "--text-file", path, strict=strict, **kw)

    def send(self, task_id: str, text: bytes | str, **kw: Any) -> dict[str, Any]:
        call = self.send_call(task_id, text, **kw)
        if call.exit_code != 0:
            raise ContractViolation(f"send failed: {call.describe()}")
        return call.doc

    def wait_for_state(
        self,
        task_id: str,
        pred: Callable[[dict[str, Any]], bool] | str | Sequence[str],
        deadline: float,
        *,
        interval: float = 0.05,
        status_timeout: float | None = None,
    ) -> Poll:
        """Poll `status` until ``pred`` holds or ``deadline`` (seconds from now) passes.

        ``pred`` may be a state name or a collection of names. Returns a :class:`Poll` with the last
        task, every state seen, and when the predicate first held (``matched_at``, monotonic), so a
        check can measure detection latency and assert what was *never* seen.
        """
        if isinstance(pred, str):
            names = {pred}
            pred = lambda t: t.get("state") in names  # noqa: E731
        elif not callable(pred):
            names = set(pred)
            pred = lambda t: t.get("state") in names  # noqa: E731
        poll = Poll(task_id=task_id)
        end = time.monotonic() + deadline
        while True:
            task = self.status(task_id, timeout=status_timeout)
            now = time.monotonic()
            poll.observe(task, now)
            if pred(task):
                poll.matched_at = now
                return poll
            if now >= end:
                return poll
            time.sleep(min(interval, max(0.0, end - now)))

    # -- files the verbs need -----------------------------------------------------------------
    def _scratch(self) -> Path:
        d = self.scratch or Path(self.env.get("TMPDIR") or "/tmp") / "dk-inputs"
        d.mkdir(parents=True, exist_ok=True)
        return d

    def _prompt_path(self, task_id: str) -> str:
        return os.fspath(self._scratch() / f"prompt-{_safe(task_id)}-{time.monotonic_ns()}")

    def _text_path(self, task_id: str) -> str:
        return os.fspath(self._scratch() / f"text-{_safe(task_id)}-{time.monotonic_ns()}")

    def _workdir(self) -> str:
        return self.workdir or self.cwd or os.getcwd()


def _safe(name: str) -> str:
    """A file-name-safe rendering of a (possibly hostile) task id."""
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)[:40].lstrip(".") or "_"


@dataclass
class Poll:
    """What polling `status` saw."""

    task_id: str
    task: dict[str, Any] = field(default_factory=dict)
    states: list[str] = field(default_factory=list)  # distinct consecutive states
    tasks: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    matched_at: float | None = None

    def observe(self, task: dict[str, Any], now: float) -> None:
        self.task = task
        self.tasks.append((now, task))
        st = task.get("state")
        if not self.states or self.states[-1] != st:
            self.states.append(st)

    @property
    def matched(self) -> bool:
        return self.matched_at is not None

    @property
    def state(self) -> str | None:
        return self.task.get("state")

    def saw(self, *states: str) -> bool:
        return any(s in self.states for s in states)

    def first_seen(self, state: str) -> float | None:
        return next((t for t, task in self.tasks if task.get("state") == state), None)
