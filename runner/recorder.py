"""The supervisor's records, written by a forked child: sqlite3 and json never load in the pane's process.

An idle supervisor is an interpreter plus what it imported. sqlite3 (with datetime) and json (with re
and enum) were ~2 MiB of each one, for a few writes at start and at the end (docs/benchmarks.md). So
`Recorder` offers the store calls the wrapper makes (the task files, claim, update, transition, get) and
serves them in a child it forks: the child imports runner.store, answers over two pipes in `marshal`
(built in, nothing to import) and exits when its request pipe closes. The wrapper holds one child
through its start-up (`hold` ... `release`); a later call forks one for itself and waits for it to end,
so no child is left beside an idle agent and none outlives the wrapper.

The child ignores SIGHUP/SIGTERM/SIGINT: a killed session hangs up the pane's whole process group, and
the record of that (crashed, session_lost) must still be written. It ends on EOF, i.e. when the wrapper
lets go or dies.
"""

from __future__ import annotations

import _signal  # not `signal`: its enums cost a supervisor 0.8 MiB
import marshal
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

    from runner.store import Store


BOOT = "boot.marshal"  # in the task dir: task.json and env.json for the wrapper, in `marshal`
SUPERVISOR = "supervisor"  # in the task dir: "PID START" of the pane's process, written by `start`


class RecordError(RuntimeError):
    """A store call failed in the child (its exception's type and message), or the child died."""


class Recorder:
    """Store calls of the task in TASKDIR, each made by a forked child (see the module docstring)."""

    def __init__(self, taskdir: str) -> None:
        self.taskdir = taskdir
        self.child: tuple[int, int, int] | None = None  # pid, request pipe (write), reply pipe (read)
        self.held = False

    # -- the calls -----------------------------------------------------------------------------------

    def load(self) -> tuple[dict[str, Any], dict[str, str]]:
        """task.json and env.json, as the CLI wrote them for the wrapper: from their `marshal` copy
        (BOOT) in this process, without waiting on the child's json import; else read by the child."""
        boot = _read_boot(self.taskdir)
        if boot is not None:
            return boot
        task, env = self._call("load")
        return task, env

    def claim(self, task_id: str, pid: int, start: int) -> bool:
        """Compare-and-set the task's supervisor (an unclaimed task in `starting`); True if it is us."""
        return bool(self._call("claim", task_id, pid, start))

    def update(self, task_id: str, **fields: Any) -> None:
        self._call("update", task_id, **fields)

    def transition(
        self,
        task_id: str,
        state: str,
        reason: str | None,
        expect: Iterable[str] | None = None,
        detail: dict[str, Any] | None = None,
        at: tuple[float, float] | None = None,
        **fields: Any,
    ) -> bool:
        """runner.store.Store.transition, in the child (`at`: the decision's (mono, wall) for the event)."""
        exp = None if expect is None else tuple(expect)
        return bool(self._call("transition", task_id, state, reason, exp, detail, at, **fields))

    def get(self, task_id: str) -> dict[str, Any] | None:
        value: dict[str, Any] | None = self._call("get", task_id)
        return value

    # -- the child -----------------------------------------------------------------------------------

    def hold(self) -> None:
        """Keep one child for the calls that follow (start-up), until `release`."""
        self.held = True
        if self.child is None:
            self._start()

    def release(self) -> None:
        """Let the held child go (it exits) and wait for it."""
        self.held = False
        self._stop()

    close = release

    def _call(self, op: str, *args: Any, **kw: Any) -> Any:
        if self.child is None:
            self._start()
        assert self.child is not None
        try:
            _send(self.child[1], (op, args, kw))
            reply = _recv(self.child[2])
        except OSError as e:
            reply = ("err", f"the recorder is gone: {e}")
        finally:
            if not self.held:
                self._stop()
        if reply is None:
            raise RecordError(f"{op}: the recorder ended without an answer")
        kind, value = reply
        if kind != "ok":
            raise RecordError(f"{op}: {value}")
        return value

    def _start(self) -> None:
        req_r, req_w = os.pipe()
        rep_r, rep_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: serve, then leave without running anything of the wrapper's
            code = 1
            try:
                for s in (_signal.SIGHUP, _signal.SIGTERM, _signal.SIGINT):
                    _signal.signal(s, _signal.SIG_IGN)
                _signal.set_wakeup_fd(-1)  # the wrapper's wake-up pipe is not ours to write
                os.close(req_w)
                os.close(rep_r)
                serve(self.taskdir, req_r, rep_w)
                code = 0
            finally:
                os._exit(code)
        os.close(req_r)
        os.close(rep_w)
        self.child = (pid, req_w, rep_r)

    def _stop(self) -> None:
        if self.child is None:
            return
        pid, req_w, rep_r = self.child
        self.child = None
        os.close(req_w)  # EOF: the child exits
        os.close(rep_r)
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass  # reaped already by the wrapper's reap of exited children


