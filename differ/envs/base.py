"""The one batched interface every environment family implements.

A `VecEnv` holds E copies of one multi-agent task and steps them together. Episodes are
collected in synchronous batches: `reset(seeds)` starts E new episodes, each seeded by its own
integer (so an episode is a pure function of its seed, which makes exact resume trivial), and
`step(actions)` advances all E copies. The runner ignores the outputs of copies whose episode
already ended; adapters must tolerate being stepped after the end (or skip those copies).

`step` returns the observation *after* the step and before any reset: for a finished episode
that is its final observation, which truncated episodes need for their bootstrap target.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np


@dataclass(frozen=True)
class DiscreteActions:
    """Each agent picks one of `n` actions; at every step the env marks which are available
    (`Observation.avail`), and an agent network outputs one Q value per action. The episode
    schema (differ/replay/schema.py) derives the `actions` and `avail` fields from this, and
    an algorithm declares the kinds it can act in (`action_kinds` of its learner)."""

    n: int
    kind: ClassVar[str] = "discrete"

    @property
    def width(self) -> int:
        """The per-agent row of `avail` (and the agent network's output): one entry per action."""
        return self.n


@dataclass(frozen=True)
class ContinuousActions:
    """Each agent picks a real vector inside its own box [low_i, high_i] (agents may differ in
    dimension). Actions are stored padded to the widest agent; `Observation.avail` marks, per
    agent, which of those dimensions are its own (the rest are zero and never sent to the env)."""

    low: tuple[tuple[float, ...], ...]  # per agent, per dimension
    high: tuple[tuple[float, ...], ...]
    kind: ClassVar[str] = "continuous"

    @property
    def dims(self) -> tuple[int, ...]:
        return tuple(len(lo) for lo in self.low)

    @property
    def width(self) -> int:
        """The padded action vector's length (the widest agent's)."""
        return max(self.dims)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """low, high as float32 [N, width]; padded dimensions are [0, 0]."""
        lo = np.zeros((len(self.low), self.width), np.float32)
        hi = np.zeros_like(lo)
        for i, (a, b) in enumerate(zip(self.low, self.high)):
            lo[i, : len(a)], hi[i, : len(b)] = a, b
        return lo, hi


@dataclass(frozen=True)
class ObsTransform:
    """How the agents' raw observations from the package become the rows of `Observation.obs`:
    each is flattened, multiplied feature by feature by its agent's `scale` (where the adapter
    scales), and zero-padded at the end to `obs_dim` (agents with shorter observations). It lives
    with the spec and is saved in every checkpoint, so a trained policy applies exactly the
    transform it was trained on to raw observations outside differ (`differ.Policy`)."""

    dims: tuple[int, ...]  # each agent's raw (flattened) observation size
    scale: tuple[tuple[float, ...], ...] | None = None  # per agent, per raw feature
    # sign(x)·log(1 + |x|) after the scale: tames features of very different magnitudes (MaMuJoCo's
    # contact forces reach thousands) without statistics that would change during training
    symlog: bool = False

    @property
    def obs_dim(self) -> int:
        return max(self.dims)

    def apply(self, raw: Sequence) -> np.ndarray:
        """One env's raw observations, one per agent -> float32 [N, obs_dim]."""
        if len(raw) != len(self.dims):
            raise ValueError(f"expected {len(self.dims)} agents' observations, got {len(raw)}")
        out = np.zeros((len(self.dims), self.obs_dim), np.float32)
        for i, o in enumerate(raw):
            o = np.asarray(o, np.float32).reshape(-1)
            if o.size != self.dims[i]:
                raise ValueError(f"agent {i}'s observation has {o.size} values, expected {self.dims[i]}")
            out[i, : o.size] = o if self.scale is None else o * np.asarray(self.scale[i], np.float32)
        return symlog(out) if self.symlog else out

    def to_dict(self) -> dict:
        return {
            "dims": list(self.dims),
            "scale": None if self.scale is None else [list(s) for s in self.scale],
            "symlog": self.symlog,
        }

    @classmethod
    def from_dict(cls, d: dict) -> ObsTransform:
        scale = d.get("scale")
        return cls(
            tuple(d["dims"]), None if scale is None else tuple(tuple(s) for s in scale), bool(d.get("symlog", False))
        )


def symlog(x: np.ndarray) -> np.ndarray:
    """sign(x)·log(1 + |x|), float32."""
    return (np.sign(x) * np.log1p(np.abs(x))).astype(np.float32)


@dataclass(frozen=True)
class EnvSpec:
    """Static facts about a task, fixed for the whole run."""

    n_agents: int
    actions: DiscreteActions | ContinuousActions  # the action space
    obs_dim: int
    state_dim: int
    episode_limit: int  # the most steps an episode can last
    unit_type_ids: tuple[int, ...]  # one per agent (role / unit class); analyses group by it
    unit_type_names: tuple[str, ...]  # one per agent, human readable ("stalker", "agent", ...)
    # the outcomes the env reports at each episode's end (e.g. ("battle_won",)): averaged into
    # <name>_mean (training) and test_<name>_mean (tests) beside the return and the length
    episode_stats: tuple[str, ...] = ()
    has_deaths: bool = False  # the env reports per-agent deaths through `alive`
    # raw observations -> `obs` rows (None: the adapter's observations are used as they come)
    obs_transform: ObsTransform | None = None
    # each agent's own number of actions where they differ (the rest of its row is never available)
    agent_actions: tuple[int, ...] | None = None
    # each agent's name in the package (PettingZoo's "scout_1"), for messages; () where it has none
    agent_names: tuple[str, ...] = ()

    @property
    def has_battles(self) -> bool:
        """Whether episodes end won or lost (SMAX, GRF): the env reports battle_won."""
        return "battle_won" in self.episode_stats

    @property
    def n_actions(self) -> int:
        """The width of an agent's action row: the number of discrete actions (the agent
        network's output width), or the padded dimension of continuous actions."""
        return self.actions.width


@dataclass
class Observation:
    """What the agents and the mixer see at one step, batched over E envs."""

    obs: np.ndarray  # float32 [E, N, obs_dim]
    state: np.ndarray  # float32 [E, state_dim]
    avail: np.ndarray  # bool [E, N, n_actions]; at least one action available per agent
    # (continuous actions: the dimensions each agent controls)
    alive: np.ndarray  # bool [E, N]; all True where the env has no deaths


@dataclass
class StepResult:
    next: Observation  # after the step, before any reset (final observation at episode end)
    reward: np.ndarray  # float32 [E], the shared team reward
    terminated: np.ndarray  # bool [E], true end of the episode (no bootstrap)
    truncated: np.ndarray  # bool [E], time limit reached (bootstrap from `next`)
    # spec.episode_stats' values [E] of each episode so far (the runner keeps them at its end)
    stats: dict[str, np.ndarray] = field(default_factory=dict)
    info: dict = field(default_factory=dict)

    @property
    def battle_won(self) -> np.ndarray | None:
        """bool [E] where the env has battles, else None."""
        return self.stats.get("battle_won")


class VecEnv(ABC):
    spec: EnvSpec
    num_envs: int
    # the adapter itself leaves every agent an available action at every step (so the check of
    # differ/envs/faults.py skips the masks)
    masks_checked: ClassVar[bool] = False

    @abstractmethod
    def reset(self, seeds: Sequence[int]) -> Observation:
        """Start one new episode per env copy; `len(seeds) == num_envs`."""

    @abstractmethod
    def step(self, actions: np.ndarray) -> StepResult:
        """Advance every copy by one step. `actions`: int [E, N], each available (discrete), or
        float [E, N, width] inside each agent's bounds (continuous)."""

    def render(self):
        """Frames of copy 0 (an RGB array, or a list of them) for videos; envs built with
        options render_mode="rgb_array" implement it."""
        raise NotImplementedError(f"{type(self).__name__} has no renderer")

    def close(self) -> None:  # noqa: B027 - optional hook
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Wrapper(VecEnv):
    """`env` with something added; reset, step, render, close and every family-specific attribute
    (e.g. SMAX's jitted step) reach it unchanged unless the subclass says otherwise."""

    def __init__(self, env: VecEnv):
        self.inner, self.spec, self.num_envs = env, env.spec, env.num_envs

    def reset(self, seeds: Sequence[int]) -> Observation:
        return self.inner.reset(seeds)

    def step(self, actions: np.ndarray) -> StepResult:
        return self.inner.step(actions)

    def render(self, *args):
        return self.inner.render(*args)

    def close(self) -> None:
        self.inner.close()

    def __getattr__(self, name):
        if name == "inner":  # (not yet set: during unpickling)
            raise AttributeError(name)
        return getattr(self.inner, name)


class RewardScaled(Wrapper):
    """`env` with its team reward multiplied by `scale` (env.reward_scale) before anything sees
    it: the buffer, both targets, DIFFER's individual rewards and every logged return. Everything
    else (observations, masks, win flags, info) passes through unchanged."""

    def __init__(self, env: VecEnv, scale: float):
        super().__init__(env)
        self.scale = np.float32(scale)

    def step(self, actions: np.ndarray) -> StepResult:
        res = self.inner.step(actions)
        res.reward = np.asarray(res.reward, np.float32) * self.scale
        return res
