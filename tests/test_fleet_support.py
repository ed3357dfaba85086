"""Real parts for the fleet tests: a private PostgreSQL server, and hosts that are network namespaces
(`ip netns` + a veth pair each) with their own sandbox (state dir, tmux socket, HOME, TMPDIR) and
workers. The database listens only on the root side of the veth links, so a host reaches it only over
its link, and cutting the link (`ip link set ... down`) is a real partition.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from conformance.isolation import Sandbox
from runner.queue_pg_server import PgServer, bin_dir

PY = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def can_netns() -> str | None:
    """Why namespace hosts cannot be made here, or None."""
    if os.geteuid() != 0:
        return "needs root for ip netns"
    if shutil.which("ip") is None:
        return "iproute2 (ip) missing"
    probe = f"dkprobe{secrets.token_hex(3)}"
    cp = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True, timeout=30)
    if cp.returncode != 0:  # e.g. a container without CAP_SYS_ADMIN
        return f"cannot create a network namespace: {cp.stderr.strip()[:120]}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, timeout=30)
    return None


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@dataclass
class Host:
    """One simulated machine: a netns, its link, a sandbox and the workers started in it."""

    name: str
    ns: str
    link: str  # the root-side veth end (down = partition)
    db_ip: str  # the database's address as this host sees it
    sb: Sandbox
    workers: list[subprocess.Popen[str]] = field(default_factory=list)

    def env(self, url: str, lease_s: float) -> dict[str, str]:
        return self.sb.env(DISPATCH_HOST=self.name, DISPATCH_QUEUE_URL=url, DISPATCH_QUEUE_LEASE_S=str(lease_s),
                           DISPATCH_GRACE_S="1", DISPATCH_CONFIG=str(self.sb.root / "agents.toml"))  # fmt: skip

    def start_workers(self, url: str, lease_s: float, n: int = 2, max_running: int = 2) -> None:
        env = self.env(url, lease_s)
        for _ in range(n):
            argv = ["ip", "netns", "exec", self.ns, PY, "-m", "runner.agents", "workers", "--until-empty",
                    "--max", str(max_running), "--poll", "0.5"]  # fmt: skip
            log = open(self.sb.root / f"worker{len(self.workers)}.log", "w")  # noqa: SIM115
            self.workers.append(subprocess.Popen(argv, env=env, stdout=log, stderr=log, text=True,
                                                 cwd=self.sb.workdir, start_new_session=True))  # fmt: skip

    def pids(self) -> list[psutil.Process]:
        """Every live process inside this host's namespace (ours: the netns is private to the test)."""
        cp = subprocess.run(["ip", "netns", "pids", self.ns], capture_output=True, text=True, timeout=30)
        out = []
        for tok in cp.stdout.split():
            try:
                p = psutil.Process(int(tok))
                if p.status() != psutil.STATUS_ZOMBIE:
                    out.append(p)
            except psutil.Error:
                pass
        return out

    def kill(self) -> None:
        """The host dies: every process in it (workers, tmux server, agents) gets SIGKILL at once."""
        procs = self.pids()
        for p in procs:
            try:
                p.send_signal(signal.SIGKILL)  # psutil checks the start time: never a recycled PID
            except psutil.Error:
                pass
        psutil.wait_procs(procs, timeout=10)
        for w in self.workers:
            try:
                w.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass

    def logs(self) -> str:
        return "\n".join(
            p.read_text(errors="replace")[-3000:] for p in sorted(self.sb.root.glob("worker*.log"))
        )


@dataclass
class Fleet:
    """The server and the hosts of one test module."""

    pg: PgServer
    hosts: list[Host]
    admin_url: str

    def url(self, h: Host) -> str:
        return self.pg.url(h.db_ip)

    def end(self) -> None:
        for h in self.hosts:
            h.kill()


def make_fleet(base: Path, n_hosts: int = 3) -> Iterator[Fleet]:
    tag = secrets.token_hex(2)
    net = 64 + secrets.randbelow(128)
    hosts: list[Host] = []
    pg = None
    try:
        for i in range(1, n_hosts + 1):
            ns, a, b = f"dk{tag}h{i}", f"dk{tag}h{i}a", f"dk{tag}h{i}b"
            ip("netns", "add", ns)
            hosts.append(Host(f"host{i}", ns, a, f"10.{net}.{i}.1", Sandbox.create()))
            ip("link", "add", a, "type", "veth", "peer", "name", b)
            ip("link", "set", b, "netns", ns)
            ip("addr", "add", f"10.{net}.{i}.1/24", "dev", a)
            ip("link", "set", a, "up")
            ip("netns", "exec", ns, "ip", "addr", "add", f"10.{net}.{i}.2/24", "dev", b)
            ip("netns", "exec", ns, "ip", "link", "set", b, "up")
            ip("netns", "exec", ns, "ip", "link", "set", "lo", "up")
        pg = PgServer(base / "pg", free_port(), tuple(h.db_ip for h in hosts)).start()
        yield Fleet(pg, hosts, pg.local_url())
    finally:
        for h in hosts:
            h.kill()
            h.sb.cleanup()
            shutil.rmtree(h.sb.root, ignore_errors=True)
            subprocess.run(["ip", "link", "del", h.link], capture_output=True, timeout=30)
            subprocess.run(["ip", "netns", "del", h.ns], capture_output=True, timeout=30)
        if pg is not None:
            pg.destroy()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    if bin_dir() is None:
        pytest.skip("PostgreSQL server binaries missing (.ci/setup installs them)")
    why = can_netns()
    if why:
        pytest.skip(why)
    base = Path(tempfile.mkdtemp(prefix="dk-fleet-"))  # not pytest's basetemp: a parallel session prunes it
    yield from make_fleet(base)
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgServer]:
    if bin_dir() is None:
        pytest.skip("PostgreSQL server binaries missing (.ci/setup installs them)")
    base = Path(tempfile.mkdtemp(prefix="dk-pg-"))
    s = PgServer(base / "pg", free_port(), ("127.0.0.1",)).start()
    yield s
    s.destroy()
    shutil.rmtree(base, ignore_errors=True)
