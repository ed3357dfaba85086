"""`run` and `resume`: plan an agent's argv from its profile, start it through the runner, deliver the
prompt, then follow it to the end from the agent's own signals (hooks, JSONL events, exit, screen).

Our per-task files live in STATE_DIR/agents/<task_id>/ (0700): the prompt copy, Claude's settings,
Codex's events and thread id, Claude's session id, and meta.json (what `resume`, `ls` and the queue need).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from runner import validate
from runner.agents import hook
from runner.agents import pane as panes
from runner.agents import plan as plans
from runner.agents.backend import Backend, is_terminal
from runner.agents.hook import asks_user
from runner.agents.profiles import TUI_PROMPTS, Profile, ProfileError, load
from runner.atomicio import ensure_dir, write_atomic, write_json
from runner.contract import DispatchError

WAIT_STEP_S = 0.5
ON_DONE_TIMEOUT_S = 60.0
LOG_SETTLE_S = 15.0  # an agent that ended before taking its prompt: how long its log may take to be filed
NEEDS_INPUT = "needs_input"


RunError = DispatchError  # the old name, still used by runner/agents/workers.py


@dataclass
class Request:
    """Everything `run` (or a queue item) asks for."""

    agent: str
    prompt: bytes
    cwd: str
    task_id: str | None = None
    mode: str | None = None
    model: str | None = None
    label: str | None = None
    extra: Sequence[str] = ()
    on_done: str | None = None
    notify: str | None = None
    resume_of: str | None = None
    resume_root: str | None = None
    native_id: str | None = None

    def spec(self) -> dict[str, Any]:
        """The JSON-able part (a queue row keeps this plus the prompt bytes)."""
        return {
            "agent": self.agent,
            "cwd": self.cwd,
            "mode": self.mode,
            "model": self.model,
            "label": self.label,
            "extra": list(self.extra),
            "on_done": self.on_done,
            "notify": self.notify,
        }

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], prompt: bytes, task_id: str) -> Request:
        return cls(
            agent=spec["agent"],
            prompt=prompt,
            cwd=spec["cwd"],
            task_id=task_id,
            mode=spec.get("mode"),
            model=spec.get("model"),
            label=spec.get("label"),
            extra=tuple(spec.get("extra") or ()),
            on_done=spec.get("on_done"),
            notify=spec.get("notify"),
        )


@dataclass
class Launched:
    """A started run: the runner's start document plus what we know about the agent."""

    task_id: str
    profile: Profile
    plan: plans.Plan
    paths: plans.AgentPaths
    start: dict[str, Any]
    delivery: panes.Delivery | None = None
    meta: dict[str, Any] = field(default_factory=dict)


# -- meta ----------------------------------------------------------------------------------------------


def agent_paths(runner: Backend, task_id: str) -> plans.AgentPaths:
    return plans.AgentPaths(runner.agents_dir / task_id)


def read_meta(runner: Backend, task_id: str) -> dict[str, Any] | None:
    """Our record of a task (None when `task_id` was not started through runner.agents)."""
    try:
        return json.loads(agent_paths(runner, task_id).meta.read_text())
    except (OSError, ValueError):
        return None


def update_meta(paths: plans.AgentPaths, **fields: Any) -> dict[str, Any]:
    try:
        meta = json.loads(paths.meta.read_text())
    except (OSError, ValueError):
        meta = {}
    meta.update(fields)
    write_json(paths.meta, meta)
    return meta


def native_id(paths: plans.AgentPaths, kind: str) -> str | None:
    """The agent's own session/thread id if a hook or the tee has recorded it."""
    f = {"session_id": paths.session_id, "thread_id": paths.thread_id}.get(kind)
    if f is None:
        return None
    try:
        v = f.read_text().strip()
    except OSError:
        return None
    return v or None


# -- state hook into the runner ------------------------------------------------------------------------


def mark_needs_input(runner: Backend, task_id: str, waiting: bool, detail: Mapping[str, Any]) -> bool:
    """Record (or clear) `needs_input` through the backend: the reference records it in its state machine,
    another implementation (DISPATCH_CMD) has no contract verb for it, so only `run`/`ls` show it (from our
    own detection, kept in meta.json). True when the dispatcher recorded it."""
    return runner.mark_needs_input(task_id, waiting, detail)


# -- launch ---------------------------------------------------------------------------------------------


