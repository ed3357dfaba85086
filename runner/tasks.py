"""start/stop/status/wait/send/logs orchestration, shared by the CLI (and usable from Python)."""

from __future__ import annotations

import errno
import marshal
import os
import select
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from runner import faultpoint, logpipe, reaper, recorder, states, validate
from runner.atomicio import copy_private, ensure_dir, write_atomic, write_json
from runner.clock import Deadline, mono, wall
from runner.config import SESSION_HEX, SESSION_PREFIX, Config
from runner.errors import DispatchError
from runner.procid import ProcessIdentity
from runner.store import Store, public
from runner.tmux import (
    Pane,
    Session,
    Tmux,
    TmuxError,
    TmuxMissing,
    TmuxTimeout,
    TmuxTooOld,
    min_version,
)

HANDSHAKE_TIMEOUT = 30.0
STOP_TIMEOUT = 8.0
LOG_FLUSH_MAX = 32.0  # the wrapper's log flush bound (pipe start-up + ack wait) plus slack
PKG_ROOT = str(Path(__file__).resolve().parent.parent)


_SERVER_GOING_AWAY = ("server exited unexpectedly", "lost server", "Connection refused", "server exited")


# `python -c PANE_BOOT MODULE ARGS` runs MODULE.main() with sys.argv[1:] == ARGS, as `-m` would, without
# runpy (`-m` loads runpy, importlib.util, contextlib, collections: 0.8 MiB of every idle supervisor)
PANE_BOOT = "import sys; sys.exit(__import__(sys.argv.pop(1), fromlist=['main']).main())"


def pane_python(module: str, *args: str, boot: bool = False) -> list[str]:
    """`python -S -m MODULE ARGS` for the processes we start in a pane (wrapper, log pipe).

    -S skips `site` (and the editable install's import hook): the pane's interpreter starts sooner and
    idles smaller; pane_pythonpath() names everything it may import instead. boot=True: the PANE_BOOT
    form, for the process that stays (the wrapper; the log pipe execs `cat` at once).
    """
    if boot:
        return [sys.executable, "-S", "-c", PANE_BOOT, module, *args]
    return [sys.executable, "-S", "-m", module, *args]


def _token(nbytes: int) -> str:
    """Random hex, what secrets.token_hex gives (os.urandom) without `secrets`: it imports hmac, whose
    OpenSSL load was ~5 ms of every `start` quiet, ~30 ms under load."""
    return os.urandom(nbytes).hex()


def pane_pythonpath() -> str:
    """Our checkout, then this interpreter's site dirs (the macOS process backend imports psutil)."""
    sites = [p for p in sys.path if os.path.basename(p) in ("site-packages", "dist-packages")]
    return os.pathsep.join(dict.fromkeys([PKG_ROOT, *sites]))


def _server_going_away(stderr: str) -> bool:
    """tmux's words for a server that died between our connect and our command (a retry will do)."""
    return any(w in stderr for w in _SERVER_GOING_AWAY)


