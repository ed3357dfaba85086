"""Layers import only downward: contract + gateways -> runner core -> agents -> faults -> conformance ->
chaos, bench, containers. Read from the source (AST), function-local imports included, so a cycle
cannot hide in a late import. Same layer is fine; fake_agents (the agent look-alikes) import nothing
of ours and may be imported by anyone above the core."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# lowest first; a module's layer is its longest matching prefix
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "contract",
        (
            "runner.contract",
            "runner.tmux",
            "runner.procid",
            "runner.atomicio",
            "runner.clock",
            "runner.output",
            "runner.faultpoint",
            "runner.errors",
            "runner",
        ),
    ),  # fmt: skip
    (
        "core",
        (
            "runner.config",
            "runner.store",
            "runner.states",
            "runner.validate",
            "runner.tasks",
            "runner.wrapper",
            "runner.recorder",
            "runner.reaper",
            "runner.logpipe",
        ),
    ),  # fmt: skip
    (
        "agents",
        ("runner.agents", "runner.queue", "runner.queue_pg", "runner.doctor", "runner.cli", "fake_agents"),
    ),  # fmt: skip
    ("faults", ("faults", "implementations")),  # injectors and the third-party dispatchers under test
    ("conformance", ("conformance",)),
    ("top", ("chaos", "bench", "containers")),
]
RANK = {prefix: i for i, (_, prefixes) in enumerate(LAYERS) for prefix in prefixes}
# Edges the layering allows but the design does not: the supervisor's halves stay independent.
FORBIDDEN = [("runner.reaper", "runner.wrapper")]


def layer(mod: str) -> int | None:
    best = None
    for prefix in RANK:
        if (mod == prefix or mod.startswith(prefix + ".")) and (best is None or len(prefix) > len(best)):
            best = prefix
    return None if best is None else RANK[best]


def module_name(f: Path) -> str:
    parts = list(f.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(f: Path, mod: str) -> list[tuple[str, int]]:
    tree = ast.parse(f.read_text(), str(f))
    pkg = mod if f.name == "__init__.py" else mod.rpartition(".")[0]
    out = []
    for n in ast.walk(tree):
        if isinstance(n, ast.Import):
            out += [(a.name, n.lineno) for a in n.names]
        elif isinstance(n, ast.ImportFrom):
            base = n.module or ""
            if n.level:
                up = pkg.split(".")[: len(pkg.split(".")) - (n.level - 1)]
                base = ".".join([*up, base] if base else up)
            out += [(f"{base}.{a.name}" if layer(f"{base}.{a.name}") is not None and n.module is None else base,
                     n.lineno) for a in n.names]  # fmt: skip
    return out


def edges() -> list[tuple[str, str, str]]:
    """(module, imported, where) for every import of ours."""
    out = []
    for pkg in (
        "runner",
        "faults",
        "implementations",
        "conformance",
        "chaos",
        "bench",
        "containers",
        "fake_agents",
    ):
        for f in sorted((REPO / pkg).rglob("*.py")):
            if "known_bad" in f.parts:  # other dispatchers' shapes, run as programs
                continue
            mod = module_name(f)
            for target, line in imports(f, mod):
                if layer(target) is not None:
                    out.append((mod, target, f"{f.relative_to(REPO)}:{line}"))
    return out


EDGES = edges()


def test_layers_import_only_downward() -> None:
    up = [f"{where}: {mod} ({LAYERS[layer(mod)][0]}) imports {t} ({LAYERS[layer(t)][0]})"  # type: ignore[index]
          for mod, t, where in EDGES if layer(mod) is not None and layer(t) > layer(mod)]  # type: ignore[operator]  # fmt: skip
    assert up == [], "upward imports:\n" + "\n".join(up)


def test_fake_agents_import_nothing_of_ours() -> None:
    bad = [w for mod, t, w in EDGES if mod.startswith("fake_agents") and not t.startswith("fake_agents")]
    assert bad == [], bad


def test_forbidden_edges() -> None:
    bad = [w for mod, t, w in EDGES for a, b in FORBIDDEN if mod == a and (t == b or t.startswith(b + "."))]
    assert bad == [], f"the reaper must not import the wrapper (move what both need lower): {bad}"


def test_the_scan_sees_function_local_imports() -> None:
    """The check can fail: a late import inside a function is an edge too."""
    src = "def f():\n    from conformance.harness import Impl\n"
    p = REPO / "runner" / "__probe_import_direction__.py"
    try:
        p.write_text(src)
        assert ("conformance.harness", 2) in imports(p, "runner.__probe_import_direction__")
    finally:
        p.unlink()