def serve(taskdir: str, rfd: int, wfd: int) -> None:
    """The child's loop: one reply per request until EOF. The store (sqlite3, json...) is imported here,
    in the child only, right after the first answer (the task files): the wrapper goes on meanwhile."""
    store: Store | None = None
    try:  # at once: the store (sqlite3...) loads while the wrapper reads the task and forks the agent
        store = _open_store(taskdir)
    except Exception:
        pass  # the first call that needs it opens it again and reports why it cannot
    while (req := _recv(rfd)) is not None:
        op, args, kw = req
        try:
            if op == "load":
                value: Any = tuple(_read_json(os.path.join(taskdir, n)) for n in ("task.json", "env.json"))
            else:
                store = store or _open_store(taskdir)
                value = _op(store, op, args, kw)
            reply: tuple[str, Any] = ("ok", value)
        except Exception as e:
            reply = ("err", f"{type(e).__name__}: {e}")
        try:
            _send(wfd, reply)
        except ValueError:  # a value marshal cannot carry: say so rather than hang the wrapper
            _send(wfd, ("err", f"{op}: unmarshallable reply"))
        if store is None:
            try:
                store = _open_store(taskdir)
            except Exception:
                pass  # the next call opens it again and reports why it cannot


def _open_store(taskdir: str) -> Store:
    from runner.store import Store

    boot = _read_boot(taskdir)
    task = boot[0] if boot is not None else _read_json(os.path.join(taskdir, "task.json"))
    return Store(task["db_path"], create=False)


def _read_boot(taskdir: str) -> tuple[dict[str, Any], dict[str, str]] | None:
    """(task, env) from BOOT, the `marshal` copy of task.json and env.json; None when it is not there
    or not readable by this interpreter (the json files are the record)."""
    try:
        with open(os.path.join(taskdir, BOOT), "rb") as f:
            task, env = marshal.load(f)
    except (OSError, EOFError, ValueError, TypeError):
        return None
    return (task, env) if isinstance(task, dict) and isinstance(env, dict) else None


def _op(store: Store, op: str, args: tuple[Any, ...], kw: dict[str, Any]) -> Any:
    if op == "claim":
        from runner import states

        task_id, pid, start = args
        with store.tx() as db:
            cur = db.execute(
                "UPDATE tasks SET wrapper_pid=?, wrapper_start=? WHERE task_id=? AND wrapper_pid IS NULL"
                " AND state=?",
                (pid, start, task_id, states.STARTING),
            )
            return cur.rowcount == 1
    if op == "update":
        return store.update(*args, **kw)
    if op == "transition":
        task_id, state, reason, expect, detail, at = args
        return store.transition(task_id, state, reason, expect=expect, detail=detail, at=at, **kw)
    if op == "get":
        return store.get(*args)
    raise ValueError(f"unknown recorder call {op!r}")


def _read_json(path: str) -> Any:
    import json

    with open(path) as f:
        return json.load(f)


def _send(fd: int, obj: object) -> None:
    data = marshal.dumps(obj)
    data = len(data).to_bytes(4, "big") + data
    while data:
        data = data[os.write(fd, data) :]


def _read_exactly(fd: int, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        chunk = os.read(fd, n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def _recv(fd: int) -> Any:
    """One message, or None at EOF."""
    head = _read_exactly(fd, 4)
    if head is None:
        return None
    body = _read_exactly(fd, int.from_bytes(head, "big"))
    return None if body is None else marshal.loads(body)
