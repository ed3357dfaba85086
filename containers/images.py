"""Build the per-platform images: imported debootstrap base + an offline layer with the kit's deps.

Every image is labelled `dispatch-kit.input=<hash of its inputs>` and tagged with that hash, so a build
whose inputs did not change finds its image and does nothing. The kit itself is not baked in: it is
installed from a freshly built wheel when a run starts, so source edits never force an image rebuild.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from containers import rootfs, wheels
from containers.paths import cache_dir, cache_lock
from containers.platforms import Platform

IMAGE_FORMAT = "1"  # bump when the layer recipe changes in a way the hashed files do not show
LABEL_INPUT = "dispatch-kit.input"
LABEL_PLATFORM = "dispatch-kit.platform"
MACOS_DIR = Path(__file__).resolve().parent / "macos"
MAC_TMPDIR = "/var/folders/zz/zyxvpxvq6csfxvn_n0000000000000/T/"
VENV = "/opt/dk/venv"

Log = Callable[[str], None]


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@dataclass
class BuildResult:
    platform: str
    tag: str
    cached: bool
    seconds: float
    steps: dict[str, float]


def _exists(client, tag: str, key: str) -> bool:
    import docker.errors

    try:
        img = client.images.get(tag)
    except docker.errors.ImageNotFound:
        return False
    return (img.labels or {}).get(LABEL_INPUT) == key


def base_image(client, suite: str, log: Log = _log) -> tuple[str, str, bool]:
    """Import the suite's rootfs tarball as `dispatch-kit/base:<suite>-<key>`; returns (tag, key, cached)."""
    key = rootfs.rootfs_key(suite)
    tag = f"dispatch-kit/base:{suite}-{key}"
    if _exists(client, tag, key):
        return tag, key, True
    tar = rootfs.ensure_rootfs(suite, log=log)
    log(f"[image] docker import {tar.name} -> {tag}")
    client.api.import_image_from_file(
        str(tar),
        repository="dispatch-kit/base",
        tag=f"{suite}-{key}",
        changes=[f"LABEL {LABEL_INPUT}={key}", 'CMD ["/bin/bash"]', "ENV LANG=C.UTF-8"],
    )
    if not _exists(client, tag, key):
        raise RuntimeError(f"docker import did not produce {tag}")
    return tag, key, False


def dockerfile(p: Platform, base_tag: str, reqs: list[str]) -> str:
    """The offline layer: a venv with the deps from host-built wheels, plus the profile."""
    lines = [
        f"FROM {base_tag}",
        "COPY wheels /opt/dk/wheels",
        "COPY requirements.txt /opt/dk/requirements.txt",
        # --ignore-requires-python: bullseye's 3.9 gets the newest deps that support it (see wheels.py)
        f"RUN python3 -m venv {VENV} && {VENV}/bin/pip install -q --disable-pip-version-check --no-index "
        "--find-links /opt/dk/wheels -r /opt/dk/requirements.txt && rm -rf /root/.cache",
        f"ENV PATH={VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "
        "LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1 DK_PLATFORM=" + p.name,
    ]
    if p.profile == "macos-like":
        lines += [
            "COPY macos /opt/dk/macos",
            "RUN sh /opt/dk/macos/setup.sh",
            f"ENV TMPDIR={MAC_TMPDIR} SHELL=/bin/zsh DK_PROFILE=macos-like",
        ]
    else:
        lines += ["ENV DK_PROFILE=linux"]
    lines.append('CMD ["sleep", "infinity"]')
    return "\n".join(lines) + "\n"


def _hash_tree(h, root: Path) -> None:
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.name != ".complete":
            h.update(str(path.relative_to(root)).encode() + b"\0")
            h.update(hashlib.sha256(path.read_bytes()).digest())


def platform_image(client, p: Platform, log: Log = _log, force: bool = False) -> BuildResult:
    """Build (or find) the image of one platform; timings per step for the report."""
    with cache_lock(f"image-{p.name}"), cache_lock(f"base-{p.suite}"):
        return _platform_image(client, p, log, force)


