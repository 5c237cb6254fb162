"""One PettingZoo `ParallelEnv` behind the core interface of differ/envs/team.py, following the
conventions pettingzoo_family.py's docstring lists (observations, actions and their masks, the
global state, the team reward, dead agents, the time limit); an env that breaks one stops the
run with one line naming the env and the rule."""

from __future__ import annotations

import importlib
import re

import numpy as np

from ..errors import ConfigError
from .base import ContinuousActions
from .faults import check_rewards, package_call
from .registry import UnknownEnvError

_LIMIT_ATTRS = ("max_cycles", "max_steps", "max_episode_steps")


class EnvConventionError(ConfigError):
    """An environment that breaks one of the family's conventions; the message names the rule."""


def load_target(target: str):
    """The class or factory MODULE:ATTR names (dotted ATTR for nested attributes)."""
    module_name, attr = target.split(":", 1)
    try:
        obj = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        raise UnknownEnvError(
            f"cannot import '{module_name}' for {target} ({e}); is it installed or on PYTHONPATH?"
        ) from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise UnknownEnvError(f"{module_name} has no attribute '{attr}' (from {target})")
        obj = getattr(obj, part)
    if not callable(obj):
        raise UnknownEnvError(f"{target} is not callable: it must be a ParallelEnv class or a factory")
    return obj


def _is_discrete(space) -> bool:
    return type(space).__name__ == "Discrete" and hasattr(space, "n")


def _is_box(space) -> bool:
    return type(space).__name__ == "Box" and len(getattr(space, "shape", ())) == 1


def _obs_part(space, where: str):
    """(the Box to flatten, whether the observation is a dict with an action_mask)."""
    name = type(space).__name__
    if name == "Box":
        return space, False
    if name == "Dict" and "observation" in space.spaces:
        inner = space.spaces["observation"]
        if type(inner).__name__ == "Box":
            return inner, "action_mask" in space.spaces
    raise EnvConventionError(
        f"{where}: the observation space is {space}; env=pettingzoo needs a Box, "
        f"or a Dict with an 'observation' Box (and optionally an 'action_mask')"
    )


