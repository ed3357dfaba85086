"""The pane's log: raw pane bytes in, plain UTF-8 text out (P3).

`Stripper` is pure and incremental: escape sequences (CSI, OSC, DCS/SOS/PM/APC strings, two-byte ESC
codes) and control characters are removed even when split across reads, UTF-8 is decoded incrementally,
CRLF (and a lone CR) become LF.

The filter runs inside the wrapper (`Capture`), not in a Python process of its own per agent (that cost
~7 MiB each): `pipe-pane` starts `python -S -m runner.logpipe LOG TASKDIR NONCE`, which records its
identity (logpipe.pid) and execs `cat -u` into the FIFO the wrapper reads. The wrapper files each read
at once (the log is live), and the end marker it wrote to the pane coming through tells it the log is
complete. With no wrapper reading (the FIFO has no reader), the process filters into the log itself
(`run`) and acks the marker through logpipe.ack, as it always did.
"""

from __future__ import annotations

import codecs
import os
import sys

_NORMAL, _ESC, _CSI, _STR, _STR_ESC, _ESC_INTER = range(6)
_C1 = dict.fromkeys(range(0x80, 0xA0))  # C1 controls, dropped (str.translate: no `re` to import)
MAX_STRING = 4096  # longest OSC payload kept for marker matching
FIFO = "logpipe.fifo"  # in the task dir: made by `start`, read by the wrapper
PIPE_ARGV0 = "runner.logpipe"  # the pipe process's name once it is `cat` (what ps and the bench see)
PUMP_MAX = 1 << 20  # bytes filed per pump, so a flood of output never starves supervision


class Stripper:
    """Feed bytes, get text; `markers` collects OSC payloads seen (for the end-marker ack)."""

    def __init__(self) -> None:
        self.state = _NORMAL
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.pending_cr = False
        self.osc: bytearray | None = None
        self.markers: list[bytes] = []

    def feed(self, data: bytes) -> str:
        out = bytearray()
        st = self.state
        for b in data:
            if st == _NORMAL:
                if b == 0x1B:
                    st = _ESC
                    continue
                if self.pending_cr:
                    if b == 0x0D:  # CR CR ... LF (ONLCR on "\r\n") is still one line end
                        continue
                    self.pending_cr = False
                    out.append(0x0A)
                    if b == 0x0A:
                        continue
                if b == 0x0D:
                    self.pending_cr = True
                elif b == 0x0A or b == 0x09 or b >= 0x20 and b != 0x7F:
                    out.append(b)
                # other C0 controls (BEL, BS, ...) and DEL are dropped
            elif st == _ESC:
                if b == 0x5B:  # [
                    st = _CSI
                elif b == 0x5D:  # ]  OSC
                    st, self.osc = _STR, bytearray()
                elif b in (0x50, 0x58, 0x5E, 0x5F):  # P X ^ _ : DCS SOS PM APC
                    st, self.osc = _STR, None
                elif 0x20 <= b <= 0x2F:  # ESC ( B etc: intermediate bytes then a final
                    st = _ESC_INTER
                elif b == 0x1B:
                    st = _ESC
                else:
                    st = _NORMAL  # two-byte sequence (ESC 7, ESC =, ESC M ...)
            elif st == _ESC_INTER:
                if not (0x20 <= b <= 0x2F):
                    st = _NORMAL
            elif st == _CSI:
                if 0x40 <= b <= 0x7E:
                    st = _NORMAL
                elif b == 0x1B:
                    st = _ESC
                elif b < 0x20 and b not in (0x1B,):
                    pass  # controls inside CSI are executed by terminals; we just drop them
            elif st == _STR:
                if b == 0x07:
                    self._end_string()
                    st = _NORMAL
                elif b == 0x1B:
                    st = _STR_ESC
                elif self.osc is not None and len(self.osc) < MAX_STRING:
                    self.osc.append(b)
            elif st == _STR_ESC:
                if b == 0x5C:  # ESC \ = ST
                    self._end_string()
                    st = _NORMAL
                elif b == 0x1B:
                    st = _STR_ESC
                else:
                    # ESC inside a string aborts it; treat this byte as the start of a new escape
                    self._end_string()
                    st = _ESC
                    if b == 0x5B:
                        st = _CSI
                    elif b == 0x5D:
                        st, self.osc = _STR, bytearray()
                    else:
                        st = _NORMAL
        self.state = st
        text = self.decoder.decode(bytes(out))
        return text.translate(_C1)

    def _end_string(self) -> None:
        if self.osc is not None:
            self.markers.append(bytes(self.osc))
        self.osc = None

    def finish(self) -> str:
        """Flush what is held back (a trailing CR, an incomplete UTF-8 sequence)."""
        tail = "\n" if self.pending_cr else ""
        self.pending_cr = False
        return tail + self.decoder.decode(b"", final=True).translate(_C1)


