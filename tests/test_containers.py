"""The container matrix against a real Docker engine: cached builds, tmux per platform, the macOS-like
profile, and the label sweep (also after Ctrl-C). Skipped with the reason when no engine can be had."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from containers import coarsefs, engine, images, platforms
from containers.sweep import LABEL_RUN, leftovers, sweep

pytestmark = pytest.mark.docker
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def client():
    reason = engine.unavailable_reason()
    if reason:
        pytest.skip(f"no docker engine: {reason}")
    return engine.ensure_engine()


@pytest.fixture(scope="module")
def built(client):
    """All platform images (cached after the first build; the first one on a fresh machine takes minutes)."""
    return {r.platform: r for r in images.build(client, platforms.select(None))}


@pytest.fixture
def run_id(client):
    rid = "test-" + secrets.token_hex(4)
    yield rid
    sweep(client, rid)
    coarsefs.sweep(rid)


def _sh(client, tag: str, script: str, run_id: str, user: str = "root") -> tuple[int, str]:
    c = client.containers.run(
        tag, ["sh", "-c", script], detach=True, user=user, labels={LABEL_RUN: run_id}, network_mode="none"
    )
    try:
        rc = c.wait(timeout=120)["StatusCode"]
        return rc, c.logs().decode()
    finally:
        c.remove(force=True)


def test_second_build_is_a_noop(client, built):
    t0 = time.monotonic()
    again = images.build(client, platforms.select(None))
    assert all(r.cached for r in again), [(r.platform, r.cached) for r in again]
    assert {r.platform: r.tag for r in again} == {k: v.tag for k, v in built.items()}
    assert time.monotonic() - t0 < 30
    for r in again:
        labels = client.images.get(r.tag).labels
        assert labels[images.LABEL_INPUT] == r.tag.rsplit(":", 1)[1]


@pytest.mark.parametrize("name", list(platforms.PLATFORMS))
def test_tmux_version_per_platform(client, built, run_id, name):
    rc, out = _sh(client, built[name].tag, "tmux -V", run_id)
    assert rc == 0, out
    assert out.strip() == f"tmux {platforms.PLATFORMS[name].tmux}"


def test_bullseye_is_below_the_floor():
    assert not platforms.PLATFORMS["bullseye"].tmux_supported
    assert all(platforms.PLATFORMS[n].tmux_supported for n in ("bookworm", "trixie", "macos-like"))


MACOS_SCRIPT = r"""
set -u
cd "$HOME"
echo hello > f
fails() { if "$@" >/dev/null 2>&1; then echo "ACCEPTED: $*"; fi; }
fails stat -c %s f
fails stat --format=%s f
fails date -d @0
fails date --date=now +%s
fails sed -i 's/hello/bye/' f
fails sed -r 's/a/b/' f
fails mktemp --suffix=.x
for t in timeout setsid flock stdbuf; do command -v "$t" >/dev/null && echo "PRESENT: $t"; done
[ "$(stat -f %z f)" = 6 ] || echo "BAD stat -f"
[ "$(date -u -r 0 +%Y)" = 1970 ] || echo "BAD date -r"
case "$(date +%s%N)" in *N) ;; *) echo "BAD %N";; esac
sed -i '' 's/hello/bye/' f && [ "$(cat f)" = bye ] || echo "BAD sed -i ''"
p=$(mktemp -t dk) && case "$p" in "$TMPDIR"dk.*) ;; *) echo "BAD mktemp -t: $p";; esac
echo "TMPDIR=$TMPDIR"
echo "SHELL=$SHELL"
getent passwd "$(id -un)" | cut -d: -f7
"""


def test_macos_like_profile(client, built, run_id):
    rc, out = _sh(client, built["macos-like"].tag, MACOS_SCRIPT, run_id, user="dev")
    assert rc == 0, out
    lines = out.splitlines()
    assert not [ln for ln in lines if ln.startswith(("ACCEPTED", "PRESENT", "BAD"))], out
    tmpdir = next(ln for ln in lines if ln.startswith("TMPDIR=")).split("=", 1)[1]
    assert tmpdir.startswith("/var/folders/") and tmpdir.endswith("/T/") and len(tmpdir) > 45
    assert "SHELL=/bin/zsh" in lines
    assert lines[-1].endswith("zsh")


def test_sweep_removes_everything_labelled(client, built, run_id):
    labels = {LABEL_RUN: run_id}
    other = "test-other-" + secrets.token_hex(3)
    c = client.containers.run(
        built["bookworm"].tag, ["sleep", "300"], detach=True, labels=labels, network_mode="none"
    )
    keep = client.containers.run(
        built["bookworm"].tag, ["sleep", "300"], detach=True, labels={LABEL_RUN: other}, network_mode="none"
    )
    try:
        client.networks.create(f"dk-{run_id}", internal=True, labels=labels)
        client.volumes.create(f"dk-{run_id}", labels=labels)
        left = leftovers(client, run_id)
        assert left["containers"] == [c.name] and left["networks"] and left["volumes"]
        assert sweep(client, run_id) == {"containers": 1, "networks": 1, "volumes": 1}
        assert leftovers(client, run_id) == {"containers": [], "networks": [], "volumes": []}
        keep.reload()  # another run's container is untouched
        assert keep.status == "running"
    finally:
        sweep(client, other)


@pytest.mark.slow
def test_ctrl_c_sweeps_the_run(client, built, run_id, tmp_path):
    """SIGINT while a container runs: the CLI exits 130 and nothing labelled with the run remains
    (containers, networks, volumes), nor its coarse-timestamp filesystem.

    The SIGINT is sent once the command prints READY inside the container: then the container is
    running and an exec live, whatever docker's load (CI builds images meanwhile; polling the container
    list for 120 s from the CLI's start missed it there). macos-like, so the run also makes and mounts
    its coarse-timestamp TMPDIR (where the host can); `--no-kit`: the kit wheel's build and install
    (45 s under load) are not what the sweep needs.
    """
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "containers",
            "run",
            "--platform",
            "macos-like",
            "--run-id",
            run_id,
            "--no-kit",
            "--command",
            "echo READY-$DK_RUN_ID; exec sleep 300",
            "--report",
            str(tmp_path / "report"),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:  # a reader thread: a silent CLI never blocks the test past its deadline
        for raw in proc.stdout:
            lines.append(raw.decode("utf-8", "replace"))
            if f"READY-{run_id}" in lines[-1]:
                ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        # a bound for a busy engine (image builds in the background): it only costs time on failure
        deadline = time.monotonic() + 600
        while not ready.wait(0.5) and proc.poll() is None and time.monotonic() < deadline:
            pass
        assert ready.is_set(), f"no READY from the container (rc {proc.poll()}):\n{''.join(lines)}"
        assert client.containers.list(filters={"label": f"{LABEL_RUN}={run_id}"}), "".join(lines)
        # the run says whether it made the filesystem (it cannot without root and a loop device)
        if any("1-second-timestamp ext4" in ln for ln in lines):
            assert coarsefs.leftovers(run_id), "".join(lines)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
        reader.join(10)
        assert proc.returncode == 130, "".join(lines)
        assert leftovers(client, run_id) == {"containers": [], "networks": [], "volumes": []}
        assert coarsefs.leftovers(run_id) == [], "".join(lines)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
