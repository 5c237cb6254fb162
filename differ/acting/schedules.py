"""Schedules and seed streams of a run, as pure functions of the step or episode count."""

from __future__ import annotations

import numpy as np

TRAIN, TEST = 0, 1  # seed streams: training and test episodes never share a seed
# `differ evaluate` and videos draw their test-stream episodes from here on, apart
# from the ones a run's own evaluations use (test_episodes per evaluation, counted from 0)
EVALUATION_FIRST_EPISODE = 10**9


def episode_seeds(seed: int, stream: int, first: int, count: int) -> list[int]:
    """Independent, reproducible seeds for episodes first..first+count-1 of a stream."""
    return [
        int(np.random.SeedSequence([seed, stream, i]).generate_state(1)[0] % (2**31))
        for i in range(first, first + count)
    ]


def linear(start: float, finish: float, steps: int, t: int) -> float:
    """start -> finish linearly over `steps`, then finish (ε's schedule)."""
    return finish if t >= steps else start + (finish - start) * t / steps
