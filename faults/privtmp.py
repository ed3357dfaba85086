"""Run a command in a private mount namespace whose /tmp is HOSTDIR (already unshared by the caller).

``privtmp.py HOSTDIR [KEEP...] -- ARGV...``: bind HOSTDIR on /tmp, then bind each KEEP directory
(paths under the real /tmp the command must still reach: its TMPDIR, state dir, cwd) back at its own
path, and exec ARGV. Stdlib only; run as a file.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

MS_BIND = 4096
MS_REC = 16384

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def bind(src: str, dst: str) -> None:
    if _libc.mount(src.encode(), dst.encode(), None, MS_BIND | MS_REC, None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"bind mount {src} -> {dst}: {os.strerror(err)}")


def main(args: list[str]) -> int:
    sep = args.index("--")
    host, keep, argv = args[0], args[1:sep], args[sep + 1 :]
    cwd = os.getcwd()
    fds = [(k, os.open(k, os.O_PATH | os.O_DIRECTORY)) for k in keep]  # reachable after /tmp is covered
    bind(host, os.path.realpath("/tmp"))  # /private/tmp where /tmp is a symlink (macOS-like)
    for path, fd in fds:
        os.makedirs(path, exist_ok=True)
        bind(f"/proc/self/fd/{fd}", path)
        os.close(fd)
    try:
        os.chdir(cwd)  # re-resolve through the new mounts
    except OSError:
        os.chdir("/")
    try:
        os.execvp(argv[0], argv)
    except OSError as e:
        print(f"privtmp: cannot run {argv[0]}: {e.strerror}", file=sys.stderr)
        return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
