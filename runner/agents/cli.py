"""The agent layer's verbs in `dispatch`'s one parser tree: run, resume, attach, queue, workers, doctor.

`register(sub, add_verb)` adds them (runner.cli owns the tree, --json, errors and exit codes); each
handler prints through runner.output and returns its exit status or raises DispatchError. Dispatcher
calls go through the backend chosen once (runner.agents.backend.open_backend).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from runner import doctor
from runner.agents import runs
from runner.agents.backend import Backend, open_backend
from runner.agents.profiles import ProfileError, load
from runner.contract import DispatchError, is_terminal
from runner.output import document as _out
from runner.output import say as _err
from runner.queue import QUEUED, Queue, QueueError, open_queue

VERBS = ("run", "resume", "attach", "queue", "workers", "doctor")
SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
CliError = DispatchError


# -- argparse -------------------------------------------------------------------------------------------


def _handler(fn: Callable[[argparse.Namespace, Backend], int]) -> Callable[[argparse.Namespace], int]:
    """Open the backend once for the verb, and map the layer's own refusals to DispatchError."""

    def handle(args: argparse.Namespace) -> int:
        try:
            return fn(args, open_backend())
        except QueueError as e:
            raise DispatchError(e.code, str(e), e.exit_status) from None  # queue_unavailable: exit 3
        except ProfileError as e:
            raise DispatchError("bad_usage", str(e)) from None

    return handle


# -- output helpers -------------------------------------------------------------------------------------


class Progress:
    """A spinner with the latest state on a TTY; plain lines on state changes otherwise."""

    def __init__(self, task_id: str, stream: TextIO, quiet: bool = False) -> None:
        self.task_id, self.stream, self.quiet = task_id, stream, quiet
        self.tty = stream.isatty() and not quiet
        self.t0 = time.monotonic()
        self.last: tuple[str, str | None] | None = None
        self.frame = 0

    def say(self, line: str) -> None:
        if self.quiet:
            return
        if self.tty:
            self.stream.write("\r\033[K")
        self.stream.write(line + "\n")
        self.stream.flush()

    def tick(self, w: runs.Watch) -> None:
        if self.quiet:
            return
        key = (w.live, w.question or w.retry)
        if self.tty:
            self.frame = (self.frame + 1) % len(SPINNER)
            extra = f" — {w.question or w.retry}" if w.question or w.retry else ""
            line = f"{SPINNER[self.frame]} {self.task_id} {w.live} {time.monotonic() - self.t0:5.1f}s{extra}"
            self.stream.write("\r\033[K" + line[: shutil.get_terminal_size().columns - 1])
            self.stream.flush()
            if key != self.last and w.question:
                self.say(
                    f"{self.task_id}: needs input: {w.question}  (answer: dispatch send {self.task_id} --text ...)"
                )
        elif key != self.last:
            if w.question:
                self.say(
                    f"{self.task_id}: needs_input: {w.question}  (answer: dispatch send {self.task_id} --text ...)"
                )
            else:
                self.say(f"{self.task_id}: {w.live}" + (f" — {w.retry}" if w.retry else ""))
        self.last = key

    def done(self) -> None:
        if self.tty:
            self.stream.write("\r\033[K")
            self.stream.flush()


def _summary(task: dict[str, Any], agent: dict[str, Any]) -> str:
    dur = ""
    if task.get("started_at") and task.get("ended_at"):
        dur = f" in {task['ended_at'] - task['started_at']:.1f}s"
    why = task.get("reason") or ""
    if task.get("exit_code") is not None:
        why += f", exit {task['exit_code']}"
    if task.get("signal") is not None:
        why += f", signal {task['signal']}"
    lines = [f"{task['task_id']}: {task['state']} ({why.strip(', ')}){dur}"]
    if task.get("result") is not None:
        lines.append(f"result: {json.dumps(task['result'])[:400]}")
    if agent.get("native_id"):
        lines.append(f"{agent['native_id_kind']}: {agent['native_id']}  (dispatch resume {task['task_id']})")
    if task.get("log_path"):
        lines.append(f"log: {task['log_path']}")
    return "\n".join(lines)


