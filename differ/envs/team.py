"""One unmodified multi-agent package env as a batched `VecEnv`: the layers every gym-style and
PettingZoo family shares, above a small per-package *core*.

A core drives one package env and reports, in the package's own terms:
  attributes  env, limit (the episode limit), n_agents, n_actions, obs_dims (each agent's raw
              flattened size), roles (one name per agent), scale (None, or per agent the factors
              `ObsTransform` multiplies raw features by), state_dim (None: the global state is
              the concatenation of the agents' padded observations), may_die (agents can drop
              out before the episode ends), env_truncated (the package env cut the episode
              short at the last step; False for packages whose time limit is ours alone),
              optionally symlog (the spec's transform squashes observations and state),
              action_sizes (each agent's own number of actions, where they differ),
              actions (the spec's action space; DiscreteActions(n_actions) when absent),
              agents (each agent's name in the package, for messages)
              and has_battles (the task has a win: `won()` says whether the episode so far is one)
  reset(seed) -> raw observations, one per agent
  step(actions) -> (raw observations, team reward, terminated); actions: one int per agent, or
              one float list per agent (padded to the widest; continuous spaces)
  avail() -> int8 [N, n_actions] or None (every action always available)
  state() -> the global state (only where state_dim is set)
  alive() -> bool [N] (only where may_die)
  won() -> bool (only where has_battles; read after every step, reported at the episode's end)
A core calls the package env's own code through differ/envs/faults.py's `package_call` (and sums
per-agent rewards with its `check_rewards`), so a fault of the env's is reported as the env's.

`TeamEnv` is one copy as a plain `gymnasium.Env` whose outputs batch cleanly: a dict of obs
(float32 [N, obs_dim], the spec's `ObsTransform` applied), avail (int8 [N, n_actions]) and, where
the core has them, state, alive and won (int8 [1]); the team reward; terminated / truncated kept apart (our own
step counter decides the time limit). Once its episode has ended it no longer touches the package
env: further steps return the final observation with reward 0 and the same end flags, so the
runner may step finished copies.

The `VecEnv`: with one copy, or options["workers"] == 0, all copies step in this process (no
pipes); otherwise one worker process per copy through `gymnasium.vector.AsyncVectorEnv` with
autoreset disabled and shared-memory observations. `close()` shuts the workers down.
"""

from __future__ import annotations

from collections.abc import Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from .base import ContinuousActions, DiscreteActions, EnvSpec, Observation, ObsTransform, StepResult, VecEnv, symlog
from .faults import InEnv, quiet_worker_faults


def make_vec_env(core_cls, scenario: str, num_envs: int, time_limit, options: dict) -> VecEnv:
    """Options read here: workers (0: step all copies in this process; default: in-process for
    one copy, else one worker process per copy), context (multiprocessing start method for the
    workers); the rest goes to the core."""
    options = dict(options)
    workers = options.pop("workers", None)
    # forkserver, not fork: forking a process that runs JAX or torch threads can deadlock
    context = options.pop("context", "forkserver")
    env_fn = EnvFactory(core_cls, scenario, None if time_limit is None else int(time_limit), options)
    num_envs = int(num_envs)
    if num_envs == 1 or workers == 0:
        return InProcessVecEnv(env_fn, num_envs)
    return WorkerVecEnv(env_fn, num_envs, context)


class EnvFactory:
    """Picklable `() -> TeamEnv`, so worker processes can build their own copy."""

    def __init__(self, core_cls, scenario, time_limit, options):
        self.core_cls, self.args = core_cls, (scenario, time_limit, options)

    def __call__(self) -> TeamEnv:
        scenario, time_limit, options = self.args
        return TeamEnv(self.core_cls(scenario, time_limit, dict(options)))


