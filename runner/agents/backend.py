"""The agent layer's one seam to a dispatcher, chosen once per process by :func:`open_backend`.

``InProcessBackend`` calls the reference (runner.tasks.Runner) directly: no process per call, so a
followed run's 0.5 s loop costs a sqlite read and a pidfd wait. ``SubprocessBackend`` speaks contract
v1 (``CMD VERB --json ...``) to any implementation named by ``DISPATCH_CMD``. Both return the same
documents and raise the same :class:`runner.contract.DispatchError`. Live states the contract has no
verb for (``needs_input``) go through :meth:`Backend.mark_needs_input`: only the reference records them.
tmux access for the pane (capture, paste) goes through the runner's gateway, runner.tmux.Tmux.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from runner import config
from runner.contract import (
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_TIMEOUT,
    DispatchError,
    dispatch_command,
    invoke,
    is_terminal,
)
from runner.tmux import Tmux, TmuxError

VERB_TIMEOUT = 30.0  # a stuck implementation is an error, not a hang of ours (P14)
NEEDS_INPUT = "needs_input"

__all__ = ["Backend", "InProcessBackend", "SubprocessBackend", "open_backend", "is_terminal"]


class Backend:
    """The dispatcher verbs the agent layer uses, plus our files and the tmux gateway."""

    kind = "abstract"

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self.env = dict(os.environ if env is None else env)
        self.cfg = config.load(self.env)

    # -- verbs (documents as in conformance/schemas) ------------------------------------------------
    def start(
        self,
        task_id: str,
        cwd: str,
        prompt_file: str | Path,
        argv: Sequence[str],
        label: str | None = None,
        model: str | None = None,
    ) -> dict[str, Any]:
        raise NotImplementedError

    def status(self, task_id: str) -> dict[str, Any]:
        raise NotImplementedError

    def wait(self, task_id: str, timeout: float) -> tuple[dict[str, Any], bool]:
        """(task, ended), bounded by `timeout` seconds."""
        raise NotImplementedError

    def stop(self, task_id: str) -> dict[str, Any]:
        raise NotImplementedError

    def send(self, task_id: str, text_file: str | Path) -> dict[str, Any]:
        raise NotImplementedError

    def events(self, task_id: str) -> list[dict[str, Any]]:
        raise NotImplementedError

    def logs(self, task_id: str) -> dict[str, Any]:
        raise NotImplementedError

    def list(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    def mark_needs_input(self, task_id: str, waiting: bool, detail: Mapping[str, Any]) -> bool:
        """Record (or clear) `needs_input` in the dispatcher; False when it has no way to."""
        return False

    # -- tmux, through the runner's gateway ---------------------------------------------------------
    def tmux(self) -> Tmux:
        """The gateway, made once (it resolves the binary once)."""
        gw = self.__dict__.get("_tmux")
        if gw is None:
            gw = self.__dict__["_tmux"] = Tmux.from_config(self.cfg, env=self.env)
        return gw

    def pane_of(self, session: str) -> str | None:
        """The pane id (%N) of a task's session; None when the session is gone (callers use that as
        "is it still there", so it is asked every time)."""
        try:
            cp = self.tmux().run("list-panes", "-t", f"={session}", "-F", "#{pane_id}")
        except TmuxError:
            return None
        panes = cp.stdout.split()
        return panes[0] if panes else None

    @property
    def agents_dir(self) -> Path:
        """Our files live beside the dispatcher's, never inside its task dirs."""
        return self.cfg.state_dir / "agents"

    @property
    def db_path(self) -> Path:
        return self.cfg.db_path


