"""Runs inside a platform container: the checks for one column of the matrix.

Copied into the container by the runner and run with the image's venv python. It must work on every
platform's interpreter (bullseye: 3.9), so it uses the standard library only and no 3.10 syntax.
It writes `conformance-report.json` (same shape as the conformance suite's) into --report, and prints one
progress line per check.
"""

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

RESULTS = []
PLATFORM = os.environ.get("DK_PLATFORM", "?")


def record(
    check_id, outcome, message="", latency_ms=None, pitfall="PLATFORM", level="PLATFORM", duration_s=0.0
):
    RESULTS.append(
        {
            "check_id": check_id,
            "pitfall": pitfall,
            "level": level,
            "outcome": outcome,
            "latency_ms": latency_ms,
            "message": " ".join(str(message).split())[:500],
            "duration_s": round(duration_s, 3),
        }
    )
    print(
        "[{}] {:<34} {} {}".format(PLATFORM, check_id, outcome, ("- " + message)[:160] if message else ""),
        flush=True,
    )


def run(argv, timeout=60.0, env=None, cwd=None):
    """(exit code, stdout, stderr, seconds); exit 124 and a note when the deadline passes."""
    t0 = time.monotonic()
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)
        return p.returncode, p.stdout, p.stderr, time.monotonic() - t0
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        return 124, out, f"timed out after {timeout}s", time.monotonic() - t0
    except OSError as e:
        return 127, "", str(e), time.monotonic() - t0


def version_key(v):
    m = re.match(r"(?:next-)?(\d+)\.(\d+)([a-z]*)", v.strip())
    return (int(m.group(1)), int(m.group(2)), m.group(3)) if m else (0, 0, "")


def check_tmux(expect):
    rc, out, err, dt = run(["tmux", "-V"], timeout=10)
    got = out.strip().replace("tmux ", "")
    if rc == 0 and got == expect:
        record("platform.tmux_version", "passed", "tmux " + got, duration_s=dt)
    else:
        record(
            "platform.tmux_version",
            "failed",
            f"expected tmux {expect}, got {got!r} {err.strip()}",
            duration_s=dt,
        )
    return got


def check_timestamps():
    """macOS-like only: is TMPDIR on a filesystem with whole-second mtimes (like HFS+)?"""
    fd, path = tempfile.mkstemp(prefix="dk-ts-")
    try:
        os.write(fd, b"x")
        os.utime(path, ns=(1700000000123456789, 1700000000123456789))
        ns = os.stat(path).st_mtime_ns
    finally:
        os.close(fd)
        os.unlink(path)
    if ns % 1000000000 == 0:
        record("platform.coarse_timestamps", "passed", "TMPDIR keeps whole-second mtimes")
    else:
        record(
            "platform.coarse_timestamps",
            "skipped",
            "TMPDIR keeps sub-second mtimes (host could not provide ext4 -I 128)",
        )


def sandbox_env():
    """A private state dir, socket and prompt file under $TMPDIR (removed by the caller)."""
    base = tempfile.mkdtemp(prefix="dk-smoke-")
    env = dict(os.environ)
    env["DISPATCH_STATE_DIR"] = os.path.join(base, "state")
    # the socket path must fit sun_path (104 bytes on macOS), so keep it short and outside TMPDIR
    env["DISPATCH_TMUX_SOCKET"] = f"/tmp/dk-{os.getuid()}-{os.path.basename(base)[-8:]}.sock"
    prompt = os.path.join(base, "prompt.txt")
    with open(prompt, "w") as f:
        f.write("smoke test prompt\n")
    return base, env, prompt


def cleanup(base, env):
    run(["tmux", "-S", env["DISPATCH_TMUX_SOCKET"], "kill-server"], timeout=10)
    try:
        os.unlink(env["DISPATCH_TMUX_SOCKET"])
    except OSError:
        pass
    shutil.rmtree(base, ignore_errors=True)


def parse_json(text):
    try:
        return json.loads(text)
    except ValueError:
        return None


