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

import os
import re
from pathlib import Path

from ..errors import ConfigError
from .base import VecEnv
from .pettingzoo_core import PettingZooCore, load_target
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
    load_target(scenario)
    return scenario


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
