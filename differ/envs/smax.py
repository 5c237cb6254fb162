"""SMAX (jaxmarl's StarCraft-like micromanagement) as a batched `VecEnv`.

All E copies step in one jitted, vmapped call. Facts of the package (jaxmarl 0.2.0) that shape
this adapter:
- The action layout is jaxmarl's own: 4 moves, index 4 = stop, then one attack per enemy. There
  is no no-op: a dead unit has only "stop" available, and that is what it takes.
- We call `step_env` (no auto-reset), so a finished episode's final observation is returned
  as it is; the runner starts new episodes with `reset`.
- The episode ends when a team is wiped out (terminated) or at the time limit (truncated); the
  package's terminal check runs before its step counter moves, so an episode lasts up to
  max_steps + 1 steps: that is the episode limit we report.
- The global state is not normalised (positions in [0, 32], cooldowns up to ~11, raw type and
  team codes); fed raw to a mixer it stalls learning, so by default it is scaled.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Sequence

import numpy as np

from .base import DiscreteActions, EnvSpec, Observation, StepResult, VecEnv
from .registry import UnknownEnvError


@contextlib.contextmanager
def _quiet_import():
    """jaxmarl prints about optional submodules on import, and its mabrax module resets
    sys.stdout to sys.__stdout__ (so contextlib.redirect_stdout cannot hold): silence file
    descriptor 1 itself, then put back both it and whatever sys.stdout was."""
    saved_obj = sys.stdout
    for stream in (sys.stdout, sys.__stdout__):
        if stream is not None:
            stream.flush()
    saved_fd = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    try:
        yield
    finally:
        for stream in (sys.stdout, sys.__stdout__):
            if stream is not None:
                stream.flush()
        os.dup2(saved_fd, 1)
        os.close(saved_fd)
        os.close(devnull)
        sys.stdout = saved_obj


with _quiet_import():
    import jax

    # compiling the vmapped step takes seconds per shape; keep it across processes
    jax.config.update(
        "jax_compilation_cache_dir", os.environ.get("DIFFER_JAX_CACHE", os.path.expanduser("~/.cache/differ/jax"))
    )
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    import jax.numpy as jnp
    from jaxmarl.environments.smax import HeuristicEnemySMAX
    from jaxmarl.environments.smax.smax_env import MAP_NAME_TO_SCENARIO, map_name_to_scenario

# state layout per unit: [health, x, y, weapon cooldown, 6 unit-type bits]; then team and type
# codes for every unit. Scales bring all of it to about [0, 1].
_UNIT_FEATURE_SCALE = np.array([1.0, 1 / 32, 1 / 32, 1 / 10] + [1.0] * 6, dtype=np.float32)
_CODE_SCALE = 1 / 5


def scenarios(family: str = "smax") -> list[str]:
    return list(MAP_NAME_TO_SCENARIO)


def resolve(family: str, scenario: str) -> str:
    if scenario in MAP_NAME_TO_SCENARIO:
        return scenario
    raise UnknownEnvError(f"unknown SMAX scenario '{scenario}'; valid choices: {', '.join(MAP_NAME_TO_SCENARIO)}")


def make(family: str, scenario: str, num_envs: int, time_limit=None, options=None) -> SMAXVecEnv:
    return SMAXVecEnv(resolve(family, scenario), num_envs, time_limit, **(options or {}))


def _strong(tree):
    """Drop JAX weak types so the reset state and the stepped state share one compiled step."""
    return jax.tree.map(lambda x: jnp.asarray(x, dtype=x.dtype), tree)


class SMAXVecEnv(VecEnv):
    def __init__(
        self,
        scenario: str,
        num_envs: int,
        time_limit=None,
        normalize_state: bool = True,
        render_mode=None,
        **env_kwargs,
    ):
        kwargs = dict(env_kwargs)
        self.render_mode = render_mode  # "rgb_array": copy 0's states are kept for render()
        self._trace, self._rendered = [], 0
        if time_limit is not None:
            kwargs["max_steps"] = int(time_limit) - 1  # episodes last up to max_steps + 1 steps
        self.scenario = scenario
        self.num_envs = int(num_envs)
        self.env = env = HeuristicEnemySMAX(scenario=map_name_to_scenario(scenario), **kwargs)
        n, n_enemies = env.num_allies, env.num_enemies
        n_units = n + n_enemies
        types = np.asarray(map_name_to_scenario(scenario).unit_types)[:n].astype(int)
        self.spec = EnvSpec(
            n_agents=n,
            actions=DiscreteActions(int(env.num_ally_actions)),
            obs_dim=int(env.obs_size),
            state_dim=int(env.state_size),
            episode_limit=int(env.max_steps) + 1,
            unit_type_ids=tuple(int(t) for t in types),
            unit_type_names=tuple(env.unit_type_names[t] for t in types),
            episode_stats=("battle_won",),
            has_deaths=True,
            agent_names=tuple(env.agents),
        )
        scale = np.concatenate([np.tile(_UNIT_FEATURE_SCALE, n_units), np.full(2 * n_units, _CODE_SCALE, np.float32)])
        scale[len(_UNIT_FEATURE_SCALE) * n_units :][:n_units] = 1.0  # team codes are already 0/1
        self._state_scale = jnp.asarray(scale if normalize_state else np.ones_like(scale))

        def pack(obs_dict, state):
            obs = jnp.stack([obs_dict[a] for a in env.agents])
            avail_dict = env.get_avail_actions(state)
            avail = jnp.stack([avail_dict[a] for a in env.agents]).astype(bool)
            alive = state.state.unit_alive[:n]
            return obs, obs_dict["world_state"] * self._state_scale, avail, alive

        def reset_one(seed):
            obs, state = env.reset(jax.random.fold_in(jax.random.PRNGKey(seed), 0))
            return (_strong(state),) + pack(obs, state)

        def step_one(seed, t, state, actions):
            key = jax.random.fold_in(jax.random.PRNGKey(seed), t + 1)
            acts = {a: actions[i] for i, a in enumerate(env.agents)}
            obs, state, rewards, dones, _ = env.step_env(key, state, acts)
            alive_all = state.state.unit_alive
            allies_dead = ~jnp.any(alive_all[:n])
            enemies_dead = ~jnp.any(alive_all[n:])
            terminated = allies_dead | enemies_dead
            truncated = dones["__all__"] & ~terminated
            won = enemies_dead & ~allies_dead
            return (_strong(state),) + pack(obs, state) + (rewards[env.agents[0]], terminated, truncated, won)

        self._reset = jax.jit(jax.vmap(reset_one))
        self._step = jax.jit(jax.vmap(step_one, in_axes=(0, None, 0, 0)))
        self._state = None
        self._seeds = None
        self._t = 0

    def reset(self, seeds: Sequence[int]) -> Observation:
        if len(seeds) != self.num_envs:
            raise ValueError(f"reset needs {self.num_envs} seeds, got {len(seeds)}")
        # seeds are folded into 32-bit keys; keep them in range so every seed is valid
        self._seeds = jnp.asarray(np.asarray(seeds, dtype=np.int64) % (2**31), dtype=jnp.int32)
        self._t = 0
        self._state, *out = self._reset(self._seeds)
        if self.render_mode:
            self._trace, self._rendered = [self._copy0()], 0
        return Observation(*map(np.array, jax.device_get(out)))  # writable copies

    def step(self, actions: np.ndarray) -> StepResult:
        self._state, *out = self._step(self._seeds, self._t, self._state, jnp.asarray(actions, dtype=jnp.int32))
        self._t += 1
        if self.render_mode:
            self._trace.append(self._copy0())
        obs, state, avail, alive, reward, term, trunc, won = map(np.array, jax.device_get(out))
        return StepResult(
            next=Observation(obs, state, avail, alive),
            reward=reward.astype(np.float32),
            terminated=term,
            truncated=trunc,
            stats={"battle_won": won},
        )

    # ---- rendering (differ evaluate video=DIR) -----------------------------------------------
    def _copy0(self):
        return jax.tree.map(lambda x: x[0], self._state.state)  # copy 0's world state

    def render(self) -> list[np.ndarray]:
        """Copy 0's frames since the last call, drawn by jaxmarl's own SMAX renderer: one per env
        step (the start of the episode after a reset), with the shots of that step in flight.
        (The package's visualiser can also draw the 8 world sub-steps of every step, but its
        renderer takes ~0.3 s a frame on a CPU.)"""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        if not self.render_mode:
            raise RuntimeError("SMAXVecEnv was built without render_mode='rgb_array'")
        if not hasattr(self, "_fig"):
            self._fig = Figure(figsize=(5, 5), dpi=64)
            FigureCanvasAgg(self._fig)  # off-screen: no display needed
            self._ax = self._fig.add_subplot()
        env, frames = self.env, []
        mid = env.world_steps_per_env_step // 2
        for step, state in enumerate(self._trace[self._rendered :], start=self._rendered):
            shots = {a: state.prev_attack_actions[i] for i, a in enumerate(env.all_agents)}
            self._ax.clear()
            env.init_render(self._ax, (None, state, shots), mid if step else 0, step)
            self._ax.images[-1].remove()  # init_render also pastes a raster of the figure: drop it
            self._fig.canvas.draw()
            frames.append(np.asarray(self._fig.canvas.buffer_rgba())[..., :3].copy())
        self._rendered = len(self._trace)
        return frames
