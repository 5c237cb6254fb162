"""COMA's centralised critic (Foerster et al. 2018): for agent a at step t, every action's value
Q(s, (u_-a, ·)) from

  [ s_t | o_t^a | one-hot u_t of the other agents (agent a's own block zeroed) |
    one-hot joint action u_{t-1} (zeros at t = 0) | one-hot agent id ]  -> MLP 128-128 -> A values

so the counterfactual baseline Σ_u' π_a(u') Q(s, (u_-a, u')) needs one pass, not A.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class ComaCritic(nn.Module):
    def __init__(self, state_dim: int, obs_dim: int, n_agents: int, n_actions: int, hidden: int = 128):
        super().__init__()
        self.n_agents, self.n_actions = n_agents, n_actions
        width = state_dim + obs_dim + 2 * n_agents * n_actions + n_agents
        self.fc1 = nn.Linear(width, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.fc3 = nn.Linear(hidden, n_actions)

    def inputs(
        self, state: torch.Tensor, obs: torch.Tensor, actions: torch.Tensor, last_actions: torch.Tensor
    ) -> torch.Tensor:
        """state [B, L, S], obs [B, L, N, O], actions [B, L, N] and last_actions [B, L, N] (long;
        n_actions means none) -> the critic's input [B, L, N, D]."""
        B, L, N = actions.shape
        A, dtype = self.n_actions, self.fc1.weight.dtype
        joint = F.one_hot(actions, A).to(dtype).reshape(B, L, 1, N * A).expand(B, L, N, N * A)
        others = 1 - torch.eye(N, dtype=dtype, device=actions.device).repeat_interleave(A, dim=1)  # [N, N*A]
        last = F.one_hot(last_actions, A + 1)[..., :A].to(dtype).reshape(B, L, 1, N * A).expand(B, L, N, N * A)
        ids = torch.eye(N, dtype=dtype, device=actions.device).expand(B, L, N, N)
        s = state.to(dtype).unsqueeze(2).expand(B, L, N, state.shape[-1])
        return torch.cat([s, obs.to(dtype), joint * others, last, ids], dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """inputs [..., D] -> Q [..., A]."""
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))