def smoke(impl):
    """`capabilities --json`, then `start ... -- true` + `wait`: the contract's happy path."""
    base, env, prompt = sandbox_env()
    try:
        rc, out, err, dt = run(impl + ["capabilities", "--json"], env=env)
        doc = parse_json(out)
        if rc == 0 and isinstance(doc, dict) and str(doc.get("contract")) == "1":
            record(
                "smoke.capabilities",
                "passed",
                "{} {}".format(doc.get("implementation"), doc.get("version")),
                latency_ms=dt * 1000,
                duration_s=dt,
            )
        else:
            record(
                "smoke.capabilities",
                "failed",
                f"exit {rc}: {(err or out).strip()[-300:]}",
                duration_s=dt,
            )
            return
        argv = impl + [
            "start",
            "--json",
            "--task-id",
            "smoke-1",
            "--cwd",
            base,
            "--prompt-file",
            prompt,
            "--",
            "true",
        ]
        rc, out, err, dt = run(argv, env=env)
        doc = parse_json(out)
        if rc != 0 or not isinstance(doc, dict):
            record("smoke.start", "failed", f"exit {rc}: {(err or out).strip()[-300:]}", duration_s=dt)
            return
        record(
            "smoke.start", "passed", "state {}".format(doc.get("state")), latency_ms=dt * 1000, duration_s=dt
        )
        rc, out, err, dt = run(impl + ["wait", "--json", "smoke-1", "--timeout", "30"], env=env, timeout=60)
        doc = parse_json(out)
        state = doc.get("state") if isinstance(doc, dict) else None
        if rc == 0 and state == "succeeded":
            record(
                "smoke.wait",
                "passed",
                "succeeded, exit_code {}".format(doc.get("exit_code")),
                latency_ms=dt * 1000,
                duration_s=dt,
            )
        else:
            record(
                "smoke.wait",
                "failed",
                f"exit {rc} state {state}: {(err or out).strip()[-300:]}",
                duration_s=dt,
            )
    finally:
        cleanup(base, env)


def refusal(impl, got, floor):
    """tmux below the floor: `start` must exit 3 naming both versions and create nothing (P13)."""
    base, env, prompt = sandbox_env()
    try:
        argv = impl + [
            "start",
            "--json",
            "--task-id",
            "old-1",
            "--cwd",
            base,
            "--prompt-file",
            prompt,
            "--",
            "true",
        ]
        rc, out, err, dt = run(argv, env=env)
        text = out + err
        doc = parse_json(out)
        code = (doc or {}).get("error", {}).get("code") if isinstance(doc, dict) else None
        created = os.path.exists(env["DISPATCH_TMUX_SOCKET"])
        problems = []
        if rc != 3:
            problems.append(f"exit {rc} (want 3)")
        if got not in text or floor not in text:
            problems.append(f"message does not name both {got} and {floor}")
        if code not in (None, "tmux_too_old"):
            problems.append(f"error.code {code} (want tmux_too_old)")
        if created:
            problems.append("a tmux server/socket was created")
        if problems:
            record(
                "platform.refuses_old_tmux",
                "failed",
                "; ".join(problems) + ": " + text.strip()[-300:],
                pitfall="P13",
                level="MUST",
                duration_s=dt,
            )
        else:
            record(
                "platform.refuses_old_tmux",
                "passed",
                ((doc or {}).get("error", {}) or {}).get("message", "") or err.strip(),
                pitfall="P13",
                level="MUST",
                latency_ms=dt * 1000,
                duration_s=dt,
            )
    finally:
        cleanup(base, env)


def conformance(cmd_template, impl_str, report_dir, timeout):
    """The conformance suite, when it can run here; its rows are merged into this report."""
    out_dir = os.path.join(report_dir, "conformance")
    cmd = [a.replace("{impl}", impl_str).replace("{report}", out_dir) for a in shlex.split(cmd_template)]
    probe = run(cmd[:2] + ["--help"], timeout=60)
    if probe[0] != 0:
        record(
            "conformance.suite",
            "skipped",
            "not runnable here yet ({} --help: exit {})".format(" ".join(cmd[:2]), probe[0]),
        )
        return
    print("[{}] running: {}".format(PLATFORM, " ".join(shlex.quote(a) for a in cmd)), flush=True)
    rc, out, err, dt = run(cmd, timeout=timeout)
    path = os.path.join(out_dir, "conformance-report.json")
    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        record(
            "conformance.suite",
            "error",
            f"exit {rc}, no report ({e}): {(err or out).strip()[-300:]}",
            duration_s=dt,
        )
        return
    rows = doc.get("results", [])
    for r in rows:
        RESULTS.append(
            {
                k: r.get(k)
                for k in ("check_id", "pitfall", "level", "outcome", "latency_ms", "message", "duration_s")
            }
        )
    bad = [r["check_id"] for r in rows if r.get("outcome") in ("failed", "error")]
    record(
        "conformance.suite",
        "failed" if bad or rc not in (0, 1) else "passed",
        f"{len(rows)} checks, {len(bad)} bad, exit {rc}",
        duration_s=dt,
    )


