"""Ends what nobody supervises any more: lost supervisors, tasks past their lifetime, ownerless sessions (P9)."""

from __future__ import annotations

import json
import os
from typing import Any

from runner import states
from runner.clock import mono
from runner.config import is_our_session_name
from runner.procid import ProcessIdentity, kill_tree
from runner.store import Store
from runner.tmux import Tmux, TmuxError

STARTING_GRACE_S = 120.0  # a `starting` row with no wrapper yet may belong to a start in progress
CREATOR_GONE_GRACE_S = 5.0  # ... unless the `start` process that created it is gone
LIFETIME_SLACK_S = 5.0  # the wrapper enforces max lifetime; reap steps in only when it clearly did not


def ident(pid: int | None, start: int | None) -> ProcessIdentity | None:
    return ProcessIdentity(pid, start) if pid is not None and start is not None else None


def logpipe_ident(task: dict[str, Any]) -> ProcessIdentity | None:
    try:
        with open(os.path.join(task["task_dir"], "logpipe.pid")) as f:
            pid, start = (int(x) for x in f.read().split())
        return ProcessIdentity(pid, start)
    except (OSError, ValueError):
        return None


def end_everything(task: dict[str, Any], tmux: Tmux | None, include_wrapper: bool = True) -> None:
    """Kill the agent tree (by identity and run marker), the log pipe, the wrapper and the session."""
    roots = [i for i in (ident(task["agent_pid"], task["agent_start"]),) if i]
    kill_tree(roots, ("DISPATCH_RUN_MARKER", task["run_marker"]), term_timeout=1.0)
    extra = [logpipe_ident(task)]
    if include_wrapper:
        extra.append(ident(task["wrapper_pid"], task["wrapper_start"]))
    kill_tree([i for i in extra if i], None, term_timeout=0.5)
    if tmux is not None:
        try:
            tmux.kill_session(task["session"])
        except TmuxError:
            pass