def new_task_id(agent: str) -> str:
    return f"{agent}-{secrets.token_hex(4)}"


def validate_request(req: Request, env: Mapping[str, str]) -> tuple[Profile, str]:
    """Every refusal that needs no state: profile, task id, label, cwd, model. Returns (profile, id)."""
    try:
        profile = load(req.agent, env)
    except ProfileError as e:
        raise DispatchError("bad_usage", str(e)) from None
    task_id = req.task_id or new_task_id(profile.name)
    validate.task_id(task_id)
    validate.label(req.label)
    validate.cwd(req.cwd)
    if req.model is not None:
        validate.model(req.model, None)
    return profile, task_id


def _new_meta(task_id: str, req: Request, profile: Profile, plan: Any) -> dict[str, Any]:
    """meta.json at launch: what `resume`, `list` and the queue need to know about a run of ours."""
    return {
        "task_id": task_id,
        "agent": profile.name,
        "mode": plan.mode,
        "model": req.model,
        "cwd": os.path.abspath(req.cwd),
        "label": req.label,
        "argv": plan.argv,
        "extra": list(req.extra),  # the run's own flags: a resume keeps them (codex --sandbox ...)
        "prompt_delivery": plan.prompt_delivery,
        "native_id_kind": profile.native_id,
        "native_id": None,
        "on_done": req.on_done,
        "notify": req.notify,
        "resume_of": req.resume_of,
        "resume_root": req.resume_root,
        "created_at": time.time(),
    }


def launch(
    req: Request,
    runner: Backend,
    say: Callable[[str], None] = lambda s: None,
    stop_on_failed_delivery: bool = True,
) -> Launched:
    """Validate, plan, write our files, start through the runner, and deliver the prompt.

    Nothing is left behind when a step before the start fails (our dir is removed).
    """
    profile, task_id = validate_request(req, runner.env)
    paths = agent_paths(runner, task_id)
    try:
        plan = plans.build(
            profile,
            prompt=req.prompt,
            paths=paths,
            mode=req.mode,
            model=req.model,
            extra=req.extra,
            resume_id=req.native_id,
        )
    except (plans.PlanError, ProfileError) as e:
        raise DispatchError(getattr(e, "code", "bad_usage"), str(e)) from None
    if paths.root.exists():
        raise DispatchError("duplicate_task_id", f"task {task_id!r} already exists")
    made = [d for d in (runner.cfg.state_dir, runner.agents_dir) if not d.exists()]

    def undo() -> None:
        """A refused start leaves nothing: our task dir, and the dirs we created if still empty."""
        shutil.rmtree(paths.root, ignore_errors=True)
        for d in reversed(made):
            try:
                d.rmdir()
            except OSError:
                pass

    try:
        ensure_dir(runner.cfg.state_dir)  # 0700 itself, not a 0755 parent of agents/
        ensure_dir(runner.agents_dir)
        paths.root.mkdir(mode=0o700)
    except FileExistsError:
        raise DispatchError("duplicate_task_id", f"task {task_id!r} already exists") from None
    except OSError as e:
        raise DispatchError("state_dir_unusable", f"cannot create {paths.root}: {e.strerror}", 3) from None
    try:
        write_atomic(paths.prompt, req.prompt)
        if plan.settings is not None:
            write_json(paths.settings, plan.settings)
        meta = _new_meta(task_id, req, profile, plan)
        write_json(paths.meta, meta)
        start = runner.start(task_id, req.cwd, paths.prompt, plan.argv, label=req.label, model=req.model)
    except BaseException:
        undo()
        raise
    launched = Launched(task_id, profile, plan, paths, start, meta=meta)
    say(f"{task_id}: started {profile.name} ({plan.mode}) in tmux session {start.get('session')}")
    if plan.prompt_delivery in TUI_PROMPTS:
        launched.delivery = deliver(launched, runner, say)
        update_meta(paths, delivery=_delivery_json(launched.delivery))
        if not launched.delivery.ok and stop_on_failed_delivery:
            try:
                runner.stop(task_id)
            except DispatchError:
                pass
    return launched


def _delivery_json(d: panes.Delivery | None) -> dict[str, Any] | None:
    if d is None:
        return None
    return {"ok": d.ok, "step": d.step, "message": d.message, "attempts": d.attempts, "seconds": d.seconds}