class TeamEnv(gym.Env):
    """One copy with batchable outputs (see the module docstring)."""

    def __init__(self, core):
        self.core = core
        n, a = core.n_agents, core.n_actions
        self.transform = ObsTransform(
            tuple(int(d) for d in core.obs_dims),
            None if core.scale is None else tuple(tuple(float(x) for x in s) for s in core.scale),
            bool(getattr(core, "symlog", False)),
        )
        self.obs_dim = self.transform.obs_dim
        self.own_state = core.state_dim is not None
        fields = {
            "obs": spaces.Box(-np.inf, np.inf, (n, self.obs_dim), np.float32),
            "avail": spaces.MultiBinary([n, a]),
        }
        if self.own_state:
            fields["state"] = spaces.Box(-np.inf, np.inf, (core.state_dim,), np.float32)
        if core.may_die:
            fields["alive"] = spaces.MultiBinary(n)
        self.has_battles = bool(getattr(core, "has_battles", False))
        if self.has_battles:
            fields["won"] = spaces.MultiBinary(1)
        self.observation_space = spaces.Dict(fields)
        actions = getattr(core, "actions", None) or DiscreteActions(a)
        if isinstance(actions, ContinuousActions):
            self.action_space = spaces.Box(-np.inf, np.inf, (n, actions.width), np.float32)
        else:
            self.action_space = spaces.MultiDiscrete([a] * n)
        self._all_avail = np.ones((n, a), np.int8)
        names = list(dict.fromkeys(core.roles))
        self.env_spec = EnvSpec(
            n_agents=n,
            actions=actions,
            obs_dim=self.obs_dim,
            state_dim=int(core.state_dim) if self.own_state else n * self.obs_dim,
            episode_limit=int(core.limit),
            unit_type_ids=tuple(names.index(r) for r in core.roles),
            unit_type_names=tuple(core.roles),
            has_deaths=bool(core.may_die),
            episode_stats=("battle_won",) if self.has_battles else (),
            obs_transform=self.transform,
            agent_actions=tuple(int(k) for k in getattr(core, "action_sizes", None) or [actions.width] * n),
            agent_names=tuple(str(a) for a in getattr(core, "agents", None) or ()),
        )
        self._t = 0
        self._seed = None  # the running episode's, named by a fault of the env's
        self._ended = False
        self._flags = (False, False)
        self._last = None

    def _observe(self, raw):
        avail = self.core.avail()
        out = {"obs": self.transform.apply(raw), "avail": self._all_avail if avail is None else avail}
        if self.own_state:
            state = np.asarray(self.core.state(), np.float32).reshape(-1)
            out["state"] = symlog(state) if self.transform.symlog else state
        if self.core.may_die:
            out["alive"] = self.core.alive().astype(np.int8)
        if self.has_battles:
            out["won"] = np.array([self.core.won()], np.int8)
        self._last = out
        return out

    def reset(self, *, seed=None, options=None):
        self._t, self._ended, self._flags, self._seed = 0, False, (False, False), int(seed)
        try:
            return self._observe(self.core.reset(self._seed)), {}
        except InEnv as e:  # the package env failed: which episode's seed
            e.seed = self._seed
            raise

    def step(self, action):
        if self._ended:  # finished copy stepped again: leave the package env alone
            return self._last, 0.0, *self._flags, {}
        if isinstance(action, np.ndarray) and action.dtype.kind in "iu":
            action = action.tolist()  # the discrete packages want Python ints
        try:
            raw, reward, terminated = self.core.step(action)
            self._t += 1
            # the time limit is ours; a core may also report that its env truncated the episode earlier
            truncated = not terminated and (self._t >= self.core.limit or self.core.env_truncated)
            self._ended, self._flags = terminated or truncated, (terminated, truncated)
            return self._observe(raw), reward, terminated, truncated, {}
        except InEnv as e:  # the package env failed: which episode's seed (the step, Guarded counts)
            e.seed = self._seed
            raise

    def render(self):
        return self.core.render()

    def close(self):
        self.core.env.close()