def strip(data: bytes) -> str:
    """Strip a whole byte string at once."""
    s = Stripper()
    return s.feed(data) + s.finish()


def run(log_path: str, taskdir: str, nonce: str, infd: int = 0) -> int:
    """Copy stdin (the pane) to `log_path` filtered; ack the end marker by writing logpipe.ack.

    The stand-alone filter, for a task no wrapper reads the log of (see `pipe`)."""
    # late imports keep `strip` importable without the runner package's heavier pieces
    from runner.atomicio import write_atomic
    from runner.procid import ProcessIdentity

    me = ProcessIdentity.me()
    write_atomic(os.path.join(taskdir, "logpipe.pid"), f"{me.pid} {me.start}\n")
    want = b"dk-end;" + nonce.encode()
    s = Stripper()
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        while True:
            try:
                data = os.read(infd, 65536)
            except InterruptedError:
                continue
            text = s.feed(data) if data else s.finish()
            if text:
                os.write(fd, text.encode())
            if want in s.markers:
                tail = s.finish()
                if tail:
                    os.write(fd, tail.encode())
                os.fsync(fd)
                write_atomic(os.path.join(taskdir, "logpipe.ack"), nonce)
                return 0
            s.markers.clear()
            if not data:
                return 0
    finally:
        os.close(fd)


class Capture:
    """The wrapper's end of the log pipe: FIFO bytes in, filtered text appended to the log at once."""

    def __init__(self, fifo: str, log_path: str, nonce: str) -> None:
        self.fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        try:
            # a writer of our own: the FIFO never reads as closed before the pipe opens it or after it
            # exits, so polling it never spins
            self._keep = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            try:
                self.log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            except OSError:
                os.close(self._keep)
                raise
        except OSError:
            os.close(self.fd)
            raise
        self.want = b"dk-end;" + nonce.encode()
        self.stripper = Stripper()
        self.ended = False  # the end marker came through: everything before it is in the log
        self.received = 0

    @classmethod
    def open(cls, taskdir: str, log_path: str, nonce: str) -> Capture | None:
        """The capture of a task whose `start` made the FIFO; None when there is none (or it fails)."""
        try:
            return cls(os.path.join(taskdir, FIFO), log_path, nonce)
        except OSError:
            return None

    def pump(self) -> int:
        """File what is waiting (never blocks); returns the bytes read."""
        n = 0
        while n < PUMP_MAX and not self.ended:
            try:
                data = os.read(self.fd, 65536)
            except (BlockingIOError, InterruptedError):
                break
            if not data:
                break
            n += len(data)
            s = self.stripper
            text = s.feed(data)
            if self.want in s.markers:
                text += s.finish()
                self.ended = True
            s.markers.clear()
            if text:
                _write_all(self.log, text.encode())
        self.received += n
        return n

    def close(self) -> None:
        """Make the log durable and let go of the FIFO (a `cat` still writing then gets EPIPE)."""
        tail = self.stripper.finish()
        try:
            if tail:
                _write_all(self.log, tail.encode())
            os.fsync(self.log)
        except OSError:
            pass
        for fd in (self.fd, self._keep, self.log):
            try:
                os.close(fd)
            except OSError:
                pass


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data) :]


def pipe(log_path: str, taskdir: str, nonce: str) -> int:
    """The pipe-pane process: say who we are, then become `cat -u` into the wrapper's FIFO.

    The identity is written before exec (a PID and its start time survive exec), so the wrapper,
    `stop` and `reap` end it by identity (P4). Without a reader (no FIFO, the wrapper gone) or without
    `cat`, this process filters into the log itself (`run`).
    """
    try:
        out = os.open(os.path.join(taskdir, FIFO), os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return run(log_path, taskdir, nonce)
    from runner.atomicio import write_atomic
    from runner.procid import ProcessIdentity

    me = ProcessIdentity.me()
    write_atomic(os.path.join(taskdir, "logpipe.pid"), f"{me.pid} {me.start}\n")
    os.set_blocking(out, True)
    os.dup2(out, 1)
    os.close(out)
    try:
        os.execvp("cat", [PIPE_ARGV0, "-u"])
    except OSError:
        pass
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # no cat: let go of the FIFO and filter here
    return run(log_path, taskdir, nonce)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 3:
        print("usage: python -m runner.logpipe LOG TASKDIR NONCE", file=sys.stderr)
        return 2
    return pipe(*argv)


if __name__ == "__main__":
    sys.exit(main())
