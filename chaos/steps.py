"""What a chaos program is made of: named steps (operations and faults), each one function in a registry.

A step is ``fn(world, **args)`` registered under its rule name with the config entry that enables it
(``ChaosConfig.ops`` for operations, ``ChaosConfig.faults`` for faults) and a spec of what a program
draws for each argument. :func:`chaos.stateful.machine_for` turns every enabled step into a Hypothesis
rule (named after it: Hypothesis orders rules by name, so draws stay stable) and
:meth:`chaos.stateful.World.call` runs it by name, which is also how a saved replay runs it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

TASK = "task"  # a task the program already started (the Hypothesis bundle)
BEHAVIOUR = "behaviour"  # one of the config's behaviours
BOOL = "bool"  # True or False
# any other spec: a range draws an integer in it, a tuple one of its values


@dataclass(frozen=True)
class Step:
    """One registered step: its rule name, the config entry enabling it, the function, its draws."""

    name: str
    group: str
    fn: Callable[..., Any]
    args: dict[str, Any] = field(default_factory=dict)
    new_task: bool = False  # returns a task name (the bundle grows; needs room for one more task)


def registrar(table: dict[str, Step]) -> Callable[..., Callable[[Callable[..., Any]], Callable[..., Any]]]:
    """A decorator factory registering steps into TABLE: ``@reg(name, group=None, new_task=False, **args)``."""

    def reg(
        name: str, group: str | None = None, *, new_task: bool = False, **args: Any
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def register(fn: Callable[..., Any]) -> Callable[..., Any]:
            table[name] = Step(name, group or name, fn, dict(args), new_task)
            return fn

        return register

    return reg


def groups(table: dict[str, Step]) -> tuple[str, ...]:
    """The config entries TABLE's steps answer to, in registration order."""
    return tuple(dict.fromkeys(s.group for s in table.values()))


def enabled(table: dict[str, Step], allowed: tuple[str, ...]) -> list[Step]:
    """TABLE's steps whose group is in ALLOWED."""
    return [s for s in table.values() if s.group in allowed]


def strategy(spec: Any, tasks: Any, behaviours: tuple[str, ...]) -> Any:
    """The Hypothesis strategy of an argument spec (TASKS: the program's task bundle)."""
    from hypothesis import strategies as st

    if spec == TASK:
        return tasks
    if spec == BEHAVIOUR:
        return st.sampled_from(behaviours)
    if spec == BOOL:
        return st.booleans()
    if isinstance(spec, range):
        return st.integers(spec.start, spec.stop - 1)
    return st.sampled_from(spec)
