"""Any PettingZoo `ParallelEnv` as a batched `VecEnv`: `env=pettingzoo env.scenario=MODULE:ATTR`,
ATTR a class or a factory (dotted for nested attributes), called with `env.options` as keyword
arguments. MPE (`env=mpe`, the mpe2 package) is this family with the scenario's module filled in.

The conventions (docs/environments.md says the same for users):
- observations: a Box space, flattened; or a Dict with an "observation" Box (and usually an
  "action_mask"). Agents with shorter observations are zero-padded at the end to the longest.
- actions: Discrete spaces (agents with fewer actions than the largest get the rest masked), or
  1-D Box spaces for every agent (continuous: padded to the widest agent, `avail` marks each
  agent's own dimensions).
- action masks: the observation's "action_mask" where the space has one, else
  `info[agent]["action_mask"]` where the env reports one, else every action is available.
- global state: `env.state()` where the env implements it (options.global_state=env forces it,
  =concat refuses it), else the concatenation of the agents' padded observations.
- team reward: the sum of the agents' rewards (options.team_reward=mean: their mean over the team).
- agents that terminate (or drop out of `env.agents`) before the episode ends are dead: alive
  false, observation zeros, only action 0 available (and no action is sent for them). The episode
  ends when no agent is left, or at the time limit; it is terminated (no bootstrap) when the
  agents of its last step terminated, truncated (bootstrap from the final observations, which
  truncated agents keep) when any was truncated.
- options.symlog=true: observations and state through sign(x)·log(1 + |x|) (env=mamujoco's default).
- the time limit: env.time_limit, else the env's own max_cycles / max_steps / max_episode_steps.
- every episode starts with `reset(seed=...)`, so it is a pure function of its seed.
An env that breaks a convention stops the run with one line naming the env and the rule.
"""

from __future__ import annotations

import importlib
import os
import re
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from .base import ContinuousActions, VecEnv
from .registry import UnknownEnvError, named_scenario
from .team import make_vec_env

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
# MaMuJoCo (gymnasium-robotics' mamujoco_v1): "<robot>-<agent_conf>" -> agent_obsk (how many
# joints away an agent sees). The paper's two tasks first; the rest construct and step in 1.4.2.
_MAMUJOCO = {
    "Humanoid-9|8": 0,
    "ManySegmentSwimmer-10x2": 1,
    "Ant-2x4": 1,
    "Ant-4x2": 1,
    "HalfCheetah-2x3": 1,
    "HalfCheetah-6x1": 1,
    "Hopper-3x1": 1,
    "Walker2d-2x3": 1,
    "Swimmer-2x1": 1,
    "Reacher-2x1": 1,
    "HumanoidStandup-9|8": 0,
    "ManySegmentAnt-2x3": 1,
    "Pusher-3p": 1,
}
_TARGET = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
_LIMIT_ATTRS = ("max_cycles", "max_steps", "max_episode_steps")


class EnvConventionError(ConfigError):
    """An environment that breaks one of the family's conventions; the message names the rule."""


def scenarios(family: str) -> list[str]:
    if family == "mpe":
        return list(_MPE_MODULES)
    if family == "mamujoco":
        return list(_MAMUJOCO)
    return []  # any MODULE:ATTR


def resolve(family: str, scenario: str) -> str:
    scenario = str(scenario).strip()
    if family == "mamujoco":
        return named_scenario(family, scenario, _MAMUJOCO, scenario.lower(), 0.4)
    if family == "mpe":  # "simple_spread_v3" names the scenario too
        return named_scenario(family, scenario, _MPE_MODULES, re.sub(r"_v\d+$", "", scenario.lower()), 0.5)
    if scenario == "MODULE:ATTR":  # the preset's placeholder
        raise UnknownEnvError(
            "env=pettingzoo needs env.scenario=MODULE:ATTR, naming a ParallelEnv class or a "
            "function returning one (e.g. env.scenario=mypkg.envs:MyParallelEnv)"
        )
    if not _TARGET.match(scenario):
        raise UnknownEnvError(
            f"'{scenario}' is not MODULE:ATTR (e.g. mypkg.envs:MyParallelEnv, "
            f"a ParallelEnv class or a function returning one)"
        )
    _load(scenario)
    return scenario


def _load(target: str):
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


def make(family: str, scenario: str, num_envs: int, time_limit=None, options=None) -> VecEnv:
    options = dict(options or {})
    if family == "mpe":
        name = resolve(family, scenario)
        target = f"mpe2.{_MPE_MODULES[name]}:parallel_env"
        options = {"continuous_actions": False, **options}
        if time_limit:
            options["max_cycles"] = int(time_limit)
        # EPyMARL's state for MPE: the padded observations concatenated (mpe2's own state()
        # concatenates them unpadded)
        options.setdefault("global_state", "concat")
        return make_vec_env(PettingZooCore, target, num_envs, time_limit, options)
    if family == "mamujoco":
        name = resolve(family, scenario)
        robot, conf = name.split("-", 1)
        paper_obs = options.pop("paper_obs", False)
        # every agent gets the same reward: count it once; Humanoid's features reach thousands
        options = {
            "scenario": robot,
            "agent_conf": conf,
            "agent_obsk": _MAMUJOCO[name],
            "team_reward": "mean",
            "symlog": True,
            **options,
        }
        if paper_obs:  # the paper's observations: the joints' qpos and qvel only, no global part
            options.update(local_categories=[["qpos", "qvel"]] * (int(options["agent_obsk"]) + 1), global_categories=())
        if not time_limit:
            raise ConfigError("env=mamujoco needs env.time_limit (the preset sets 1000)")
        return make_vec_env(
            PettingZooCore, "differ.envs.pettingzoo_family:mamujoco_parallel_env", num_envs, time_limit, options
        )
    return make_vec_env(PettingZooCore, resolve(family, scenario), num_envs, time_limit, options)


def mamujoco_parallel_env(**kwargs):
    """gymnasium-robotics' mamujoco_v1.parallel_env, built one process at a time: ManySegment*
    robots write a generated model file into the package directory and delete it right after
    loading it, so copies built at once in worker processes delete each other's file."""
    import contextlib
    import fcntl
    import io
    import os
    import tempfile

    with contextlib.redirect_stderr(io.StringIO()):  # its import prints a notice about its Adroit envs
        from gymnasium_robotics import mamujoco_v1

    if kwargs.get("render_mode") and not os.environ.get("DISPLAY"):
        os.environ.setdefault("MUJOCO_GL", "egl")  # MuJoCo's default (GLFW) needs a display

    with open(Path(tempfile.gettempdir()) / "differ-mamujoco-build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return mamujoco_v1.parallel_env(**kwargs)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


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
        self.env = env = _load(target)(**options)
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
        obs, infos = self.env.reset(seed=seed)
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
        obs, rewards, terms, truncs, infos = self.env.step(act)
        self._strangers(obs, "mid-episode")
        revived = [a for a in obs if a not in act and not self._alive[self._index[a]]]
        if revived:
            raise EnvConventionError(
                f"{self.target}: agent {revived[0]} came back after it was done "
                f"(env=pettingzoo: an agent that terminates stays dead)"
            )
        reward = float(sum(rewards.values()))
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
        return np.asarray(self.env.state(), np.float32).reshape(-1)

    def render(self):
        return self.env.render()
