"""Run a TUI agent on a pty of ours and keep its raw output: the bytes a terminal emulator needs.

The runner's log is the pane's output with escapes stripped (P3). A TUI such as Claude Code places words
with cursor movements, so the stripped log glues them ("UnabletoconnecttoAnthropicservices"). Replaying the
raw bytes on an emulated screen (runner.agents.screen) gives the text a person saw; tmux offers only one
`pipe-pane` per pane and the runner uses it, so the raw copy is taken here, between the pane and the agent:
the pane's terminal is put in raw mode and relayed byte for byte both ways (bracketed pastes, key and
terminal replies included), the window size follows the pane (SIGWINCH), TERM/HUP/INT are passed on, and we
end exactly like the agent (same code, or the same signal). The recording is 0600, capped: past `cap` the
current file becomes `PATH.1` and a new one starts (the renderer reads the tail of both).
"""

from __future__ import annotations

import errno
import fcntl
import os
import pty
import select
import signal
import struct
import sys
import termios
import time
import tty

from runner.atomicio import write_atomic

FORWARD = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
CAP = 8 << 20
DRAIN_S = 0.3  # after the agent exited: what it wrote last is read within this long


class Recorder:
    """Append-only raw copy with one rotation; a write error stops recording, never the agent."""

    def __init__(self, path: str, cap: int = CAP) -> None:
        self.path, self.cap = path, cap
        self.fd: int | None = self._open()
        self.size = 0

    def _open(self) -> int | None:
        try:
            return os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        except OSError:
            return None

    def write(self, data: bytes) -> None:
        if self.fd is None:
            return
        try:
            if self.size + len(data) > self.cap:
                os.close(self.fd)
                os.replace(self.path, self.path + ".1")
                self.fd, self.size = self._open(), 0
                if self.fd is None:
                    return
            os.write(self.fd, data)
            self.size += len(data)
        except OSError:
            self.fd = None

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def copy_winsize(src: int, dst: int, record: str | None = None) -> None:
    """The pane's size onto the agent's pty (a TUI lays itself out from it); `record`.size says it to the
    renderer, which must replay the bytes on a screen of the same size."""
    try:
        size = fcntl.ioctl(src, termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(dst, termios.TIOCSWINSZ, size)
    except OSError:
        return
    if record is not None:
        rows, cols = struct.unpack("HHHH", size)[:2]
        try:
            write_atomic(record + ".size", f"{cols} {rows}\n")
        except OSError:
            pass


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError as e:
        if e.errno in (errno.EIO, errno.EBADF):  # EIO: the pty's other side is gone
            return b""
        raise


def _write_all(fd: int, data: bytes) -> bool:
    """Write everything; False once the other side is gone (the pane closed)."""
    try:
        while data:
            data = data[os.write(fd, data) :]
        return True
    except OSError:
        return False


def _exited(pid: int) -> int | None:
    try:
        got, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return 0
    return status if got else None


def pump(pid: int, master: int, rec: Recorder, stdin: int = 0, stdout: int = 1) -> int:
    """Relay pane <-> agent until the agent exits (and its last output is read); its wait status."""
    ins, out_ok, status, drain_until = [stdin, master], True, None, 0.0
    while True:
        if status is None:
            status = _exited(pid)
            if status is not None:
                drain_until = time.monotonic() + DRAIN_S
        elif time.monotonic() >= drain_until:
            return status
        ready, _, _ = select.select(ins, [], [], 0.1 if status is None else DRAIN_S / 3)
        if master in ready:
            data = _read(master)
            if not data:
                ins.remove(master)
                if status is None:
                    _, status = os.waitpid(pid, 0)
                return status
            rec.write(data)
            if out_ok:
                out_ok = _write_all(stdout, data)
        elif status is not None and not ready:
            return status  # the agent ended and nothing more came
        if stdin in ready:
            data = _read(stdin)
            if not data:
                ins.remove(stdin)  # the pane is gone; the agent gets its HUP from the runner
            else:
                _write_all(master, data)


def run(argv: list[str], record: str) -> int:
    """Start `argv` on a new pty, relay and record; end like it did."""
    pid, master = pty.fork()
    if pid == 0:  # the agent: our pty is its controlling terminal and fds 0-2
        try:
            os.execvp(argv[0], argv)
        except OSError as e:
            os.write(2, f"runner.agents.launch: cannot run {argv[0]!r}: {e.strerror}\n".encode())
        os._exit(127)
    is_tty = os.isatty(0)
    saved = termios.tcgetattr(0) if is_tty else None
    if is_tty:
        copy_winsize(0, master, record)
        tty.setraw(0)
    signal.signal(signal.SIGWINCH, lambda *_: copy_winsize(0, master, record))
    for sig in FORWARD:
        signal.signal(sig, lambda s, _f: _forward(pid, s))
    rec = Recorder(record)
    try:
        status = pump(pid, master, rec)
    finally:
        rec.close()
        if saved is not None:
            try:
                termios.tcsetattr(0, termios.TCSADRAIN, saved)
            except termios.error:
                pass
    return end_like(status)


def _forward(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def end_like(status: int) -> int:
    """Our exit code for the agent's wait status; a signal death is re-raised on ourselves."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig not in (signal.SIGKILL, signal.SIGSTOP):  # those two cannot be caught: no handler to reset
            signal.signal(sig, signal.SIG_DFL)
        for other in FORWARD:  # our forwarding handlers must not catch the re-raised signal
            signal.signal(other, signal.SIG_DFL)
        sys.stdout.flush()
        os.kill(os.getpid(), sig)
        return 128 + sig
    return os.waitstatus_to_exitcode(status)
