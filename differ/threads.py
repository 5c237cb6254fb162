"""torch threads that follow the idle cores (`torch_threads=0`, the default).

torch's CPU ops split their work statically over an OpenMP pool, and a parallel region ends only
when its slowest thread does. When another program holds one of the cores, the thread that shares
it finishes each region a scheduler time slice late, and a run of thousands of small regions a
second crawls: SMAX 3m QMIX ran at 0.25 of its speed beside one busy Python loop with 2 threads,
and at full speed with 1 (`differ bench only=busy`). So with torch_threads=0 the run reads, every
few seconds, how much CPU the rest of the machine used (Linux's /proc/stat minus this process's
own time) and uses one thread per core the others left idle, up to torch's own default (one per
physical core): both cores alone, one beside a busy program or a second run. The thread count
does not change a run's numbers on the CPUs measured (1 and 2 threads gave identical metrics);
set torch_threads=N to fix it anyway.
"""

from __future__ import annotations

import os
import time

import torch

INTERVAL_S = 2.0  # how often the idle cores are read
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


class ThreadGovernor:
    """Call `update()` between batches; it retunes torch's threads at most every INTERVAL_S."""

    def __init__(self, max_threads: int | None = None):
        self.max_threads = max(1, min(max_threads or TORCH_DEFAULT_THREADS, usable_cores()))
        self.threads = self.max_threads
        torch.set_num_threads(self.threads)
        self._last = (time.monotonic(), _machine_busy_s(), _own_cpu_s())
        self.enabled = self._last[1] is not None and self.max_threads > 1

    def update(self) -> int:
        if not self.enabled:
            return self.threads
        now = time.monotonic()
        t0, busy0, own0 = self._last
        if now - t0 < INTERVAL_S:
            return self.threads
        busy, own = _machine_busy_s(), _own_cpu_s()
        self._last = (now, busy, own)
        others = max(0.0, (busy - busy0) - (own - own0)) / (now - t0)  # cores the rest of the machine used
        idle = max(1, min(self.max_threads, round(usable_cores() - others)))  # (cores: logical CPUs)
        if idle != self.threads:
            self.threads = idle
            torch.set_num_threads(idle)
        return self.threads
