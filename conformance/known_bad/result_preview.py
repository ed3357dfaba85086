"""result_preview (P5): the result is stored as a display preview, not verbatim.

What it does wrong: before recording the parsed result, the supervisor shortens every string in it to
200 characters (the preview a status table shows), so `status` reports a document that differs from
what the agent wrote. The contract reports a complete result verbatim.
Caught by: P05.result.complete.
"""

from __future__ import annotations

from typing import Any

from conformance.known_bad import _seam

PREVIEW = 200


def preview(value: Any) -> Any:
    """Strings cut to PREVIEW characters, recursively (the lossy step)."""
    if isinstance(value, str):
        return value[:PREVIEW]
    if isinstance(value, list):
        return [preview(v) for v in value]
    if isinstance(value, dict):
        return {k: preview(v) for k, v in value.items()}
    return value


def pane_apply() -> None:
    from runner.wrapper import Wrapper

    def finish(orig: Any, self: Wrapper, *a: Any, **fields: Any) -> None:
        if fields.get("result") is not None:
            fields["result"] = preview(fields["result"])
        orig(self, *a, **fields)

    _seam.wrap(Wrapper, "finish", finish)


def main(argv: list[str]) -> int:
    return _seam.run("result_preview", argv, None, pane_apply)
