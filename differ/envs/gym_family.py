"""Gym-style multi-agent packages as batched `VecEnv`s: "lbf" (lbforaging), "rware" (rware) and
"mpe" (mpe2, the cooperative scenarios with discrete actions).

Layers, bottom up:
- a small *core* per package that drives one unmodified package env (reset with a seed, step with
  a list of ints) and reports per-agent observations, a team reward, whether the task itself ended
  and, for LBF, the valid actions;
- `_TeamEnv`, one copy as a plain `gymnasium.Env` whose outputs batch cleanly: observation
  {"obs": float32 [N, obs_dim] (padded), "avail": int8 [N, n_actions]}, the team reward, and
  terminated / truncated kept apart (our own step counter decides the time limit). Once its
  episode has ended it no longer touches the package env: further steps return the final
  observation with reward 0 and the same end flags, so the runner may step finished copies;
- the `VecEnv`: with one copy, or options["workers"] == 0, all copies step in this process (no
  pipes); otherwise one worker process per copy through `gymnasium.vector.AsyncVectorEnv` with
  autoreset disabled and shared-memory observations. `close()` shuts the workers down.

Conventions (EPyMARL's): the global state is the concatenation of all agents' padded
observations (mpe2's own `state()` is the same concatenation, unpadded); the team reward is the sum
of the agents' rewards; every episode is re-seeded at reset, so it is a pure function of its seed.

Package quirks this adapter works around:
- lbforaging and rware report reaching their own step cap as `done` (terminated) with
  truncated=False. We give each env the cap we want and decide the truncation ourselves: LBF
  terminates only when all food is collected, rware only through its inactivity limit (off in
  every registered id), mpe2 through its scenario's terminal check.
- `gym.make(id, max_episode_steps=...)` is read by gymnasium as a TimeLimit wrapper argument and
  never reaches LBF's own `max_episode_steps`, so envs are built from their registered spec.
- LBF's public `get_valid_actions()` is the Cartesian product of the agents' valid actions
  (6**N tuples); the per-agent lists behind it (`_valid_actions`) are read instead. Invalid
  actions are executed as NONE by the package.
"""

from __future__ import annotations

import difflib
import importlib
import os
import re
from typing import Callable, Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.envs.registration import load_env_creator

from .base import DiscreteActions, EnvSpec, Observation, StepResult, VecEnv
from .registry import UnknownEnvError

# mpe2 imports pygame at import time; keep its banner out of our output.
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

# The cooperative mpe2 scenarios with discrete actions: name -> module. The competitive ones
# (adversary, tag, push, crypto, world_comm) need an opponent policy, which a team learner lacks.
_MPE_MODULES = {
    "simple": "simple_v3",
    "simple_spread": "simple_spread_v3",
    "simple_reference": "simple_reference_v3",
    "simple_speaker_listener": "simple_speaker_listener_v4",
    "simple_formation": "simple_formation_v1",
    "simple_line": "simple_line_v1",
    "collect_treasure": "collect_treasure_v1",
}

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
    if family == "mpe":
        return list(_MPE_MODULES)
    raise UnknownEnvError(f"unknown environment family '{family}'; valid choices: lbf, rware, mpe")


def _aliases(name: str) -> list[str]:
    """Lower-cased spellings accepted for a canonical scenario name."""
    base = _VERSION.sub("", name).lower()
    out = {name.lower(), base}
    for prefix in ("foraging-", "rware-"):  # "8x8-2p-3f", "tiny-2ag"
        if base.startswith(prefix):
            out.add(base[len(prefix):])
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
        f"unknown {family} scenario '{scenario}'; close choices: {', '.join(choices)}; "
        f"run `differ envs` to list all"
    )


def make(family: str, scenario: str, num_envs: int, time_limit=None, options=None) -> VecEnv:
    """Options: workers (0: step all copies in this process; default: in-process for one copy,
    else one worker process per copy), context (multiprocessing start method for the workers);
    everything else goes to the package env's constructor (e.g. lbf penalty, mpe N)."""
    options = dict(options or {})
    workers = options.pop("workers", None)
    # forkserver, not fork: forking a process that runs JAX or torch threads can deadlock
    context = options.pop("context", "forkserver")
    name = resolve(family, scenario)
    env_fn = _EnvFactory(family, name, None if time_limit is None else int(time_limit), options)
    num_envs = int(num_envs)
    if num_envs == 1 or workers == 0:
        return _InProcessVecEnv(env_fn, num_envs)
    return _WorkerVecEnv(env_fn, num_envs, context)


class _EnvFactory:
    """Picklable `() -> _TeamEnv`, so worker processes can build their own copy."""

    def __init__(self, family, scenario, time_limit, env_kwargs):
        self.args = (family, scenario, time_limit, env_kwargs)

    def __call__(self) -> "_TeamEnv":
        return _TeamEnv(*self.args)


# ------------------------------------------------------------------------------------- cores


def _from_spec(env_id: str, overrides: dict) -> gym.Env:
    """Build a registered env with its own kwargs overridden, without gymnasium's wrappers."""
    spec = gym.spec(env_id)
    return load_env_creator(spec.entry_point)(**{**spec.kwargs, **overrides})


