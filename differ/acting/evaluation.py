"""Greedy test episodes: the trainer's periodic tests, `differ evaluate` and the evaluation dump
all play them here, from the test seed stream."""

from __future__ import annotations

import numpy as np

from ..store.metrics import Accumulator
from .runner import Runner
from .schedules import TEST, episode_seeds


def evaluate_episodes(
    runner: Runner, seed: int, first: int, episodes: int, keep: list | None = None, per_episode: dict | None = None
) -> dict[str, float]:
    """Greedy test episodes with seeds from the test stream; returns test_* means.
    With `keep`, the episodes themselves are appended to it; with `per_episode`, each one's
    return, length and outcomes (spec.episode_stats: battle_won) are appended to its lists."""
    E = runner.env.num_envs
    acc = Accumulator()
    done = 0
    rng = np.random.default_rng(0)  # greedy discrete selection ignores it; CEM draws its samples from it
    while done < episodes:
        eps = runner.run(episode_seeds(seed, TEST, first + done, E), 0.0, rng, greedy=True)
        for ep in eps[: episodes - done]:
            values = {"return": ep.ret, "ep_length": ep.length, **ep.stats}
            acc.add(values)
            if per_episode is not None:
                for k, v in values.items():
                    if v is not None:
                        per_episode.setdefault(k, []).append(v)
            if keep is not None:
                keep.append(ep)
        done += E
    return {"test_" + k: v for k, v in acc.means().items()}
