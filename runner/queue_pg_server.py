"""A private PostgreSQL server for the fleet's tests and benchmarks: initdb into a directory of ours, a
unix socket there and, optionally, TCP on given addresses (the netns hosts' side of their links).

PostgreSQL refuses to run as root, so when we are root the server runs as the `postgres` account
(Debian's package creates it) through `setpriv`; the directory chain is made traversable for it.
Everything lives under `base`; `stop()` ends the server by its postmaster pid and removes nothing else.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from pathlib import Path

USER, PASSWORD, DB = "dk", "dk-secret", "dk"


def bin_dir() -> Path | None:
    """Where initdb/pg_ctl live (Debian keeps them off PATH), or None when PostgreSQL is not installed."""
    for d in sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: p.parent.name, reverse=True):
        if (d / "pg_ctl").exists():
            return d
    found = shutil.which("pg_ctl")
    return Path(found).parent if found else None


class PgServer:
    """One throwaway server; `url(host)` is a client URL for the test user over TCP."""

    def __init__(self, base: Path, port: int, listen: tuple[str, ...] = ()) -> None:
        self.base, self.port, self.listen = Path(base), port, listen
        self.data, self.sock, self.log = self.base / "data", self.base / "sock", self.base / "server.log"
        bd = bin_dir()
        if bd is None:
            raise RuntimeError(
                "PostgreSQL server binaries not found (.ci/setup installs Debian's postgresql)"
            )
        self.bin = bd
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            self.as_user = ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups", "--"]
            self._uid, self._gid = pw.pw_uid, pw.pw_gid

    def _run(self, *argv: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "TZ": "UTC"}
        return subprocess.run([*self.as_user, *argv], capture_output=True, text=True, timeout=timeout, env=env,
                              check=True, stdin=subprocess.DEVNULL)  # fmt: skip

    def _prepare_dirs(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        self.sock.mkdir(exist_ok=True)
        if not self.as_user:
            return
        for d in (self.base, self.sock):
            os.chown(d, self._uid, self._gid)
        p = self.base.parent
        while p != p.parent:  # the server account must be able to walk down to its directory
            st = p.stat()
            if not st.st_mode & 0o001:
                p.chmod(st.st_mode | 0o001)
            p = p.parent

    def start(self) -> PgServer:
        """initdb (once), configure, start and create the test user and database."""
        self._prepare_dirs()
        if not self.data.exists():
            pwfile = self.base / "pw"
            pwfile.write_text("postgres\n")
            if self.as_user:
                os.chown(pwfile, self._uid, self._gid)
            self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--no-sync", "-E", "UTF8",
                      "--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pwfile}")  # fmt: skip
            conf = (
                f"listen_addresses = '{','.join(self.listen)}'\nport = {self.port}\n"
                f"unix_socket_directories = '{self.sock}'\nmax_connections = 200\nfsync = off\n"
                "synchronous_commit = off\nfull_page_writes = off\nshared_buffers = 32MB\n"
            )
            with open(self.data / "postgresql.conf", "a") as f:
                f.write(conf)
            with open(self.data / "pg_hba.conf", "a") as f:
                f.write("host all all 0.0.0.0/0 scram-sha-256\n")
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start"
        )
        self._admin(
            f"DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{USER}') THEN "
            f"CREATE ROLE {USER} LOGIN PASSWORD '{PASSWORD}'; END IF; END$$"
        )
        if not self._admin(f"SELECT 1 FROM pg_database WHERE datname = '{DB}'"):
            self._admin(f"CREATE DATABASE {DB} OWNER {USER}")
        return self

    def _admin(self, sql: str) -> list[tuple[object, ...]]:
        import psycopg

        with psycopg.connect(host=str(self.sock), port=self.port, user="postgres", dbname="postgres",
                             autocommit=True) as c:  # fmt: skip
            cur = c.execute(sql)
            return cur.fetchall() if cur.description else []

    def url(self, host: str = "127.0.0.1", password: str = PASSWORD) -> str:
        return f"postgresql://{USER}:{password}@{host}:{self.port}/{DB}"

    def local_url(self) -> str:
        """Over the unix socket (the benchmark's single-machine path and admin checks)."""
        return f"postgresql://{USER}:{PASSWORD}@/{DB}?host={self.sock}&port={self.port}"

    def restart(self) -> None:
        """A fast restart: every client connection is cut, the data stays."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "restart",
                  "-l", str(self.log))  # fmt: skip

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            try:
                self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
            except subprocess.CalledProcessError as e:
                if "is server running" not in (e.stderr or ""):
                    raise

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)
