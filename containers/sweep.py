"""Remove everything a run made: containers, networks and volumes labelled `dispatch-kit.run[=<id>]`.

Sweeping by label (not by name) means a run interrupted at any point, or a crashed earlier run, is
cleaned up the same way; images are kept on purpose (they are the cache).
"""

from __future__ import annotations

LABEL_RUN = "dispatch-kit.run"


def _filter(run_id: str | None) -> dict[str, str]:
    return {"label": f"{LABEL_RUN}={run_id}" if run_id else LABEL_RUN}


def leftovers(client, run_id: str | None = None) -> dict[str, list[str]]:
    """Names of what still carries the run label (empty lists when clean)."""
    f = _filter(run_id)
    return {
        "containers": [c.name for c in client.containers.list(all=True, filters=f)],
        "networks": [n.name for n in client.networks.list(filters=f)],
        "volumes": [v.name for v in client.volumes.list(filters=f)],
    }


def sweep(client, run_id: str | None = None) -> dict[str, int]:
    """Force-remove labelled containers (with their anonymous volumes), then networks and volumes."""
    import docker.errors

    f = _filter(run_id)
    counts = {"containers": 0, "networks": 0, "volumes": 0}
    for c in client.containers.list(all=True, filters=f):
        try:
            c.remove(force=True, v=True)
            counts["containers"] += 1
        except docker.errors.NotFound:
            pass
    for n in client.networks.list(filters=f):
        try:
            n.remove()
            counts["networks"] += 1
        except docker.errors.NotFound:
            pass
    for v in client.volumes.list(filters=f):
        try:
            v.remove(force=True)
            counts["volumes"] += 1
        except docker.errors.NotFound:
            pass
    return counts