def _platform_image(client, p: Platform, log: Log, force: bool) -> BuildResult:
    t0 = time.monotonic()
    steps: dict[str, float] = {}
    base_tag, base_key, _ = base_image(client, p.suite, log=log)
    steps["base"] = time.monotonic() - t0
    t1 = time.monotonic()
    wdir, reqs = wheels.ensure_deps(p.python, log=log)
    steps["wheels"] = time.monotonic() - t1
    text = dockerfile(p, base_tag, reqs)
    req_text = "\n".join(reqs) + "\n"  # a file, not argv: requirements may carry markers and quotes
    h = hashlib.sha256(f"{IMAGE_FORMAT}|{base_key}|{text}|{req_text}".encode())
    _hash_tree(h, wdir)
    if p.profile == "macos-like":
        _hash_tree(h, MACOS_DIR)
    key = h.hexdigest()[:16]
    tag = f"dispatch-kit/{p.name}:{key}"
    if not force and _exists(client, tag, key):
        client.images.get(tag).tag(f"dispatch-kit/{p.name}", "latest")
        return BuildResult(p.name, tag, True, time.monotonic() - t0, steps)
    ctx = cache_dir() / "build" / p.name
    shutil.rmtree(ctx, ignore_errors=True)
    ctx.mkdir(parents=True)
    shutil.copytree(wdir, ctx / "wheels", ignore=shutil.ignore_patterns(".complete"))
    if p.profile == "macos-like":
        shutil.copytree(MACOS_DIR, ctx / "macos")
    (ctx / "Dockerfile").write_text(text)
    (ctx / "requirements.txt").write_text(req_text)
    log(f"[image] building {tag}")
    t2 = time.monotonic()
    for chunk in client.api.build(
        path=str(ctx),
        tag=tag,
        labels={LABEL_INPUT: key, LABEL_PLATFORM: p.name},
        rm=True,
        forcerm=True,
        decode=True,
        network_mode="none",  # nothing is fetched while building the layer either
    ):
        if "error" in chunk:
            raise RuntimeError(f"building {tag} failed: {chunk['error'].strip()}")
        line = (chunk.get("stream") or "").strip()
        if line.startswith("Step "):
            log(f"[image] {p.name}: {line}")
    steps["layer"] = time.monotonic() - t2
    client.images.get(tag).tag(f"dispatch-kit/{p.name}", "latest")
    shutil.rmtree(ctx, ignore_errors=True)
    _prune(client, f"dispatch-kit/{p.name}", keep=tag)
    result = BuildResult(p.name, tag, False, time.monotonic() - t0, steps)
    _record(result)
    return result


def _prune(client, repo: str, keep: str) -> None:
    """Drop older hash tags of this platform so superseded images do not pile up on disk."""
    for img in client.images.list(name=repo):
        for t in img.tags:
            if t != keep and not t.endswith(":latest") and t.startswith(repo + ":"):
                try:
                    client.images.remove(t)
                except Exception:
                    pass  # in use by a running container, or already gone: a later build retries


def _record(r: BuildResult) -> None:
    """Keep the last measured (non-cached) build times, for the docs and the CI budget."""
    path = cache_dir() / "build-times.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        data = {}
    data[r.platform] = {"seconds": round(r.seconds, 1), "steps": {k: round(v, 1) for k, v in r.steps.items()}}
    path.write_text(json.dumps(data, indent=2))


def build(client, platforms: list[Platform], log: Log = _log, force: bool = False) -> list[BuildResult]:
    """Build the images of `platforms` in order; rootfs tarballs missing for several suites are made in parallel."""
    from concurrent.futures import ThreadPoolExecutor

    missing = sorted({p.suite for p in platforms if not rootfs.rootfs_path(p.suite).exists()})
    if len(missing) > 1:
        log(f"[rootfs] debootstrap in parallel: {', '.join(missing)}")
        with ThreadPoolExecutor(len(missing)) as ex:
            list(ex.map(lambda s: rootfs.ensure_rootfs(s, log=log), missing))
    results = []
    for p in platforms:
        r = platform_image(client, p, log=log, force=force)
        state = "cached" if r.cached else "built"
        log(f"[image] {p.name}: {state} {r.tag} in {r.seconds:.1f}s")
        results.append(r)
    return results
