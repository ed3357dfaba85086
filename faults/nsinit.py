"""PID 1 of a chaos PID namespace, and the in-namespace helper that puts a process on a chosen PID.

``nsinit.py init``: reap every orphan; exit when stdin reaches EOF (the controller died or closed it)
or on SIGTERM. Killing it ends the namespace: the kernel SIGKILLs every other member.
``nsinit.py spawn PID -- ARGV...``: set ns_last_pid to PID-1, fork, keep the child only if it landed
on PID (retry on races), exec ARGV there with stdio on /dev/null in its own session; print the PID.
Stdlib only, runnable as a file or as ``python -m faults.nsinit``.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import time


def init() -> int:
    r, w = os.pipe()
    os.set_blocking(w, False)
    signal.set_wakeup_fd(w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    while True:
        while True:  # reap everything that has exited
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
        try:
            ready, _, _ = select.select([0, r], [], [])
        except InterruptedError:
            continue
        if 0 in ready and not os.read(0, 4096):
            return 0
        if r in ready:
            os.read(r, 4096)


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        return data[data.rindex(b")") + 2 :].split()[0] == b"Z"
    except (OSError, ValueError):
        return False


def spawn(target: int, argv: list[str], attempts: int = 500) -> int:
    deadline = time.monotonic() + 2.0
    while _zombie(target) and time.monotonic() < deadline:  # the init is about to reap it
        time.sleep(0.005)
    if os.path.exists(f"/proc/{target}"):
        print(f"pid {target} is in use", file=sys.stderr)
        return 3
    for _ in range(attempts):
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        with open("/proc/sys/kernel/ns_last_pid", "w") as f:
            f.write(str(target - 1))
        pid = os.fork()
        if pid == 0:  # child
            os.close(err_r)
            if os.getpid() != target:
                os._exit(99)
            try:
                os.setsid()
                null = os.open(os.devnull, os.O_RDWR)
                for fd in (0, 1, 2):
                    os.dup2(null, fd)
                os.execvp(argv[0], argv)
            except OSError as e:
                os.write(err_w, f"{type(e).__name__}: {e}".encode())
            os._exit(127)
        os.close(err_w)
        if pid == target:
            err = b""
            while chunk := os.read(err_r, 4096):  # EOF at exec (CLOEXEC) or at exit
                err += chunk
            os.close(err_r)
            if err:
                os.waitpid(pid, 0)
                print(f"exec failed: {err.decode(errors='replace')}", file=sys.stderr)
                return 127
            print(pid, flush=True)
            return 0  # the child is re-parented to init, which reaps it
        os.close(err_r)
        os.waitpid(pid, 0)
        if os.path.exists(f"/proc/{target}"):
            print(f"pid {target} was taken by another process", file=sys.stderr)
            return 3
    print(f"could not land on pid {target} after {attempts} attempts", file=sys.stderr)
    return 4


def main(args: list[str]) -> int:
    if args[:1] == ["init"] or not args:
        return init()
    if args[0] == "spawn" and len(args) >= 4 and args[2] == "--":
        return spawn(int(args[1]), args[3:])
    print("usage: nsinit.py init | spawn PID -- ARGV...", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
