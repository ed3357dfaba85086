"""The in-pane supervisor: tmux execs `python -m runner.wrapper TASKDIR` as the pane's process.

It forks the agent (which waits for "go", then execvp's ARGV: no shell, P1/P8/P10), acks its PID and
start token over the ack FIFO, and supervises it: exit via pidfd/SIGCHLD, result file, stop, lifetime,
heartbeat (see runner.states.decide). It writes exit.json and the terminal state, hands the log pipe an
end marker, and exits.

Imports stay light, so the pane starts in tens of milliseconds and an idle supervisor stays within
4 MiB (docs/benchmarks.md): the store's writes are made by a forked child (runner.recorder), json and
tempfile load only when the run ends, `_signal` stands in for `signal` (whose enums cost 0.8 MiB).
"""

from __future__ import annotations

import _signal as signal  # not `signal`: its enums cost a supervisor 0.8 MiB
import errno
import os
import select
import sys
import time

from runner import faultpoint, states
from runner.clock import Deadline, mono, wall
from runner.logpipe import Capture
from runner.procid import ProcessIdentity, kill_tree, reap_children
from runner.recorder import SUPERVISOR, Recorder
from runner.resultfile import read_result, read_result_settled

PR_SET_CHILD_SUBREAPER = 36
HANDSHAKE_TIMEOUT = 60.0  # the starting CLI may be slow on a loaded machine
END_MARKER_WAIT = 2.0  # the log pipe must show progress at least this often while we wait for its ack
END_MARKER_MAX = 20.0  # ... and ack within this, however busy the machine (P3, P14)
LOGPIPE_START_WAIT = 10.0  # a log pipe asked for but not up yet (python start-up on a loaded machine)
TERM_TIMEOUT = 1.0


def end_marker(nonce: str) -> bytes:
    """An OSC sequence tmux ignores and the log pipe recognises (and strips)."""
    return b"\x1b]dk-end;" + nonce.encode() + b"\x07"


