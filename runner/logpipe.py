"""The pipe-pane filter: raw pane bytes in, plain UTF-8 text out (P3).

`Stripper` is pure and incremental: escape sequences (CSI, OSC, DCS/SOS/PM/APC strings, two-byte ESC
codes) and control characters are removed even when split across reads, UTF-8 is decoded incrementally,
CRLF (and a lone CR) become LF. The process flushes after every read and acks the wrapper's end marker.
"""

from __future__ import annotations

import codecs
import os
import sys

_NORMAL, _ESC, _CSI, _STR, _STR_ESC, _ESC_INTER = range(6)
_C1 = dict.fromkeys(range(0x80, 0xA0))  # C1 controls, dropped (str.translate: no `re` to import)
MAX_STRING = 4096  # longest OSC payload kept for marker matching


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
    """Copy stdin (the pane) to `log_path` filtered; ack the end marker by writing logpipe.ack."""
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


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 3:
        print("usage: python -m runner.logpipe LOG TASKDIR NONCE", file=sys.stderr)
        return 2
    return run(*argv)


if __name__ == "__main__":
    sys.exit(main())