def exit_record(task: dict[str, Any]) -> dict[str, Any] | None:
    try:
        with open(os.path.join(task["task_dir"], "exit.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def reconcile(store: Store, task: dict[str, Any], tmux: Tmux | None) -> str | None:
    """If a non-terminal task's supervisor is gone, end its leftovers and record why; return the reason."""
    if states.is_terminal(task["state"]):
        return None
    w = ident(task["wrapper_pid"], task["wrapper_start"])
    if w is None:
        age = mono() - task["created_mono"]
        creator = _task_json(task).get("creator")
        start_alive = creator is not None and ProcessIdentity(*creator).is_alive()
        # a `start` in progress owns its row; once that process is gone, a short grace suffices
        if age < (STARTING_GRACE_S if start_alive or creator is None else CREATOR_GONE_GRACE_S):
            return None
    elif w.is_alive():
        return None
    fresh = store.get(task["task_id"])  # the wrapper may have finished just now
    if fresh is None or states.is_terminal(fresh["state"]):
        return None
    fw = ident(fresh["wrapper_pid"], fresh["wrapper_start"])
    if fw is not None and fw != w and fw.is_alive():
        # the snapshot predates the supervisor's start: it is up now, and its agent is not ours to end
        return None
    end_everything(fresh, tmux)
    return record_lost(store, fresh)


def record_lost(
    store: Store,
    task: dict[str, Any],
    default: tuple[str, str] = (states.CRASHED, "supervisor_lost"),
    detail: dict[str, Any] | None = None,
) -> str:
    """Record a task whose supervisor died: its own decision, whole, when it left one (P9, P12).

    exit.json (the decided end) and intent.json (why it was ending the agent) carry everything the
    decision carried: state, reason, exit code, signal and the result it rested on. A record that
    predates those fields falls back to reading the result file.
    """
    rec, intent = exit_record(task), _intent(task)
    if rec is not None:
        if rec.get("state") in states.TERMINAL and rec.get("reason"):
            state, reason = rec["state"], rec["reason"]  # the supervisor's own decision
            kind, value = _decided_result(task, rec)
        elif intent is not None:
            state, reason = intent["state"], intent["reason"]  # it ended the agent itself: not a crash
            kind, value = _decided_result(task, intent)
        else:
            kind, value = _decided_result(task, rec)
            state, reason = states.classify_exit(rec.get("exit_code"), rec.get("signal"), kind)
        store.transition(
            task["task_id"],
            state,
            reason,
            exit_code=rec.get("exit_code"),
            signal=rec.get("signal"),
            result=value if kind == states.VALID else None,
            detail={"recovered_from": "exit.json"},
        )
        return "supervisor_lost_after_exit"
    if intent is not None:
        # died while ending the agent: the agent is gone now (end_everything), for the reason it chose;
        # its exit status went with the supervisor, the decision and its result did not
        kind, value = _decided_result(task, intent)
        store.transition(
            task["task_id"],
            intent["state"],
            intent["reason"],
            result=value if kind == states.VALID else None,
            detail={"recovered_from": "intent.json"},
        )
        return "supervisor_lost_after_kill"
    # no decision left behind: the caller's own reading (a lost supervisor; `stop`: stopped)
    store.transition(task["task_id"], default[0], default[1], detail=detail)
    return "supervisor_lost"


def _decided_result(task: dict[str, Any], doc: dict[str, Any]) -> tuple[str, object]:
    """The result a recorded decision rested on. An end record's is final; an intent without one yet
    falls back to the file as it is now (a result written while the agent was being ended counts, as
    it does for a living supervisor), as does a record written before these fields existed."""
    kind = doc.get("result_kind")
    if kind == states.VALID or (kind in (states.ABSENT, states.INVALID) and "exit_code" in doc):
        return kind, doc.get("result") if kind == states.VALID else None
    from runner.resultfile import read_result_settled

    return read_result_settled(os.path.join(task["task_dir"], "result.json"))


def _task_json(task: dict[str, Any]) -> dict[str, Any]:
    try:
        with open(os.path.join(task["task_dir"], "task.json")) as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _intent(task: dict[str, Any]) -> dict[str, Any] | None:
    """Why the supervisor was ending the agent, if it had started to (intent.json, written before)."""
    try:
        with open(os.path.join(task["task_dir"], "intent.json")) as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return None
    if isinstance(doc, dict) and doc.get("state") in states.TERMINAL and isinstance(doc.get("reason"), str):
        return doc
    return None


def reap(store: Store, tmux: Tmux | None) -> list[dict[str, Any]]:
    """One sweep; returns {task_id, session, reason} for everything ended."""
    out: list[dict[str, Any]] = []
    pending = store.non_terminal()
    for t in pending:
        reason = reconcile(store, t, tmux)
        if reason:
            out.append({"task_id": t["task_id"], "session": t["session"], "reason": reason})
            continue
        lt = t.get("max_lifetime") or 0
        if lt > 0 and mono() - t["created_mono"] > lt + LIFETIME_SLACK_S:
            fresh = store.get(t["task_id"])
            if fresh and not states.is_terminal(fresh["state"]):
                end_everything(fresh, tmux)
                store.transition(t["task_id"], states.TIMED_OUT, "max_lifetime", detail={"by": "reap"})
                out.append({"task_id": t["task_id"], "session": t["session"], "reason": "max_lifetime"})
    if tmux is None:
        return out
    try:
        sessions = tmux.list_sessions()
    except TmuxError:
        return out
    ended = {r["task_id"] for r in out}
    live = {t["session"] for t in pending if t["task_id"] not in ended}
    strays = [s for s in sessions if is_our_session_name(s.name) and s.name not in live]
    if not strays:
        return out  # every session of ours belongs to a live task: no need to read every task ever run
    known = {t["session"]: t for t in store.all()}
    for s in strays:
        t = known.get(s.name)
        if t is not None and not states.is_terminal(t["state"]):
            continue
        if t is not None:
            w = ident(t["wrapper_pid"], t["wrapper_start"])
            if w is not None and w.is_alive():
                continue  # finishing (flushing its log); it closes the session itself
            end_everything(t, None)
        try:
            if tmux.kill_session(s.name):
                out.append(
                    {
                        "task_id": t["task_id"] if t else None,
                        "session": s.name,
                        "reason": "session_of_ended_task" if t else "ownerless_session",
                    }
                )
        except TmuxError:
            pass
    return out