def set_subreaper() -> bool:
    """Make orphaned descendants (double-forked daemons) re-parent to us, Linux only (P9)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except Exception:
        return False


def read_heartbeat(path: str) -> tuple[int, bytes] | None:
    """(inode, content) of the heartbeat file; staleness is judged on change of this, never mtime (P6)."""
    try:
        with open(path, "rb") as f:
            return os.fstat(f.fileno()).st_ino, f.read(4096)
    except OSError:
        return None


class StartAbandoned(Exception):
    """`start` died before the handshake was over: nobody will read the ack or send "go"."""


class Wrapper:
    def __init__(self, taskdir: str) -> None:
        self.dir = taskdir
        # one recorder child through start-up (released once the agent runs); json is read there too
        self.store = Recorder(taskdir)
        self.store.hold()
        self.task, caller_env = self.store.load()
        self.caller_env: dict[str, str] = caller_env
        self.task_id: str = self.task["task_id"]
        self.flags: set[str] = set()
        self.agent: ProcessIdentity | None = None
        self.status: int | None = None  # the agent's wait status once reaped
        self.released = False  # "go" received: the agent may have exec'd (and carries the run marker)
        self.capture: Capture | None = None  # the log pipe's reading end (runner.logpipe)
        # a recovery test arms fault points through the caller's environment (runner.faultpoint)
        self.faults = {k: caller_env.get(k, "") for k in (faultpoint.ENV, faultpoint.HOLD_ENV)}

    def p(self, name: str) -> str:
        return os.path.join(self.dir, name)

    # -- signals ---------------------------------------------------------------------------------

    def _on_signal(self, signum: int, frame: object) -> None:
        if signum == signal.SIGTERM:
            self.flags.add("stop")
        elif signum == signal.SIGHUP:
            self.flags.add("hup")

    def install_signals(self) -> int:
        r, w = os.pipe()
        os.set_blocking(r, False)
        os.set_blocking(w, False)
        signal.set_wakeup_fd(w, warn_on_full_buffer=False)
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGHUP, self._on_signal)
        signal.signal(signal.SIGCHLD, lambda s, f: None)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        self._wake_w = w
        return r

    def _collect(self, pid: int, status: int) -> None:
        if self.agent is not None and pid == self.agent.pid and self.status is None:
            self.status = status

    def reap(self) -> None:
        reap_children(self._collect)

    # -- agent env ---------------------------------------------------------------------------------

    def agent_env(self) -> dict[str, str]:
        env = dict(self.caller_env)  # env.json: the caller's environment
        for k in ("TMUX", "TMUX_PANE"):
            env.pop(k, None)
            if k in os.environ:
                env[k] = os.environ[k]
        env.pop("DISPATCH_MODEL", None)
        env.pop(faultpoint.ENV, None)
        env.pop(faultpoint.HOLD_ENV, None)
        env.update(
            {
                "DISPATCH_TASK_ID": self.task_id,
                "DISPATCH_PROMPT_FILE": self.p("prompt"),
                "DISPATCH_RESULT_FILE": self.p("result.json"),
                "DISPATCH_HEARTBEAT_FILE": self.p("heartbeat"),
                "DISPATCH_RUN_MARKER": self.task["run_marker"],
                # the agent's PWD is --cwd, not the caller's: agents (opencode) write where $PWD says
                "PWD": self.task["cwd"],
            }
        )
        if self.task.get("model"):
            env["DISPATCH_MODEL"] = self.task["model"]
        return env

    # -- handshake -----------------------------------------------------------------------------------

    def ack(self, text: str) -> None:
        """Write one line to the ack FIFO (the starting CLI holds it open for reading).

        No reader means `start` died before reading the ack (it never comes back): that is an
        abandoned start, seen within a poll. Waiting out HANDSHAKE_TIMEOUT instead left the session
        and this wrapper 60 s past the task's end (chaos seed 7 under 2x load: leaked by the run).
        """
        dl = Deadline(HANDSHAKE_TIMEOUT)
        creator = self.task.get("creator")
        start_proc = ProcessIdentity(*creator) if creator else None
        while True:
            try:
                fd = os.open(self.p("ctl.ack"), os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError as e:
                if e.errno not in (errno.ENXIO, errno.EINTR) or dl.expired():
                    raise
                if start_proc is not None and not start_proc.is_alive():
                    raise StartAbandoned from e
                time.sleep(0.01)
        try:
            os.set_blocking(fd, True)
            os.write(fd, (text + "\n").encode())
        finally:
            os.close(fd)

    def wait_go(self, wake_r: int, fd: int) -> str:
        """Wait for "go" on `fd` (or a stop/hangup, or the handshake deadline): go|stop|hup|timeout."""
        dl = Deadline(HANDSHAKE_TIMEOUT)
        creator = self.task.get("creator")
        start_proc = ProcessIdentity(*creator) if creator else None
        buf = b""
        try:
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            poller.register(wake_r, select.POLLIN)
            while True:
                if "stop" in self.flags:
                    return "stop"
                if "hup" in self.flags:
                    return "hup"
                if dl.expired():
                    return "timeout"
                if start_proc is not None and not start_proc.is_alive():
                    return "abandoned"  # `start` died before "go": nobody will send it
                events = poller.poll(int(dl.cap(0.1) * 1000) + 1)
                for efd, ev in events:
                    if efd == wake_r:
                        _drain(wake_r)
                    elif ev & select.POLLIN:
                        chunk = os.read(fd, 64)
                        buf += chunk
                        if b"go" in buf:
                            return "go"
                        if not chunk:
                            time.sleep(0.01)
                    elif ev & select.POLLHUP:
                        time.sleep(0.01)
        finally:
            os.close(fd)

    # -- main ------------------------------------------------------------------------------------------

    def run(self) -> int:
        wake_r = self.install_signals()
        # a subreaper before the agent exists (P9), before the ack rather than between it and "go"
        set_subreaper()
        if not self.is_supervisor(ProcessIdentity.me()):
            return 0  # another supervisor owns this task: touch nothing of it
        go_w, err_r = self._fork_agent(self.agent_env())
        outcome = self._handshake(wake_r)
        if outcome != "go":
            os.close(go_w)  # the child reads EOF and exits 126
            self._wait_agent()
            reason = {"stop": "stop_requested", "hup": "session_lost", "abandoned": "start_abandoned"}.get(
                outcome, "spawn_failed"
            )
            state = {"stop": states.STOPPED, "hup": states.CRASHED}.get(outcome, states.FAILED)
            self.finish(state, reason, detail={"handshake": outcome})
            return 0
        os.write(go_w, b"x")
        os.close(go_w)
        self.released = True
        err = _read_all(err_r)  # empty once the child exec'd (the pipe is close-on-exec)
        if err:
            self._wait_agent()
            self.finish(
                states.FAILED, "spawn_failed", detail={"error": err.decode(errors="replace")}, exit_code=127
            )
            return 0
        self.store.transition(self.task_id, states.RUNNING, "spawned", expect=[states.STARTING])
        self.store.release()  # from here on each record forks a recorder of its own
        self.supervise(wake_r)
        return 0

    def _fork_agent(self, env: dict[str, str]) -> tuple[int, int]:
        """Fork the agent-to-be: it waits for a byte on the go pipe, then execvp's ARGV (no shell, P1).

        Returns (go pipe's write end, exec-error pipe's read end); the error pipe is close-on-exec, so
        it reads empty once the agent exec'd and carries the reason when exec failed.
        """
        argv: list[str] = self.task["argv"]
        cwd: str = self.task["cwd"]
        go_r, go_w = os.pipe()
        err_r, err_w = os.pipe()
        os.set_inheritable(err_w, False)
        pid = os.fork()
        if pid == 0:  # the agent-to-be
            try:
                os.close(go_w)
                os.close(err_r)
                signal.set_wakeup_fd(-1)
                for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD, signal.SIGINT, signal.SIGPIPE):
                    signal.signal(s, signal.SIG_DFL)
                if os.read(go_r, 1) != b"x":
                    os._exit(126)
                os.close(go_r)
                os.chdir(cwd)
                os.execvpe(argv[0], argv, env)
            except BaseException as e:  # exec failed: tell the wrapper why
                try:
                    msg = f"{argv[0]}: {e.strerror}" if isinstance(e, OSError) else f"{type(e).__name__}: {e}"
                    os.write(err_w, msg.encode(errors="replace")[:1000])
                finally:
                    os._exit(127)
        os.close(go_r)
        os.close(err_w)
        self.agent = ProcessIdentity.of(pid) or ProcessIdentity(pid, -1)
        return go_w, err_r

    def _handshake(self, wake_r: int) -> str:
        """Ack "spawned PID START" to `start`, record the agent, then wait for "go": go|stop|hup|...

        `start` attached the log pipe while we started up, so "go" follows the ack at once; recording the
        agent (one recorder round trip) is all that is done in between, before the agent is released.
        """
        assert self.agent is not None
        go_fd = -1
        # the log FIFO's reader is there before `start` attaches the pipe (after our ack)
        self.capture = Capture.open(self.dir, self.task["log_path"], self.task["log_nonce"])
        try:
            # open "go" for reading before acking, so the CLI's write always finds a reader
            go_fd = os.open(self.p("ctl.go"), os.O_RDONLY | os.O_NONBLOCK)
            self.ack(f"spawned {self.agent.pid} {self.agent.start}")
        except (OSError, StartAbandoned) as e:
            if go_fd >= 0:
                os.close(go_fd)
            return "abandoned" if isinstance(e, StartAbandoned) else f"handshake failed: {e}"
        try:  # `start` records the agent from the ack before it sends "go"
            return self.wait_go(wake_r, go_fd)
        except OSError as e:
            return f"handshake failed: {e}"

    def is_supervisor(self, me: ProcessIdentity) -> bool:
        """True when `start` recorded us (the pane's process, `#{pane_pid}`) as the task's supervisor.

        A second wrapper for the same task (a `new-session` retried after a reply was lost) must not
        fork a second agent, record outcomes, or end the run-marked processes of the first one's agent
        (a SIGTERM the real supervisor would record as a crash). `start` writes SUPERVISOR as soon as
        new-session answers, so this reads a file, not sqlite (whose import in the recorder child used
        to hold the ack back); it waits only while `start` lives and has not written it yet.
        """
        dl = Deadline(HANDSHAKE_TIMEOUT)
        creator = self.task.get("creator")
        start_proc = ProcessIdentity(*creator) if creator else None
        delay = 0.001
        while True:
            try:
                with open(self.p(SUPERVISOR), "rb") as f:
                    words = f.read().split()
                return len(words) == 2 and (int(words[0]), int(words[1])) == (me.pid, me.start)
            except FileNotFoundError:
                pass
            except (OSError, ValueError):
                return False
            if dl.expired() or (start_proc is not None and not start_proc.is_alive()):
                # nobody will name a supervisor: claim the row (compare-and-set) as before there was
                # SUPERVISOR, so that one wrapper records the abandoned start
                return self.store.claim(self.task_id, me.pid, me.start)
            time.sleep(delay)
            delay = min(0.01, delay * 2)

    def _wait_agent(self) -> None:
        """Block until the agent is reaped (it has been told to exit or was killed)."""
        assert self.agent is not None
        while self.status is None:
            try:
                pid, status = os.waitpid(self.agent.pid, 0)
            except ChildProcessError:
                break
            except InterruptedError:
                continue
            self._collect(pid, status)

    def supervise(self, wake_r: int) -> None:
        """One pass per wake-up: observe, decide (runner.states), act; sleep until the next deadline."""
        assert self.agent is not None
        try:
            pidfd: int | None = os.pidfd_open(self.agent.pid)
        except (AttributeError, OSError):
            pidfd = None
        poller = select.poll()
        poller.register(wake_r, select.POLLIN)
        if pidfd is not None:
            poller.register(pidfd, select.POLLIN)
        if self.capture is not None:
            poller.register(self.capture.fd, select.POLLIN)
        watch = Watch(self)
        while True:
            self.reap()
            obs = watch.observe()
            d = states.decide(obs)
            step = self._act(d, watch, obs)
            if step == "done":
                return
            if step == "again":
                continue
            # with a pidfd the agent's exit wakes us; without one, look at least once a second
            cap = states.MAX_TICK_S if pidfd is not None else 1.0
            self._sleep(poller, wake_r, cap if d.next_check is None else min(cap, d.next_check - mono()))

    def _sleep(self, poller: select.poll, wake_r: int, timeout: float) -> None:
        """Until the agent's exit, a signal or `timeout`; the log's output is filed as it comes."""
        dl = Deadline(max(0.0, timeout))
        while True:
            left = dl.remaining() or 0.0
            events = poller.poll(int(left * 1000) + 1 if left > 0 else 0)
            woken = not events
            for fd, _ in events:
                if self.capture is not None and fd == self.capture.fd:
                    self.capture.pump()
                    continue
                woken = True  # the pidfd or a signal: look again
                if fd == wake_r:
                    _drain(wake_r)
            if woken or dl.expired():
                return

    def _act(self, d: states.Decision, watch: Watch, obs: states.Observation) -> str:
        """Carry out one decision: done (recorded, leave), again (look at once), or wait."""
        keep_result = watch.result_value if watch.result_kind == states.VALID else None
        if d.kind == states.END:
            assert d.state is not None
            self.end(d.state, d.reason, obs.now, obs.exit_code, obs.signal, watch.result_kind, keep_result)
            return "done"
        if d.kind == states.KILL:
            assert d.state is not None and d.reason is not None
            if d.reason == "session_lost":
                # no kill can change this outcome: record it first, then end the tree (finish)
                self.finish(d.state, d.reason, at=(obs.now, wall()))
                return "done"
            watch.intent = (d.state, d.reason)
            self.kill_for(d.state, d.reason, obs.now, watch.result_kind, keep_result)
            return "again"
        if d.kind == states.ENTER:
            assert d.state is not None
            # the event carries the decision's time, not the record's; a resumed heartbeat was read (and
            # stamped) after the look's `now`
            at = max(obs.now, obs.last_beat_change or obs.now)
            if self.store.transition(
                self.task_id,
                d.state,
                d.reason,
                expect=states.NON_TERMINAL - {states.NEEDS_INPUT},
                at=(at, wall()),
            ):
                watch.state = d.state
            else:
                cur = self.store.get(self.task_id)
                if cur and states.is_terminal(cur["state"]):
                    # someone else (stop after we hung, reap) recorded an end: honour it
                    watch.intent = (cur["state"], cur["reason"])
        return "wait"

    def end(
        self,
        state: str,
        reason: str | None,
        now: float,
        code: int | None,
        sig: int | None,
        result_kind: str,
        result: object,
    ) -> None:
        """Record the decided end: first exit.json with everything the decision carries, then the state.

        A reaper that finds only exit.json (we died before the state write) records this decision, with
        its result, not our own SIGTERM as a crash and not a result re-read after the fact.
        """
        from runner.atomicio import write_json  # only at the end: keeps tempfile out of an idle wrapper

        doc = {"exit_code": code, "signal": sig, "state": state, "reason": reason}
        doc.update({"result_kind": result_kind, "result": result, "mono": now, "wall": wall()})
        write_json(self.p("exit.json"), doc)
        faultpoint.hit("wrapper.after_exit_record", self.faults)
        self.finish(state, reason, at=(now, doc["wall"]), exit_code=code, signal=sig, result=result)

    def kill_for(self, state: str, reason: str, now: float, result_kind: str, result: object) -> None:
        """End the agent's tree for a reason of ours; intent.json first, so a reaper knows why (and the
        complete result the decision rests on: `completed_by_result` without its result is a lost result).
        """
        from runner.atomicio import write_json

        assert self.agent is not None
        doc = {"state": state, "reason": reason, "mono": now, "result_kind": result_kind, "result": result}
        write_json(self.p("intent.json"), doc)
        faultpoint.hit("wrapper.after_intent", self.faults)
        marker = ("DISPATCH_RUN_MARKER", self.task["run_marker"])
        kill_tree([self.agent], marker, term_timeout=TERM_TIMEOUT, reap=self._collect)
        self._wait_agent()
        faultpoint.hit("wrapper.after_kill", self.faults)

    def finish(
        self,
        state: str,
        reason: str | None,
        detail: dict | None = None,
        at: tuple[float, float] | None = None,
        **fields: object,
    ) -> None:
        """Record the terminal state, end leftovers of the run, and flush the log pipe (P3, P4, P9).

        The event and `ended_at` carry `at`, the decision's (mono, wall), or this call's time: never the
        forked recorder's write time, which under load came 110-180 ms after the exit was seen.
        """
        at = at or (mono(), wall())
        self.store.transition(self.task_id, state, reason, detail=detail, at=at, **fields)
        # the run marker reaches the agent's descendants, but only once "go" let it exec; before that
        # our child is all there is, and a marker walk could only hit another run's agent
        marker = ("DISPATCH_RUN_MARKER", self.task["run_marker"]) if self.released else None
        kill_tree([self.agent] if self.agent else [], marker, term_timeout=TERM_TIMEOUT, reap=self._collect)
        self.reap()
        self.flush_log()

    def flush_log(self) -> None:
        """Write the end marker to the pane, file the log up to it, then end the pipe (P3, P4).

        Under load the pipe may not be up yet (its pidfile is missing) or may lag far behind a burst:
        leaving early closes the pane and tmux drops what it had not passed on (a 256 KiB burst once
        came out as 0 chars). So we wait for a pipe that `start` asked for (logpipe.wanted), and for
        the marker as long as the log keeps growing, within a hard bound.
        """
        try:
            pidfile = self.p("logpipe.pid")
            if not os.path.exists(pidfile):
                # never released: the agent printed nothing, so there is no log to wait for (a `start`
                # killed between logpipe.wanted and pipe-pane left this wrapper 10 s past its task's
                # end: a chaos run under load found it leaked). A pipe that still comes finds no
                # reader, filters into the log itself and ends with the pane.
                if not self.released or not os.path.exists(self.p("logpipe.wanted")):
                    return
                dl = Deadline(LOGPIPE_START_WAIT)
                while not os.path.exists(pidfile) and not dl.expired():
                    self._pump_for(dl.cap(0.02))
            # a pane that is gone (session killed: SIGHUP, or the pty refuses the marker) can pass
            # nothing more on: file what came through and let the log go at once (P4)
            if "hup" in self.flags or not self._write_end_marker():
                self._pump_for(0)
            else:
                self._wait_ack()
        finally:
            if self.capture is not None:
                self.capture.close()
        try:
            with open(pidfile) as f:
                pid, start = (int(x) for x in f.read().split())
            kill_tree([ProcessIdentity(pid, start)], None, term_timeout=0.5)
        except (OSError, ValueError):
            pass

    def _pump_for(self, seconds: float) -> None:
        """File the log's output for up to `seconds` (a plain wait when there is no capture)."""
        if self.capture is None:
            time.sleep(seconds)
            return
        p = select.poll()
        p.register(self.capture.fd, select.POLLIN)
        if p.poll(int(seconds * 1000) + 1):
            self.capture.pump()

    def _write_end_marker(self) -> bool:
        """Write the marker to the pane; False when the pane refuses it (its pty is closed)."""
        try:
            fl = os.get_blocking(1)
            os.set_blocking(1, False)
            try:
                os.write(1, end_marker(self.task["log_nonce"]))
            finally:
                os.set_blocking(1, fl)
        except BlockingIOError:
            return True  # a full pty: the pane is there, the marker may still come through
        except OSError:
            return False
        return True

    def _acked(self, nonce: str) -> bool:
        """The marker came through our capture, or a stand-alone pipe acked it (logpipe.ack)."""
        if self.capture is not None and self.capture.ended:
            return True
        try:
            with open(self.p("logpipe.ack")) as f:
                return f.read().strip() == nonce
        except OSError:
            return False

    def _log_progress(self) -> int:
        if self.capture is not None and self.capture.received:
            return self.capture.received
        try:
            return os.path.getsize(self.task["log_path"])
        except (OSError, KeyError):
            return -1

    def _wait_ack(self) -> bool:
        """Until the end marker is through; the deadline moves on while the log grows, never past
        END_MARKER_MAX."""
        nonce = self.task["log_nonce"]
        hard, dl = Deadline(END_MARKER_MAX), Deadline(END_MARKER_WAIT)
        size, delay = -1, 0.005
        while not dl.expired() and not hard.expired():
            if self._acked(nonce):
                return True
            now_size = self._log_progress()
            if now_size != size:
                size, dl, delay = now_size, Deadline(END_MARKER_WAIT), 0.005
            self._pump_for(dl.cap(delay))
            delay = min(0.05, delay * 2)
        return False


