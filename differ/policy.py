"""A trained team as a deployable policy: `differ.Policy.load(run_dir_or_checkpoint)`.

The policy runs on the *raw* environment, outside differ: `act` takes each agent's observation as
the package gives it and applies the transform the run was trained with (the adapter's scaling,
the flattening and the zero-padding, recorded in every checkpoint with the env spec), keeps the
agents' recurrent state and last actions between calls, and returns the greedy joint action.
`reset(num_envs)` starts new episodes. Only the agent network is loaded: no env, mixer or
replay buffer is built.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from .acting.controller import make_controller
from .acting.record import policy_record
from .envs.base import ObsTransform
from .nets import AGENTS
from .nets.agent import RNNAgent
from .nets.cem_agent import CEMAgent
from .store import checkpoint as ckpt


class Policy:
    """The greedy policy of a trained team (see the module docstring).

    >>> policy = differ.Policy.load("runs/demo")
    >>> policy.reset(num_envs=1)
    >>> actions = policy.act([raw_observations])[0]   # one int per agent
    """

    def __init__(self, agent: RNNAgent | CEMAgent, record: dict, source: Path | None = None):
        self.agent = agent.eval().requires_grad_(False)
        self.record = record
        self.source = source
        self.transform = ObsTransform.from_dict(record["obs_transform"])
        self.n_agents: int = record["n_agents"]
        self.n_actions: int = record["n_actions"]  # continuous: the padded action dimension
        self.agent_actions: tuple[int, ...] = tuple(record["agent_actions"])
        self.continuous = record.get("agent", "rnn") == "cem"
        if self.continuous:
            self._controller = make_controller(
                self.agent,
                np.asarray(record["low"], np.float32),
                np.asarray(record["high"], np.float32),
                SimpleNamespace(**record["cem"]),
            )
        else:
            self._controller = make_controller(self.agent)
        self._rng = np.random.default_rng(0)
        self.num_envs = 0

    @classmethod
    def load(cls, path: str | Path) -> Policy:
        """From a run directory (its newest readable checkpoint) or a checkpoint file."""
        ckpt_path, payload = ckpt.load_run_or_file(path)
        record = payload.get("policy") or _record_from_config(payload)
        agent = AGENTS[record.get("agent", "rnn")](
            record["obs_dim"], record["n_actions"], record["n_agents"], record["agent_hidden"]
        )
        agent.load_state_dict(payload["learner"]["agent"])
        return cls(agent, record, ckpt_path)

    def reset(self, num_envs: int = 1, seed: int = 0) -> None:
        """New episodes in `num_envs` envs: zero recurrent state, no previous action. `seed`
        seeds the CEM samples of a continuous-action policy (greedy, but sampled)."""
        self.num_envs = int(num_envs)
        self._controller.start(self.num_envs)
        self._rng = np.random.default_rng(seed)

    def observe(self, obs: Sequence[Sequence[Any]]) -> np.ndarray:
        """Raw observations [env][agent] -> the network's input, float32 [E, N, obs_dim]
        (None for an agent that is out of the episode: zeros, as in training)."""
        return np.stack(
            [
                self.transform.apply(
                    [
                        np.zeros(d, np.float32) if o is None else _observation(o)
                        for o, d in zip(per_env, self.transform.dims)
                    ]
                )
                for per_env in obs
            ]
        )

    def act(self, obs: Sequence[Sequence[Any]], avail: Sequence[Sequence[Any]] | None = None) -> np.ndarray:
        """Greedy actions, int64 [E, N], for one step of E envs.

        obs: per env, each agent's raw observation (any array shape; a PettingZoo dict with
        "observation" and "action_mask" works as it is; None for an agent that is dead or gone,
        which then gets action 0, as in training). avail: per env, each agent's mask of allowed
        actions (its own length, or n_actions), or None: every action of the agent (or its dict
        observation's action_mask)."""
        if self.num_envs == 0:
            self.reset(len(obs))
        if len(obs) != self.num_envs:
            raise ValueError(f"act got {len(obs)} envs' observations after reset({self.num_envs})")
        x = self.observe(obs)
        if self.continuous:  # float [E, N, A]: agent i's first agent_actions[i] values are its action
            return self._controller.act(x, None, 0.0, self._rng, greedy=True)
        mask = np.zeros((self.num_envs, self.n_agents, self.n_actions), bool)
        for e in range(self.num_envs):
            for i in range(self.n_agents):
                own = self.agent_actions[i]
                if obs[e][i] is None:  # out of the episode: only action 0, never sent to the env
                    mask[e, i, 0] = True
                    continue
                m = None if avail is None else avail[e][i]
                if m is None and isinstance(obs[e][i], dict):
                    m = obs[e][i].get("action_mask")
                if m is None:
                    mask[e, i, :own] = True
                else:
                    m = np.asarray(m, bool).reshape(-1)
                    mask[e, i, : m.size] = m
                    mask[e, i, own:] = False
        return self._controller.act(x, mask, 0.0, None, greedy=True)


def _observation(o):
    return o["observation"] if isinstance(o, dict) else o


def _record_from_config(payload: dict) -> dict:
    """A checkpoint from before `policy` was recorded: rebuild the env once for its spec."""
    from omegaconf import OmegaConf

    from .assemble import make_envs
    from .config import build_config

    cfg = build_config({}, base=OmegaConf.create(payload["config"]))
    env, test_env = make_envs(cfg)
    try:
        return policy_record(env.spec, cfg.algo)
    finally:
        for e in {id(env): env, id(test_env): test_env}.values():
            e.close()
