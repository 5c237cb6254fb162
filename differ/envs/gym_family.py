"""Gym-style multi-agent packages as batched `VecEnv`s: "lbf" (lbforaging) and "rware" (rware).

Each package gets a small *core* that drives one unmodified package env (reset with a seed, step
with a list of ints) and reports per-agent observations, a team reward, whether the task itself
ended and, for LBF, the valid actions; differ/envs/team.py turns a core into a batched `VecEnv`.
(MPE, a PettingZoo package, runs through differ/envs/pettingzoo_family.py.)

Conventions (EPyMARL's): the global state is the concatenation of all agents' padded
observations; the team reward is the sum of the agents' rewards; every episode is re-seeded at
reset, so it is a pure function of its seed.

Package quirks this adapter works around:
- lbforaging and rware report reaching their own step cap as `done` (terminated) with
  truncated=False. We give each env the cap we want and decide the truncation ourselves: LBF
  terminates only when all food is collected, rware only through its inactivity limit (off in
  every registered id).
- `gym.make(id, max_episode_steps=...)` is read by gymnasium as a TimeLimit wrapper argument and
  never reaches LBF's own `max_episode_steps`, so envs are built from their registered spec.
- LBF's public `get_valid_actions()` is the Cartesian product of the agents' valid actions
  (6**N tuples); the per-agent lists behind it (`_valid_actions`) are read instead. Invalid
  actions are executed as NONE by the package.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import re
from collections.abc import Callable

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.envs.registration import load_env_creator

from ..errors import ConfigError
from .base import VecEnv
from .faults import check_rewards, package_call
from .registry import UnknownEnvError
from .team import make_vec_env

_VERSION = re.compile(r"[-_]v\d+$", re.IGNORECASE)


# ------------------------------------------------------------------------------------- names


def _registered(package: str, prefix: str, flat_obs: Callable[[dict], bool]) -> list[str]:
    importlib.import_module(package)  # importing registers the ids with gymnasium
    return [i for i, s in gym.registry.items() if i.startswith(prefix) and flat_obs(s.kwargs)]


def scenarios(family: str) -> list[str]:
    if family == "lbf":
        # grid observations (3-D arrays) are registered only on request; skip them if present
        return _registered("lbforaging", "Foraging", lambda kw: not kw.get("grid_observation"))
    if family == "rware":
        from rware.warehouse import ObservationType

        flat = ObservationType.FLATTENED
        return _registered("rware", "rware", lambda kw: kw.get("observation_type", flat) == flat)
    raise UnknownEnvError(f"unknown environment family '{family}'; valid choices: lbf, rware")


def _aliases(name: str) -> list[str]:
    """Lower-cased spellings accepted for a canonical scenario name."""
    base = _VERSION.sub("", name).lower()
    out = {name.lower(), base}
    for prefix in ("foraging-", "rware-"):  # "8x8-2p-3f", "tiny-2ag"
        if base.startswith(prefix):
            out.add(base[len(prefix) :])
    return list(out)


def resolve(family: str, scenario: str) -> str:
    names = scenarios(family)
    lookup = {alias: name for name in names for alias in _aliases(name)}
    key = str(scenario).strip().lower()
    for candidate in (key, _VERSION.sub("", key)):
        if candidate in lookup:
            return lookup[candidate]
    close = difflib.get_close_matches(_VERSION.sub("", key), list(lookup), n=8, cutoff=0.6)
    choices = list(dict.fromkeys(lookup[c] for c in close))[:4] or names[:4]
    raise UnknownEnvError(
        f"unknown {family} scenario '{scenario}'; close choices: {', '.join(choices)}; run `differ envs` to list all"
    )


def make(family: str, scenario: str, num_envs: int, time_limit=None, options=None) -> VecEnv:
    """Options: workers, context (see differ/envs/team.py); everything else goes to the package
    env's constructor (e.g. lbf penalty), except lbf's normalize_obs."""
    core = {"lbf": _LBFCore, "rware": _RwareCore}[family]
    return make_vec_env(core, resolve(family, scenario), num_envs, time_limit, dict(options or {}))


# ------------------------------------------------------------------------------------- cores


def _from_spec(env_id: str, overrides: dict) -> gym.Env:
    """Build a registered env with its own kwargs overridden, without gymnasium's wrappers."""
    spec = gym.spec(env_id)
    creator = load_env_creator(spec.entry_point)
    try:
        defaults = {k: p.default for k, p in inspect.signature(creator).parameters.items()}
    except (TypeError, ValueError):
        defaults = {}
    _check_flags(overrides, {**defaults, **spec.kwargs})
    return creator(**{**spec.kwargs, **overrides})