# -- verbs ----------------------------------------------------------------------------------------------


def _read_prompt(args: argparse.Namespace) -> bytes:
    if getattr(args, "prompt", None) is not None:
        return os.fsencode(args.prompt)
    try:
        with open(args.prompt_file, "rb") as f:
            return f.read()
    except OSError as e:
        raise CliError(
            "bad_prompt_file", f"cannot read prompt file {args.prompt_file}: {e.strerror}"
        ) from None


def _request(args: argparse.Namespace) -> runs.Request:
    return runs.Request(
        agent=args.agent,
        prompt=_read_prompt(args),
        cwd=args.cwd,
        task_id=args.task_id,
        mode=args.mode,
        model=args.model,
        label=args.label,
        extra=tuple(args.extra or ()),
        on_done=args.on_done,
        notify=args.notify,
    )


def _follow_and_report(
    args: argparse.Namespace, runner: Backend, launched: runs.Launched, progress: Progress
) -> tuple[int, dict[str, Any]]:
    task, watch, ended = runs.follow(
        launched.task_id, runner, launched.profile, launched.paths,
        timeout=args.timeout, on_tick=progress.tick, notify=launched.meta.get("notify"),
    )  # fmt: skip
    progress.done()
    meta = runs.read_meta(runner, launched.task_id) or launched.meta
    doc = {**task, "agent": runs.agent_view(meta, launched.paths, watch)}
    if not ended:
        if args.json:
            _out(doc)
        else:
            progress.say(f"{launched.task_id}: still {watch.live} after {args.timeout:g}s (it goes on)")
        return 124, doc
    if meta.get("on_done"):
        rc = runs.run_notify(meta["on_done"], doc, runner.env)
        if rc != 0:
            _err(f"dispatch: --on-done exited {rc}")
    if args.json:
        _out(doc)
    else:
        print(_summary(task, doc["agent"]), flush=True)
    return (0 if task["state"] == "succeeded" else 1), doc


def cmd_run(args: argparse.Namespace, runner: Backend) -> int:
    req = _request(args)
    progress = Progress(req.task_id or "", sys.stderr, quiet=args.json)
    launched = runs.launch(req, runner, progress.say)
    progress.task_id = launched.task_id
    if launched.delivery is not None and not launched.delivery.ok:
        msg = f"prompt not delivered to {launched.task_id}: {launched.delivery.message} (task stopped)"
        raise DispatchError("not_delivered", msg)
    if args.detach:
        doc = {**launched.start, "agent": runs.agent_view(launched.meta, launched.paths)}
        _out(doc) if args.json else print(
            f"{launched.task_id} started in session {launched.start.get('session')}"
        )
        return 0
    return _follow_and_report(args, runner, launched, progress)[0]


def cmd_resume(args: argparse.Namespace, runner: Backend) -> int:
    prompt = None
    if args.prompt is not None or args.prompt_file is not None:
        prompt = _read_prompt(args)
    source = args.task_id
    attempt = 0
    while True:
        req, profile = runs.resume_request(runner, source, prompt, args.model)
        progress = Progress(req.task_id or "", sys.stderr, quiet=args.json)
        progress.say(
            f"{req.task_id}: resuming {source} ({profile.name}, {profile.resume_id}={req.native_id or '-'})"
        )
        launched = runs.launch(req, runner, progress.say)
        if args.detach:
            _out(launched.start) if args.json else print(f"{launched.task_id} started")
            return 0
        args.timeout = getattr(args, "timeout", None)
        rc, doc = _follow_and_report(args, runner, launched, progress)
        if rc in (0, 124) or attempt >= args.retries:
            return rc
        attempt += 1
        delay = args.backoff * (2 ** (attempt - 1))
        _err(f"dispatch: {launched.task_id} {doc['state']}; retry {attempt}/{args.retries} in {delay:g}s")
        time.sleep(delay)  # deliberate backoff between attempts, not a stand-in for an event
        source = launched.task_id


