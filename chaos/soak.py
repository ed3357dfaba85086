"""Long chaos soaks outside pytest: random programs until the time is up, then a JSON + Markdown report.

Programs come from one Hypothesis run seeded ``seed`` (after a failure, the next run is seeded
``seed + 1``, ...), as many as fit in the duration, or exactly ``max_programs`` of them when that is
given (what a test uses: how many programs fit in a time depends on the machine's load, which
programs are drawn does not). A failing program is shrunk by Hypothesis while time is left (else
reported as first seen) and saved as a replayable pytest module in the report dir.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaos.checker import Knobs, percentiles
from chaos.stateful import DEFAULT_IMPL, ChaosConfig, Stats, TimeUp, run_programs


@dataclass
class SoakReport:
    """Everything a soak measured; ``to_json`` is the report file, ``to_markdown`` its summary."""

    impl: str
    seed: int
    duration_s: float
    config: dict[str, Any]
    steps: int
    started_at: str = ""
    elapsed_s: float = 0.0
    programs: int = 0  # programs run (shrink attempts included)
    runs: list[int] = field(default_factory=list)  # Hypothesis runs, by seed
    tasks: int = 0
    ops: dict[str, int] = field(default_factory=dict)
    faults: dict[str, int] = field(default_factory=dict)
    faults_missed: dict[str, int] = field(default_factory=dict)
    outcomes: dict[str, int] = field(default_factory=dict)
    latencies: dict[str, list[float]] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)
    load: dict[str, Any] = field(default_factory=dict)  # the CPU load the soak ran under

    def add(self, s: Stats) -> None:
        self.programs += 1
        self.tasks += s.tasks
        for src, dst in (
            (s.ops, self.ops),
            (s.faults, self.faults),
            (s.missed, self.faults_missed),
            (s.outcomes, self.outcomes),
        ):
            for k, v in src.items():
                dst[k] = dst.get(k, 0) + v
        for k, vs in s.latencies.items():
            self.latencies.setdefault(k, []).extend(vs)

    def latency_table(self) -> dict[str, dict[str, float]]:
        out = {}
        for state, vs in sorted(self.latencies.items()):
            row = {k: round(v * 1000.0, 1) for k, v in percentiles(vs).items()}
            row["n"] = len(vs)
            row["max"] = round(max(vs) * 1000.0, 1)
            out[state] = row
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "impl": self.impl,
            "seed": self.seed,
            "duration_s": self.duration_s,
            "elapsed_s": round(self.elapsed_s, 1),
            "started_at": self.started_at,
            "config": self.config,
            "steps_per_program": self.steps,
            "programs": self.programs,
            "hypothesis_runs": self.runs,
            "tasks": self.tasks,
            "operations": dict(sorted(self.ops.items())),
            "faults_applied": dict(sorted(self.faults.items())),
            "faults_missed": dict(sorted(self.faults_missed.items())),
            "outcomes": dict(sorted(self.outcomes.items())),
            "detection_latency_ms": self.latency_table(),
            "load": self.load,
            "failures": self.failures,
        }

    def to_markdown(self) -> str:
        j = self.to_json()
        lines = [
            "# Chaos soak report",
            "",
            f"- implementation: `{self.impl}`",
            f"- seed {self.seed}, started {self.started_at}, requested {self.duration_s:g} s, ran {self.elapsed_s:.0f} s",
            f"- knobs: stale {self.config.get('stale')} s, grace {self.config.get('grace')} s, "
            f"max lifetime {self.config.get('max_lifetime')} s; {self.steps} steps per program",
            f"- programs: {self.programs} run (shrinking included) in {len(self.runs)} Hypothesis run(s) "
            f"(seeds {', '.join(map(str, self.runs))}), {self.tasks} tasks, {len(self.failures)} failing",
            f"- load: {describe_load(self.load)}",
            "",
            "## Operations",
            "",
            "| operation | count |",
            "|---|---|",
            *[f"| {k} | {v} |" for k, v in j["operations"].items()],
            "",
            "## Faults",
            "",
            "| fault | applied | missed (target already gone) |",
            "|---|---|---|",
            *[
                f"| {k} | {j['faults_applied'].get(k, 0)} | {j['faults_missed'].get(k, 0)} |"
                for k in sorted(set(j["faults_applied"]) | set(j["faults_missed"]))
            ],
            "",
            "## Outcomes and detection latency",
            "",
            "Latency: from the ground-truth event (agent's own end, fault, stop call, nominal hang or",
            "lifetime deadline) to the dispatcher's recorded transition (`events` mono), in ms.",
            "",
            "| outcome | tasks | measured | p50 | p95 | p99 | max |",
            "|---|---|---|---|---|---|---|",
        ]
        lat = j["detection_latency_ms"]
        for state, n in j["outcomes"].items():
            r = lat.get(state, {})
            lines.append(
                f"| {state} | {n} | {r.get('n', 0)} | {r.get('p50', '-')} | {r.get('p95', '-')} | "
                f"{r.get('p99', '-')} | {r.get('max', '-')} |"
            )
        lines += ["", "## Failures", ""]
        if not self.failures:
            lines.append("None.")
        for f in self.failures:
            lines += [f"### seed {f['seed']}", "", "```", f["summary"][:3000], "```", ""]
            if f.get("replay_file"):
                lines.append(f"Replay: `{f['replay_file']}`")
                lines.append("")
        return "\n".join(lines) + "\n"

    def save(self, dest: str | Path) -> tuple[Path, Path]:
        d = Path(dest)
        d.mkdir(parents=True, exist_ok=True)
        jp, mp = d / "report.json", d / "report.md"
        jp.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        mp.write_text(self.to_markdown())
        return jp, mp


def parse_duration(text: str) -> float:
    """`90`, `90s`, `10m`, `1.5h` -> seconds; ValueError otherwise."""
    t = text.strip().lower()
    mult = {"s": 1.0, "m": 60.0, "h": 3600.0}
    if t and t[-1] in mult:
        value, unit = t[:-1], mult[t[-1]]
    else:
        value, unit = t, 1.0
    try:
        seconds = float(value) * unit
    except ValueError:
        raise ValueError(f"bad duration {text!r}: use 90, 90s, 10m or 1.5h") from None
    if not seconds > 0:
        raise ValueError(f"duration must be positive: {text!r}")
    return seconds


def loadavg() -> list[float]:
    """The 1/5/15-minute load averages (empty where the platform has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return []


def describe_load(load: dict[str, Any]) -> str:
    """One line for the report: the hogs we added and the load average we measured around the run."""
    if not load:
        return "not recorded"
    return (
        f"{load.get('cpu_hogs', 0)} CPU hogs added on {load.get('cpus')} CPUs; load average "
        f"{load.get('loadavg_start')} at start, {load.get('loadavg_end')} at end; checker slack "
        f"x{load.get('slack_scale', 1):g} (DK_CHAOS_SLACK_SCALE)"
    )


@contextmanager
def under_load(hogs: int, rep: SoakReport) -> Iterator[None]:
    """Run the block with `hogs` busy processes (faults.load, ended by identity) and record the load."""
    from faults.load import cpu_hogs

    rep.load = {"cpu_hogs": hogs, "cpus": os.cpu_count(), "loadavg_start": loadavg()}
    rep.load["slack_scale"] = Knobs.scaled().detect / Knobs().detect  # DK_CHAOS_SLACK_SCALE
    try:
        if hogs > 0:
            with cpu_hogs(hogs):
                yield
        else:
            yield
    finally:
        rep.load["loadavg_end"] = loadavg()


def parse_load(text: str) -> int:
    """`--load`: a number of CPU hogs, or `2x` for twice the CPU count; ValueError otherwise."""
    t = text.strip().lower()
    try:
        n = round(float(t[:-1]) * (os.cpu_count() or 1)) if t.endswith("x") else int(t)
    except ValueError:
        raise ValueError(
            f"bad load {text!r}: use a number of hogs (4) or a multiple of the CPUs (2x)"
        ) from None
    if n < 0:
        raise ValueError(f"load must be >= 0: {text!r}")
    return n


def run_soak(
    duration_s: float,
    *,
    seed: int = 0,
    impl: str = DEFAULT_IMPL,
    config: ChaosConfig | None = None,
    steps: int = 8,
    report_dir: str | Path | None = None,
    shrink: bool = True,
    progress: Callable[[str], None] | None = None,
    load: int = 0,
    max_programs: int = 0,
) -> SoakReport:
    """Run programs (Hypothesis seeded SEED, then SEED+1 after a failure, ...) until DURATION_S has passed
    or, with `max_programs`, that many programs have run (whichever comes first).

    With `load`, that many CPU hogs run for the whole soak (a loaded CI runner); the report says so.
    """
    cfg = config or ChaosConfig()
    rep = SoakReport(impl=impl, seed=seed, duration_s=duration_s, config=cfg.as_dict(), steps=steps)
    with under_load(load, rep):
        _soak(rep, duration_s, seed, impl, cfg, steps, report_dir, shrink, progress, max_programs)
    if report_dir is not None:
        rep.save(report_dir)
    return rep


def _soak(
    rep: SoakReport,
    duration_s: float,
    seed: int,
    impl: str,
    cfg: ChaosConfig,
    steps: int,
    report_dir: str | Path | None,
    shrink: bool,
    progress: Callable[[str], None] | None,
    max_programs: int = 0,
) -> None:
    from hypothesis import Phase

    rep.started_at = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    t0 = time.monotonic()
    phases = (Phase.generate, Phase.shrink) if shrink else (Phase.generate,)
    last: list[Stats] = []

    def sink(s: Stats) -> None:
        rep.add(s)
        last.append(s)
        rep.elapsed_s = time.monotonic() - t0
        if progress and rep.programs % 10 == 0:
            progress(f"{rep.programs} programs, {rep.elapsed_s:.0f} s, {len(rep.failures)} failing")
        if report_dir is not None and rep.programs % 10 == 0:
            rep.save(report_dir)

    deadline = t0 + duration_s
    run_seed = seed
    while time.monotonic() < deadline:
        left = max_programs - rep.programs if max_programs > 0 else 10**9
        if left <= 0:
            break
        # One Hypothesis run per seed, as many programs as fit; a failure ends the run (after
        # shrinking) and the soak goes on with the next seed.
        rep.runs.append(run_seed)
        last.clear()
        try:
            run_programs(
                left,
                config=cfg,
                impl=impl,
                seed=run_seed,
                steps=steps,
                sink=sink,
                phases=phases,
                deadline=deadline,
            )
        except TimeUp:
            if any(s.failure for s in last):  # time ran out while shrinking: report the latest failure
                rep.failures.append(_failure(None, run_seed, last, report_dir))
            break
        except Exception as e:  # a failing program (Violation)
            if time.monotonic() >= deadline and not any(s.failure for s in last):
                break  # TimeUp inside a Hypothesis replay surfaces as Flaky*: it is only the clock
            failure = _failure(e, run_seed, last, report_dir)
            rep.failures.append(failure)
            if progress:
                progress(f"seed {run_seed}: FAILED: {failure['summary'][:200]}")
        run_seed += 1
        if report_dir is not None:
            rep.save(report_dir)
    rep.elapsed_s = time.monotonic() - t0


def _failure(
    e: BaseException | None, seed: int, runs: list[Stats], report_dir: str | Path | None
) -> dict[str, Any]:
    """Summary and replay of a failing program: the shrunk one if Hypothesis got there, else the first."""
    replay = getattr(e, "replay", None)
    summary = getattr(e, "summary", None)
    if replay is None:
        failed = [s for s in runs if s.failure]
        if failed:
            replay, summary = failed[-1].replay, failed[-1].failure
    summary = summary or f"{type(e).__name__}: {str(e)[:2000]}"
    out: dict[str, Any] = {"seed": seed, "summary": summary, "kind": type(e).__name__}
    if replay and report_dir is not None:
        d = Path(report_dir)
        d.mkdir(parents=True, exist_ok=True)
        path = d / f"test_replay_seed_{seed}.py"
        path.write_text(replay)
        out["replay_file"] = str(path)
    elif replay:
        out["replay"] = replay
    return out