class PettingZooCore:
    """One ParallelEnv behind the core interface of differ/envs/team.py."""

    def __init__(self, target: str, time_limit, options: dict):
        self.symlog = bool(options.pop("symlog", False))
        team_reward = options.pop("team_reward", "sum")
        global_state = options.pop("global_state", "auto")
        if team_reward not in ("sum", "mean"):
            raise ConfigError(f"env.options.team_reward must be sum or mean, got '{team_reward}'")
        if global_state not in ("auto", "env", "concat"):
            raise ConfigError(f"env.options.global_state must be auto, env or concat, got '{global_state}'")
        self.target, self.mean_reward = target, team_reward == "mean"
        self.env = env = load_target(target)(**options)
        self._check_api(env)
        self.agents = list(env.possible_agents)
        if not self.agents:
            raise EnvConventionError(f"{target}: possible_agents is empty")
        self.n_agents = len(self.agents)
        self._index = {a: i for i, a in enumerate(self.agents)}
        sizes, boxes, self._dict_obs, self._has_mask = [], [], [], []
        spaces_ = [env.action_space(a) for a in self.agents]
        self.continuous = all(_is_box(sp) for sp in spaces_)
        for a, space in zip(self.agents, spaces_):
            if self.continuous:
                sizes.append(int(space.shape[0]))
            elif _is_discrete(space):
                sizes.append(int(space.n))
            else:
                raise EnvConventionError(
                    f"{target}: agent {a}'s action space is {space}; env=pettingzoo needs Discrete actions for "
                    f"every agent, or a 1-D Box for every agent (continuous)"
                )
            obs_space = env.observation_space(a)
            box, has_mask = _obs_part(obs_space, f"{target} agent {a}")
            boxes.append(box)
            self._dict_obs.append(box is not obs_space)  # the Box inside a Dict's "observation"
            self._has_mask.append(has_mask)
        if self.continuous:
            self.actions = ContinuousActions(
                tuple(tuple(float(x) for x in sp.low) for sp in spaces_),
                tuple(tuple(float(x) for x in sp.high) for sp in spaces_),
            )
        self._sizes = self.action_sizes = sizes
        self.n_actions = max(sizes)
        self.obs_dims = [int(np.prod(b.shape)) for b in boxes]
        self.roles = [a.rsplit("_", 1)[0] if re.search(r"_\d+$", a) else a for a in self.agents]
        self.scale = None
        self.may_die = True
        # agents with fewer actions than the largest (speaker vs listener) get the rest masked
        self._base_avail = (np.arange(self.n_actions)[None, :] < np.array(sizes)[:, None]).astype(np.int8)
        self.limit = int(time_limit) if time_limit else self._own_limit(env)
        self.state_dim = self._probe_state(env, global_state)
        self._alive = np.ones(self.n_agents, bool)  # reported: dead agents are masked in training
        self._acting = np.ones(self.n_agents, bool)  # still in the env: gets an action
        self.env_truncated = False
        self._avail = self._base_avail

    def _check_api(self, env) -> None:
        t = self.target
        if hasattr(env, "agent_iter") and hasattr(env, "last"):
            raise EnvConventionError(
                f"{t} is a PettingZoo AEC env; env=pettingzoo needs the parallel API "
                f"(wrap it: pettingzoo.utils.conversions.aec_to_parallel)"
            )
        missing = [
            m for m in ("possible_agents", "reset", "step", "observation_space", "action_space") if not hasattr(env, m)
        ]
        if missing:
            raise EnvConventionError(
                f"{t} built {type(env).__name__}, not a PettingZoo ParallelEnv (it lacks {', '.join(missing)})"
            )

    def _own_limit(self, env) -> int:
        for obj in (env, getattr(env, "unwrapped", env)):
            for attr in _LIMIT_ATTRS:
                value = getattr(obj, attr, None)
                if isinstance(value, (int, np.integer)) and value > 0:
                    return int(value)
        raise EnvConventionError(
            f"{self.target} has no {'/'.join(_LIMIT_ATTRS)} attribute: set env.time_limit "
            f"(the most steps an episode can last)"
        )

    def _probe_state(self, env, mode: str):
        if mode == "concat":
            return None
        try:
            env.reset(seed=0)
            state = env.state()
        except NotImplementedError:
            state = None
        except AttributeError:
            state = None
        if state is None:
            if mode == "env":
                raise EnvConventionError(f"{self.target} does not implement state(), and env.options.global_state=env")
            return None
        return int(np.asarray(state).size)

    # ---- the core interface --------------------------------------------------------------
    def _raw(self, obs: dict, infos: dict) -> list:
        raw, avail = [], self._base_avail.copy()
        for i, a in enumerate(self.agents):
            if not self._alive[i]:  # dead: zeros, and only action 0 (never sent to the env)
                raw.append(np.zeros(self.obs_dims[i], np.float32))
                if not self.continuous:
                    avail[i] = 0
                    avail[i, 0] = 1
                continue
            if a not in obs:
                raise EnvConventionError(f"{self.target}: live agent {a} got no observation")
            o = obs[a]
            mask = None
            if self._dict_obs[i]:
                mask = o.get("action_mask") if self._has_mask[i] else None
                o = o["observation"]
            if mask is None and not self.continuous and isinstance(infos.get(a), dict):
                mask = infos[a].get("action_mask")
            if mask is not None:
                mask = np.asarray(mask).reshape(-1).astype(bool)
                if mask.size != self._sizes[i] or not mask.any():
                    raise EnvConventionError(
                        f"{self.target}: agent {a}'s action_mask must have {self._sizes[i]} entries with at "
                        f"least one allowed, got {mask.astype(int).tolist()}"
                    )
                avail[i, : self._sizes[i]] = mask
            raw.append(o)
        self._avail = avail
        return raw

    def _strangers(self, keys, when: str) -> None:
        new = [a for a in keys if a not in self._index]
        if new:
            raise EnvConventionError(
                f"{self.target}: agent {new[0]} appeared {when}, but is not in possible_agents "
                f"(env=pettingzoo needs a fixed team: every agent present from reset)"
            )

    def reset(self, seed):
        obs, infos = package_call("reset", self.env.reset, seed=seed)
        self._strangers(obs, "at reset")
        absent = [a for a in self.agents if a not in obs]
        if absent:
            raise EnvConventionError(
                f"{self.target}: agent {absent[0]} is in possible_agents but has no observation "
                f"after reset (env=pettingzoo needs every agent present from reset)"
            )
        self._alive[:] = True
        self._acting[:] = True
        self.env_truncated = False
        return self._raw(obs, infos or {})

    def step(self, actions):
        if self.continuous:  # each agent's own dimensions of the padded row
            act = {
                a: np.asarray(actions[i][: self._sizes[i]], np.float32)
                for i, a in enumerate(self.agents)
                if self._acting[i]
            }
        else:
            act = {a: int(actions[i]) for i, a in enumerate(self.agents) if self._acting[i]}
        obs, rewards, terms, truncs, infos = package_call("step", self.env.step, act)
        self._strangers(obs, "mid-episode")
        revived = [a for a in obs if a not in act and not self._alive[self._index[a]]]
        if revived:
            raise EnvConventionError(
                f"{self.target}: agent {revived[0]} came back after it was done "
                f"(env=pettingzoo: an agent that terminates stays dead)"
            )
        reward = check_rewards(float(sum(rewards.values())), rewards)
        if self.mean_reward:
            reward /= self.n_agents
        # an agent that left at an earlier step is dead by now; one leaving at this step is dead
        # when it terminated (or vanished), and keeps its final observation when truncated,
        # which the bootstrap of a truncated episode reads
        self._alive &= self._acting
        truncated = any(truncs.get(a, False) for a in act)
        still = set(getattr(self.env, "agents", obs))
        for a in act:
            cut, ended = truncs.get(a, False), terms.get(a, False)
            if cut or ended or a not in still:
                i = self._index[a]
                self._acting[i] = False
                self._alive[i] = bool(cut) and not ended and a in obs
        raw = self._raw(obs, infos or {})
        # nobody left: a true end unless an agent was truncated (then the bootstrap applies)
        over = not self._acting.any()
        self.env_truncated = over and truncated
        return raw, reward, over and not truncated

    def avail(self):
        return self._avail

    def alive(self):
        return self._alive.copy()

    def state(self):
        return np.asarray(package_call("state", self.env.state), np.float32).reshape(-1)

    def render(self):
        return self.env.render()
