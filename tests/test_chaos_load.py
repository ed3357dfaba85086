"""Load injectors really load the machine and leave nothing behind."""

from __future__ import annotations

import time

import psutil

from faults.load import cpu_hogs, fork_burst


def _cpu_seconds(pid: int) -> float:
    t = psutil.Process(pid).cpu_times()
    return t.user + t.system


def test_cpu_hogs_burn_and_die(sandbox) -> None:
    with cpu_hogs(2, env=sandbox.env()) as hogs:
        assert len(hogs) == 2 and all(h.alive() for h in hogs)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and min(_cpu_seconds(h.pid) for h in hogs) < 0.1:
            time.sleep(0.02)
        assert min(_cpu_seconds(h.pid) for h in hogs) >= 0.1
    assert not any(h.alive() for h in hogs)
    assert sandbox.leaks() == []


def test_fork_burst_churns_pids_and_cleans_up(sandbox) -> None:
    with fork_burst(8, env=sandbox.env()) as burst:
        assert burst.driver.alive()
        # the driver blocks in wait() for each child: its voluntary context switches count its forks
        start = psutil.Process(burst.driver.pid).num_ctx_switches().voluntary
        deadline = time.monotonic() + 10
        while (
            time.monotonic() < deadline
            and psutil.Process(burst.driver.pid).num_ctx_switches().voluntary < start + 16
        ):
            time.sleep(0.02)
    assert not burst.driver.alive()
    assert burst.forks is not None and burst.forks > 8
    assert sandbox.leaks() == []


def test_fork_burst_with_held_children(sandbox) -> None:
    with fork_burst(4, hold=60, env=sandbox.env()) as burst:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(psutil.Process(burst.driver.pid).children()) < 4:
            time.sleep(0.01)
        kids = psutil.Process(burst.driver.pid).children()
        assert len(kids) == 4
    assert burst.forks == 4
    assert not any(k.is_running() and k.status() != psutil.STATUS_ZOMBIE for k in kids)
    assert sandbox.leaks() == []
