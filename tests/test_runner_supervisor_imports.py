"""The idle supervisor stays small (docs/benchmarks.md: <= 4 MiB per agent) and its records still land.

The wrapper's process must not import what its idle loop does not use (sqlite3, json, dataclasses...):
each of those costs an idle agent memory for as long as it runs. Its store calls go through
runner.recorder's forked child, tested here against a real sqlite store, in a `python -S` process of
its own (a fork inside a threaded pytest worker could inherit a held lock).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from runner import states
from runner.store import Store

REPO = Path(__file__).resolve().parent.parent
# what an idle wrapper needs none of; any one of these back in its imports undoes the memory target
HEAVY = ("sqlite3", "json", "re", "enum", "dataclasses", "typing", "pathlib", "subprocess", "signal",
         "inspect", "runpy", "collections", "tempfile", "runner.store", "runner.atomicio")  # fmt: skip


def _py(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-S", "-c", code, *args], env=env, capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL, cwd=REPO)  # fmt: skip


def test_the_wrapper_imports_nothing_heavy() -> None:
    cp = _py("import sys, runner.wrapper; print(' '.join(sorted(sys.modules)))")
    assert cp.returncode == 0, cp.stderr
    loaded = set(cp.stdout.split())
    assert "runner.wrapper" in loaded and "runner.recorder" in loaded
    assert sorted(loaded & set(HEAVY)) == [], "the supervisor imports these again (see HEAVY)"


RECORD = """
import os, sys
from runner.recorder import Recorder, RecordError
r = Recorder(sys.argv[1])
r.hold()
task, env = r.load()
tid = task["task_id"]
out = [env["K"], r.claim(tid, 11, 22), r.claim(tid, 33, 44)]
r.update(tid, agent_pid=55, agent_start=66)
out.append(r.transition(tid, "running", "spawned", expect=["starting"]))
child = r.child[0]
r.release()
try:
    os.kill(child, 0)
    out.append("child left")
except ProcessLookupError:
    out.append("child gone")
out.append(r.transition(tid, "stalled", "heartbeat_stale"))  # a one-shot child of its own
out.append(r.get(tid)["state"])
out.append(r.child is None)
try:
    r.transition(tid, "no_such_state", None)
except RecordError as e:
    out.append(str(e).split(":")[0])
out.append(sorted(m for m in ("sqlite3", "json", "runner.store") if m in sys.modules))
print(repr(out))
"""


def test_the_recorder_child_writes_the_store(tmp_path: Path) -> None:
    db = tmp_path / "dispatch.sqlite3"
    store = Store(db)
    store.insert({"task_id": "t1", "session": "dk_000000000000", "argv": ["a"], "task_dir": str(tmp_path),
                  "run_marker": "m"})  # fmt: skip
    taskdir = tmp_path / "t1"
    taskdir.mkdir()
    (taskdir / "task.json").write_text(json.dumps({"task_id": "t1", "db_path": str(db)}))
    (taskdir / "env.json").write_text(json.dumps({"K": "v"}))
    cp = _py(RECORD, str(taskdir))
    assert cp.returncode == 0, cp.stderr
    out = eval(cp.stdout)  # noqa: S307  (our own repr of plain values)
    assert out == ["v", True, False, True, "child gone", True, states.STALLED, True, "transition", []]
    t = store.get("t1")
    assert t is not None
    assert (t["wrapper_pid"], t["wrapper_start"], t["agent_pid"], t["state"]) == (11, 22, 55, states.STALLED)
    assert [e["state"] for e in store.events("t1")] == [states.STARTING, states.RUNNING, states.STALLED]