class Watch:
    """What supervision carries from pass to pass: the result seen, the heartbeat's last change, our
    intent, the task's live state; `observe` turns one look at the files into a states.Observation."""

    def __init__(self, w: Wrapper) -> None:
        self.w = w
        self.knobs = w.task["knobs"]
        self.started = mono()
        self.result_path, self.hb_path = w.p("result.json"), w.p("heartbeat")
        self.last_hb = read_heartbeat(self.hb_path)
        self.last_change: float | None = None
        self.result_kind: str = states.ABSENT
        self.result_value: object = None
        self.result_seen: float | None = None
        self.intent: tuple[str, str] | None = None
        self.state = states.RUNNING

    def observe(self) -> states.Observation:
        """One look. Evidence that something happened (the agent's exit, a result, a stop, a SIGHUP) is
        taken before the stamp `now` and the heartbeat after it, stamped when read: a decision then never
        carries a time before what it rests on, and a beat it missed came after `now`. (A SIGHUP handled
        while the files were read was stamped 30 ms before the session was killed: macos-like CI.)
        """
        w, seen, status = self.w, False, self.w.status
        exited = status is not None
        if exited:
            if self.result_kind != states.VALID:
                self.result_kind, self.result_value = read_result_settled(self.result_path)
        elif self.result_kind != states.VALID:
            kind, value = read_result(self.result_path)
            if kind == states.VALID:
                self.result_kind, self.result_value, seen = kind, value, True
        if self.intent is None and "stop" not in w.flags and os.path.exists(w.p("stop")):
            w.flags.add("stop")
        stop, hup = "stop" in w.flags, "hup" in w.flags
        now = mono()
        if seen:
            self.result_seen = now
        faultpoint.hit("wrapper.observe", w.faults)
        hb = read_heartbeat(self.hb_path)
        if hb is not None and hb != self.last_hb:
            self.last_hb, self.last_change = hb, mono()
        code = sig = None
        if status is not None:
            if os.WIFSIGNALED(status):
                sig = os.WTERMSIG(status)
            else:
                code = os.waitstatus_to_exitcode(status)
        t = self.knobs
        return states.Observation(
            state=self.state,
            now=now,
            started=self.started,
            stale_after=float(t["stale_after"]),
            grace=float(t["grace"]),
            max_lifetime=float(t["max_lifetime"]),
            exited=exited,
            exit_code=code,
            signal=sig,
            intent=self.intent,
            result=self.result_kind,
            result_seen_at=self.result_seen,
            stop_requested=stop,
            session_lost=hup,
            last_beat_change=self.last_change,
        )


def _read_all(fd: int) -> bytes:
    """Read a pipe to EOF and close it."""
    out = b""
    try:
        while True:
            try:
                chunk = os.read(fd, 4096)
            except InterruptedError:
                continue
            if not chunk:
                return out
            out += chunk
    finally:
        os.close(fd)


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except (BlockingIOError, InterruptedError):
        pass


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m runner.wrapper TASKDIR", file=sys.stderr)
        return 2
    w = Wrapper(argv[0])
    try:
        return w.run()
    except BaseException:
        # leave a trace for `dispatch` users; status/reap then see a lost supervisor and clean up
        import traceback

        try:
            with open(w.p("wrapper.err"), "a") as f:
                traceback.print_exc(file=f)
        except OSError:
            pass
        raise
    finally:
        w.store.close()  # the start-up recorder, when a failed start-up still holds it


if __name__ == "__main__":
    sys.exit(main())