# The generated chaos programs run under CPU hogs (2x the cores over the workers). As .ci/test does, a run
# of the whole tests/ directory runs them alone first and then the rest with them deselected: in one
# session the hogs of the worker holding a shard starve the other worker's timing-bound tests (the
# whole suite in bookworm: a known-bad's control task ended hung/heartbeat_stale beside them).
PROGRAMS = "tests/test_chaos_stateful.py::test_random_programs_pass_against_the_reference"
VALUE_OPTS = ("-k", "-m", "-p", "-n", "-o", "-c", "-W", "--deselect", "--ignore")


def split_programs(words):
    """[(row id, pytest words)]: the chaos programs first, then the rest, when `words` select tests/."""
    at = [
        i
        for i, w in enumerate(words)
        if w.rstrip("/") == "tests" and (i == 0 or words[i - 1] not in VALUE_OPTS)
    ]
    if not at:
        return [("kit.pytest", words)]
    first = [PROGRAMS if i in at else w for i, w in enumerate(words)]
    return [("kit.pytest.chaos-programs", first), ("kit.pytest", words + ["--deselect", PROGRAMS])]


def kit_tests(args, timeout, report_dir):
    """The kit's own tests (the chaos programs apart, see split_programs), each run's junit XML in the
    report dir; streamed line by line (progress), killed at the deadline."""
    import glob

    # test-file globs (tests/test_runner_*.py) expand here, as a shell would: pytest takes no globs
    words = [
        w for a in shlex.split(args) for w in (sorted(glob.glob(a)) if "*" in a and glob.glob(a) else [a])
    ]
    deadline = time.monotonic() + timeout
    for row, run_words in split_programs(words):
        if not any(w == "--junitxml" or w.startswith("--junitxml=") for w in run_words):
            name = (
                "kit-junit.xml" if row == "kit.pytest" else row.replace("kit.pytest.", "kit-junit-") + ".xml"
            )
            run_words = run_words + ["--junitxml=" + os.path.join(report_dir, name)]
        pytest_run(row, run_words, max(1.0, deadline - time.monotonic()))


def pytest_run(row, words, timeout):
    """One pytest run, recorded as `row`: passed (exit 0), skipped (5: nothing selected), else failed."""
    import threading

    cmd = [sys.executable, "-m", "pytest"] + words
    print("[{}] running: {}".format(PLATFORM, " ".join(shlex.quote(a) for a in cmd)), flush=True)
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
    timer = threading.Timer(timeout, p.kill)
    timer.start()
    lines = []
    try:
        for line in p.stdout:
            lines.append(line.rstrip("\n"))
            print("    " + lines[-1], flush=True)
        rc = p.wait()
    finally:
        timer.cancel()
    dt = time.monotonic() - t0
    lines = [ln for ln in lines if ln.strip()]
    tail = lines[-1] if lines else ""
    outcome = {0: "passed", 5: "skipped"}.get(rc, "failed")
    record(row, outcome, f"exit {rc}: {tail}", duration_s=dt)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="incontainer")
    ap.add_argument("--impl", default="dispatch")
    ap.add_argument("--expect-tmux", required=True)
    ap.add_argument("--tmux-floor", default="3.2a")
    ap.add_argument("--report", required=True)
    ap.add_argument("--pytest", default="", help="pytest arguments for the kit's tests ('' skips them)")
    ap.add_argument(
        "--conformance", default="", help="conformance command template ({impl}, {report}); '' skips"
    )
    ap.add_argument("--timeout", type=float, default=1200.0)
    a = ap.parse_args(argv)
    os.makedirs(a.report, exist_ok=True)
    t0 = time.monotonic()
    impl = shlex.split(a.impl)
    got = check_tmux(a.expect_tmux)
    if os.environ.get("DK_PROFILE") == "macos-like":
        check_timestamps()
    supported = version_key(got or a.expect_tmux) >= version_key(a.tmux_floor)
    if supported:
        smoke(impl)
        if a.conformance:
            conformance(a.conformance, a.impl, a.report, a.timeout)
        if a.pytest:
            kit_tests(a.pytest, a.timeout, a.report)
    else:
        refusal(impl, got or a.expect_tmux, a.tmux_floor)
        if a.pytest:
            record("kit.pytest", "skipped", f"tmux {got} is below the {a.tmux_floor} floor")
    doc = {
        "contract": "1",
        "implementation": {"command": a.impl},
        "platform": PLATFORM,
        "duration_s": round(time.monotonic() - t0, 3),
        "results": RESULTS,
    }
    with open(os.path.join(a.report, "conformance-report.json"), "w") as f:
        json.dump(doc, f, indent=2)
    return 1 if any(r["outcome"] in ("failed", "error") for r in RESULTS) else 0


if __name__ == "__main__":
    sys.exit(main())
