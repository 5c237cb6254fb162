"""torch threads for the cores the rest of the machine leaves idle (`torch_threads=0`; the default is 1).

torch's CPU ops split their work statically over an OpenMP pool, and a parallel region ends only
when its slowest thread does. When another program holds one of the cores, the thread that shares
it finishes each region a scheduler time slice late, and a run of thousands of small regions a
second crawls: SMAX 3m QMIX ran at 0.22-0.25 of its speed beside one busy Python loop with 2
threads, and at full speed with 1 (`differ bench only=busy`). So with torch_threads=0 a run
starting reads for half a second how much CPU the rest of the machine uses (Linux's /proc/stat
minus this process's own time) and takes one thread per core left idle, up to torch's own
default (one per physical core): both cores alone, one beside a busy program or a second run.

The count is fixed for the rest of the run and saved in its config.yaml: the thread count
changes the float rounding of torch's parallel reductions (an LBF QMIX-DIFFER run logged
different last digits with 1 and 2 threads), so a count that followed the load while the run
lasts would make the numbers, and every resume, depend on what else the machine was doing. A
program that starts after the run does is therefore not followed, nor are the run's own env
worker processes (env.options.workers), which are idle when the count is taken. For the same reason the default
is one thread: the same command then gives the same numbers whatever else the machine is doing,
and a busy machine costs a run little (at 1 thread SMAX 3m QMIX kept 0.98 of its speed beside a
busy program). Two runs side by side with one thread each also beat one run with two threads on
2 cores (docs/speed.md), which is how `differ sweep` runs.
"""

from __future__ import annotations

import contextlib
import os
import time

import torch

# torch's own choice at import (one per physical core, not per hyperthread): the most a run uses
TORCH_DEFAULT_THREADS = torch.get_num_threads()


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _machine_busy_s() -> float | None:
    """CPU seconds all processes have spent busy since boot, from /proc/stat (None elsewhere)."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()[1:]
    except OSError:
        return None
    ticks = [int(x) for x in fields[:8]]
    busy = sum(ticks) - ticks[3] - ticks[4]  # all but idle and iowait
    return busy / os.sysconf("SC_CLK_TCK")


def _own_cpu_s() -> float:
    t = os.times()
    return t.user + t.system


def idle_threads(window_s: float = 0.5, max_threads: int | None = None) -> int:
    """One torch thread per core the rest of the machine left idle over the last `window_s`
    seconds, at least 1 and at most torch's default; torch's default where /proc/stat is missing."""
    cap = max(1, min(max_threads or TORCH_DEFAULT_THREADS, usable_cores()))
    t0, busy0, own0 = time.monotonic(), _machine_busy_s(), _own_cpu_s()
    if busy0 is None or cap == 1:
        return cap
    time.sleep(window_s)
    busy, own, dt = _machine_busy_s(), _own_cpu_s(), time.monotonic() - t0
    others = max(0.0, (busy - busy0) - (own - own0)) / dt  # cores the rest of the machine used
    return max(1, min(cap, round(usable_cores() - others)))  # (cores: logical CPUs)


@contextlib.contextmanager
def kept_thread_count():
    """Give torch's thread count back when the block ends (a Trainer sets the process's count;
    a benchmark that builds several in one process measures each with its own)."""
    threads = torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads(threads)
