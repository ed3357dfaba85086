"""label_unchecked (P7): labels are stored without validation.

What it does wrong: ``--label`` is taken as given: newlines, escape sequences, an empty label and a
129-character one are all accepted and stored, where the contract says 1-128 printable characters and
``bad_label`` (exit 2) before anything is created. (A label with ESC in it later repaints the terminal
of whoever runs `dispatch list`.)
Caught by: P07.label.control-refused.
"""

from __future__ import annotations

from conformance.known_bad import _seam


def apply() -> None:
    from runner import validate

    validate.label = lambda value: value  # type: ignore[assignment]


def main(argv: list[str]) -> int:
    return _seam.run("label_unchecked", argv, apply)
