"""Collects a synchronous batch of E episodes from a `VecEnv` with the controller.

Every copy starts an episode together; copies that finish early keep being stepped (their output
is ignored) until the last one ends. Each episode is seeded by its own integer, so a batch is a
pure function of (seeds, network, rng state): this is what makes resume exact.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..envs.base import VecEnv
from ..replay.schema import EpisodeSchema
from .controller import Controller


@dataclass
class Episode:
    """One played episode: the schema's fields (replay/schema.py; `ep.obs` [L+1, N, O],
    `ep.actions` [L, N], `ep.reward` [L], ...), how it ended, and the outcomes the env reported
    at its end (spec.episode_stats, e.g. {"battle_won": True})."""

    data: dict[str, np.ndarray]
    terminated: bool
    stats: dict[str, Any]

    def __getattr__(self, name: str) -> np.ndarray:
        try:
            return self.__dict__["data"][name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def length(self) -> int:
        return len(self.reward)

    @property
    def ret(self) -> float:
        return float(self.reward.sum())


class Runner:
    def __init__(self, env: VecEnv, controller: Controller):
        self.env, self.controller = env, controller
        self.schema = EpisodeSchema(env.spec)
        self._buf = self.schema.padded(env.num_envs, env.spec.episode_limit)

    def _record(self, t: int, o) -> None:
        b = self._buf
        b["obs"][:, t], b["state"][:, t], b["avail"][:, t], b["alive"][:, t] = o.obs, o.state, o.avail, o.alive

    def run(self, seeds, epsilon: float, rng: np.random.Generator, greedy: bool = False, clock=None) -> list[Episode]:
        """With `clock` (a PhaseClock), the time goes to collect_act, collect_env and collect_other."""
        env, E, b = self.env, self.env.num_envs, self._buf
        t0 = t_start = time.perf_counter()
        o = env.reset(seeds)
        act_s, env_s = 0.0, time.perf_counter() - t0
        self._record(0, o)
        self.controller.start(E)
        lengths = np.zeros(E, np.int64)
        done = np.zeros(E, bool)
        terminated = np.zeros(E, bool)
        outcome = {k: [None] * E for k in env.spec.episode_stats}
        t = 0
        while not done.all():
            t0 = time.perf_counter()
            actions = self.controller.act(o.obs, o.avail, epsilon, rng, greedy)
            t1 = time.perf_counter()
            res = env.step(actions)
            act_s, env_s = act_s + t1 - t0, env_s + time.perf_counter() - t1
            o = res.next
            b["actions"][:, t], b["reward"][:, t] = actions, res.reward
            self._record(t + 1, o)
            t += 1
            ended = ~done & (res.terminated | res.truncated)
            lengths[ended] = t
            terminated[ended] = res.terminated[ended]
            for k in outcome.keys() & res.stats.keys():
                for e in np.flatnonzero(ended):
                    outcome[k][e] = res.stats[k][e].item()
            done |= ended
        if clock is not None:
            clock.add("collect_act", act_s)
            clock.add("collect_env", env_s)
        episodes = [
            Episode(
                {fl.name: b[fl.name][e, : self.schema.rows(fl, lengths[e])].copy() for fl in self.schema.fields},
                bool(terminated[e]),
                {k: v[e] for k, v in outcome.items()},
            )
            for e in range(E)
        ]
        if clock is not None:
            clock.add("collect_other", time.perf_counter() - t_start - act_s - env_s)
        return episodes
