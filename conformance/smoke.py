"""`dispatch conformance smoke --impl X`: does the harness/adapter speak the contract at all? (seconds)

Like Bowtie's ``smoke``, this separates two failures a full run would blur: an *adapter* that does not
speak contract v1 (a verb missing, stdout not one JSON document, a document off its schema, a wrong
exit code for bad input) and an *implementation* that speaks it but does the wrong thing (a trivial
task that never ends or ends in the wrong state). Every probe is one real call in a private sandbox.

Exit status: 0 both layers fine, 1 the implementation fails (the adapter speaks the contract),
3 the adapter does not speak the contract, 2 bad usage.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from conformance.harness import TERMINAL, Call, Impl, ImplUnavailable
from conformance.isolation import Sandbox

ADAPTER, IMPLEMENTATION = "adapter", "implementation"
EXIT_OK, EXIT_IMPL, EXIT_USAGE, EXIT_ADAPTER = 0, 1, 2, 3
CALL_LIMIT = 20.0  # one call; a loaded 2-core machine starts a Python adapter in well under this
WAIT_S = 20.0
# verbs that take a task id: an unknown one must be refused with exit 2 (unknown_task or not_supported)
ID_VERBS = ("status", "wait", "stop", "logs", "events")


@dataclass
class Probe:
    """One smoke probe: which layer it judges, whether it held, and the cause in one line."""

    name: str
    layer: str
    ok: bool
    detail: str = ""


@dataclass
class SmokeResult:
    impl: str
    command: str
    probes: list[Probe] = field(default_factory=list)
    capabilities: dict[str, Any] = field(default_factory=dict)

    @property
    def adapter_ok(self) -> bool:
        return all(p.ok for p in self.probes if p.layer == ADAPTER)

    @property
    def implementation_ok(self) -> bool:
        return self.adapter_ok and all(p.ok for p in self.probes if p.layer == IMPLEMENTATION)

    @property
    def exit_status(self) -> int:
        if not self.adapter_ok:
            return EXIT_ADAPTER
        return EXIT_OK if self.implementation_ok else EXIT_IMPL

    @property
    def verdict(self) -> str:
        if not self.adapter_ok:
            return "adapter does not speak the contract"
        return "ok" if self.implementation_ok else "implementation fails a smoke check"

    def to_dict(self) -> dict[str, Any]:
        return {
            "impl": self.impl,
            "command": self.command,
            "verdict": self.verdict,
            "adapter_ok": self.adapter_ok,
            "implementation_ok": self.implementation_ok,
            "capabilities": self.capabilities,
            "probes": [asdict(p) for p in self.probes],
        }

    def lines(self) -> list[str]:
        out = [f"smoke {self.impl}: {self.verdict}"]
        for p in self.probes:
            mark = "ok  " if p.ok else "FAIL"
            out.append(f"  {mark} [{p.layer}] {p.name}" + (f": {p.detail}" if p.detail else ""))
        return out


def _speaks(call: Call, *, exits: Sequence[int]) -> str | None:
    """Why ``call`` is not a contract answer (None when it is): limit, one JSON document, schema, exit."""
    if call.timed_out:
        return f"`{call.verb}` did not answer within {CALL_LIMIT:g}s"
    if call.problem:
        return f"`{call.verb}`: {call.problem}"
    if call.exit_code not in exits:
        return f"`{call.verb}` exited {call.exit_code}, expected {' or '.join(map(str, exits))}: {call.describe()}"
    return None


def _refusal_calls(impl: Impl, caps: set[str]) -> list[tuple[str, Callable[[], Call], tuple[int, ...]]]:
    """(probe name, the call, the exits that speak the contract) for every bad-input probe."""

    def call(*words: str) -> Callable[[], Call]:
        return lambda: impl.run(*words, strict=False, timeout=CALL_LIMIT)

    probes = [
        ("unknown verb is refused (exit 2, error document)", call("no-such-verb"), (2,)),
        ("start without arguments is refused (exit 2)", call("start"), (2,)),
        ("`list` answers a list document", call("list"), (0,)),
        ("`reap` answers or says not_supported", call("reap"), (0,) if "reap" in caps else (0, 2)),
    ]
    for verb in ID_VERBS:
        probes.append(
            (f"`{verb}` exists and refuses an unknown task", call(verb, "smoke-no-such-task"), (2,))
        )
    return probes


def _refusal_probe(name: str, call: Call, exits: tuple[int, ...]) -> Probe:
    why = _speaks(call, exits=exits)
    if why is None and call.exit_code == 2 and call.error_code == "bad_usage" and "exists" in name:
        why = f"`{call.verb}` is not understood (bad_usage): {call.describe()}"
    return Probe(name, ADAPTER, why is None, why or "")


def _task_probes(impl: Impl, task_id: str, code: int, want: str) -> list[Probe]:
    """Start `exit CODE`, wait for it: adapter probes for the documents, implementation probes for the end."""
    argv = [sys.executable, "-c", f"raise SystemExit({code})"]
    call = impl.start_call(task_id, argv, strict=False, timeout=CALL_LIMIT)
    why = _speaks(call, exits=(0,))
    out = [Probe(f"`start` of `exit {code}` answers a start document", ADAPTER, why is None, why or "")]
    if why:
        return out
    call = impl.run("wait", task_id, "--timeout", f"{WAIT_S:g}", strict=False, timeout=WAIT_S + CALL_LIMIT)
    why = _speaks(call, exits=(0, 124))
    out.append(Probe("`wait` on it answers a task document", ADAPTER, why is None, why or ""))
    if why:
        return out
    doc = call.doc
    ended = call.exit_code == 0 and doc.get("state") in TERMINAL
    why = None if ended else f"still {doc.get('state')!r} after wait --timeout {WAIT_S:g}"
    out.append(
        Probe(f"a task running `exit {code}` ends within {WAIT_S:g}s", IMPLEMENTATION, ended, why or "")
    )
    if ended:
        got = (doc.get("state"), doc.get("exit_code"))
        why = (
            None
            if got == (want, code)
            else f"ended {got[0]!r} with exit_code {got[1]!r} (reason {doc.get('reason')!r})"
        )
        out.append(Probe(f"it ends {want!r} with exit_code {code}", IMPLEMENTATION, why is None, why or ""))
    return out


def smoke(impl_label: str, command: str, on_probe: Callable[[Probe], None] | None = None) -> SmokeResult:
    """Run every probe against ``command`` in a fresh sandbox; nothing of it is left afterwards."""
    result = SmokeResult(impl_label, command)
    sb = Sandbox.create(prefix="dks-")
    try:
        impl = Impl(command, sb.env(), timeout=CALL_LIMIT, scratch=sb.root / "inputs", workdir=sb.workdir)
        call = impl.run("capabilities", strict=False, timeout=CALL_LIMIT)
        why = _speaks(call, exits=(0,))
        result.probes.append(
            Probe("`capabilities` answers a capabilities document", ADAPTER, why is None, why or "")
        )
        if why:
            return result
        result.capabilities = call.doc
        caps = set(call.doc.get("capabilities") or [])
        # independent probes run side by side: the smoke stays seconds long on a loaded machine
        with ThreadPoolExecutor(max_workers=4) as pool:
            refusals = [(n, pool.submit(f), ex) for n, f, ex in _refusal_calls(impl, caps)]
            tasks = [
                pool.submit(_task_probes, impl, *t)
                for t in (("smoke-ok", 0, "succeeded"), ("smoke-fail", 3, "failed"))
            ]
            result.probes += [_refusal_probe(n, fut.result(), ex) for n, fut, ex in refusals]
            for fut in tasks:
                result.probes += fut.result()
    except ImplUnavailable as e:
        result.probes.append(Probe("the command can be run", ADAPTER, False, str(e)))
    finally:
        _end(sb)
    return result


def _end(sb: Sandbox) -> None:
    """End the sandbox's tmux server and every process marked with its run id; remove it."""
    if sb.socket.exists():
        from runner.tmux import Tmux, TmuxTimeout

        try:
            Tmux(socket_path=str(sb.socket), timeout=3).run("kill-server", check=False)
        except TmuxTimeout:
            pass  # frozen: cleanup() ends it by marker
    sb.cleanup()


def main(argv: Sequence[str] | None = None, prog: str = "dispatch conformance smoke") -> int:
    import argparse

    p = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    p.add_argument(
        "--impl", default=None, help="a peer name (see implementations/), `reference`, or a command"
    )
    p.add_argument("--json", action="store_true", help="print the result as one JSON document")
    p.add_argument("--report", default=None, metavar="DIR", help="also write DIR/smoke.json")
    try:
        o = p.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as e:
        return EXIT_USAGE if e.code else EXIT_OK
    from implementations.install import InstallError, resolve

    try:
        label, command = resolve(o.impl)
    except InstallError as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return EXIT_ADAPTER
    result = smoke(label, command)
    if o.report:
        Path(o.report).mkdir(parents=True, exist_ok=True)
        (Path(o.report) / "smoke.json").write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    print(json.dumps(result.to_dict()) if o.json else "\n".join(result.lines()))
    return result.exit_status


if __name__ == "__main__":
    raise SystemExit(main())
