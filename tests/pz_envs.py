"""PettingZoo environments written for the tests (not part of differ): one that uses every
convention of `env=pettingzoo`, and a few that break one each.

`Signals`: a team of two scouts and one carrier. Every step each agent sees a target digit (one-hot,
plus its own features) and is rewarded 1 for choosing it; a scout that picks a wrong action twice
is out (terminated) for the rest of the episode. Scouts: 4-value Box observations, 3 actions, their
masks in `info`; the carrier: a Dict observation with 6 values and an `action_mask` over 5 actions.
`state()` is its own (targets and time), and the episode is truncated after `max_cycles` steps.
Everything is a pure function of the reset seed.
"""

from __future__ import annotations

import os

import numpy as np
from gymnasium import spaces
from pettingzoo import AECEnv, ParallelEnv


class Signals(ParallelEnv):
    metadata = {"name": "signals_v0", "render_modes": ["rgb_array"]}

    def __init__(self, max_cycles: int = 12, lives: int = 2, mortal_carrier: bool = False, render_mode=None):
        self.possible_agents = ["scout_0", "scout_1", "carrier_0"]
        self.limit, self.lives, self.render_mode = max_cycles, lives, render_mode
        self.max_cycles = max_cycles  # how env=pettingzoo finds the episode limit
        self.mortal_carrier = mortal_carrier  # the carrier can be out too (then all can die)
        self._obs_spaces = {
            "scout_0": spaces.Box(0.0, 1.0, (4,), np.float32),
            "scout_1": spaces.Box(0.0, 1.0, (4,), np.float32),
            "carrier_0": spaces.Dict(
                {"observation": spaces.Box(0.0, 1.0, (6,), np.float32), "action_mask": spaces.MultiBinary(5)}
            ),
        }
        self._act_spaces = {
            "scout_0": spaces.Discrete(3),
            "scout_1": spaces.Discrete(3),
            "carrier_0": spaces.Discrete(5),
        }
        self.agents = []
        self.masked_taken = 0

    def observation_space(self, agent):
        return self._obs_spaces[agent]

    def action_space(self, agent):
        return self._act_spaces[agent]

    def _draw(self):
        self.targets = {a: int(self.rng.integers(self._act_spaces[a].n)) for a in self.agents}
        self.blocked = {
            a: int((self.targets[a] + 1 + self.rng.integers(self._act_spaces[a].n - 1)) % self._act_spaces[a].n)
            for a in self.agents
        }

    def _observe(self):
        obs, infos = {}, {}
        for a in self.agents:
            n = self._act_spaces[a].n
            mask = np.ones(n, np.int8)
            mask[self.blocked[a]] = 0  # never the target
            if a.startswith("scout"):
                o = np.zeros(4, np.float32)
                o[self.targets[a]] = 1.0
                o[3] = self.strikes[a] / self.lives
                obs[a] = o
                infos[a] = {"action_mask": mask}
            else:
                o = np.zeros(6, np.float32)
                o[self.targets[a]] = 1.0
                o[5] = self.t / self.limit
                obs[a] = {"observation": o, "action_mask": mask}
                infos[a] = {}
        return obs, infos

    def reset(self, seed=None, options=None):
        self.rng = np.random.default_rng(seed)
        self.agents = list(self.possible_agents)
        self.t = 0
        self.strikes = {a: 0 for a in self.agents}
        self._draw()
        return self._observe()

    def step(self, actions):
        rewards, terms, truncs = {}, {}, {}
        self.t += 1
        for a in self.agents:
            act = int(actions[a])
            self.masked_taken += act == self.blocked[a]  # the tests check it stays 0
            rewards[a] = 1.0 if act == self.targets[a] else 0.0
            if rewards[a] == 0.0 and (a.startswith("scout") or self.mortal_carrier):
                self.strikes[a] += 1
            terms[a] = self.strikes[a] >= self.lives
            truncs[a] = self.t >= self.limit and not terms[a]
        self.agents = [a for a in self.agents if not (terms[a] or truncs[a])]
        done = set(self.possible_agents) - set(self.agents)
        self._draw()
        obs, infos = self._observe()
        for a in done & set(terms):  # the leaving agents' final observations
            obs[a] = (
                np.zeros(4, np.float32)
                if a.startswith("scout")
                else {"observation": np.zeros(6, np.float32), "action_mask": np.ones(5, np.int8)}
            )
            infos[a] = {}
        return obs, rewards, terms, truncs, infos

    def state(self):
        s = np.zeros(3 * 5 + 1, np.float32)
        for i, a in enumerate(self.possible_agents):
            if a in self.targets:
                s[5 * i + self.targets[a]] = 1.0
        s[-1] = self.t / self.limit
        return s

    def render(self):
        img = np.zeros((32, 48, 3), np.uint8)
        for i, a in enumerate(self.possible_agents):
            img[8:24, 16 * i : 16 * i + 12, i] = 255 if a in self.agents else 60
        return img


