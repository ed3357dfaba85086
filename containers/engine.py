"""Make sure a Docker engine answers: install docker.io and start dockerd when missing.

Used by `.ci/run`, the container CLI and the tests. Starting is idempotent: if the socket answers we do
nothing; otherwise dockerd is started detached (its own session, log in the cache dir) and we wait for
the socket to answer, with a deadline.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from containers.paths import cache_dir

SOCKET = Path("/var/run/docker.sock")


class EngineUnavailable(RuntimeError):
    """No engine and we could not (or were told not to) start one; the message says why."""


def _client():  # -> docker.DockerClient
    import docker  # imported late: the package is optional (`dispatch-kit[containers]`)

    return docker.from_env(timeout=120)


def ping() -> bool:
    """True when the engine named by DOCKER_HOST (default: the local socket) answers."""
    try:
        return bool(_client().ping())
    except Exception:
        return False


def _install() -> None:
    if os.geteuid() != 0:
        raise EngineUnavailable("dockerd missing and not root: install docker.io yourself")
    if shutil.which("apt-get") is None:
        raise EngineUnavailable("dockerd missing and no apt-get to install it")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "-q", "docker.io", "debootstrap"]
    if subprocess.run(cmd, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
        r = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if r.returncode != 0:
            raise EngineUnavailable("apt-get install docker.io failed: " + r.stderr.strip()[-300:])


def _start_dockerd() -> None:
    log = cache_dir() / "dockerd.log"
    with open(log, "ab") as lf:
        # Detached (own session) so it outlives this process and a Ctrl-C of the caller.
        proc = subprocess.Popen(
            ["dockerd"], stdout=lf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    (cache_dir() / "dockerd.pid").write_text(str(proc.pid))


def ensure_engine(install: bool = True, timeout: float = 90.0):  # -> docker.DockerClient
    """Return a client for a live engine, installing/starting dockerd if allowed and needed."""
    try:
        import docker  # noqa: F401
    except ImportError as e:
        raise EngineUnavailable(
            "python package 'docker' missing (pip install 'dispatch-kit[containers]')"
        ) from e
    if ping():
        return _client()
    if os.environ.get("DOCKER_HOST"):
        raise EngineUnavailable(f"DOCKER_HOST={os.environ['DOCKER_HOST']} does not answer")
    if not install:
        raise EngineUnavailable("no docker engine answers on " + str(SOCKET))
    if shutil.which("dockerd") is None:
        print("[engine] installing docker.io ...", file=sys.stderr, flush=True)
        _install()
    print("[engine] starting dockerd ...", file=sys.stderr, flush=True)
    _start_dockerd()
    deadline = time.monotonic() + timeout
    delay = 0.05
    while time.monotonic() < deadline:
        if SOCKET.exists() and ping():
            return _client()
        time.sleep(delay)  # polling a socket that has no readiness event, bounded by the deadline
        delay = min(delay * 2, 1.0)
    raise EngineUnavailable(
        f"dockerd did not answer within {timeout:.0f}s (see {cache_dir() / 'dockerd.log'})"
    )


def unavailable_reason() -> str | None:
    """None if an engine answers (starting one if we may), else a one-line reason (for pytest skips)."""
    try:
        ensure_engine(install=os.environ.get("DK_NO_ENGINE_INSTALL") != "1")
        return None
    except EngineUnavailable as e:
        return str(e)


if __name__ == "__main__":
    c = ensure_engine()
    v = c.version()
    print(
        f"docker engine {v.get('Version')} ({v.get('Os')}/{v.get('Arch')}), storage {c.info().get('Driver')}"
    )
