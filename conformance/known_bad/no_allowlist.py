"""no_allowlist (P15): the model is not checked against DISPATCH_MODELS.

What it does wrong: ``validate.model`` keeps the plain-token syntax check but ignores the allowlist, so
``--model gpt-banned`` with ``DISPATCH_MODELS=opus,sonnet`` starts a task instead of refusing with
exit 2 ``model_not_allowed`` before anything is created.
Caught by: the P15 model-allowlist checks (see KNOWN_BAD["no_allowlist"].checks).
"""

from __future__ import annotations

from collections.abc import Sequence

from conformance.known_bad import _seam


def apply() -> None:
    from runner import validate

    def model(orig, value: str | None, allowlist: Sequence[str] | None) -> str | None:
        return orig(value, None)  # syntax only: the allowlist is never consulted

    _seam.wrap(validate, "model", model)


def main(argv: list[str]) -> int:
    return _seam.run("no_allowlist", argv, apply)
