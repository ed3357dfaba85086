"""The fault engine shared by every fake: parse the generic flags, misbehave as asked, journal the truth.

`fake-agent` is this engine alone; the look-alikes (claude, codex, ...) run it from ``FAKE_AGENT_FLAGS``
around their own CLI. Imports are kept to the stdlib and deferred where possible: the time to the
journal's ``start`` event is part of what the suite measures.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import random
import signal
import sys
import threading
import time
from typing import Any

from fake_agents.jwriter import Journal
from fake_agents.procinfo import identity

RESULT_MODES = ("none", "atomic", "chunked", "truncated", "empty")
ENV_PREFIXES = ("DISPATCH_", "FAKE_AGENT_", "FAKE_CLAUDE_", "ANTHROPIC_MODEL", "OPENAI_MODEL", "CLAUDE_MODEL")
_REEXEC_VAR = "FAKE_AGENT__REEXECED"
# A sleeper for children and the daemon: exec'd so /proc/PID/environ carries FAKE_AGENT_MARKER.
SLEEPER = "import signal\nwhile True:\n    signal.pause()\n"
SPLIT_TEXT = "héllo wörld → ✓ 日本語 🎉 ñ"
BANNER_SIGS = {"TERM": signal.SIGTERM, "HUP": signal.SIGHUP, "INT": signal.SIGINT}


def parse_signal(text: str) -> signal.Signals:
    """KILL, SIGKILL or 9 -> signal.SIGKILL."""
    t = text.strip().upper()
    if t.isdigit():
        return signal.Signals(int(t))
    if not t.startswith("SIG"):
        t = "SIG" + t
    return signal.Signals[t]


def _pair(text: str) -> tuple[float, float]:
    a, _, b = text.partition(":")
    return float(a), float(b)


def build_parser(prog: str = "fake-agent", positional: bool = True) -> argparse.ArgumentParser:
    """The generic fault flags (docs/fake-agents.md); every one combinable."""
    p = argparse.ArgumentParser(prog=prog, description="A coding-agent stand-in that fails as asked.")
    a = p.add_argument
    a("--journal", help="journal path (else FAKE_AGENT_JOURNAL)")
    a("--marker", help="exported as FAKE_AGENT_MARKER to itself and all children")
    a("--work", type=float, default=0.0, help="work S seconds, then finish")
    a("--finish-window", type=_pair, metavar="A:B", help="finish at a random time A..B s after start")
    a("--seed", type=int, help="seed for --finish-window")
    a("--exit", type=int, default=0, dest="exit_code", help="exit code when finishing")
    a("--die", type=parse_signal, help="die by this signal when finishing")
    a("--slow-start", type=float, default=0.0, help="sit in /bin/sh sleep S, then exec itself")
    a("--heartbeat", type=float, default=0.0, help="heartbeat period S")
    a("--heartbeat-file", help="heartbeat path (else DISPATCH_HEARTBEAT_FILE)")
    a("--beats", type=int, default=0, help="stop heartbeating after N beats")
    a("--pause-beats", type=_pair, metavar="AT:FOR", help="pause heartbeats at AT for FOR seconds")
    a("--hang", action="store_true", help="stay alive forever, heartbeat stops")
    a("--hang-silent", action="store_true", help="stay alive forever, never heartbeat")
    a("--result", default='{"ok": true}', help="result document")
    a("--result-file", help="result path (else DISPATCH_RESULT_FILE)")
    a("--result-mode", choices=RESULT_MODES, default="none")
    a("--result-chunks", type=int, default=4)
    a("--result-pause", type=float, default=0.5)
    a("--result-at", type=float, help="write the result S after start")
    a("--ansi-flood", type=int, default=0, metavar="N")
    a("--split-utf8", action="store_true")
    a("--crlf", action="store_true")
    a("--burst-before-exit", type=int, default=0, metavar="N")
    a("--print", action="append", default=[], dest="prints", metavar="TEXT")
    a("--fake-done", action="store_true")
    a("--ignore", action="append", default=[], choices=sorted(BANNER_SIGS), metavar="SIG")
    a("--children", type=int, default=0)
    a("--daemon", action="store_true")
    a("--ask", metavar="TEXT")
    a("--read-paste", action="store_true")
    a("--touch", action="append", default=[], metavar="NAME")
    a("--prompt-from", choices=("env", "argv", "stdin"), default="env")
    a("--save-prompt", metavar="PATH")
    if positional:
        a("args", nargs="*", help="positional words (the prompt for --prompt-from argv)")
    return p


def digest(data: bytes, with_b64: bool = True) -> dict[str, Any]:
    """How bytes are journaled: sha256 + length, and the bytes themselves (base64) up to 1 MiB."""
    d: dict[str, Any] = {"sha256": hashlib.sha256(data).hexdigest(), "length": len(data)}
    if with_b64 and len(data) <= 1 << 20:
        d["b64"] = base64.b64encode(data).decode()
    return d


def ansi_flood(n: int) -> bytes:
    """Exactly n bytes of colour, cursor movement, OSC titles and erase codes (reset at the end)."""
    pieces = [
        b"\x1b[31m",
        b"red ",
        b"\x1b[1;32m",
        b"\x1b[38;5;208m",
        b"orange ",
        b"\x1b[48;2;10;20;30m",
        b"\x1b[2K",
        b"\x1b[1A",
        b"\x1b[5C",
        b"\x1b[3;7H",
        b"\x1b]0;fake title\x07",
        b"\x1b]2;other\x1b\\",
        b"\x1b[?25l",
        b"\x1b[?25h",
        b"\x1b[J",
        b"\r",
        b"\x1b[0m\n",
    ]
    tail = b"\x1b[0m\n"
    out = bytearray()
    i = 0
    while len(out) + len(pieces[i % len(pieces)]) + len(tail) <= n:
        out += pieces[i % len(pieces)]
        i += 1
    if n >= len(tail):
        out += b"." * (n - len(out) - len(tail)) + tail
    else:
        out += b"." * (n - len(out))
    return bytes(out)


class InputParser:
    """Incremental terminal-input tokenizer: bracketed pastes (exact bytes), text, Enter, controls."""

    START, END = b"\x1b[200~", b"\x1b[201~"

    def __init__(self) -> None:
        self.buf = b""
        self.paste: bytes | None = None

    def feed(self, data: bytes) -> list[tuple[str, bytes]]:
        self.buf += data
        out: list[tuple[str, bytes]] = []
        while self.buf:
            buf = self.buf
            if self.paste is not None:
                i = buf.find(self.END)
                if i < 0:
                    keep = next((k for k in range(len(self.END) - 1, 0, -1) if buf.endswith(self.END[:k])), 0)
                    self.paste += buf[: len(buf) - keep]
                    self.buf = buf[len(buf) - keep :]
                    break
                out.append(("paste", self.paste + buf[:i]))
                self.paste = None
                self.buf = buf[i + len(self.END) :]
                continue
            c = buf[0]
            if c == 0x1B:
                if buf.startswith(self.START):
                    self.paste = b""
                    self.buf = buf[len(self.START) :]
                    continue
                if len(buf) < 2:
                    break
                if buf[1:2] == b"[":
                    j = next((k for k in range(2, len(buf)) if 0x40 <= buf[k] <= 0x7E), -1)
                    if j < 0:
                        break
                    out.append(("esc", buf[: j + 1]))
                    self.buf = buf[j + 1 :]
                elif buf[1:2] == b"O":
                    if len(buf) < 3:
                        break
                    out.append(("esc", buf[:3]))
                    self.buf = buf[3:]
                else:
                    out.append(("esc", buf[:2]))
                    self.buf = buf[2:]
            elif c in (0x0D, 0x0A):
                out.append(("enter", buf[:1]))
                self.buf = buf[1:]
            elif c < 0x20 or c == 0x7F:
                out.append(("ctrl", buf[:1]))
                self.buf = buf[1:]
            else:
                j = next((k for k in range(len(buf)) if buf[k] < 0x20 or buf[k] == 0x7F), len(buf))
                out.append(("text", buf[:j]))
                self.buf = buf[j:]
        return out


class RawTTY:
    """Raw mode on fd 0 (output post-processing kept), restored on exit; a no-op when not a tty."""

    def __init__(self, fd: int = 0) -> None:
        self.fd = fd
        self.saved: Any = None

    def __enter__(self) -> RawTTY:
        if os.isatty(self.fd):
            import termios
            import tty

            self.saved = termios.tcgetattr(self.fd)
            tty.setraw(self.fd)
            attrs = termios.tcgetattr(self.fd)
            attrs[1] |= termios.OPOST | termios.ONLCR
            termios.tcsetattr(self.fd, termios.TCSANOW, attrs)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.saved is not None:
            import termios

            termios.tcsetattr(self.fd, termios.TCSANOW, self.saved)
            self.saved = None


class Agent:
    """One misbehaving agent process: boot, prompt, outputs, interaction, work, finish."""

    def __init__(
        self, opts: argparse.Namespace, kind: str = "generic", module: str = "fake_agents.generic"
    ) -> None:
        self.opts = opts
        self.kind = kind
        self.module = module
        self.t0 = time.monotonic()
        self.nl = b"\r\n" if opts.crlf else b"\n"
        self.journal = Journal(opts.journal or os.environ.get("FAKE_AGENT_JOURNAL") or None)
        self.result_written = False
        self.hanging = threading.Event()
        self.first_beat = threading.Event()
        self._beat_thread: threading.Thread | None = None
        self.marker = (
            opts.marker or os.environ.get("FAKE_AGENT_MARKER") or f"fa-{os.getpid()}-{os.urandom(4).hex()}"
        )

    # -- start-up --------------------------------------------------------------------------------

    def _reexec_argv(self) -> list[str]:
        a0 = sys.argv[0]
        if a0 and not a0.endswith(".py") and os.access(a0, os.X_OK) and os.path.isfile(a0):
            return [a0, *sys.argv[1:]]
        return [sys.executable, "-m", self.module, *sys.argv[1:]]

    def maybe_reexec(self) -> None:
        """Slow start (sh sleeping, then exec back, same PID) and exporting the marker at exec time."""
        o = self.opts
        if os.environ.pop(_REEXEC_VAR, None):
            return
        need_marker = bool(o.marker) and os.environ.get("FAKE_AGENT_MARKER") != o.marker
        if not (o.slow_start > 0 or need_marker):
            return
        env = dict(os.environ)
        env[_REEXEC_VAR] = "1"
        env["FAKE_AGENT_MARKER"] = self.marker
        argv = self._reexec_argv()
        if o.slow_start > 0:
            self.journal.write("slow_start", seconds=o.slow_start, via="/bin/sh")
            script = 'sleep "$0"; exec "$@"'
            os.execve("/bin/sh", ["/bin/sh", "-c", script, repr(o.slow_start), *argv], env)
        os.execve(argv[0], argv, env)

    def boot(self, **extra: Any) -> None:
        """Re-exec if asked, export the marker, set signal handling, journal ``start``, spawn children."""
        self.maybe_reexec()
        os.environ["FAKE_AGENT_MARKER"] = self.marker
        for name in self.opts.ignore:
            signal.signal(BANNER_SIGS[name], self._ignored)
        pid = os.getpid()
        start_time, ticks = identity(pid)
        env = {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIXES)}
        self.journal.write(
            "start",
            kind=self.kind,
            ppid=os.getppid(),
            start_time=start_time,
            start_ticks=ticks,
            argv=sys.argv,
            cwd=os.getcwd(),
            env=env,
            marker=self.marker,
            slow_start=self.opts.slow_start or None,
            t0=self.t0,  # the origin every --*-at time counts from (journaled `start` comes later)
            **extra,
        )
        for _ in range(self.opts.children):
            self.spawn_child()
        if self.opts.daemon:
            self.spawn_daemon()
        self.start_heartbeat()

    def _ignored(self, signum: int, frame: object) -> None:
        self.journal.write("signal", signal=signum, name=signal.Signals(signum).name, action="ignored")

    def _sleeper_argv(self, tag: str) -> list[str]:
        return [sys.executable, "-I", "-S", "-c", SLEEPER, tag, self.marker]

    def spawn_child(self) -> None:
        import subprocess

        p = subprocess.Popen(self._sleeper_argv("fake-agent-child"), stdin=subprocess.DEVNULL)
        st, ticks = identity(p.pid)
        self.journal.write("child", kind="child", child_pid=p.pid, start_time=st, start_ticks=ticks)

    def spawn_daemon(self) -> None:
        """Double fork + setsid; the grandchild execs a sleeper with stdio on /dev/null, outliving us."""
        r, w = os.pipe()
        argv = self._sleeper_argv("fake-agent-daemon")
        env = dict(os.environ)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            try:
                os.setsid()
                if os.fork() == 0:
                    os.close(r)
                    null = os.open(os.devnull, os.O_RDWR)
                    for fd in (0, 1, 2):
                        os.dup2(null, fd)
                    os.chdir("/")
                    for s in BANNER_SIGS.values():
                        signal.signal(s, signal.SIG_DFL)
                    os.write(w, str(os.getpid()).encode())
                    os.execve(argv[0], argv, env)
            finally:
                os._exit(0)
        os.close(w)
        os.waitpid(pid, 0)
        data = os.read(r, 64)
        os.close(r)
        gpid = int(data)
        st, ticks = identity(gpid)
        self.journal.write("child", kind="daemon", child_pid=gpid, start_time=st, start_ticks=ticks)

    # -- heartbeat -------------------------------------------------------------------------------

    def start_heartbeat(self) -> None:
        if self.opts.heartbeat > 0 and not self.opts.hang_silent:
            self._beat_thread = threading.Thread(target=self._beat_loop, daemon=True, name="heartbeat")
            self._beat_thread.start()

    def _beat_loop(self) -> None:
        o = self.opts
        path = o.heartbeat_file or os.environ.get("DISPATCH_HEARTBEAT_FILE")
        t_start = time.monotonic()
        n = 0
        paused = False
        while True:
            now = time.monotonic() - t_start
            if o.pause_beats and o.pause_beats[0] <= now < sum(o.pause_beats):
                if not paused:
                    paused = True
                    self.journal.write("beats_paused", at=now, seconds=o.pause_beats[1])
                time.sleep(sum(o.pause_beats) - now)
                continue
            if paused:
                paused = False
                self.journal.write("beats_resumed", at=now)
            if self.hanging.is_set():
                return
            n += 1
            mono = time.monotonic()
            if path:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                os.write(fd, f"{n} {mono:.6f}\n".encode())
                os.close(fd)
            self.journal.write("heartbeat", n=n, path=path)
            self.first_beat.set()
            if o.beats and n >= o.beats:
                self.journal.write("beats_stopped", n=n)
                return
            if self.hanging.wait(
                max(0.0, t_start + n * o.heartbeat - time.monotonic()) if n else o.heartbeat
            ):
                return

    # -- output ----------------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Raw write to fd 1, ignoring a vanished terminal or reader."""
        view = memoryview(data)
        while view:
            try:
                n = os.write(1, view)
            except InterruptedError:
                continue
            except OSError:
                return
            view = view[n:]

    def line(self, text: str) -> None:
        self.write(text.encode() + self.nl)

    def emit_outputs(self) -> None:
        o = self.opts
        for text in o.prints:
            self.line(text)
            self.journal.write("output", kind="print", bytes=len(text.encode()) + len(self.nl))
        if o.ansi_flood:
            data = ansi_flood(o.ansi_flood)
            self.write(data.replace(b"\n", self.nl) if o.crlf else data)
            self.journal.write("output", kind="ansi_flood", bytes=len(data))
        if o.split_utf8:
            self.split_utf8()
        if o.fake_done:
            self.line("__TASK_DONE__")
            self.line("exit code 0")
            self.write(b"user@host:~$ ")
            self.journal.write("output", kind="fake_done", bytes=0)
        for name in o.touch:
            with open(name, "a", encoding="utf-8") as f:
                f.write(f"touched by fake agent {os.getpid()} at {time.time()}\n")
            self.journal.write("touch", path=os.path.abspath(name))

    def split_utf8(self) -> None:
        writes = 0
        for ch in SPLIT_TEXT:
            b = ch.encode()
            if len(b) == 1:
                self.write(b)
                writes += 1
                continue
            for k in range(len(b)):
                self.write(b[k : k + 1])
                writes += 1
                time.sleep(0.005)
        self.write(self.nl)
        self.journal.write(
            "output", kind="split_utf8", bytes=len(SPLIT_TEXT.encode()), writes=writes, text=SPLIT_TEXT
        )

    # -- prompt and input ------------------------------------------------------------------------

    def record_prompt(self, data: bytes, source: str, **extra: Any) -> None:
        self.journal.write("prompt", source=source, **digest(data), **extra)
        if self.opts.save_prompt:
            with open(self.opts.save_prompt, "wb") as f:
                f.write(data)

    def read_prompt(self) -> bytes | None:
        src = self.opts.prompt_from
        if src == "argv":
            args = getattr(self.opts, "args", [])
            if not args:
                self.journal.write("prompt", source="argv", missing=True)
                return None
            data = os.fsencode(args[0])
            self.record_prompt(data, "argv")
            return data
        if src == "stdin":
            chunks = []
            while True:
                c = os.read(0, 65536)
                if not c:
                    break
                chunks.append(c)
            data = b"".join(chunks)
            self.record_prompt(data, "stdin")
            return data
        path = os.environ.get("DISPATCH_PROMPT_FILE")
        if not path:
            self.journal.write("prompt", source="env", missing=True)
            return None
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            self.journal.write("prompt", source="env", path=path, missing=True, error=str(e))
            return None
        self.record_prompt(data, "env", path=path)
        return data

    def read_line(self) -> bytes:
        """One line from fd 0, byte by byte (no buffering past the newline)."""
        got = bytearray()
        while True:
            c = os.read(0, 1)
            if not c or c in b"\r\n":
                return bytes(got)
            got += c

    def interact(self) -> None:
        o = self.opts
        if o.ask:
            self.line(o.ask)
            self.journal.write("question", text=o.ask)
            answer = self.read_line()
            self.journal.write("input", kind="answer", **digest(answer))
        if o.read_paste:
            self.read_paste()

    def read_paste(self) -> None:
        """Raw mode + bracketed paste; journal each paste exactly, return at Enter (or EOF)."""
        parser = InputParser()
        typed = bytearray()
        with RawTTY(0):
            self.write(b"\x1b[?2004h")
            self.journal.write("paste_ready", tty=os.isatty(0))
            try:
                done = False
                while not done:
                    data = os.read(0, 65536)
                    if not data:
                        break
                    for kind, tok in parser.feed(data):
                        if kind == "paste":
                            self.journal.write("input", kind="paste", **digest(tok))
                        elif kind == "text":
                            typed += tok
                        elif kind == "enter":
                            done = True
                            break
            finally:
                self.write(b"\x1b[?2004l")
        self.journal.write("input", kind="enter", typed_b64=base64.b64encode(bytes(typed)).decode())

    # -- work, result, end -----------------------------------------------------------------------

    def work_seconds(self) -> float:
        o = self.opts
        if o.finish_window:
            a, b = o.finish_window
            at = random.Random(o.seed).uniform(a, b)
            self.journal.write("plan", finish_at=at)
            return max(0.0, at - (time.monotonic() - self.t0))
        return o.work

    def work(self, seconds: float | None = None) -> None:
        """Work until the deadline, writing the result at --result-at; hang forever if asked."""
        o = self.opts
        seconds = self.work_seconds() if seconds is None else seconds
        end = time.monotonic() + seconds
        self.journal.write("work", seconds=seconds)
        if o.hang or o.hang_silent:
            if o.hang and self._beat_thread is not None:
                self.first_beat.wait(max(o.heartbeat * 2, 1.0))
            self.hanging.set()
            self.journal.write("hang", silent=bool(o.hang_silent))
            if o.result_at is not None:
                self._sleep_until(self.t0 + o.result_at)
                self.write_result()
            while True:
                time.sleep(3600)
        if o.result_at is not None and self.t0 + o.result_at < end:
            self._sleep_until(self.t0 + o.result_at)
            self.write_result()
        self._sleep_until(end)

    @staticmethod
    def _sleep_until(t: float) -> None:
        while (left := t - time.monotonic()) > 0:
            time.sleep(left)

    def result_path(self) -> str | None:
        return self.opts.result_file or os.environ.get("DISPATCH_RESULT_FILE")

    def write_result(self) -> None:
        o = self.opts
        if self.result_written or o.result_mode == "none":
            return
        self.result_written = True
        path = self.result_path()
        if not path:
            self.journal.write(
                "result", mode=o.result_mode, path=None, complete=False, error="no result path"
            )
            return
        doc = o.result.encode()
        if o.result_mode == "atomic":
            tmp = f"{path}.tmp.{os.getpid()}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.write(fd, doc)
            os.fsync(fd)
            os.close(fd)
            os.rename(tmp, path)
            self.journal.write("result", mode="atomic", path=path, complete=True, length=len(doc))
        elif o.result_mode == "empty":
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644))
            self.journal.write("result", mode="empty", path=path, complete=False, length=0)
        elif o.result_mode == "truncated":
            half = doc[: len(doc) // 2]
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.write(fd, half)
            os.fsync(fd)
            os.close(fd)
            self.journal.write("result", mode="truncated", path=path, complete=False, length=len(half))
        else:  # chunked: in place, visible half-written during each pause
            n = max(1, o.result_chunks)
            bounds = [len(doc) * i // n for i in range(n + 1)]
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                for i in range(n):
                    os.write(fd, doc[bounds[i] : bounds[i + 1]])
                    os.fsync(fd)
                    self.journal.write("result_chunk", i=i + 1, of=n, written=bounds[i + 1], length=len(doc))
                    if i + 1 < n:
                        time.sleep(o.result_pause)
            finally:
                os.close(fd)
            self.journal.write("result", mode="chunked", path=path, complete=True, length=len(doc))

    def burst(self) -> None:
        n = self.opts.burst_before_exit
        if not n:
            return
        nonce = os.urandom(6).hex()
        end = f"BURST-END {nonce}".encode() + self.nl
        row = b"burst " + b"x" * 72 + self.nl
        body = (row * (n // len(row) + 1))[: max(0, n - len(end))]
        if body and not body.endswith(self.nl):
            body = body[: -len(self.nl)] + self.nl if len(body) > len(self.nl) else body
        self.write(body + end)
        self.journal.write("output", kind="burst", bytes=len(body) + len(end), nonce=nonce)

    def finish(self, code: int | None = None) -> None:
        """Write the result (unless already), the burst, the ``ending`` event; then exit or die."""
        self.write_result()
        self.burst()
        self.hanging.set()
        sig = self.opts.die
        if sig is not None:
            self.journal.write("ending", how="signal", signal=int(sig), name=sig.name)
            try:
                import resource

                resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            except (ImportError, ValueError, OSError):
                pass
            if sig not in (signal.SIGKILL, signal.SIGSTOP):
                signal.signal(sig, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, [sig])
            os.kill(os.getpid(), sig)
            time.sleep(1)
            os._exit(128 + int(sig))
        code = self.opts.exit_code if code is None else code
        self.journal.write("ending", how="exit", code=code)
        os._exit(code)


def parse_flags_env(prog: str) -> argparse.Namespace:
    """The generic flags a look-alike takes from FAKE_AGENT_FLAGS (a shell-word string)."""
    import shlex

    words = shlex.split(os.environ.get("FAKE_AGENT_FLAGS", ""))
    return build_parser(prog=f"{prog} (FAKE_AGENT_FLAGS)", positional=False).parse_args(words)