def deliver(launched: Launched, runner: Backend, say: Callable[[str], None]) -> panes.Delivery:
    """Paste the prompt into the interactive agent (or wait for its initial-argument prompt) and confirm
    it was taken (one retry, then say so)."""
    session = launched.start.get("session")
    if not session:
        return panes.Delivery(False, "ready", "the agent's tmux session is already gone")
    tmux = runner.tmux()

    def alive() -> bool:
        return panes.session_alive(tmux, session)

    _, mode = launched.profile.mode(launched.plan.mode)

    def settled() -> object:  # an agent that ended before taking the prompt: its log is filed on return
        return runner.wait(launched.task_id, LOG_SETTLE_S)

    pane = panes.wait_pane(lambda: runner.pane_of(session), alive, LOG_SETTLE_S)
    if pane is None:  # it ended before we first looked: what it printed says why (a first-run screen)
        ok, step, msg = panes.judge_ended(tmux, "", launched.paths.prompt, mode, launched.paths.submitted,
                                          settled)  # fmt: skip
        d = panes.Delivery(ok, step, f"the agent's tmux session is already gone: {msg}")
    elif launched.plan.prompt_delivery == "tui-argv":
        d = panes.deliver_initial(
            tmux, pane, launched.paths.prompt, mode, submitted_marker=launched.paths.submitted, alive=alive,
            asking=launched.profile.needs_input, settled=settled,
        )  # fmt: skip
    else:
        d = panes.deliver_paste(
            tmux, pane, launched.paths.prompt, launched.paths.prompt.read_bytes(), mode,
            submitted_marker=launched.paths.submitted, alive=alive, settled=settled,
        )  # fmt: skip
    for line in d.log:
        say(f"{launched.task_id}: {line}")
    if not d.ok:
        say(f"{launched.task_id}: PROMPT NOT DELIVERED: {d.message}")
    return d


# -- follow ---------------------------------------------------------------------------------------------


@dataclass
class Watch:
    """The live view of a task while `run` waits: runner state plus what the screen and hooks say."""

    state: str = "starting"
    live: str = "starting"
    question: str | None = None
    latest: str = ""
    native_id: str | None = None
    retry: str | None = None  # the agent's own "retrying after an API error" words, while it retries


def observe_input(
    runner: Backend, task: Mapping[str, Any], profile: Profile, paths: plans.AgentPaths
) -> str | None:
    """The question the agent is waiting on (screen pattern or Claude's Notification hook), or None."""
    session = task.get("session")
    if not session or is_terminal(task.get("state")):
        return None
    pane = runner.pane_of(session)
    if pane is None:
        return None
    hit = panes.needs_input(runner.tmux(), pane, profile.needs_input)
    if hit:
        return hit
    try:
        att = json.loads(paths.attention.read_text())
        msg = att.get("message") or ""
        if "permission" in msg.lower() or "waiting for your input" in msg.lower():
            return msg
    except (OSError, ValueError):
        pass
    return None


RETRYING = "retrying"


def observe_retry(
    runner: Backend, task: Mapping[str, Any], profile: Profile, paths: plans.AgentPaths
) -> str | None:
    """What the agent says while it retries an API error (its JSON events via the tee, or its retry line
    on screen), or None. A retry is the agent's business; the state says so instead of a bare running."""
    if is_terminal(task.get("state")):
        return None
    try:
        return str(json.loads(paths.retrying.read_text()).get("message") or "") or None
    except (OSError, ValueError, AttributeError):
        pass
    session = task.get("session")
    pane = runner.pane_of(session) if session and profile.retrying else None
    return panes.needs_input(runner.tmux(), pane, profile.retrying, window=4) if pane else None


def live_of(state: str, question: str | None, retry: str | None) -> str:
    """The live state: needs_input over retrying over the runner's own state."""
    return NEEDS_INPUT if question else RETRYING if retry and not is_terminal(state) else state


def run_notify(
    cmd: str, doc: Mapping[str, Any], env: Mapping[str, str], timeout: float = ON_DONE_TIMEOUT_S
) -> int:
    """Run the user's hook command (their own shell line) with `doc` as JSON on stdin; its exit status."""
    e = dict(env)
    e["DISPATCH_TASK_ID"] = str(doc.get("task_id", ""))
    e["DISPATCH_TASK_STATE"] = str(doc.get("state", ""))
    try:
        cp = subprocess.run(
            ["/bin/sh", "-c", cmd],
            input=json.dumps(doc).encode() + b"\n",
            env=e,
            timeout=timeout,
            stdout=sys.stderr.fileno() if _has_fileno(sys.stderr) else subprocess.DEVNULL,
        )
        return cp.returncode
    except subprocess.TimeoutExpired:
        return 124
    except OSError:
        return 127