def signals_factory(**kwargs):
    """The same env through a factory function instead of the class."""
    return Signals(**kwargs)


class NoLimit(Signals):
    """No max_cycles attribute: needs env.time_limit."""

    def __init__(self):
        super().__init__()
        del self.max_cycles


class BoxActions(Signals):
    def action_space(self, agent):
        return spaces.Box(-1.0, 1.0, (2,), np.float32)


class Newcomer(Signals):
    """An agent that was not in possible_agents joins after the first step."""

    def step(self, actions):
        obs, rewards, terms, truncs, infos = super().step(actions)
        obs["medic_0"] = np.zeros(4, np.float32)
        return obs, rewards, terms, truncs, infos


class TurnBased(AECEnv):
    """The AEC (turn-by-turn) API, which env=pettingzoo does not take."""

    metadata = {"name": "turn_based_v0"}

    def __init__(self):
        self.possible_agents = ["a_0", "a_1"]

    def observation_space(self, agent):
        return spaces.Box(0.0, 1.0, (2,), np.float32)

    def action_space(self, agent):
        return spaces.Discrete(2)


def not_an_env():
    return object()


class Silent(Signals):
    """Takes render_mode but draws nothing."""

    def render(self):
        return None


class MixedActions(Signals):
    """Box actions for the scouts, Discrete for the carrier: neither convention."""

    def action_space(self, agent):
        return spaces.Box(-1.0, 1.0, (2,), np.float32) if agent.startswith("scout") else super().action_space(agent)


class Faulty(Signals):
    """Signals that goes wrong at step `at` of every episode once it has taken more than `after`
    steps (over all its episodes), unless the environment variable PZ_FAULTS is "off". `fault`:
    nan_reward (the carrier's reward), nan_obs (the carrier's observation, feature 2), inf_state
    (entry 4 of `state()`), raise (a ValueError in `step`), raise_reset (a ValueError in every
    `reset` once it has taken more than `after` steps)."""

    def __init__(self, fault: str = "nan_reward", at: int = 3, after: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.fault, self.at, self.after, self.steps = fault, at, after, 0

    def _on(self, fault: str, t: int | None = None) -> bool:
        return (
            self.fault == fault
            and (t is None or t == self.at)
            and self.steps > self.after
            and os.environ.get("PZ_FAULTS") != "off"
        )

    def reset(self, seed=None, options=None):
        if self._on("raise_reset"):
            raise ValueError(f"no map for seed {seed}\nsecond line")
        return super().reset(seed, options)

    def step(self, actions):
        self.steps += 1
        if self._on("raise", self.t + 1):
            raise ValueError(f"carrier_0 cannot take action {actions['carrier_0']} now\nsecond line")
        obs, rewards, terms, truncs, infos = super().step(actions)
        if self._on("nan_reward", self.t):
            rewards["carrier_0"] = float("nan")
        if self._on("nan_obs", self.t):
            obs["carrier_0"]["observation"][2] = np.nan
        return obs, rewards, terms, truncs, infos

    def state(self):
        s = super().state()
        if self._on("inf_state", self.t):
            s[4] = np.inf
        return s