class _LBFCore:
    def __init__(self, scenario, time_limit, env_kwargs):
        from lbforaging.foraging.environment import Action

        limit = time_limit or gym.spec(scenario).kwargs["max_episode_steps"]  # 50, as EPyMARL
        normalize = env_kwargs.pop("normalize_obs", True)
        self.env = env = _from_spec(scenario, {**env_kwargs, "max_episode_steps": limit})
        self.limit = limit
        self.n_agents = env.n_agents
        self.n_actions = len(Action)
        self.obs_dims = [s.shape[0] for s in env.observation_space]
        self.roles = ["agent"] * self.n_agents  # levels are redrawn every episode: no fixed roles
        # LBF observations are raw grid coordinates and levels (up to ~7). Unscaled, they feed a
        # QMIX hypernetwork initial Q_tot offsets of ~10 that bootstrapping washes out only
        # slowly (seen here: Q_tot ~13 against returns ~0.1 after 40k steps). Divide by the
        # space's own bounds, so every feature lies in [-1, 1]; options.normalize_obs=false
        # keeps the raw values.
        self.scale = None
        if normalize:
            self.scale = [1.0 / np.maximum(np.abs(s.low), np.abs(s.high)).clip(min=1.0)
                          for s in env.observation_space]

    def _scaled(self, obs):
        return obs if self.scale is None else [o * k for o, k in zip(obs, self.scale)]

    def reset(self, seed):
        # lbforaging spawns players only on cells that are "empty", and counts the previous
        # episode's final player positions as occupied: a reset would depend on the episode
        # before it (seen: 16 of 400 seeds differed from a fresh env). Forget them first, so every
        # episode is a pure function of its seed.
        for player in self.env.players:
            player.position = None
        obs, _ = self.env.reset(seed=seed)
        return self._scaled(obs)

    def step(self, actions):
        obs, rewards, _, _, _ = self.env.step(actions)
        obs = self._scaled(obs)
        # per-agent rewards summed into the team reward, as EPyMARL does with common_reward
        return obs, float(sum(rewards)), not self.env.field.any()  # all food collected

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

    def reset(self, seed):
        obs, _ = self.env.reset(seed=seed)
        return obs

    def step(self, actions):
        obs, rewards, _, _, _ = self.env.step(actions)
        env = self.env
        idle = bool(env.max_inactivity_steps) and env._cur_inactive_steps >= env.max_inactivity_steps
        return obs, float(sum(rewards)), idle

    def avail(self):
        return None  # every action is always allowed


class _MPECore:
    def __init__(self, scenario, time_limit, env_kwargs):
        module = importlib.import_module(f"mpe2.{_MPE_MODULES[scenario]}")
        kwargs = {**env_kwargs, "continuous_actions": False}
        if time_limit:
            kwargs["max_cycles"] = time_limit
        self.env = env = module.parallel_env(**kwargs)
        self.agents = list(env.possible_agents)
        self.limit = env.unwrapped.max_cycles  # 25 by default in every scenario
        self.n_agents = len(self.agents)
        sizes = [int(env.action_space(a).n) for a in self.agents]
        self.n_actions = max(sizes)
        self.obs_dims = [env.observation_space(a).shape[0] for a in self.agents]
        self.roles = [a.rsplit("_", 1)[0] for a in self.agents]  # "speaker_0" -> "speaker"
        # agents with fewer actions than the largest (speaker vs listener) get the rest masked
        self._avail = (np.arange(self.n_actions)[None, :] < np.array(sizes)[:, None]).astype(np.int8)

    def reset(self, seed):
        obs, _ = self.env.reset(seed=seed)
        return [obs[a] for a in self.agents]

    def step(self, actions):
        obs, rewards, terms, _, _ = self.env.step(dict(zip(self.agents, actions)))
        # mpe2 checks its time limit before the scenario's terminal test: at the cap it reports
        # truncation only, which our own counter reproduces
        return [obs[a] for a in self.agents], float(sum(rewards.values())), any(terms.values())

    def avail(self):
        return self._avail


_CORES = {"lbf": _LBFCore, "rware": _RwareCore, "mpe": _MPECore}


# -------------------------------------------------------------------------------- one copy