def _has_fileno(stream: Any) -> bool:
    try:
        stream.fileno()
        return True
    except (AttributeError, OSError, ValueError):
        return False


def agent_view(
    launched_meta: Mapping[str, Any], paths: plans.AgentPaths, watch: Watch | None = None
) -> dict[str, Any]:
    """The `agent` block added to a task object (the contract fields stay as the runner gave them)."""
    kind = launched_meta.get("native_id_kind", "none")
    return {
        "name": launched_meta.get("agent"),
        "mode": launched_meta.get("mode"),
        "prompt_delivery": launched_meta.get("prompt_delivery"),
        "native_id_kind": kind,
        "native_id": native_id(paths, kind) or launched_meta.get("native_id"),
        "delivery": launched_meta.get("delivery"),
        "live_state": watch.live if watch else None,
        "question": watch.question if watch else None,
        "retry": watch.retry if watch else None,
        "resume_of": launched_meta.get("resume_of"),
        "error": agent_error(paths),
    }


def agent_error(paths: plans.AgentPaths) -> dict[str, Any] | None:
    """The error the agent's last turn ended on, in its own words (Claude's transcript; runner.agents.hook
    .api_error), or None: the cause of a failed end that wrote no result."""
    try:
        transcript = (paths.root / "transcript_path").read_text().strip()
    except OSError:
        return None
    return hook.api_error(transcript)


def _screen_key(task: Mapping[str, Any], paths: plans.AgentPaths) -> tuple[int, ...] | None:
    """What changes whenever the agent's screen may have: the pane log's size and mtime (every byte the
    pane shows goes through it) and the attention file's mtime (Claude's Notification hook). None when
    the log is not there to tell: then the screen is looked at every time."""
    try:
        st = os.stat(task["log_path"]) if task.get("log_path") else None
    except OSError:
        st = None
    if st is None:
        return None
    try:
        att = paths.attention.stat().st_mtime_ns
    except OSError:
        att = 0
    return (st.st_size, st.st_mtime_ns, att)


def follow(
    task_id: str,
    runner: Backend,
    profile: Profile,
    paths: plans.AgentPaths,
    *,
    timeout: float | None = None,
    on_tick: Callable[[Watch], None] = lambda w: None,
    notify: str | None = None,
) -> tuple[dict[str, Any], Watch, bool]:
    """Wait for the task to end, watching for questions; (task, watch, ended). Ends early at `timeout`."""
    t_end = None if timeout is None else time.monotonic() + timeout
    w = Watch()
    task: dict[str, Any] = runner.status(task_id)
    kind = profile.native_id
    seen: tuple[int, ...] | None = None
    while True:
        w.state = task.get("state", "?")
        if is_terminal(w.state):
            if w.retry:  # an ended task retries nothing: its meta must not say so afterwards
                update_meta(paths, retrying=None)
                w.retry = None
            if w.question is not None:  # nor waits on a question seen while it ran (a batch turn that
                update_meta(paths, needs_input=None)  # ended asking is recorded by ended_asking below)
            w.live, w.question = w.state, None
            break
        key = _screen_key(task, paths)
        if key is None or key != seen:  # the screen can only have changed if the pane wrote output
            q = observe_input(runner, task, profile, paths)
            r = observe_retry(runner, task, profile, paths)
            seen = key
        else:
            q, r = w.question, w.retry
        if r != w.retry:
            update_meta(paths, retrying={"message": r, "wall": time.time()} if r else None)
        w.retry = r
        if q and w.question is None:
            update_meta(paths, needs_input={"question": q, "wall": time.time()})
            mark_needs_input(runner, task_id, True, {"question": q})
            if notify:
                run_notify(notify, {**task, "state": NEEDS_INPUT, "question": q}, runner.env)
        elif not q and w.question is not None:
            update_meta(paths, needs_input=None)
            mark_needs_input(runner, task_id, False, {})
        w.question = q
        w.live = live_of(w.state, q, r)
        if w.native_id is None and kind != "none":
            w.native_id = native_id(paths, kind)
            if w.native_id:
                update_meta(paths, native_id=w.native_id)
        on_tick(w)
        step = WAIT_STEP_S
        if t_end is not None:
            left = t_end - time.monotonic()
            if left <= 0:
                return task, w, False
            step = min(step, max(0.05, left))
        task, _ = runner.wait(task_id, step)
    if kind != "none":
        w.native_id = native_id(paths, kind) or w.native_id
        if w.native_id:
            update_meta(paths, native_id=w.native_id)
    ended_asking(runner, task, w, profile, paths, notify)
    return task, w, True


