"""Races between concurrent `start`s and a tmux server that exits after its last session (P7, P14)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from test_runner_support import dispatch


def test_starts_survive_a_server_exiting_under_them(sandbox):
    """Short tasks keep the server exiting; a start that reaches the dying server must retry, not fail.

    Before the fix about 1 start in 160 failed with `tmux_unreachable: server exited unexpectedly`.
    """
    prompt = sandbox.workdir / "p"
    prompt.write_text("p")

    def one(i: int) -> tuple[int, str]:
        r = dispatch(
            sandbox,
            "start",
            "--task-id",
            f"t{i}",
            "--cwd",
            str(sandbox.workdir),
            "--prompt-file",
            str(prompt),
            "--",
            "true",
        )
        return r.rc, r.err.strip()

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(one, range(60)))
    failures = [err for rc, err in results if rc != 0]
    assert not failures, f"{len(failures)} of 60 starts failed: {failures[:3]}"
    for i in range(60):
        assert dispatch(sandbox, "wait", f"t{i}", "--timeout", "20").doc["state"] == "succeeded"