def attach_argv(runner: Backend, session: str) -> list[str]:
    tmux = runner.tmux()
    return [tmux.binary, *tmux.socket_args, "attach-session", "-t", f"={session}"]


TERMINALS: Sequence[tuple[str, list[str]]] = (
    ("kitty", ["kitty", "--"]),
    ("wezterm", ["wezterm", "start", "--"]),
    ("alacritty", ["alacritty", "-e"]),
    ("foot", ["foot"]),
    ("gnome-terminal", ["gnome-terminal", "--"]),
    ("konsole", ["konsole", "-e"]),
    ("xfce4-terminal", ["xfce4-terminal", "-x"]),
    ("x-terminal-emulator", ["x-terminal-emulator", "-e"]),
    ("xterm", ["xterm", "-e"]),
)


def find_terminal(env: dict[str, str]) -> list[str] | None:
    """A terminal emulator that can run a command in a new window, as an argv prefix; None if none."""
    path = env.get("PATH", os.defpath)
    if not (env.get("DISPLAY") or env.get("WAYLAND_DISPLAY")) and sys.platform != "darwin":
        return None
    for name, prefix in TERMINALS:
        if shutil.which(name, path=path):
            return prefix
    return None


def cmd_attach(args: argparse.Namespace, runner: Backend) -> int:
    task = runner.status(args.task_id)
    if is_terminal(task["state"]):
        raise CliError(
            "not_running", f"{args.task_id} has ended ({task['state']}); see dispatch logs {args.task_id}"
        )
    argv = attach_argv(runner, task["session"])
    if args.json:
        _out({"task_id": args.task_id, "session": task["session"], "argv": argv})
        return 0
    if args.new_window:
        term = find_terminal(runner.env)
        if term is None:
            raise CliError("not_supported", f"no terminal emulator found; run: {' '.join(argv)}")
        import subprocess

        subprocess.Popen([*term, *argv], start_new_session=True, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        print(f"opened {term[0]} attached to {task['session']}")
        return 0
    if not sys.stdin.isatty():
        raise CliError("not_supported", f"attach needs a terminal; run: {' '.join(argv)}")
    os.execvpe(argv[0], argv, {k: v for k, v in runner.env.items() if k not in ("TMUX", "TMUX_PANE")})
    return 0  # not reached


def live_rows(runner: Backend) -> list[dict[str, Any]]:
    """Runner tasks with our agent info and live state (needs_input from the screen), then queued runs."""
    rows = []
    for task in runner.list():
        meta = runs.read_meta(runner, task["task_id"])
        question = retry = None
        if meta is not None and not is_terminal(task["state"]):
            try:
                profile = load(meta["agent"], runner.env)
                paths = runs.agent_paths(runner, task["task_id"])
                question = runs.observe_input(runner, task, profile, paths)
                retry = runs.observe_retry(runner, task, profile, paths)
            except ProfileError:
                pass
        elif task["state"] == "succeeded":  # a batch turn that ended asking: answer with resume
            question = runs.asked_after_end(runner, task["task_id"], meta)
        live = runs.live_of(task["state"], question, retry)
        rows.append({**task, "agent": (meta or {}).get("agent"), "live_state": live, "question": question,
                     "retry": retry})  # fmt: skip
    with Queue(runner.db_path) as q:
        for item in q.list((QUEUED,)):
            rows.append({"task_id": item.key, "state": "queued", "live_state": "queued", "agent": item.spec.get("agent"),
                         "label": item.spec.get("label"), "queued_at": item.created_at})  # fmt: skip
    return rows


def list_live(args: argparse.Namespace) -> int:
    """`dispatch list` for people (and `list --live --json`): live states, needs_input, queued runs."""
    return _handler(cmd_ls)(args)


def cmd_ls(args: argparse.Namespace, runner: Backend) -> int:
    if args.queue or runner.env.get("DISPATCH_QUEUE_URL"):  # the fleet view (docs/fleet.md)
        from runner.agents.fleet import fleet_rows, render_fleet

        with open_queue(runner.db_path, args.queue, runner.env) as q:
            rows = fleet_rows(q)
        _out(rows) if args.json else print(render_fleet(rows))
        return 0
    rows = live_rows(runner)
    if args.json:
        _out(rows)
        return 0
    print(render_live(rows))
    return 0


def render_live(rows: list[dict[str, Any]]) -> str:
    """The human `dispatch list`: live state (needs_input, queued) first-class, question or label last."""
    if not rows:
        return "no tasks"
    now = time.time()
    table = [["TASK ID", "STATE", "AGENT", "AGE", "LABEL / QUESTION"]]
    for r in rows:
        t0 = r.get("started_at") or r.get("queued_at") or now
        age = (r.get("ended_at") or now) - t0
        tail = r.get("question") or r.get("label") or ""
        table.append([r["task_id"], r["live_state"], r.get("agent") or "-", f"{age:.0f}s", tail])
    widths = [max(len(str(row[i])) for row in table) for i in range(len(table[0]))]
    return "\n".join("  ".join(str(c).ljust(widths[i]) for i, c in enumerate(row)).rstrip() for row in table)


def cmd_queue(args: argparse.Namespace, runner: Backend) -> int:
    with open_queue(runner.db_path, args.queue, runner.env) as q:
        if args.queue_verb == "add":
            req = _request(args)
            profile, task_id = runs.validate_request(req, runner.env)
            from runner.agents import plan as plans

            try:  # refuse now what would be refused at start (bad model, prompt too long, ...)
                plans.build(profile, prompt=req.prompt, paths=runs.agent_paths(runner, task_id),
                            mode=req.mode, model=req.model, extra=req.extra)  # fmt: skip
            except (plans.PlanError, ProfileError) as e:
                raise CliError(getattr(e, "code", "bad_usage"), str(e)) from None
            spec = req.spec()
            spec["cwd"] = os.path.abspath(req.cwd)
            item = q.add(task_id, spec, req.prompt, priority=args.priority, max_attempts=args.max_attempts)
            _out(item.to_json()) if args.json else print(f"queued {item.key}")
            return 0
        if args.queue_verb == "ls":
            items = q.list()
            if args.json:
                _out([i.to_json() for i in items])
                return 0
            print(f"{'KEY':<28} {'STATE':<10} {'OUTCOME':<10} {'TRIES':>5}  TASK")
            for i in items:
                print(
                    f"{i.key:<28} {i.state:<10} {i.outcome or '-':<10} {i.attempts:>2}/{i.max_attempts:<2}  {i.task_id or '-'}"
                )
            return 0
        if args.queue_verb == "cancel":
            before = q.get(args.key)
            item = q.cancel(args.key)
            if before.state == "running" and before.task_id:
                try:
                    runner.stop(before.task_id)
                except DispatchError:
                    pass
            _out(item.to_json()) if args.json else print(f"{item.key}: {item.state}")
            return 0
        item = q.retry(args.key)
        _out(item.to_json()) if args.json else print(f"{item.key}: queued again")
        return 0


def cmd_workers(args: argparse.Namespace, runner: Backend) -> int:
    from runner.agents.fleet import make

    if args.max_running < 1:
        raise CliError("bad_usage", "--max must be at least 1")
    with open_queue(runner.db_path, args.queue, runner.env) as q:
        w = make(runner, q, args.max_running, retention_s=args.retention, poll_s=args.poll,
                    say=lambda s: _err(s) if not args.json else None)  # fmt: skip
        try:
            w.loop(until_empty=args.until_empty)
        except KeyboardInterrupt:
            w.stop.set()
        if args.json:
            _out({"queue": [i.to_json() for i in q.list()]})
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    checks = doctor.run_checks()
    _out(doctor.to_json(checks)) if args.json else print(doctor.render(checks))
    return doctor.exit_status(checks)
