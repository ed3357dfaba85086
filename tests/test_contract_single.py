"""The contract's words are defined once, in runner/contract.py: this reads every module of ours (AST, not
imports, so a copy in a function or a test helper is found too) and fails on a second definition of the
state set, the error type, the knobs, the tmux floor, the reference command or the contract client.
Known-bads and implementations/ are other people's dispatchers written from scratch: not ours to share."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from runner import contract

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("runner", "conformance", "chaos", "faults", "bench", "containers", "fake_agents")
SKIP = ("conformance/known_bad/",)
HOME = "runner/contract.py"


def modules() -> list[tuple[str, ast.Module]]:
    out = []
    for pkg in PACKAGES:
        for f in sorted((REPO / pkg).rglob("*.py")):
            rel = f.relative_to(REPO).as_posix()
            if not rel.startswith(SKIP):
                out.append((rel, ast.parse(f.read_text(), rel)))
    return out


MODULES = modules()


def _strings(node: ast.AST) -> set[str]:
    elts = getattr(node, "elts", None) or getattr(node, "keys", None) or []
    return {e.value for e in elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}


def where(pred) -> list[str]:  # noqa: ANN001
    return [f"{rel}:{n.lineno}" for rel, tree in MODULES if rel != HOME for n in ast.walk(tree) if pred(n)]


def test_one_state_set() -> None:
    states = set(contract.STATES)
    hits = where(lambda n: isinstance(n, (ast.Set, ast.List, ast.Tuple)) and len(_strings(n) & states) >= 4)
    assert hits == [], f"a state set written again (import runner.contract.STATES/TERMINAL/LIVE): {hits}"


def test_one_error_type() -> None:
    def sets_exit_status(n: ast.AST) -> bool:
        return (
            isinstance(n, ast.Attribute)
            and n.attr == "exit_status"
            and isinstance(n.ctx, ast.Store)
            and (isinstance(n.value, ast.Name) and n.value.id == "self")
        )

    def error_doc(n: ast.AST) -> bool:
        return (
            isinstance(n, ast.Dict)
            and "error" in _strings(n)
            and any(isinstance(v, ast.Dict) and {"code", "message"} <= _strings(v) for v in n.values)
        )

    hits = where(sets_exit_status) + where(error_doc)
    assert hits == [], (
        f"a second (code, message, exit) error type; raise runner.contract.DispatchError: {hits}"
    )


def test_one_knobs_and_env_mapping() -> None:
    def own_knobs(n: ast.AST) -> bool:  # a Knobs class that does not extend contract.Knobs
        return isinstance(n, ast.ClassDef) and n.name.endswith("Knobs") and not n.bases

    def env_mapping(n: ast.AST) -> bool:
        return isinstance(n, ast.Dict) and {"DISPATCH_STALE_AFTER_S", "DISPATCH_GRACE_S",
                                            "DISPATCH_MAX_LIFETIME_S"} <= _strings(n)  # fmt: skip

    hits = where(own_knobs) + where(env_mapping)
    assert hits == [], f"knobs defined again (use or extend runner.contract.Knobs): {hits}"


def test_one_tmux_floor() -> None:
    def floor(n: ast.AST) -> bool:
        return (
            isinstance(n, ast.Assign)
            and isinstance(n.value, ast.Constant)
            and n.value.value == contract.TMUX_MIN_VERSION
        )

    assert where(floor) == [], "the tmux floor assigned again (runner.contract.TMUX_MIN_VERSION)"


def test_one_reference_command_and_one_client() -> None:
    def runs_reference(n: ast.AST) -> bool:
        return (
            isinstance(n, (ast.List, ast.JoinedStr, ast.Constant))
            and "runner.cli"
            in (
                _strings(n)
                | ({n.value} if isinstance(n, ast.Constant) and isinstance(n.value, str) else set())
                | {
                    v.value
                    for v in getattr(n, "values", [])
                    if isinstance(v, ast.Constant) and isinstance(v.value, str)
                }
            )
            and not isinstance(n, ast.Constant)
            or (
                isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value.endswith("-m runner.cli")
            )
        )

    def popen_with_process_group(n: ast.AST) -> bool:  # the client's signature move: its own group + killpg
        return isinstance(n, ast.Attribute) and n.attr == "killpg"

    hits = where(runs_reference)
    assert hits == [], f"the reference command written again (runner.contract.reference_command): {hits}"
    clients = [
        h
        for h in where(popen_with_process_group)
        if h.split(":")[0].startswith(("conformance", "chaos", "bench", "runner/agents"))
    ]
    assert clients == [], (
        f"a second contract client (use runner.contract.invoke or conformance.harness.Impl): {clients}"
    )


@pytest.mark.parametrize("state", ["needs_input", "succeeded", "timed_out"])
def test_the_states_come_from_the_schema(state: str) -> None:
    assert state in contract.STATES and contract.LIVE | contract.TERMINAL == set(contract.STATES)