def ended_asking(
    runner: Backend, task: Mapping[str, Any], w: Watch, profile: Profile, paths: plans.AgentPaths,
    notify: str | None,
) -> None:  # fmt: skip
    """A batch turn that ended by asking its user (same rule as Claude's interactive Stop hook: a
    `QUESTION:` line or a last line ending in `?`). The process is done and the runner says `succeeded`;
    the agent layer says `needs_input` with the question, answered with `resume` (a native session)."""
    if task.get("state") != "succeeded" or profile.resume_id == "none":
        return
    try:
        meta = json.loads(paths.meta.read_text())
    except (OSError, ValueError):
        return
    result = task.get("result")
    last = result.get("last_message") if isinstance(result, dict) else None
    q = asks_user(last if isinstance(last, str) else None)
    if meta.get("prompt_delivery") in TUI_PROMPTS or not q:
        return
    update_meta(paths, needs_input={"question": q, "wall": time.time(), "answer_with": "resume"})
    w.live, w.question = NEEDS_INPUT, q
    if notify:
        run_notify(notify, {**task, "state": NEEDS_INPUT, "question": q}, runner.env)


def asked_after_end(runner: Backend, task_id: str, meta: Mapping[str, Any] | None) -> str | None:
    """The question an ended batch task left open (ended_asking), until a resume of it exists."""
    ni = (meta or {}).get("needs_input") or {}
    if ni.get("answer_with") != "resume" or (runner.agents_dir / f"{task_id}.r1").exists():
        return None
    return ni.get("question")


# -- resume ---------------------------------------------------------------------------------------------


def resume_request(
    runner: Backend, task_id: str, prompt: bytes | None, model: str | None = None
) -> tuple[Request, Profile]:
    """A Request that continues `task_id` with the agent's own session (or re-runs it if it has none)."""
    meta = read_meta(runner, task_id)
    if meta is None:
        raise DispatchError("unknown_task", f"{task_id!r} was not started with `run`; nothing to resume")
    task = runner.status(task_id)
    if not is_terminal(task.get("state")):
        raise DispatchError(
            "not_supported", f"{task_id} is still {task.get('state')}; answer it with send or stop it first"
        )
    try:
        profile = load(meta["agent"], runner.env)
    except ProfileError as e:
        raise DispatchError("bad_usage", str(e)) from None
    paths = agent_paths(runner, task_id)
    root = meta.get("resume_root") or task_id
    req = Request(
        agent=profile.name,
        prompt=b"",
        cwd=meta["cwd"],
        task_id=next_resume_id(runner, root),
        model=model or meta.get("model"),
        label=meta.get("label"),
        extra=tuple(meta.get("extra") or ()),
        on_done=meta.get("on_done"),
        notify=meta.get("notify"),
        resume_of=task_id,
        resume_root=root,
    )
    if profile.resume_id == "none" or profile.resume_rerun:
        # no native session: re-run (the original prompt unless a new one is given)
        req.prompt = prompt if prompt is not None else paths.prompt.read_bytes()
        req.mode = meta.get("mode")
        if profile.resume_argv and not profile.resume_rerun:
            req.native_id = ""  # the resume argv needs no id (e.g. opencode --continue)
        return req, profile
    nid = native_id(paths, profile.resume_id) or meta.get("native_id")
    if not nid:
        raise DispatchError(
            "not_supported",
            f"no {profile.resume_id} was captured for {task_id}; cannot resume {profile.name} natively",
        )
    req.native_id = nid
    req.prompt = prompt if prompt is not None else profile.resume_prompt.encode()
    return req, profile


def next_resume_id(runner: Backend, root: str) -> str:
    """ROOT.r1, ROOT.r2, ...: the first one with no files of ours yet."""
    n = 1
    while (runner.agents_dir / f"{root}.r{n}").exists():
        n += 1
    return f"{root}.r{n}"
