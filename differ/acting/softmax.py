"""A stochastic policy over discrete actions (COMA's actor): the agent network's outputs are
logits, π = softmax over the AVAILABLE actions, and in training an ε floor is mixed in as in
PyMARL, π_ε = (1 − ε)·π + ε / (number of available actions), so every available action keeps
probability ε / n and an unavailable one gets exactly 0. ε comes from the run's ε schedule
(algo.epsilon_*), the same one the ε-greedy controller reads.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from .controller import Controller


def masked_policy(logits: torch.Tensor, avail: torch.Tensor, epsilon: float = 0.0) -> torch.Tensor:
    """logits [..., A], avail bool [..., A] -> π_ε [..., A], exactly 0 on unavailable actions.
    Where no action is available (padding after an episode's end) the row is uniform, so it stays
    a distribution; every loss masks those rows."""
    avail = avail | ~avail.any(-1, keepdim=True)
    pi = F.softmax(logits.masked_fill(~avail, -torch.inf), dim=-1)
    if epsilon > 0:
        floor = avail.to(pi.dtype) / avail.sum(-1, keepdim=True).to(pi.dtype)
        pi = (1 - epsilon) * pi + epsilon * floor
    return pi


def sample(pi: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One action per row of `pi` [..., A] by inverse CDF from `rng` (one uniform per row): the
    first action whose cumulative probability exceeds u·total. An action of probability 0 never
    is that first one, so masked actions are never drawn."""
    c = np.cumsum(pi, axis=-1)
    u = rng.random(pi.shape[:-1])[..., None] * c[..., -1:]
    return (c > u).argmax(-1)


class SoftmaxController(Controller):
    """Acts with the agent network as a policy: in training an action drawn from π_ε (ε from the
    runner), greedy (tests, `differ evaluate`) the argmax of π over the available actions, which is
    the argmax of the logits: the same greedy action `differ.Policy` takes with the plain controller."""

    @torch.no_grad()
    def act(
        self, obs: np.ndarray, avail: np.ndarray, epsilon: float, rng: np.random.Generator, greedy: bool = False
    ) -> np.ndarray:
        """obs [E, N, O], avail bool [E, N, A] -> actions int64 [E, N]."""
        device = self.hidden.device
        x = torch.from_numpy(obs).to(device).float()
        la = torch.from_numpy(self.last_action).to(device)
        logits, self.hidden = self.agent.step(x, la, self.hidden)
        mask = torch.from_numpy(avail).to(device)
        if greedy:
            actions = logits.masked_fill(~mask, -torch.inf).argmax(-1).cpu().numpy()
        else:
            pi = masked_policy(logits, mask, epsilon).double().cpu().numpy()
            actions = sample(pi, rng).astype(np.int64)
        self.last_action = actions
        return actions
