"""How runner.agents talks to the runner: its in-process API (runner.tasks.Runner), or, when
`DISPATCH_CMD` names another implementation (a shell-word command prefix), contract v1 verbs
(`CMD VERB --json ...`) as subprocesses. Both give the same documents and the same error codes.
tmux access for the pane (capture, paste) goes through the runner's gateway, runner.tmux.Tmux.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from runner import config
from runner.tmux import Tmux, TmuxError

TERMINAL = frozenset({"succeeded", "failed", "crashed", "hung", "timed_out", "stopped"})
VERB_TIMEOUT = 30.0  # a stuck runner is an error, not a hang of ours (P14)


class RunnerError(Exception):
    """A runner verb refused or failed: the contract error code, its one-line message and exit status."""

    def __init__(self, code: str, message: str, exit_status: int) -> None:
        super().__init__(message)
        self.code, self.message, self.exit_status = code, " ".join(str(message).split()), exit_status


def is_terminal(state: str | None) -> bool:
    return state in TERMINAL


def dispatch_cmd(env: Mapping[str, str] | None = None) -> list[str]:
    """The runner command prefix: $DISPATCH_CMD, else this interpreter running runner.cli."""
    env = os.environ if env is None else env
    if env.get("DISPATCH_CMD"):
        return shlex.split(env["DISPATCH_CMD"])
    return [sys.executable, "-c", "import sys; from runner.cli import main; sys.exit(main())"]


class Runner:
    """The runner's verbs; every call returns the parsed JSON document or raises RunnerError."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self.env = dict(os.environ if env is None else env)
        self.cfg = config.load(self.env)
        self.cmd = dispatch_cmd(self.env)
        self._inproc: Any = None
        if not self.env.get("DISPATCH_CMD"):
            try:
                from runner.tasks import Runner as TasksRunner

                self._inproc = TasksRunner(self.cfg, env=self.env)
            except ImportError:
                self._inproc = None

    def _api(self, verb: str, *args: Any) -> Any:
        """One in-process call with DispatchError mapped to RunnerError (same codes and exit statuses)."""
        from runner.errors import DispatchError

        try:
            return getattr(self._inproc, verb)(*args)
        except DispatchError as e:
            raise RunnerError(e.code, e.message, e.exit_status) from None

    # -- verbs -----------------------------------------------------------------------------------

    def call(self, verb: str, *args: str, timeout: float = VERB_TIMEOUT, ok: Sequence[int] = (0,)) -> Any:
        argv = [*self.cmd, verb, "--json", *args]
        try:
            cp = subprocess.run(
                argv, capture_output=True, env=self.env, timeout=timeout, stdin=subprocess.DEVNULL
            )
        except subprocess.TimeoutExpired:
            raise RunnerError("internal", f"dispatch {verb} did not answer within {timeout:g}s", 1) from None
        except OSError as e:
            raise RunnerError("internal", f"cannot run the runner ({argv[0]}): {e.strerror}", 1) from None
        try:
            doc = json.loads(cp.stdout) if cp.stdout.strip() else None
        except ValueError:
            doc = None
        if cp.returncode in ok and doc is not None:
            return doc
        if isinstance(doc, dict) and isinstance(doc.get("error"), dict):
            err = doc["error"]
            raise RunnerError(str(err.get("code")), str(err.get("message")), cp.returncode)
        msg = cp.stderr.decode(errors="replace").strip().splitlines()
        raise RunnerError(
            "internal", f"dispatch {verb} failed ({cp.returncode}): {msg[-1] if msg else ''}", 1
        )

    def start(
        self,
        task_id: str,
        cwd: str,
        prompt_file: str | Path,
        argv: Sequence[str],
        label: str | None = None,
        model: str | None = None,
    ) -> dict[str, Any]:
        args = ["--task-id", task_id, "--cwd", cwd, "--prompt-file", str(prompt_file)]
        if label is not None:
            args += ["--label", label]
        if model is not None:
            args += ["--model", model]
        return self.call("start", *args, "--", *argv)

    def status(self, task_id: str) -> dict[str, Any]:
        return self.call("status", task_id)

    def wait(self, task_id: str, timeout: float) -> tuple[dict[str, Any], bool]:
        """(task, ended): the runner's own wait, bounded by `timeout` seconds."""
        doc = self.call(
            "wait", task_id, "--timeout", f"{timeout:g}", timeout=timeout + VERB_TIMEOUT, ok=(0, 124)
        )
        return doc, is_terminal(doc.get("state"))

    def stop(self, task_id: str) -> dict[str, Any]:
        return self.call("stop", task_id)

    def send(self, task_id: str, text_file: str | Path) -> dict[str, Any]:
        return self.call("send", task_id, "--text-file", str(text_file))

    def events(self, task_id: str) -> list[dict[str, Any]]:
        return self.call("events", task_id)

    def logs(self, task_id: str) -> dict[str, Any]:
        return self.call("logs", task_id)

    def list(self) -> list[dict[str, Any]]:
        return self.call("list")

    # -- tmux, through the runner's gateway ---------------------------------------------------------

    def tmux(self) -> Tmux:
        return Tmux.from_config(self.cfg, env=self.env)

    def pane_of(self, session: str) -> str | None:
        """The pane id (%N) of a task's session; None when the session is gone."""
        try:
            cp = self.tmux().run("list-panes", "-t", f"={session}", "-F", "#{pane_id}")
        except TmuxError:
            return None
        panes = cp.stdout.split()
        return panes[0] if panes else None

    @property
    def agents_dir(self) -> Path:
        """Our files live beside the runner's, never inside its task dirs."""
        return self.cfg.state_dir / "agents"

    @property
    def db_path(self) -> Path:
        return self.cfg.db_path
