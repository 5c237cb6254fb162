"""The multi-agent controller: the shared agent network, its hidden state while acting, and
epsilon-greedy action selection restricted to available actions."""

from __future__ import annotations

import numpy as np
import torch

from .nets.agent import RNNAgent


class Controller:
    def __init__(self, agent: RNNAgent):
        self.agent = agent
        self.n_actions = agent.n_actions
        self.hidden: torch.Tensor | None = None
        self.last_action: np.ndarray | None = None

    def start(self, num_envs: int) -> None:
        """New episodes in every env copy: zero hidden state, no previous action."""
        self.hidden = self.agent.init_hidden(num_envs * self.agent.n_agents)
        self.last_action = np.full((num_envs, self.agent.n_agents), self.n_actions, np.int64)

    @torch.no_grad()
    def act(self, obs: np.ndarray, avail: np.ndarray, epsilon: float, rng: np.random.Generator,
            greedy: bool = False) -> np.ndarray:
        """obs [E, N, O], avail bool [E, N, A] -> actions int64 [E, N]."""
        x = torch.from_numpy(obs).float().unsqueeze(1)  # [E, 1, N, O]
        la = torch.from_numpy(self.last_action).unsqueeze(1)
        q, self.hidden = self.agent(x, la, self.hidden)
        q = q[:, 0].masked_fill(~torch.from_numpy(avail), -torch.inf)
        actions = q.argmax(-1).numpy()
        if not greedy and epsilon > 0:
            # uniform over available actions: argmax of iid uniforms restricted to the mask
            random_actions = (rng.random(avail.shape) * avail).argmax(-1)
            explore = rng.random(actions.shape) < epsilon
            actions = np.where(explore, random_actions, actions)
        self.last_action = actions
        return actions