class InProcessBackend(Backend):
    """The reference, called in this process (the default when DISPATCH_CMD is unset)."""

    kind = "in-process"

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        super().__init__(env)
        self._local = threading.local()

    @property
    def ref(self) -> Any:
        """One reference per thread: its sqlite connection may only be used by the thread that made it
        (`workers` follows several runs at once)."""
        ref = getattr(self._local, "ref", None)
        if ref is None:
            from runner.tasks import Runner as Reference

            ref = self._local.ref = Reference(self.cfg, env=self.env)
        return ref

    def start(self, task_id, cwd, prompt_file, argv, label=None, model=None):  # type: ignore[no-untyped-def]
        return self.ref.start(task_id, cwd, str(prompt_file), list(argv), label, model)

    def status(self, task_id: str) -> dict[str, Any]:
        return self.ref.status(task_id)

    def wait(self, task_id: str, timeout: float) -> tuple[dict[str, Any], bool]:
        """Sleep in the kernel on the supervisor's pidfd for the whole step (it exits when the task
        ends), then one look at the record: a followed run wakes twice a second, not twenty times."""
        from runner.procid import ProcessIdentity

        row = self.ref.task(task_id)
        if not is_terminal(row["state"]) and row.get("wrapper_pid") and row.get("wrapper_start"):
            sup = ProcessIdentity(row["wrapper_pid"], row["wrapper_start"])
            if sup.is_alive():
                sup.wait_exit(timeout)
                return self.ref.wait(task_id, 0.0)
        return self.ref.wait(task_id, timeout)

    def stop(self, task_id: str) -> dict[str, Any]:
        return self.ref.stop(task_id)

    def send(self, task_id: str, text_file: str | Path) -> dict[str, Any]:
        return self.ref.send(task_id, str(text_file))

    def events(self, task_id: str) -> list[dict[str, Any]]:
        return self.ref.events(task_id)

    def logs(self, task_id: str) -> dict[str, Any]:
        return self.ref.logs(task_id)

    def list(self) -> list[dict[str, Any]]:
        return self.ref.list()

    def mark_needs_input(self, task_id: str, waiting: bool, detail: Mapping[str, Any]) -> bool:
        """The reference's state machine knows needs_input: a guarded transition in its store."""
        try:
            store = self.ref.store()
        except FileNotFoundError:
            return False
        if waiting:
            return store.transition(
                task_id, NEEDS_INPUT, "question", expect={"running", "stalled"}, detail=dict(detail)
            )
        return store.transition(task_id, "running", "answered", expect={NEEDS_INPUT}, detail=dict(detail))


class SubprocessBackend(Backend):
    """Any contract v1 implementation, one process per verb (DISPATCH_CMD)."""

    kind = "subprocess"

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        super().__init__(env)
        self.cmd = dispatch_command(self.env)

    def call(
        self, verb: str, *args: str, timeout: float = VERB_TIMEOUT, ok: Sequence[int] = (EXIT_OK,)
    ) -> Any:
        argv = [*self.cmd, verb, "--json", *args]
        try:
            inv = invoke(argv, self.env, timeout=timeout)
        except OSError as e:
            raise DispatchError("internal", f"cannot run the dispatcher ({argv[0]}): {e.strerror}") from None
        if inv.timed_out:
            raise DispatchError("internal", f"dispatch {verb} did not answer within {timeout:g}s")
        doc = inv.document()
        if inv.exit_code in ok and doc is not None:
            return doc
        if isinstance(doc, dict) and isinstance(doc.get("error"), dict):
            err = doc["error"]
            raise DispatchError(str(err.get("code")), str(err.get("message")), inv.exit_code)
        msg = inv.stderr.decode(errors="replace").strip().splitlines()
        raise DispatchError(
            "internal", f"dispatch {verb} failed ({inv.exit_code}): {msg[-1] if msg else ''}", EXIT_INTERNAL
        )

    def start(self, task_id, cwd, prompt_file, argv, label=None, model=None):  # type: ignore[no-untyped-def]
        args = ["--task-id", task_id, "--cwd", cwd, "--prompt-file", str(prompt_file)]
        if label is not None:
            args += ["--label", label]
        if model is not None:
            args += ["--model", model]
        return self.call("start", *args, "--", *argv)

    def status(self, task_id: str) -> dict[str, Any]:
        return self.call("status", task_id)

    def wait(self, task_id: str, timeout: float) -> tuple[dict[str, Any], bool]:
        doc = self.call(
            "wait", task_id, "--timeout", f"{timeout:g}", timeout=timeout + VERB_TIMEOUT, ok=(0, EXIT_TIMEOUT)
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


def open_backend(env: Mapping[str, str] | None = None) -> Backend:
    """Chosen once: DISPATCH_CMD set -> that implementation as subprocesses; else the reference in-process."""
    e = os.environ if env is None else env
    return SubprocessBackend(e) if e.get("DISPATCH_CMD") else InProcessBackend(e)


# Old names, still imported by runner/agents/workers.py and a test until they move to the ones above.
Runner = open_backend
RunnerError = DispatchError
