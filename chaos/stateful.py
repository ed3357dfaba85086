"""Jepsen-style chaos against a live dispatcher: random programs of operations and faults, then a check.

A program (a Hypothesis ``RuleBasedStateMachine`` run, or a :func:`replay`) starts fake agents with
random behaviours through any contract-v1 implementation (``conformance.harness.Impl``), stops, waits,
polls and reaps them, and fires real faults: SIGKILL of the agent, of a member of its tree, of its
supervisor (``wrapper_pid``); a frozen tmux server; a session killed from outside; wall-clock jumps
(``faults.clock.FakeClock`` in the dispatcher's environment); the dispatcher's own CLI killed mid-call.
Every call, fault and observation goes into a :class:`chaos.history.History`.

After every step: each task appears in ``list`` exactly once, every terminal state ever reported stays
exactly as it was, and each terminal outcome is one the ground truth allows (:mod:`chaos.checker`:
the fake agents' journals plus the faults). At the end all faults are healed, every task is waited
for, the outcomes, the ``events`` logs and ``list`` are checked once more, and no process, session or
socket of the run may remain (``conformance.isolation.Sandbox`` marker). A failure carries the program
as a replayable pytest module.

Here: the config, the world (sandbox, client, history, the one way a step runs), the Hypothesis
machine, ``run_programs`` and ``replay``. The parts, Jepsen-style: :mod:`chaos.operations` (the
client), :mod:`chaos.nemesis` (the faults), :mod:`chaos.model` (what was observed),
:mod:`chaos.checker` (which outcomes the ground truth allows, one function per cause) and
:mod:`chaos.final` (heal, wait, judge again, leaks); :mod:`chaos.steps` is their registry.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from chaos import final, model, nemesis, operations, steps
from chaos.checker import (
    Journal,
    Knobs,
    TaskFacts,
    Violation,
)
from chaos.history import History, render_replay
from chaos.model import TaskModel
from conformance.context import fake_program
from conformance.harness import Call, ContractViolation, Impl
from conformance.isolation import Sandbox
from runner.contract import reference_shell

REPO = str(Path(__file__).resolve().parent.parent)
DEFAULT_IMPL = reference_shell()

BEHAVIOURS = (
    "ok",  # exit 0 with an atomic result
    "exit",  # exit N
    "die_kill",  # dies by SIGKILL (self-inflicted)
    "die_segv",  # dies by SIGSEGV
    "hang",  # heartbeats, then hangs silently
    "chunked",  # result written in place in chunks, then exit 0
    "truncated",  # half a result, exit 0
    "grace_finish",  # heartbeat stops, finishes inside the grace period
    "ignore_term",  # ignores SIGTERM, works past the lifetime
    "daemon",  # leaves a double-forked grandchild, exit 0
    "long_work",  # a child, works past the lifetime
    "linger",  # complete result early, keeps running (completed_by_result)
)
OPS = operations.groups()  # start, stop, wait, status, reap, pause: chaos.operations registers each
FAULTS = nemesis.groups()  # kill_agent ... crash_cli: chaos.nemesis registers each
EXIT_CODES = (1, 2, 7, 42)


class TimeUp(BaseException):
    """A soak's time is up: raised before a new program starts (a BaseException, so Hypothesis lets it through)."""


