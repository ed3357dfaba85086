"""Measure spawn -> journal ``start`` event for a fake (CLOCK_MONOTONIC on both sides).

python -m fake_agents.bench_start [-n 50] [--agent fake-agent]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time

from fake_agents import journal, shims


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="fake_agents.bench_start")
    p.add_argument("-n", type=int, default=50)
    p.add_argument("--agent", default="fake-agent")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as d:
        exe = shims.bin_dir(os.path.join(d, "bin")) / args.agent
        extra = ["-p", "x"] if args.agent in ("claude", "fake-claude", "pi", "fake-pi") else []
        ms = []
        for i in range(args.n):
            j = os.path.join(d, f"j{i}")
            t = time.monotonic()
            subprocess.run([str(exe), *extra], env=dict(os.environ, FAKE_AGENT_JOURNAL=j), check=True,
                           stdout=subprocess.DEVNULL)  # fmt: skip
            ev = journal.first(journal.read(j), "start")
            assert ev is not None
            ms.append((ev.mono - t) * 1000)
    q = statistics.quantiles(ms, n=10)
    print(f"{args.agent}: n={args.n} median={statistics.median(ms):.1f} ms p90={q[-1]:.1f} ms "
          f"min={min(ms):.1f} ms max={max(ms):.1f} ms load={os.getloadavg()[0]:.1f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