def _check_flags(options: dict, defaults: dict) -> None:
    """An option whose default is true or false takes only true or false (a string such as
    `maybe` would be truthy, and silently mean true)."""
    for k, v in options.items():
        if isinstance(defaults.get(k), bool) and not isinstance(v, bool):
            raise ConfigError(f"env.options.{k} must be true or false, got {v!r}")


class _LBFCore:
    def __init__(self, scenario, time_limit, env_kwargs):
        from lbforaging.foraging.environment import Action

        limit = time_limit or gym.spec(scenario).kwargs["max_episode_steps"]  # 50, as EPyMARL
        _check_flags(env_kwargs, {"normalize_obs": True})
        normalize = env_kwargs.pop("normalize_obs", True)
        self.env = env = _from_spec(scenario, {**env_kwargs, "max_episode_steps": limit})
        self.limit = limit
        self.n_agents = env.n_agents
        self.n_actions = len(Action)
        self.obs_dims = [s.shape[0] for s in env.observation_space]
        self.roles = ["agent"] * self.n_agents  # levels are redrawn every episode: no fixed roles
        self.state_dim, self.may_die, self.env_truncated = None, False, False
        # LBF observations are raw grid coordinates and levels (up to ~7). Unscaled, they feed a
        # QMIX hypernetwork initial Q_tot offsets of ~10 that bootstrapping washes out only
        # slowly (seen here: Q_tot ~13 against returns ~0.1 after 40k steps). Divide by the
        # space's own bounds, so every feature lies in [-1, 1] (the spec's ObsTransform does the
        # scaling); options.normalize_obs=false keeps the raw values.
        self.scale = None
        if normalize:
            self.scale = [1.0 / np.maximum(np.abs(s.low), np.abs(s.high)).clip(min=1.0) for s in env.observation_space]

    def reset(self, seed):
        # lbforaging spawns players only on cells that are "empty", and counts the previous
        # episode's final player positions as occupied: a reset would depend on the episode
        # before it (seen: 16 of 400 seeds differed from a fresh env). Forget them first, so every
        # episode is a pure function of its seed.
        for player in self.env.players:
            player.position = None
        obs, _ = package_call("reset", self.env.reset, seed=seed)
        return obs

    def step(self, actions):
        obs, rewards, _, _, _ = package_call("step", self.env.step, actions)
        # per-agent rewards summed into the team reward, as EPyMARL does with common_reward
        return obs, check_rewards(float(sum(rewards)), rewards), not self.env.field.any()  # all food collected

    def render(self):
        _headless_pyglet()
        return self.env.render(mode="rgb_array")

    def avail(self):
        # plain lists and Enum `_value_` are ~3x faster than per-row numpy writes here
        rows = [[0] * self.n_actions for _ in range(self.n_agents)]
        valid = self.env._valid_actions
        for row, player in zip(rows, self.env.players):
            for action in valid[player]:
                row[action._value_] = 1
        return np.array(rows, np.int8)


class _RwareCore:
    def __init__(self, scenario, time_limit, env_kwargs):
        importlib.import_module("rware")  # registers its ids; a fresh worker process has not yet
        limit = time_limit or gym.spec(scenario).kwargs["max_steps"]
        self.env = env = _from_spec(scenario, {**env_kwargs, "max_steps": limit})
        if not isinstance(env.action_space[0], spaces.Discrete):
            raise ValueError("rware with msg_bits > 0 (MultiDiscrete actions) is not supported")
        self.limit = limit
        self.n_agents = env.n_agents
        self.n_actions = int(env.action_space[0].n)
        self.obs_dims = [s.shape[0] for s in env.observation_space]
        self.roles = ["agent"] * self.n_agents
        self.scale, self.state_dim, self.may_die, self.env_truncated = None, None, False, False

    def reset(self, seed):
        obs, _ = package_call("reset", self.env.reset, seed=seed)
        return obs

    def step(self, actions):
        obs, rewards, _, _, _ = package_call("step", self.env.step, actions)
        env = self.env
        idle = bool(env.max_inactivity_steps) and env._cur_inactive_steps >= env.max_inactivity_steps
        return obs, check_rewards(float(sum(rewards)), rewards), idle

    def avail(self):
        return None  # every action is always allowed

    def render(self):
        _headless_pyglet()
        return self.env.render(mode="rgb_array")


def _headless_pyglet() -> None:
    """lbforaging and rware draw with pyglet, which opens a window unless told to render
    off-screen (EGL): without a display, tell it so before its first window is made."""
    import os
    import sys

    if not os.environ.get("DISPLAY") and "pyglet.window" not in sys.modules:
        import pyglet

        pyglet.options["headless"] = True