@dataclass(frozen=True)
class ChaosConfig:
    """What a program may do: knobs, the behaviours and faults it draws from, how many tasks at once."""

    stale: float = 0.5
    grace: float = 0.5
    max_lifetime: float = 4.0
    behaviours: tuple[str, ...] = BEHAVIOURS
    faults: tuple[str, ...] = FAULTS
    ops: tuple[str, ...] = OPS
    max_tasks: int = 4  # tasks started per program
    noise: str = "random"  # random | always | never: agents print fake done markers and ANSI floods

    def __post_init__(self) -> None:
        for name in ("behaviours", "faults", "ops"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        bad = [b for b in self.behaviours if b not in BEHAVIOURS]
        bad += [f for f in self.faults if f not in FAULTS] + [o for o in self.ops if o not in OPS]
        if self.noise not in ("random", "always", "never"):
            bad.append(f"noise={self.noise}")
        if bad or not self.behaviours:
            raise ValueError(f"unknown behaviours/faults/ops: {bad}" if bad else "no behaviours")

    def knobs(self) -> Knobs:
        return Knobs.scaled(stale=self.stale, grace=self.grace, max_lifetime=self.max_lifetime, early=0.25)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["behaviours"], d["faults"], d["ops"] = list(self.behaviours), list(self.faults), list(self.ops)
        return d


def agent_flags(behaviour: str, work: float, variant: int, doc: str, k: Knobs) -> list[str]:
    """The fake-agent flags of one behaviour; times follow the knobs so each behaviour means the same."""
    w = f"{work:g}"
    long = f"{k.max_lifetime + 2:g}"
    res = ["--result-mode", "atomic", "--result", doc]
    return {
        "ok": ["--work", w, *res],
        "exit": ["--work", w, "--exit", str(EXIT_CODES[variant % len(EXIT_CODES)])],
        "die_kill": ["--work", w, "--die", "KILL"],
        "die_segv": ["--work", w, "--die", "SEGV"],
        "hang": ["--work", w, "--hang"],
        "chunked": [
            "--work",
            w,
            "--result-mode",
            "chunked",
            "--result-chunks",
            "4",
            "--result-pause",
            "0.05",
            "--result",
            doc,
        ],
        "truncated": ["--work", w, "--result-mode", "truncated", "--result", doc],
        "grace_finish": ["--beats", "3", "--work", f"{0.2 + k.stale + 0.4 * k.grace:g}", *res],
        "ignore_term": ["--ignore", "TERM", "--work", long],
        "daemon": ["--daemon", "--work", w, *res],
        "long_work": ["--children", "1", "--work", long],
        "linger": ["--result-at", "0.2", "--work", long, *res],
    }[behaviour]


WRITES_RESULT = {"ok", "chunked", "grace_finish", "daemon", "linger"}


@dataclass
class Stats:
    """What one program did, for soak reports."""

    ops: dict[str, int] = field(default_factory=dict)
    faults: dict[str, int] = field(default_factory=dict)
    missed: dict[str, int] = field(default_factory=dict)
    outcomes: dict[str, int] = field(default_factory=dict)
    latencies: dict[str, list[float]] = field(default_factory=dict)
    tasks: int = 0
    duration: float = 0.0
    failure: str | None = None  # one-line-ish summary
    replay: str | None = None  # the program as a pytest module
    text: str | None = None  # the full failure: summary, history tail, replay


class World:
    """One program's world: a sandbox, the implementation bound to it, faults, tasks, history."""

    def __init__(
        self,
        impl: str = DEFAULT_IMPL,
        config: ChaosConfig | None = None,
        *,
        seed: int | None = None,
        sink: Callable[[Stats], None] | None = None,
        deadline: float | None = None,
    ) -> None:
        if deadline is not None and time.monotonic() >= deadline:
            raise TimeUp()
        self.config = config or ChaosConfig()
        self.k = self.config.knobs()
        self.impl_cmd = impl
        self.seed = seed
        self.sink = sink
        self.history = History()
        self.stats = Stats()
        self.tasks: dict[str, TaskModel] = {}
        self.broken = False
        self.pending: Violation | None = None  # the first failure, raised only at the end (see call)
        self.closed = False
        self._n = 0
        self._freezes: list[tuple[threading.Thread, threading.Event]] = []
        self.sb = Sandbox.create(prefix="dkx-")
        try:
            env = self.sb.env()
            env.pop("DISPATCH_MODELS", None)
            env.update(self.k.env())
            self.clock = None
            if "clock_jump" in self.config.faults:
                from faults.clock import FakeClock
                from faults.errors import Unsupported

                try:
                    self.clock = FakeClock.create(self.sb.root)
                    env.update(self.clock.env(env))
                except Unsupported:
                    self.clock = None
            self.impl = Impl(
                impl, env, cwd=REPO, scratch=self.sb.root / "inputs", workdir=self.sb.workdir, timeout=30.0
            )
            self.caps = self.impl.capabilities()
        except BaseException:
            self.sb.cleanup()
            raise
        (self.sb.root / "journals").mkdir()

    # -- the one way a step runs ------------------------------------------------------------------
    def call(self, rule: str, args: dict[str, Any]) -> Any:
        """Run rule RULE with ARGS (recorded in the program); a failure gets the history and a replay.

        A failure is held, not raised, until the program's end (``finish``): every later step is a
        no-op but is still drawn. So the choices Hypothesis draws never depend on *when* a real-timing
        failure happened, and replaying or shrinking a program cannot meet a step sequence that
        diverged from the recorded one (FlakyStrategyDefinition). A start skipped this way still
        returns a task name so the bundle fills the same way.
        """
        if self.broken:
            return f"skipped-{rule}" if rule in ("start", "crash_start") else None
        self.history.step(rule, **args)
        step = operations.REGISTRY.get(rule) or nemesis.REGISTRY[rule]  # looked up now: tests patch them
        return self._guard(lambda: step.fn(self, **args))

    def invariant(self) -> None:
        if not self.broken:
            self._guard(lambda: model.check_list(self))

    def finish(self) -> None:
        """Heal, wait for everything, check everything, then look for leaks (the final check); raise
        the program's first failure, wherever it happened."""
        if not self.broken:
            self._guard(lambda: final.final_check(self))
        if self.pending is not None:
            raise self.pending

    def _guard(self, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except (AssertionError, ContractViolation) as e:
            self.broken = True
            self.pending = self.failure(e)
        except Exception as e:
            self.broken = True
            self.pending = self.failure(e, kind="error")
            self.pending.__cause__ = e
        return None

    def failure(self, e: BaseException, kind: str = "violation") -> Violation:
        msg = f"{type(e).__name__}: {e}" if kind == "error" else str(e)
        replay = render_replay(
            self.history.program,
            seed=self.seed,
            impl=self.impl_cmd,
            config=self.config.as_dict(),
            message=msg,
        )
        self.stats.failure, self.stats.replay = msg, replay
        text = (
            f"chaos {kind}: {msg}\n\nhistory (last 40 entries, seconds since start):\n"
            f"{self.history.format(last=40)}\n\nreplay (save as a test file):\n{replay}"
        )
        self.stats.text = text
        v = Violation(text)
        v.replay = replay  # type: ignore[attr-defined]
        v.summary = msg  # type: ignore[attr-defined]
        return v

    def close(self) -> None:
        """Undo every fault and end every process of the run, whatever happened (teardown)."""
        if self.closed:
            return
        self.closed = True
        final.thaw(self)
        if self.clock is not None:
            self.clock.close()
        self.sb.cleanup()
        self.stats.duration = time.monotonic() - self.history.started
        self.stats.ops = self.history.counts("op")
        if self.sink is not None:
            self.sink(self.stats)

    # -- helpers ----------------------------------------------------------------------------------
    def _task(self, tid: str) -> TaskModel:
        return self.tasks[tid]

    def _run(
        self, verb: str, *args: str, timeout: float | None = None, **kw: Any
    ) -> tuple[Call, float, float]:
        t0 = time.monotonic()
        call = self.impl.run(verb, *args, timeout=timeout, **kw)
        return call, t0, time.monotonic()

    def _op(
        self, name: str, call: Call, t0: float, t1: float, task_id: str | None = None, **data: Any
    ) -> None:
        doc = call.doc
        if isinstance(doc, dict) and "state" in doc:
            data.setdefault("state", doc.get("state"))
            if doc.get("reason"):
                data.setdefault("reason", doc.get("reason"))
        data["exit"] = "killed" if call.timed_out else call.exit_code
        if call.error_code:
            data["error"] = call.error_code
        self.history.add("op", name, t0, t1, task_id, **data)

    def _fault(
        self, name: str, t0: float, t1: float, applied: bool, task_id: str | None = None, **data: Any
    ) -> None:
        self.history.add("fault", name, t0, t1, task_id, applied=applied, **data)
        bucket = self.stats.faults if applied else self.stats.missed
        bucket[name] = bucket.get(name, 0) + 1

    def journal(self, m: TaskModel) -> Journal:
        from fake_agents import journal as fj

        return Journal.from_events(fj.read(m.journal))

    def _journal_start(self, m: TaskModel) -> Any:
        from fake_agents import journal as fj

        return fj.first(fj.read(m.journal), "start")

    def freezing(self) -> bool:
        return any(t.is_alive() for t, _ in self._freezes)

    # -- rules: operations ------------------------------------------------------------------------
    def _new_task(
        self, behaviour: str, work: float, variant: int, noise: bool
    ) -> tuple[str, list[str], TaskModel]:
        self._n += 1
        tid = f"t{self._n}"
        journal = self.sb.root / "journals" / f"{tid}.jsonl"
        doc = json.dumps({"task": tid, "n": variant, "text": "done ✓"}, ensure_ascii=False)
        flags = agent_flags(behaviour, work, variant, doc, self.k)
        if variant % 2 and "--children" not in flags and "--daemon" not in flags:
            flags += ["--children", "1"]  # a tree member for kill_member to hit
        if self.config.noise == "always" or (noise and self.config.noise == "random"):
            flags += ["--fake-done", "--ansi-flood", "300"]
        argv = [*fake_program(), "--journal", str(journal), "--heartbeat", "0.1", *flags]
        facts = TaskFacts(
            task_id=tid,
            behaviour=behaviour,
            call_t0=0.0,
            call_t1=0.0,
            journal=Journal(),
            result_doc=json.loads(doc) if behaviour in WRITES_RESULT else None,
        )
        m = TaskModel(facts=facts, journal=journal)
        return tid, argv, m

    def _register_start(self, m: TaskModel, call: Call, t0: float, t1: float, killed: bool) -> None:
        m.facts.call_t0, m.facts.call_t1 = t0, t1
        m.last_live = t0
        self.tasks[m.tid] = m
        self.stats.tasks += 1
        if killed:
            m.exists = "maybe"
            m.facts.start_killed = True
            return
        if call.exit_code == 0:
            m.session = call.doc.get("session")
            m.seen = True
            return
        if call.exit_code == 3 and self.freezing():
            m.exists = "no"  # refused while tmux was frozen: legitimate, and nothing may exist
            return
        raise Violation(f"start {m.tid} ({m.facts.behaviour}) was refused: {call.describe()}")


def machine_for(
    config: ChaosConfig | None = None,
    impl: str = DEFAULT_IMPL,
    *,
    seed: int | None = None,
    sink: Callable[[Stats], None] | None = None,
    deadline: float | None = None,
) -> type:
    """A ``RuleBasedStateMachine`` class drawing programs from CONFIG against IMPL."""
    from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, precondition, rule

    cfg = config or ChaosConfig()
    begun: list[bool] = []

    def room(self: Any) -> bool:
        # Counts tasks started, not live ones: a precondition must not depend on timing, or Hypothesis
        # sees the same choices lead to different rules (FlakyStrategyDefinition).
        return len(self.w.tasks) < cfg.max_tasks

    def step_rule(step: steps.Step, tasks: Any) -> Any:
        """The Hypothesis rule running STEP (named after it: Hypothesis orders rules by name)."""

        def run(self: Any, **args: Any) -> Any:
            return self.w.call(step.name, args)

        run.__name__ = run.__qualname__ = step.name
        drawn = {a: steps.strategy(spec, tasks, cfg.behaviours) for a, spec in step.args.items()}
        if step.new_task:
            return precondition(room)(rule(target=tasks, **drawn)(run))
        return rule(**drawn)(run)

    bundle = Bundle("tasks")
    start_args = {
        a: steps.strategy(spec, bundle, cfg.behaviours)
        for a, spec in operations.REGISTRY["start"].args.items()
    }

    class ChaosMachine(RuleBasedStateMachine):
        tasks = bundle

        def __init__(self) -> None:
            super().__init__()
            # the first program always runs: a deadline eaten by start-up on a loaded machine (imports,
            # the clock shim's build) must not leave a soak with nothing to report
            if deadline is not None and begun and time.monotonic() >= deadline:
                raise TimeUp()
            begun.append(True)
            self.w = World(impl, cfg, seed=seed, sink=sink)

        def teardown(self) -> None:
            try:
                self.w.finish()
            finally:
                self.w.close()

        @initialize(target=tasks, **start_args)
        def first(self, behaviour: str, work: float, variant: int, noise: bool) -> str:
            return self.w.call("start", dict(behaviour=behaviour, work=work, variant=variant, noise=noise))

        @invariant()
        def consistent(self) -> None:
            self.w.invariant()

    enabled = steps.enabled(operations.REGISTRY, cfg.ops) + steps.enabled(nemesis.REGISTRY, cfg.faults)
    for step in enabled:
        setattr(ChaosMachine, step.name, step_rule(step, ChaosMachine.tasks))
    if seed is not None:
        from hypothesis import seed as hseed

        ChaosMachine = hseed(seed)(ChaosMachine)
    return ChaosMachine


def chaos_settings(examples: int, steps: int = 8, **kw: Any) -> Any:
    """Hypothesis settings for real-process programs: no deadline, no database, no health checks."""
    from hypothesis import HealthCheck, settings

    return settings(
        max_examples=examples,
        stateful_step_count=steps,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        **kw,
    )


def run_programs(
    examples: int,
    *,
    config: ChaosConfig | None = None,
    impl: str = DEFAULT_IMPL,
    seed: int | None = None,
    steps: int = 8,
    sink: Callable[[Stats], None] | None = None,
    deadline: float | None = None,
    **settings_kw: Any,
) -> None:
    """Run EXAMPLES random programs (Hypothesis shrinks a failure and raises it, replay included).

    With ``deadline`` (monotonic), :class:`TimeUp` ends the run before the first program past it.
    """
    from hypothesis.stateful import run_state_machine_as_test

    failed: list[Stats] = []

    def collect(s: Stats) -> None:
        if s.failure is not None:
            failed.append(s)
        if sink is not None:
            sink(s)

    machine = machine_for(config, impl, seed=seed, sink=collect, deadline=deadline)
    try:
        run_state_machine_as_test(machine, settings=chaos_settings(examples, steps, **settings_kw))
    except Violation:
        raise
    except Exception as e:
        if not failed:
            raise
        # Hypothesis replays a failing program to report it; real timing may make the replay fail at
        # another step (Flaky*). The failure we saw first is the finding: report that one.
        first = failed[0]
        v = Violation(
            f"{type(e).__name__} while replaying a failing program; the failure seen:\n{first.text}"
        )
        v.replay, v.summary = first.replay, first.failure  # type: ignore[attr-defined]
        raise v from e


def replay(
    program: Sequence[tuple[str, dict[str, Any]]],
    *,
    impl: str = DEFAULT_IMPL,
    config: ChaosConfig | None = None,
    seed: int | None = None,
) -> None:
    """Run a recorded program again: the same rules with the same arguments, the same checks."""
    w = World(impl, config, seed=seed)
    try:
        for rule_name, args in program:
            rule_name = {"first": "start"}.get(rule_name, rule_name)
            w.call(rule_name, dict(args))
            w.invariant()
        w.finish()
    finally:
        w.close()


__all__ = [
    "BEHAVIOURS",
    "FAULTS",
    "DEFAULT_IMPL",
    "ChaosConfig",
    "Stats",
    "TimeUp",
    "World",
    "agent_flags",
    "chaos_settings",
    "machine_for",
    "replay",
    "run_programs",
]