class _TeamVecEnv(VecEnv):
    # PettingZooCore refuses an empty mask and gives the dead action 0; LBF always allows NONE;
    # the other cores allow every action
    masks_checked = True

    @staticmethod
    def _stats(out: dict) -> dict[str, np.ndarray]:
        """{"battle_won": bool [E]} where the core reports wins, else {}."""
        won = out.get("won")
        return {} if won is None else {"battle_won": np.asarray(won).reshape(-1).astype(bool)}

    def _observation(self, out: dict) -> Observation:
        obs = out["obs"]
        e, n = obs.shape[:2]
        state = out.get("state")
        alive = out.get("alive")
        return Observation(
            obs=obs,
            # EPyMARL: the concatenation of the padded observations, where the env has no state
            state=obs.reshape(e, -1).copy() if state is None else np.asarray(state, np.float32),
            avail=out["avail"].astype(bool),
            alive=np.ones((e, n), bool) if alive is None else alive.astype(bool),
        )

    def _check_actions(self, actions) -> np.ndarray:
        actions = np.asarray(actions)
        shape = (self.num_envs, self.spec.n_agents)
        if isinstance(self.spec.actions, ContinuousActions):
            shape += (self.spec.actions.width,)
        if actions.shape != shape:
            raise ValueError(f"actions must have shape {shape}, got {actions.shape}")
        return actions

    def _check_seeds(self, seeds) -> list[int]:
        if len(seeds) != self.num_envs:
            raise ValueError(f"need {self.num_envs} seeds, got {len(seeds)}")
        return [int(s) for s in seeds]


def _stack(outs: list[dict]) -> dict:
    return {k: np.array([o[k] for o in outs]) for k in outs[0]}


class InProcessVecEnv(_TeamVecEnv):
    def __init__(self, env_fn: EnvFactory, num_envs: int):
        self.envs = [env_fn() for _ in range(num_envs)]
        self.spec = self.envs[0].env_spec
        self.num_envs = num_envs

    def reset(self, seeds: Sequence[int]) -> Observation:
        return self._observation(_stack([env.reset(seed=s)[0] for env, s in zip(self.envs, self._check_seeds(seeds))]))

    def step(self, actions: np.ndarray) -> StepResult:
        outs = [env.step(a) for env, a in zip(self.envs, self._check_actions(actions))]
        out = _stack([o[0] for o in outs])
        return StepResult(
            next=self._observation(out),
            reward=np.array([o[1] for o in outs], np.float32),
            terminated=np.array([o[2] for o in outs], bool),
            truncated=np.array([o[3] for o in outs], bool),
            stats=self._stats(out),
        )

    def render(self, index: int = 0):
        """One frame (an RGB array) of copy `index`, from the package's own renderer."""
        return self.envs[index].render()

    def close(self) -> None:
        for env in self.envs:
            env.close()
        self.envs = []


class WorkerVecEnv(_TeamVecEnv):
    def __init__(self, env_fn: EnvFactory, num_envs: int, context=None):
        from gymnasium.vector import AsyncVectorEnv, AutoresetMode

        probe = env_fn()  # the spec; AsyncVectorEnv builds (and drops) its own probe as well
        self.spec = probe.env_spec
        probe.close()
        self.num_envs = num_envs
        quiet_worker_faults()
        # autoreset disabled: a finished copy keeps its final observation until our reset
        self.vec = AsyncVectorEnv(
            [env_fn] * num_envs, context=context, copy=False, autoreset_mode=AutoresetMode.DISABLED
        )

    @staticmethod
    def _copied(obs) -> dict:
        return {k: np.array(v) for k, v in obs.items()}  # copies out of shared memory

    def reset(self, seeds: Sequence[int]) -> Observation:
        obs, _ = self.vec.reset(seed=self._check_seeds(seeds))
        return self._observation(self._copied(obs))

    def step(self, actions: np.ndarray) -> StepResult:
        obs, reward, terminated, truncated, _ = self.vec.step(self._check_actions(actions))
        out = self._copied(obs)
        return StepResult(
            next=self._observation(out),
            reward=reward.astype(np.float32),
            terminated=terminated,
            truncated=truncated,
            stats=self._stats(out),
        )

    def close(self) -> None:
        if not self.vec.closed:
            self.vec.close()
