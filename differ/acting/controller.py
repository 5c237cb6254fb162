"""The multi-agent controller: the shared agent network, its hidden state while acting, and
epsilon-greedy action selection restricted to available actions."""

from __future__ import annotations

import time

import numpy as np
import torch

from ..nets.agent import RNNAgent
from ..nets.cem import cem_argmax


class Controller:
    def __init__(self, agent: RNNAgent):
        self.agent = agent
        self.n_actions = agent.n_actions
        self.hidden: torch.Tensor | None = None
        self.last_action: np.ndarray | None = None

    def start(self, num_envs: int) -> None:
        """New episodes in every env copy: zero hidden state, no previous action."""
        self.hidden = self.agent.init_hidden(num_envs * self.agent.n_agents)[0]  # [E*N, H]
        self.last_action = np.full((num_envs, self.agent.n_agents), self.n_actions, np.int64)

    @torch.no_grad()
    def act(
        self, obs: np.ndarray, avail: np.ndarray, epsilon: float, rng: np.random.Generator, greedy: bool = False
    ) -> np.ndarray:
        """obs [E, N, O], avail bool [E, N, A] -> actions int64 [E, N]."""
        device = self.hidden.device
        x = torch.from_numpy(obs).to(device).float()  # [E, N, O]
        la = torch.from_numpy(self.last_action).to(device)
        q, self.hidden = self.agent.step(x, la, self.hidden)
        q = q.masked_fill(~torch.from_numpy(avail).to(device), -torch.inf)
        actions = q.argmax(-1).cpu().numpy()
        if not greedy and epsilon > 0:
            # uniform over available actions: argmax of iid uniforms restricted to the mask
            random_actions = (rng.random(avail.shape) * avail).argmax(-1)
            explore = rng.random(actions.shape) < epsilon
            actions = np.where(explore, random_actions, actions)
        self.last_action = actions
        return actions


class CEMController:
    """Continuous actions (COMIX): the GRU advances once per step on the observation and the
    previous action, CEM picks argmax_a Q_i(h_i, a) inside each agent's box, and in training
    Gaussian noise (std `noise`) is added and clamped to the box. The CEM samples and the noise
    come from the rng the runner passes (the trainer's, checkpointed), so acting is exact on resume."""

    def __init__(self, agent, low: np.ndarray, high: np.ndarray, cem, noise: float):
        self.agent, self.cem, self.noise = agent, cem, noise
        self.low_np, self.high_np = low, high  # [N, A]
        device = agent.fc_obs.weight.device
        self.low, self.high = torch.from_numpy(low).to(device), torch.from_numpy(high).to(device)
        self.hidden: torch.Tensor | None = None
        self.last_action: np.ndarray | None = None
        self.cem_seconds = 0.0  # time spent in CEM (`differ bench only=comix` reports its share)

    def start(self, num_envs: int) -> None:
        self.hidden = self.agent.init_hidden(num_envs * self.agent.n_agents)
        self.last_action = np.zeros((num_envs, self.agent.n_agents, self.agent.action_dim), np.float32)

    @torch.no_grad()
    def act(
        self, obs: np.ndarray, avail: np.ndarray, epsilon: float, rng: np.random.Generator, greedy: bool = False
    ) -> np.ndarray:
        """obs [E, N, O] -> actions float32 [E, N, A] (padded dimensions 0). `epsilon` is unused:
        exploration is the Gaussian noise."""
        x = torch.from_numpy(obs).to(self.low.device).float().unsqueeze(1)
        la = torch.from_numpy(self.last_action).to(self.low.device).unsqueeze(1)
        h, self.hidden = self.agent.hiddens(x, la, self.hidden)
        h = h[:, 0]  # [E, N, H]
        generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
        c = self.cem
        z = self.agent.project(h)
        t0 = time.perf_counter()
        a = (
            cem_argmax(
                lambda cand: self.agent.q_projected(z, cand),
                tuple(h.shape[:2]),
                self.low,
                self.high,
                generator,
                c.samples,
                c.elites,
                c.iterations,
            )
            .cpu()
            .numpy()
        )
        self.cem_seconds += time.perf_counter() - t0
        if not greedy and self.noise > 0:
            a = np.clip(a + self.noise * rng.standard_normal(a.shape), self.low_np, self.high_np)
        a = a.astype(np.float32)
        self.last_action = a
        return a


def make_controller(agent, low=None, high=None, cem=None, noise: float = 0.0):
    """What acts with `agent`, chosen by the kind of action it outputs: epsilon-greedy over
    discrete Q values, or CEM inside the boxes [low, high] (numpy [N, A]) for continuous actions
    (`cem`: the algo.cem settings; `noise`: the training noise, 0 for a greedy policy)."""
    if agent.action_kind == "continuous":
        return CEMController(agent, low, high, cem, noise)
    return Controller(agent)
