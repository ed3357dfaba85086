"""Run the checks in one container per platform and merge the reports into the matrix.

Each container gets the freshly built kit wheel, a copy of the source tree (for `pytest tests`) and the
in-container driver (containers/incontainer.py, or any --command), runs it, and hands back its
`conformance-report.json`. Everything the run creates carries `dispatch-kit.run=<id>` and is swept at the
end, also after Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import shutil
import signal
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from containers import coarsefs, images, report, wheels
from containers.platforms import TMUX_FLOOR, Platform
from containers.sweep import LABEL_RUN, sweep

DK = "/dk"  # everything the run copies in lives here
DEFAULT_PYTEST = "tests -x -q -p no:randomly -m 'not docker and not slow'"
DEFAULT_CONFORMANCE = "dispatch conformance --impl {impl} --report {report}"
# Host variables that size the kit's tests inside: fewer chaos programs than the host's CI run, and (for a
# platform run beside other work, whose load it runs under instead) no hogs of their own with the checker's
# loaded slack as under hogs.
PASS_ENV = ("DK_CHAOS_EXAMPLES", "DK_CHAOS_LOAD", "DK_CHAOS_SLACK_SCALE", "DK_TMP_CHECK")
Log = Callable[[str], None]


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@dataclass
class RunOptions:
    platforms: list[Platform]
    impl: str = "dispatch"
    report_dir: Path = Path("reports/containers")
    command: str | None = None  # replaces the driver: a shell command run in /dk/src
    install_kit: bool = True  # False (--no-kit, with --command): no wheel built or installed, source only
    pytest_args: str = DEFAULT_PYTEST  # '' skips the kit's tests
    conformance: str = DEFAULT_CONFORMANCE  # '' skips the suite
    jobs: int = 1
    timeout: float = 1500.0  # per platform
    privileged: bool = False
    mounts: list[str] = field(default_factory=list)  # HOST[:CONTAINER] read-only binds (an impl under test)
    keep: bool = False  # leave containers for debugging (a later `sweep` removes them)
    tmpdir: str | None = None  # TMPDIR inside every container (e.g. /tmp: a symlink on macos-like)
    coarse_mtime: bool = True  # macOS-like: TMPDIR on a 1-second-timestamp ext4 when the host allows it
    run_id: str = field(default_factory=lambda: time.strftime("%Y%m%d%H%M%S") + "-" + secrets.token_hex(3))


def run_labels(run_id: str, platform: str | None = None) -> dict[str, str]:
    labels = {LABEL_RUN: run_id}
    if platform:
        labels["dispatch-kit.platform"] = platform
    return labels


def host_config_kwargs(opts: RunOptions) -> dict[str, Any]:
    """The privileges the injectors need, and no more (see docs/containers.md)."""
    kw: dict[str, Any] = {
        "init": True,  # a reaping PID 1: tmux servers and double-forked agents get reaped as on a host
        "cap_add": ["SYS_ADMIN"],  # unshare/nsenter for chaos PID and mount namespaces
        "security_opt": ["seccomp=unconfined"],  # clone(CLONE_NEWPID) etc. inside the container
        "pids_limit": 4096,
        "shm_size": "256m",
    }
    if opts.privileged:  # loop devices (mkfs + mount of a small filesystem) need device access
        kw = {"init": True, "privileged": True, "pids_limit": 4096, "shm_size": "256m"}
    volumes = {}
    for m in opts.mounts:
        host, _, target = m.partition(":")
        hp = Path(host).resolve()
        volumes[str(hp)] = {"bind": target or f"/impl/{hp.name}", "mode": "ro"}
    if volumes:
        kw["volumes"] = volumes
    return kw


def payload(tmp: Path, log: Log = _log, kit: bool = True) -> bytes:
    """tar of /dk: kit wheel (unless `kit` is False), source tree, driver. Built once per run, shared by
    all platforms."""
    root = tmp / "dk"
    src = wheels.copy_source(root / "src")
    if kit:
        t0 = time.monotonic()
        wheel = wheels.build_kit_wheel(root / "kit", wheels.copy_source(tmp / "build-src"))
        log(f"[run] kit wheel {wheel.name} built in {time.monotonic() - t0:.1f}s")
    shutil.copy2(Path(__file__).with_name("incontainer.py"), root / "incontainer.py")
    (root / "report").mkdir()
    del src
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        tf.add(root, arcname="dk")
    return buf.getvalue()


def _stream_exec(client, cid: str, cmd: list[str], log: Log, prefix: str, **kw: Any) -> int:
    ex = client.api.exec_create(cid, cmd, **kw)
    pending = ""
    for chunk in client.api.exec_start(ex["Id"], stream=True):
        pending += chunk.decode("utf-8", "replace")
        *lines, pending = pending.split("\n")
        for line in lines:
            log(f"{prefix}{line}")
    if pending:
        log(f"{prefix}{pending}")
    return int(client.api.exec_inspect(ex["Id"]).get("ExitCode") or 0)


def _exec(client, cid: str, cmd: list[str], **kw: Any) -> tuple[int, str]:
    ex = client.api.exec_create(cid, cmd, **kw)
    out = client.api.exec_start(ex["Id"]).decode("utf-8", "replace")
    return int(client.api.exec_inspect(ex["Id"]).get("ExitCode") or 0), out


def run_platform(
    client, p: Platform, image: str, opts: RunOptions, tar: bytes, network: str, log: Log
) -> dict:
    """One column: create the container, install the kit, run the checks, fetch the report."""
    t0 = time.monotonic()
    out: dict[str, Any] = {"image": image, "exit_code": None, "error": None, "results": []}
    name = f"dk-{opts.run_id}-{p.name}"
    kw = host_config_kwargs(opts)
    if p.profile == "macos-like" and opts.coarse_mtime:
        why = coarsefs.available()
        try:
            if why:
                raise RuntimeError(why)
            mac_tmp = Path(images.MAC_TMPDIR)  # /var/folders/zz/<id>/T/: mount the fs at /var/folders/zz
            mp = coarsefs.make(
                f"{opts.run_id}-{p.name}", 501, 50, str(mac_tmp.relative_to("/var/folders/zz"))
            )
            kw.setdefault("volumes", {})[str(mp)] = {"bind": "/var/folders/zz", "mode": "rw"}
            log(f"[run] {p.name}: TMPDIR on a 1-second-timestamp ext4 ({mp})")
        except RuntimeError as e:
            log(f"[run] {p.name}: no coarse-timestamp TMPDIR ({e})")
    log(f"[run] {p.name}: starting container {name}")
    c = client.containers.run(
        image,
        ["sleep", "infinity"],
        name=name,
        detach=True,
        labels=run_labels(opts.run_id, p.name),
        network=network,
        hostname=p.name,
        **kw,
    )
    fired = threading.Event()
    timer = threading.Timer(opts.timeout, lambda: (fired.set(), _kill(c)))
    timer.daemon = True
    timer.start()
    try:
        c.put_archive("/", tar)
        user = "dev" if p.profile == "macos-like" else "root"
        install = (
            f"pip install -q --disable-pip-version-check --no-deps --no-index --ignore-requires-python "
            f"{DK}/kit/*.whl && "
            if opts.install_kit
            else ""
        )
        rc, text = _exec(client, c.id, ["sh", "-c", f"{install}chown -R {user} {DK}"], user="root")
        if rc != 0:
            raise RuntimeError(f"preparing {DK} (kit install, chown) failed: {text.strip()[-300:]}")
        report_in = f"{DK}/report"
        if opts.command:
            cmd = ["sh", "-c", opts.command]
        else:
            cmd = [
                "python",
                f"{DK}/incontainer.py",
                "--impl",
                opts.impl,
                "--expect-tmux",
                p.tmux,
                "--tmux-floor",
                TMUX_FLOOR,
                "--report",
                report_in,
                "--pytest",
                opts.pytest_args,
                "--conformance",
                opts.conformance,
                "--timeout",
                str(opts.timeout),
            ]
        env = {"IMPL": opts.impl, "DK_REPORT_DIR": report_in, "DK_RUN_ID": opts.run_id}
        env.update({k: os.environ[k] for k in PASS_ENV if k in os.environ})
        if opts.tmpdir:
            env["TMPDIR"] = opts.tmpdir
        rc = _stream_exec(
            client, c.id, cmd, log, f"  {p.name}| ", user=user, workdir=f"{DK}/src", environment=env
        )
        out["exit_code"] = rc
        out["results"] = _fetch_report(c, report_in, opts.report_dir / p.name)
        if opts.command and not out["results"]:
            out["results"] = [
                {
                    "check_id": "command",
                    "pitfall": "",
                    "level": "",
                    "outcome": "passed" if rc == 0 else "failed",
                    "latency_ms": None,
                    "message": f"{opts.command!r} exited {rc}",
                }
            ]
    except Exception as e:  # a platform that breaks is a column of errors, not a crashed run
        out["error"] = f"{type(e).__name__}: {e}"
        log(f"[run] {p.name}: ERROR {out['error']}")
    finally:
        timer.cancel()
        if fired.is_set():
            out["error"] = f"timed out after {opts.timeout:.0f}s (container killed)"
    out["duration_s"] = round(time.monotonic() - t0, 1)
    log(f"[run] {p.name}: done in {out['duration_s']:.1f}s (exit {out['exit_code']})")
    return out


def _kill(c) -> None:
    try:
        c.kill()
    except Exception:
        pass


def _fetch_report(c, path: str, dest: Path) -> list[dict]:
    import docker.errors

    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True, exist_ok=True)
    try:
        stream, _ = c.get_archive(path)
    except docker.errors.NotFound:
        return []
    buf = io.BytesIO(b"".join(stream))
    with tarfile.open(fileobj=buf) as tf:
        for m in tf.getmembers():
            if not (m.isfile() or m.isdir()) or m.name.startswith("/") or ".." in Path(m.name).parts:
                continue  # only plain files, only below dest
            rel = Path(*Path(m.name).parts[1:]) if len(Path(m.name).parts) > 1 else None
            if rel is None:
                continue
            if m.isdir():
                (dest / rel).mkdir(parents=True, exist_ok=True)
            else:
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                (dest / rel).write_bytes(tf.extractfile(m).read())  # type: ignore[union-attr]
    rp = dest / "conformance-report.json"
    if not rp.exists():
        return []
    return list(json.loads(rp.read_text()).get("results", []))


class _Interrupted(BaseException):
    pass


def run(client, opts: RunOptions, log: Log = _log) -> dict[str, Any]:
    """Build (cached), run every platform, sweep, merge. Returns the matrix (also written to report_dir)."""
    t0 = time.monotonic()
    old_term = signal.getsignal(signal.SIGTERM)

    def on_term(signum, frame):  # SIGTERM is handled like Ctrl-C: stop, sweep, exit
        raise _Interrupted()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_term)
    results: dict[str, dict] = {}
    try:
        built = images.build(client, opts.platforms, log=log)
        tags = {b.platform: b.tag for b in built}
        with tempfile.TemporaryDirectory(prefix="dk-run-") as tmp:
            tar = payload(Path(tmp), log=log, kit=opts.install_kit)
        net = client.networks.create(
            f"dk-{opts.run_id}", driver="bridge", internal=True, labels=run_labels(opts.run_id)
        )
        log(f"[run] {opts.run_id}: {len(opts.platforms)} platform(s), jobs={opts.jobs}, impl={opts.impl!r}")
        if opts.jobs <= 1:
            for p in opts.platforms:
                results[p.name] = run_platform(client, p, tags[p.name], opts, tar, net.name, log)
        else:
            from concurrent.futures import ThreadPoolExecutor

            # not `with`: its exit waits for every running platform, so a SIGTERM (CI's .ci/run ending
            # early) swept nothing until the last suite ended, minutes later. The sweep below removes the
            # containers, which ends the workers' `docker exec` streams.
            ex = ThreadPoolExecutor(opts.jobs)
            try:
                futs = {
                    p.name: ex.submit(run_platform, client, p, tags[p.name], opts, tar, net.name, log)
                    for p in opts.platforms
                }
                for name, f in futs.items():
                    results[name] = f.result()
            finally:
                ex.shutdown(wait=False, cancel_futures=True)
    finally:
        if not opts.keep:
            prev = signal.signal(signal.SIGINT, signal.SIG_IGN) if _main() else None
            try:
                counts = sweep(client, opts.run_id)
                coarsefs.sweep(opts.run_id)  # after the containers are gone
                log(
                    f"[run] swept {counts['containers']} container(s), {counts['networks']} network(s), "
                    f"{counts['volumes']} volume(s)"
                )
            finally:
                if prev is not None:
                    signal.signal(signal.SIGINT, prev)
        if _main():
            signal.signal(signal.SIGTERM, old_term)
    ordered = {p.name: results[p.name] for p in opts.platforms if p.name in results}
    m = report.merge(opts.run_id, ordered)
    m["duration_s"] = round(time.monotonic() - t0, 1)
    jp, mp = report.write(m, opts.report_dir)
    log(f"[run] matrix: {jp} and {mp} ({'pass' if m['ok'] else 'FAIL'}, {m['duration_s']:.0f}s)")
    return m


def _main() -> bool:
    return threading.current_thread() is threading.main_thread()
