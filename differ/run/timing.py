"""Where a run's time goes: seconds per phase of the run loop, summed over its sessions and kept
in the checkpoint's counters, reported in result.json (`time_s`) and by `differ bench
only=profile`. A phase costs two clock reads (under a microsecond), so it is always on.

Phases: collect_act (the agent network choosing actions while collecting), collect_env (the env
stepping, resets included), collect_other (the runner's bookkeeping: recording steps, cutting
episodes), store (episodes into the buffer), sample (a mini-batch out of it, onto the device),
learn (the training steps), targets (target-network updates), test (the greedy test episodes,
all of it), log, checkpoint (replay chunks and the checkpoint file).
"""

from __future__ import annotations

import time
from contextlib import contextmanager

PHASES = (
    "collect_act",
    "collect_env",
    "collect_other",
    "store",
    "sample",
    "learn",
    "targets",
    "test",
    "log",
    "checkpoint",
)


class PhaseClock:
    def __init__(self, seconds: dict | None = None):
        self.seconds: dict[str, float] = {p: 0.0 for p in PHASES}
        self.seconds.update(seconds or {})

    def add(self, phase: str, dt: float) -> None:
        self.seconds[phase] = self.seconds.get(phase, 0.0) + dt

    @contextmanager
    def phase(self, name: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - t0)

    def split(self, env_steps: int, wall_s: float) -> dict:
        """{phase: {"s", "ms_per_env_step", "share"}} and what no phase covers ("rest")."""
        out = {}
        covered = sum(self.seconds.values())
        for name, s in [*self.seconds.items(), ("rest", max(0.0, wall_s - covered))]:
            out[name] = {
                "s": round(s, 4),
                "ms_per_env_step": round(1000 * s / max(env_steps, 1), 4),
                "share": round(s / wall_s, 4) if wall_s > 0 else 0.0,
            }
        return out
