"""Collects a synchronous batch of E episodes from a `VecEnv` with the controller.

Every copy starts an episode together; copies that finish early keep being stepped (their output
is ignored) until the last one ends. Each episode is seeded by its own integer, so a batch is a
pure function of (seeds, network, rng state): this is what makes resume exact.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .controller import Controller
from .envs.base import VecEnv
from .replay.schema import EpisodeSchema


@dataclass
class Episode:
    obs: np.ndarray  # [L+1, N, O]
    state: np.ndarray  # [L+1, S]
    avail: np.ndarray  # [L+1, N, A]
    alive: np.ndarray  # [L+1, N]
    actions: np.ndarray  # [L, N]
    reward: np.ndarray  # [L]
    terminated: bool
    battle_won: bool | None

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
        won = np.zeros(E, bool)
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
            if res.battle_won is not None:
                won[ended] = res.battle_won[ended]
            done |= ended
        if clock is not None:
            clock.add("collect_act", act_s)
            clock.add("collect_env", env_s)
        has_battles = env.spec.has_battles
        episodes = [
            Episode(
                *(b[k][e, : lengths[e] + 1].copy() for k in ("obs", "state", "avail", "alive")),
                b["actions"][e, : lengths[e]].copy(),
                b["reward"][e, : lengths[e]].copy(),
                bool(terminated[e]),
                bool(won[e]) if has_battles else None,
            )
            for e in range(E)
        ]
        if clock is not None:
            clock.add("collect_other", time.perf_counter() - t_start - act_s - env_s)
        return episodes
