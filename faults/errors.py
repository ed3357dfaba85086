"""The one exception every injector raises when it cannot apply its fault here."""

from __future__ import annotations

try:  # A pytest Skipped, so raising it inside a test reports "skipped: <reason>" with no extra glue.
    from _pytest.outcomes import Skipped as _Base
except ImportError:  # pragma: no cover - pytest absent: a plain exception
    _Base = Exception  # type: ignore[assignment,misc]


class Unsupported(_Base):  # type: ignore[misc,valid-type]
    """The fault cannot be injected here (no privileges, missing tool, wrong OS); nothing was applied.

    With pytest installed this is a ``BaseException`` (pytest's skip outcome): catch it by name,
    ``except faults.Unsupported``, not with ``except Exception``.
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason
        if _Base is Exception:
            super().__init__(reason)
        else:
            super().__init__(msg=reason, pytrace=False, allow_module_level=True)

    def __str__(self) -> str:
        return self.reason