class Runner:
    """One CLI invocation's view: config, the caller's environment, and lazily the store and tmux."""

    def __init__(self, cfg: Config, env: Mapping[str, str] | None = None) -> None:
        self.cfg = cfg
        self.env = dict(os.environ if env is None else env)
        self._store: Store | None = None
        self._tmux: Tmux | None = None

    # -- resources -------------------------------------------------------------------------------

    @property
    def tmux(self) -> Tmux:
        if self._tmux is None:
            tenv = {k: v for k, v in self.env.items() if k not in ("TMUX", "TMUX_PANE")}
            self._tmux = Tmux.from_config(self.cfg, env=tenv)
        return self._tmux

    def require_tmux(self) -> str:
        """P13: refuse a missing or too-old tmux with exit 3 before anything is created."""
        try:
            return self.tmux.require()
        except TmuxMissing as e:
            raise DispatchError("tmux_missing", str(e)) from None
        except TmuxTooOld as e:
            raise DispatchError(
                "tmux_too_old", f"tmux {e.found} is too old: dispatch needs tmux >= {e.minimum}"
            ) from None
        except TmuxError as e:
            raise DispatchError("tmux_unreachable", f"cannot run tmux -V: {e}") from None

    def store(self, create: bool = False) -> Store:
        if self._store is None:
            if create:
                self._prepare_state_dir()
            elif not self.cfg.db_path.exists():
                raise FileNotFoundError(str(self.cfg.db_path))
            self._store = Store(self.cfg.db_path, create=create)
        return self._store

    def _prepare_state_dir(self) -> None:
        sd = self.cfg.state_dir
        try:
            ensure_dir(sd)
            ensure_dir(self.cfg.tasks_dir)
            probe = sd / f".probe.{os.getpid()}.{_token(4)}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as e:
            raise DispatchError(
                "state_dir_unusable", f"state dir {str(sd)!r} is unusable: {e.strerror or e}"
            ) from None

    def task(self, task_id: str) -> dict[str, Any]:
        validate.task_id(task_id)
        try:
            t = self.store().get(task_id)
        except FileNotFoundError:
            t = None
        if t is None:
            raise DispatchError("unknown_task", f"no task {task_id!r}")
        return t

    def optional_tmux(self) -> Tmux | None:
        try:
            _ = self.tmux.binary
            return self.tmux
        except TmuxError:
            return None

    # -- start -----------------------------------------------------------------------------------

    def start(
        self,
        task_id: str,
        cwd: str,
        prompt_file: str,
        argv: Sequence[str],
        label: str | None = None,
        model: str | None = None,
    ) -> dict[str, Any]:
        # 1. validate every input, then the environment: nothing is created before this passes
        task_id = validate.task_id(task_id)
        label = validate.label(label)
        model = validate.model(model, self.cfg.models)
        argv = validate.argv(argv)
        cwd = validate.cwd(cwd)
        prompt_file = validate.readable_file(prompt_file, "bad_prompt_file", "prompt file")
        self.require_tmux()
        store = self.store(create=True)
        existing = store.get(task_id)
        if existing is not None:
            raise DispatchError("duplicate_task_id", f"task id {task_id!r} is already used")
        # 2. reserve the id, then build the task dir (the housekeeping sweep every start makes, P9,
        # runs once the agent is released: off the path to it, see _launch)
        tdir = self.cfg.tasks_dir / task_id
        run = _token(4)
        row = {
            "task_id": task_id,
            "session": SESSION_PREFIX + _token(SESSION_HEX // 2),
            "argv": argv,
            "model": model,
            "label": label,
            "task_dir": str(tdir),
            "run_marker": "dkr" + _token(12),
            "log_path": str(tdir / f"output.{run}.log"),
            "max_lifetime": self.cfg.max_lifetime,
        }
        if not store.insert(row, detail={"argv": argv, "model": model}):
            raise DispatchError("duplicate_task_id", f"task id {task_id!r} is already used")
        self.tmux.save_version()  # accepted: the next start skips `tmux -V` for this binary
        try:
            return self._launch(store, row, tdir, cwd, prompt_file)
        except BaseException:
            cur = store.get(task_id)
            if cur is not None and cur["wrapper_pid"] is None:
                # refused before anything ran: leave nothing behind
                try:
                    self.tmux.kill_session(row["session"])
                except TmuxError:
                    pass
                store.delete(task_id)
                _rmtree(tdir)
            raise

    def _launch(
        self, store: Store, row: dict[str, Any], tdir: Path, cwd: str, prompt_file: str
    ) -> dict[str, Any]:
        """Task files, the session running the wrapper, the log pipe, the wrapper's ack, then "go" (P1,
        P3, P10). The log pipe is attached while the wrapper starts up, not after its ack: one tmux
        round trip off the path to the agent, and still before "go", so the agent's first byte is logged.
        """
        task_id = row["task_id"]
        nonce = self._write_task_files(row, tdir, cwd, prompt_file)
        go, ack = tdir / "ctl.go", tdir / "ctl.ack"
        for fifo in (go, ack, tdir / logpipe.FIFO):  # the log's: pipe-pane's `cat` -> the wrapper
            os.mkfifo(fifo, 0o600)
        ack_fd = os.open(ack, os.O_RDONLY | os.O_NONBLOCK)
        # a reader of the log FIFO until the wrapper's own is open (it opens it before its ack): the pipe
        # process, up before the wrapper, then finds one and becomes `cat` into it
        log_fd = os.open(tdir / logpipe.FIFO, os.O_RDONLY | os.O_NONBLOCK)
        try:
            session, pane = self._open_session(
                store, row, pane_python("runner.wrapper", str(tdir), boot=True), cwd
            )
            self._record_supervisor(store, task_id, tdir, pane)
            self._attach_log(row, tdir, pane.id, nonce)  # before "go": the agent's first byte is logged
            faultpoint.hit("start.before_ack", self.env)
            # housekeeping (P9): every start reaps, here while the wrapper starts up (we would only wait
            # for its ack), not before the session nor while the agent's interpreter starts. Our own
            # row is live (a `starting` row whose creator is alive), and the reaper targets exactly (P7)
            self._reap(store)
            line = _read_line(ack_fd, Deadline(HANDSHAKE_TIMEOUT))
        finally:
            os.close(ack_fd)
            os.close(log_fd)
        if not line.startswith("spawned "):
            store.transition(task_id, states.FAILED, "spawn_failed", detail={"handshake": line or "timeout"})
            try:
                self.tmux.kill_session(session.name)
            except TmuxError:
                pass
            return self._start_result(store, task_id)
        self._record_agent(store, task_id, line)  # before "go": a lost supervisor's agent is found
        faultpoint.hit("start.before_go", self.env)
        _write_fifo(go, b"go\n", Deadline(HANDSHAKE_TIMEOUT))
        self._await_running(store, task_id)
        return self._start_result(store, task_id)

    @staticmethod
    def _record_supervisor(store: Store, task_id: str, tdir: Path, pane: Pane) -> None:
        """The pane's process (the wrapper, exec'd by tmux) is the task's one supervisor: its identity
        goes to SUPERVISOR, which the wrapper reads instead of claiming the row in sqlite (it acks
        without waiting for its recorder's sqlite3 import), and to the row, for reap/status/stop.

        A second wrapper on this task dir (a `new-session` retried after a lost reply) finds another
        identity there and touches nothing (tests/test_recovery_duplicate_wrapper.py).
        """
        sup = ProcessIdentity.of(pane.pid) if pane.pid else None
        if sup is None:  # gone already (or no pid reported): the handshake finds no ack and fails
            store.update(task_id, pane_id=pane.id)
            return
        write_atomic(tdir / recorder.SUPERVISOR, f"{sup.pid} {sup.start}\n".encode(), durable=False)
        store.update(task_id, pane_id=pane.id, wrapper_pid=sup.pid, wrapper_start=sup.start)

    @staticmethod
    def _record_agent(store: Store, task_id: str, ack: str) -> None:
        """The agent-to-be from the wrapper's ack ("spawned PID START"), recorded before it is released:
        here, where sqlite is loaded, rather than in the wrapper, whose recorder may still import it."""
        try:
            pid, start = (int(x) for x in ack.split()[1:3])
        except ValueError:
            return
        agent = ProcessIdentity(pid, start)
        store.update(
            task_id,
            agent_pid=pid,
            agent_start=start,
            agent_started_at=agent.started_at(),
            started_at=wall(),
        )

    def _write_task_files(self, row: dict[str, Any], tdir: Path, cwd: str, prompt_file: str) -> str:
        """The task dir: prompt copy, caller's env, task.json for the wrapper; returns the log nonce."""
        if tdir.exists():  # leftover of a task whose record is gone
            _rmtree(tdir)
        ensure_dir(tdir)
        # not fsynced (durable=False): still atomic for every reader, and a task dir that a power loss
        # takes away belongs to a task whose session and supervisor went with it (6 fsyncs were 20-70 ms
        # of every start under load)
        try:
            copy_private(prompt_file, tdir / "prompt", durable=False)
        except OSError as e:
            raise DispatchError("bad_prompt_file", f"cannot read prompt file: {e.strerror}") from None
        write_json(tdir / "env.json", self.env, durable=False)
        nonce = _token(8)
        task = {
            "task_id": row["task_id"],
            "argv": row["argv"],
            "cwd": cwd,
            "model": row["model"],
            "knobs": self.cfg.knobs(),
            "run_marker": row["run_marker"],
            "db_path": str(self.cfg.db_path),
            "log_path": row["log_path"],
            "log_nonce": nonce,
            # the `start` process: if it dies mid-handshake, the wrapper and reap stop waiting for it
            "creator": ProcessIdentity.me().to_json(),
        }
        write_json(tdir / "task.json", task, durable=False)
        # the same two documents for the wrapper in `marshal` (built in): it reads them without json
        write_atomic(tdir / recorder.BOOT, marshal.dumps((task, self.env)), durable=False)
        return nonce

    def _open_session(
        self, store: Store, row: dict[str, Any], argv: list[str], cwd: str
    ) -> tuple[Session, Pane]:
        """new-session running `argv` as the pane's process; a taken name draws a new one (P7)."""
        session = row["session"]
        try:
            for _ in range(5):
                try:
                    return self.tmux.new_session(
                        session, argv, cwd=cwd, env={"PYTHONPATH": pane_pythonpath()}
                    )
                except TmuxError as e:
                    if isinstance(e, TmuxTimeout):
                        raise
                    if _server_going_away(e.stderr):
                        # we reached a server that was exiting after its last session closed: the
                        # next call starts a fresh one (P7: new-session's return is always checked)
                        continue
                    if "duplicate session" not in e.stderr:
                        raise
                    session = SESSION_PREFIX + _token(SESSION_HEX // 2)
                    store.update(row["task_id"], session=session)
        except TmuxTimeout as e:
            raise DispatchError("tmux_unreachable", f"tmux server did not answer: {e}") from None
        except TmuxError as e:
            raise DispatchError("tmux_unreachable", f"tmux new-session failed: {e.stderr or e}") from None
        raise DispatchError("internal", "could not find a free session name")

    def _attach_log(self, row: dict[str, Any], tdir: Path, pane_id: str, nonce: str) -> None:
        """pipe-pane into the log filter; best effort: completion never depends on the log (P3)."""
        argv = ["exec", "env", f"PYTHONPATH={pane_pythonpath()}"]
        argv += pane_python("runner.logpipe", row["log_path"], str(tdir), nonce)
        wanted = tdir / "logpipe.wanted"  # the supervisor waits for this pipe's ack before it leaves
        os.close(os.open(wanted, os.O_WRONLY | os.O_CREAT, 0o600))  # empty: no content to write atomically
        faultpoint.hit("start.before_pipe", self.env)
        try:
            self.tmux.pipe_pane(pane_id, shlex.join(argv))
        except TmuxError:
            wanted.unlink(missing_ok=True)

    def _reap(self, store: Store) -> None:
        """One reaper sweep; its failures are not the start's: the agent is released by now."""
        try:
            reaper.reap(store, self.optional_tmux())
        except Exception:
            pass

    @staticmethod
    def _await_running(store: Store, task_id: str) -> None:
        """Report running (or already terminal) rather than a transient starting: wait on the wrapper."""
        dl = Deadline(5.0)
        while not dl.expired():
            t = store.get(task_id)
            if t is None or t["state"] != states.STARTING:
                return
            w = reaper.ident(t["wrapper_pid"], t["wrapper_start"])
            if w is not None:
                w.wait_exit(dl.cap(0.02))

    @staticmethod
    def _start_result(store: Store, task_id: str) -> dict[str, Any]:
        t = store.get(task_id)
        assert t is not None
        return {"task_id": task_id, "session": t["session"], "state": t["state"]}

    # -- status / wait ---------------------------------------------------------------------------

    def refresh(self, task: dict[str, Any], tmux_ok: bool = True) -> dict[str, Any]:
        """Detect a lost supervisor (no tmux call needed for that) and return the current record."""
        if not states.is_terminal(task["state"]):
            reaper.reconcile(self.store(), task, self.optional_tmux() if tmux_ok else None)
            task = self.store().get(task["task_id"]) or task
        return task

    def status(self, task_id: str) -> dict[str, Any]:
        return public(self.refresh(self.task(task_id), tmux_ok=False))

    def wait(self, task_id: str, timeout: float | None) -> tuple[dict[str, Any], bool]:
        """(task, ended). Sleeps on the wrapper's pidfd between looks; reconciles a lost wrapper."""
        t = self.task(task_id)
        dl = Deadline(timeout)
        next_reconcile = 0.0
        while True:
            if mono() >= next_reconcile:
                t = self.refresh(t, tmux_ok=False)
                next_reconcile = mono() + 0.5
            else:
                t = self.store().get(task_id) or t
            if states.is_terminal(t["state"]):
                w = reaper.ident(t["wrapper_pid"], t["wrapper_start"])
                if w is not None:  # let it finish flushing the log (bounded) and close the session
                    w.wait_exit(dl.cap(LOG_FLUSH_MAX))
                return public(self.store().get(task_id) or t), True
            if dl.expired():
                return public(t), False
            w = reaper.ident(t["wrapper_pid"], t["wrapper_start"])
            step = dl.cap(0.05)
            if w is not None and w.is_alive():
                w.wait_exit(step)
            else:
                select.select([], [], [], step)

    # -- stop ------------------------------------------------------------------------------------

    def stop(self, task_id: str) -> dict[str, Any]:
        t = self.task(task_id)
        store = self.store()
        tmux = self.optional_tmux()
        if not states.is_terminal(t["state"]):
            try:
                (Path(t["task_dir"]) / "stop").write_bytes(b"")
            except OSError:
                pass
            w = reaper.ident(t["wrapper_pid"], t["wrapper_start"])
            if w is not None and w.signal(15):
                dl = Deadline(STOP_TIMEOUT)
                while not dl.expired():
                    cur = store.get(task_id)
                    if cur is None or states.is_terminal(cur["state"]):
                        break
                    w.wait_exit(dl.cap(0.05))
            cur = store.get(task_id) or t
            if not states.is_terminal(cur["state"]):
                # the supervisor is gone or did not answer: end it all, then record what it had decided
                # if it decided anything (the agent may have ended on its own first), else stopped
                reaper.end_everything(cur, tmux)
                reaper.record_lost(store, cur, (states.STOPPED, "stop_requested"), detail={"by": "cli"})
            t = store.get(task_id) or cur
        # whatever the state: nothing of the task may survive a stop (P4, P9)
        w = reaper.ident(t["wrapper_pid"], t["wrapper_start"])
        if w is not None and not w.wait_exit(3.0):
            w.signal(9)
        reaper.end_everything(t, tmux)
        return public(store.get(task_id) or t)

    # -- send / logs / events / list / reap -------------------------------------------------------

    def send(self, task_id: str, text_file: str) -> dict[str, Any]:
        path = validate.readable_file(text_file, "bad_text_file", "text file")
        t = self.refresh(self.task(task_id))
        if states.is_terminal(t["state"]) or not t["pane_id"]:
            raise DispatchError("not_running", f"task {task_id!r} is {t['state']}: nothing to send to")
        size = os.path.getsize(path)
        tmux = self.tmux
        buf = "dk-send-" + _token(8)
        try:
            tmux.paste_file(t["pane_id"], path, buf)
            tmux.send_key(t["pane_id"], "Enter")
        except TmuxTimeout as e:
            raise DispatchError("tmux_unreachable", str(e)) from None
        except TmuxError as e:
            cur = self.refresh(self.store().get(task_id) or t)
            if states.is_terminal(cur["state"]):
                raise DispatchError("not_running", f"task {task_id!r} is {cur['state']}") from None
            raise DispatchError("tmux_unreachable", f"tmux paste failed: {e.stderr or e}") from None
        return {"task_id": task_id, "delivered": True, "bytes": size}

    def logs(self, task_id: str) -> dict[str, Any]:
        t = self.task(task_id)
        text = ""
        if t["log_path"]:
            try:
                with open(t["log_path"], "rb") as f:
                    text = f.read().decode("utf-8", errors="replace")
            except FileNotFoundError:
                pass
        return {"task_id": task_id, "log_path": t["log_path"], "text": text}

    def events(self, task_id: str) -> list[dict[str, Any]]:
        self.refresh(self.task(task_id), tmux_ok=False)
        return self.store().events(task_id)

    def list(self) -> list[dict[str, Any]]:
        try:
            store = self.store()
        except FileNotFoundError:
            return []
        return [public(self.refresh(t, tmux_ok=False)) for t in store.all()]

    def reap(self) -> dict[str, Any]:
        try:
            store = self.store()
        except FileNotFoundError:
            return {"reaped": []}
        return {"reaped": reaper.reap(store, self.optional_tmux())}

    @staticmethod
    def capabilities() -> dict[str, Any]:
        from runner import __version__

        return {
            "contract": "1",
            "implementation": "dispatch",
            "version": __version__,
            "tmux_min": min_version(),
            "capabilities": ["send", "events", "logs", "reap", "heartbeat", "max_lifetime", "models"],
        }


def _rmtree(path: Path) -> None:
    """Remove a task dir, ignoring errors; shutil (with bz2 and lzma) is imported only when one is."""
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def _read_line(fd: int, dl: Deadline) -> str:
    """Read one line from a non-blocking FIFO within the deadline ('' on timeout)."""
    buf = b""
    p = select.poll()
    p.register(fd, select.POLLIN)
    while b"\n" not in buf and not dl.expired():
        ev = p.poll(int(dl.cap(0.5) * 1000) + 1)
        if not ev:
            continue
        try:
            chunk = os.read(fd, 256)
        except BlockingIOError:
            continue
        if chunk:
            buf += chunk
        else:
            select.select([], [], [], dl.cap(0.01))  # writer not there yet / closed: brief back-off
    return buf.decode(errors="replace").strip()


def _write_fifo(path: Path, data: bytes, dl: Deadline) -> bool:
    """Write to a FIFO once its reader is there (ENXIO until then), within the deadline."""
    while True:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as e:
            if e.errno != errno.ENXIO or dl.expired():
                return False
            select.select([], [], [], dl.cap(0.01))
            continue
        try:
            os.write(fd, data)
            return True
        finally:
            os.close(fd)
