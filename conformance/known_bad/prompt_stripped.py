"""prompt_stripped (P8): the prompt copy is "cleaned up": read as text and stripped of surrounding whitespace.

What it does wrong: the private prompt copy is made with ``text = open(f).read().strip()`` and written
back, instead of copying the bytes. Leading/trailing newlines, tabs and the control bytes Python counts
as whitespace are lost, and bytes that are not UTF-8 are replaced: the agent does not get the prompt
byte for byte.
Caught by: P08.prompt.byte-for-byte.
"""

from __future__ import annotations

import os
from typing import Any

from conformance.known_bad import _seam


def apply() -> None:
    from runner import tasks

    def copy_private(orig: Any, src: Any, dst: Any, *a: Any, **kw: Any) -> Any:
        with open(src, encoding="utf-8", errors="replace") as f:
            text = f.read().strip()  # the flaw
        fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            return f.write(text)

    _seam.wrap(tasks, "copy_private", copy_private)


def main(argv: list[str]) -> int:
    return _seam.run("prompt_stripped", argv, apply)
