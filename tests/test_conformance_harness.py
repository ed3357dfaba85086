"""The harness's one process runner: a call never outlives its limit, whatever the implementation does."""

from __future__ import annotations

import time

from conformance.harness import Impl
from conformance.isolation import kill_marked


def test_call_returns_at_its_limit_when_a_daemon_holds_the_output(sandbox):
    """A tmux client hands its stdio to the server; if the server is frozen the pipe never closes.

    Here a daemon in its own session (outside the killed process group) keeps stdout open.
    """
    script = sandbox.workdir / "holder.sh"
    script.write_text("#!/bin/sh\nsetsid sleep 60 &\nsleep 60\n")
    script.chmod(0o755)
    impl = Impl(str(script), env=sandbox.env())
    t0 = time.monotonic()
    call = impl.run("status", json_out=False, timeout=1.0, strict=False)
    took = time.monotonic() - t0
    kill_marked(sandbox.marker)  # the escaped daemon, by identity
    assert call.timed_out
    assert took < 1.0 + 2.0 + 1.5, f"the call took {took:.1f}s with a 1 s limit"