class _TeamEnv(gym.Env):
    """One copy with batchable outputs (see the module docstring)."""

    def __init__(self, family, scenario, time_limit, env_kwargs):
        self.core = core = _CORES[family](scenario, time_limit, dict(env_kwargs))
        n, a = core.n_agents, core.n_actions
        self.obs_dim = max(core.obs_dims)
        self._same_dims = min(core.obs_dims) == self.obs_dim
        self.observation_space = spaces.Dict({
            "obs": spaces.Box(-np.inf, np.inf, (n, self.obs_dim), np.float32),
            "avail": spaces.MultiBinary([n, a]),
        })
        self.action_space = spaces.MultiDiscrete([a] * n)
        self._all_avail = np.ones((n, a), np.int8)
        names = list(dict.fromkeys(core.roles))
        self.env_spec = EnvSpec(
            n_agents=n,
            actions=DiscreteActions(a),
            obs_dim=self.obs_dim,
            state_dim=n * self.obs_dim,
            episode_limit=int(core.limit),
            unit_type_ids=tuple(names.index(r) for r in core.roles),
            unit_type_names=tuple(core.roles),
        )
        self._t = 0
        self._ended = False
        self._flags = (False, False)
        self._last = None

    def _observe(self, obs_list):
        if self._same_dims:
            obs = np.array(obs_list, np.float32)
        else:  # agents with shorter observations are zero-padded
            obs = np.zeros((self.core.n_agents, self.obs_dim), np.float32)
            for i, o in enumerate(obs_list):
                obs[i, : len(o)] = o
        avail = self.core.avail()
        self._last = {"obs": obs, "avail": self._all_avail if avail is None else avail}
        return self._last

    def reset(self, *, seed=None, options=None):
        self._t, self._ended, self._flags = 0, False, (False, False)
        return self._observe(self.core.reset(int(seed))), {}

    def step(self, action):
        if self._ended:  # finished copy stepped again: leave the package env alone
            return self._last, 0.0, *self._flags, {}
        if isinstance(action, np.ndarray):
            action = action.tolist()  # the packages want Python ints
        obs_list, reward, terminated = self.core.step(action)
        self._t += 1
        truncated = not terminated and self._t >= self.core.limit
        self._ended, self._flags = terminated or truncated, (terminated, truncated)
        return self._observe(obs_list), reward, terminated, truncated, {}

    def close(self):
        self.core.env.close()


# ------------------------------------------------------------------------------------ batches


class _TeamVecEnv(VecEnv):
    def _observation(self, obs: np.ndarray, avail: np.ndarray) -> Observation:
        e, n = obs.shape[:2]
        return Observation(
            obs=obs,
            state=obs.reshape(e, -1).copy(),  # EPyMARL: concatenation of the padded observations
            avail=avail.astype(bool),
            alive=np.ones((e, n), bool),
        )

    def _check_actions(self, actions) -> np.ndarray:
        actions = np.asarray(actions)
        if actions.shape != (self.num_envs, self.spec.n_agents):
            raise ValueError(f"actions must have shape {(self.num_envs, self.spec.n_agents)}, "
                             f"got {actions.shape}")
        return actions

    def _check_seeds(self, seeds) -> list[int]:
        if len(seeds) != self.num_envs:
            raise ValueError(f"need {self.num_envs} seeds, got {len(seeds)}")
        return [int(s) for s in seeds]


class _InProcessVecEnv(_TeamVecEnv):
    def __init__(self, env_fn: _EnvFactory, num_envs: int):
        self.envs = [env_fn() for _ in range(num_envs)]
        self.spec = self.envs[0].env_spec
        self.num_envs = num_envs

    def reset(self, seeds: Sequence[int]) -> Observation:
        outs = [env.reset(seed=s)[0] for env, s in zip(self.envs, self._check_seeds(seeds))]
        return self._observation(np.array([o["obs"] for o in outs]),
                                 np.array([o["avail"] for o in outs]))

    def step(self, actions: np.ndarray) -> StepResult:
        outs = [env.step(a) for env, a in zip(self.envs, self._check_actions(actions).tolist())]
        return StepResult(
            next=self._observation(np.array([o[0]["obs"] for o in outs]),
                                   np.array([o[0]["avail"] for o in outs])),
            reward=np.array([o[1] for o in outs], np.float32),
            terminated=np.array([o[2] for o in outs], bool),
            truncated=np.array([o[3] for o in outs], bool),
        )

    def close(self) -> None:
        for env in self.envs:
            env.close()
        self.envs = []


class _WorkerVecEnv(_TeamVecEnv):
    def __init__(self, env_fn: _EnvFactory, num_envs: int, context=None):
        from gymnasium.vector import AsyncVectorEnv, AutoresetMode

        probe = env_fn()  # the spec; AsyncVectorEnv builds (and drops) its own probe as well
        self.spec = probe.env_spec
        probe.close()
        self.num_envs = num_envs
        # autoreset disabled: a finished copy keeps its final observation until our reset
        self.vec = AsyncVectorEnv([env_fn] * num_envs, context=context, copy=False,
                                  autoreset_mode=AutoresetMode.DISABLED)

    def reset(self, seeds: Sequence[int]) -> Observation:
        obs, _ = self.vec.reset(seed=self._check_seeds(seeds))
        return self._observation(obs["obs"].copy(), obs["avail"])  # copy out of shared memory

    def step(self, actions: np.ndarray) -> StepResult:
        obs, reward, terminated, truncated, _ = self.vec.step(self._check_actions(actions))
        return StepResult(
            next=self._observation(obs["obs"].copy(), obs["avail"]),
            reward=reward.astype(np.float32),
            terminated=terminated,
            truncated=truncated,
        )

    def close(self) -> None:
        if not self.vec.closed:
            self.vec.close()
