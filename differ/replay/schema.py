"""The one episode schema: every field an episode records, derived from the env's spec.

It drives the runner's episode records, the buffer's storage dtypes, the padded batches the
learner gets, the byte counts that size the buffer, and the chunk files of its persistence, so
a new field (or a new kind of action) is declared once, here.

A field is per step (L + 1 rows for an episode of L steps: it includes the observation after the
last step) or per transition (L rows).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..envs.base import ContinuousActions, DiscreteActions, EnvSpec


@dataclass(frozen=True)
class Field:
    name: str
    per: str  # "step" | "transition"
    shape: tuple[int, ...]  # of one row
    store: np.dtype  # as the replay buffer keeps it
    batch: np.dtype  # as the learner gets it


def action_dtype(n_actions: int):
    """The smallest integer type that holds a discrete action index."""
    return np.uint8 if n_actions <= 255 else np.int16


def action_fields(space, n_agents: int) -> tuple[Field, Field]:
    """The fields an action space adds: what the agents may do at each step, and what they did."""
    if isinstance(space, DiscreteActions):
        return (
            Field("avail", "step", (n_agents, space.n), np.dtype(bool), np.dtype(bool)),
            Field("actions", "transition", (n_agents,), np.dtype(action_dtype(space.n)), np.dtype(np.int64)),
        )
    if isinstance(space, ContinuousActions):  # avail: the dimensions each agent controls
        return (
            Field("avail", "step", (n_agents, space.width), np.dtype(bool), np.dtype(bool)),
            Field("actions", "transition", (n_agents, space.width), np.dtype(np.float32), np.dtype(np.float32)),
        )
    raise TypeError(f"no episode fields for {type(space).__name__} action spaces")


class EpisodeSchema:
    def __init__(self, spec: EnvSpec, obs_dtype: str = "float16"):
        n, f = spec.n_agents, np.dtype(obs_dtype)
        avail, actions = action_fields(spec.actions, n)
        self.spec = spec
        self.fields = (
            Field("obs", "step", (n, spec.obs_dim), f, np.dtype(np.float32)),
            Field("state", "step", (spec.state_dim,), f, np.dtype(np.float32)),
            avail,
            Field("alive", "step", (n,), np.dtype(bool), np.dtype(bool)),
            actions,
            Field("reward", "transition", (), np.dtype(np.float32), np.dtype(np.float32)),
        )
        self.by_name = {fl.name: fl for fl in self.fields}
        self.step_keys = tuple(fl.name for fl in self.fields if fl.per == "step")
        self.transition_keys = tuple(fl.name for fl in self.fields if fl.per == "transition")

    def rows(self, field: Field, length: int) -> int:
        return length + 1 if field.per == "step" else length

    def padded(self, B: int, T: int, stored: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
        """Zeroed arrays for B episodes of up to T steps, in the learner's dtypes (the fields named
        in `stored` in their storage dtype, for a cast done later by torch)."""
        return {
            fl.name: np.zeros((B, self.rows(fl, T), *fl.shape), fl.store if fl.name in stored else fl.batch)
            for fl in self.fields
        }

    def stored(self, arrays: dict) -> dict[str, np.ndarray]:
        """One episode's arrays in the buffer's storage dtypes."""
        if set(arrays) != set(self.by_name):
            raise ValueError(f"an episode has the fields {sorted(self.by_name)}, got {sorted(arrays)}")
        return {fl.name: np.asarray(arrays[fl.name], fl.store) for fl in self.fields}

    def bytes_per_step(self) -> int:
        """Stored bytes one step adds (a per-step row and a per-transition row)."""
        return sum(int(np.prod(fl.shape, dtype=np.int64)) * fl.store.itemsize for fl in self.fields)

    def check(self, arrays: dict[str, np.ndarray], episodes: int, steps: int) -> str | None:
        """The first field whose concatenated rows (`episodes` episodes, `steps` steps in all) do
        not have the schema's shape, or None."""
        for fl in self.fields:
            rows = steps + episodes if fl.per == "step" else steps
            if arrays[fl.name].shape != (rows, *fl.shape):
                return fl.name
        return None
