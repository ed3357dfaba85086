"""Every conformance check is named by at least one known-bad's measured ``checks`` (static, fast).

A check that no known-bad fails is a check nobody has seen fail: it might pass against anything. The
measurement itself (each known-bad fails its checks, the reference passes them) is
tests/test_known_bad_caught.py; this test only keeps the registry and the known-bad table in step.
"""

from __future__ import annotations

import importlib
import pkgutil

import conformance.checks
from conformance.known_bad import KNOWN_BAD
from conformance.registry import REGISTRY


def all_check_ids() -> set[str]:
    """Import every check module so the registry is complete, then return its ids."""
    for mod in pkgutil.iter_modules(conformance.checks.__path__):
        importlib.import_module(f"conformance.checks.{mod.name}")
    return set(REGISTRY)


def covers(named: str, check_id: str) -> bool:
    """A known-bad naming a check's id, or one of its parametrized variants, covers that check."""
    return named == check_id or named.startswith(check_id + ".")


def test_every_check_has_a_known_bad() -> None:
    ids = all_check_ids()
    assert len(ids) >= 40, f"only {len(ids)} checks registered: check modules not imported?"
    named = [c for k in KNOWN_BAD.values() for c in k.checks]
    uncaught = sorted(cid for cid in ids if not any(covers(n, cid) for n in named))
    assert not uncaught, f"checks no known-bad is measured to fail: {uncaught}"


def test_known_bads_name_only_real_checks() -> None:
    ids = all_check_ids()
    for k in KNOWN_BAD.values():
        for c in k.checks:
            assert any(covers(c, cid) for cid in ids), f"{k.name} names unknown check {c!r}"


def test_every_python_known_bad_has_its_module() -> None:
    for k in KNOWN_BAD.values():
        if k.impl[:1] == ["bash"] or k.pitfall == "crafted":  # crafted: tests/test_known_bad_crafted.py
            continue
        mod = importlib.import_module(f"conformance.known_bad.{k.name}")
        assert callable(getattr(mod, "main", None)), f"{k.name} has no main(argv)"
        assert mod.__doc__ and "What it does wrong" in mod.__doc__, f"{k.name}: docstring must say its flaw"
