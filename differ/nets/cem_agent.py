"""COMIX's agent network for continuous actions: Q_i(τ_i, a) with the action as an input.

  h_t        = GRU(ReLU(W_o·o_t + W_a·a_{t−1} + E[i]), h_{t−1})   once per step (a_{−1} = 0)
  Q_i(h, a)  = w·ReLU(U·[h, a] + c) + b                           per candidate action

The reference agent feeds the candidate action into the first layer, in front of the GRU, so
every CEM candidate would re-run the recurrent part; here the observation and recurrent part runs
once per step and only the small head sees the candidates. The GRU advances with the action the
agent actually took (the previous action is its input), in acting and in training alike.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class CEMAgent(nn.Module):
    action_kind = "continuous"  # the action is an input; CEM finds the argmax

    def __init__(self, obs_dim: int, action_dim: int, n_agents: int, hidden: int = 64, head_hidden: int = 64):
        super().__init__()
        self.action_dim, self.n_agents, self.hidden = action_dim, n_agents, hidden
        self.fc_obs = nn.Linear(obs_dim, hidden)
        self.fc_last_action = nn.Linear(action_dim, hidden, bias=False)
        self.agent_id = nn.Embedding(n_agents, hidden)
        self.rnn = nn.GRU(hidden, hidden)
        self.head = nn.Sequential(nn.Linear(hidden + action_dim, head_hidden), nn.ReLU(), nn.Linear(head_hidden, 1))

    def init_hidden(self, batch: int) -> torch.Tensor:
        return torch.zeros(1, batch, self.hidden, device=self.fc_obs.weight.device)

    def hiddens(self, obs: torch.Tensor, last_action: torch.Tensor, h: torch.Tensor | None = None):
        """Unroll over time. obs [B, T, N, O], last_action [B, T, N, A] -> h_t [B, T, N, H], h_T."""
        B, T, N, _ = obs.shape
        ids = torch.arange(self.n_agents, device=obs.device)
        x = F.relu(self.fc_obs(obs) + self.fc_last_action(last_action) + self.agent_id(ids))
        x = x.permute(1, 0, 2, 3).reshape(T, B * N, self.hidden)
        out, h = self.rnn(x, h)
        return out.view(T, B, N, self.hidden).permute(1, 0, 2, 3), h

    def project(self, h: torch.Tensor) -> torch.Tensor:
        """The head's first layer on the recurrent part, U_h·h + c [..., head_hidden]: computed once
        per step and reused for every candidate action (U·[h, a] = U_h·h + U_a·a)."""
        first = self.head[0]
        return F.linear(h, first.weight[:, : self.hidden], first.bias)

    def q_projected(self, z: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Q from `project(h)` [..., head_hidden] and actions [..., A] (leading dims broadcast)."""
        first = self.head[0]
        x = F.linear(action, first.weight[:, self.hidden :])
        if torch.is_grad_enabled() or x.shape != torch.broadcast_shapes(x.shape, z.shape):
            x = F.relu(z + x)
        else:  # CEM's [samples, rows, head] tensors: in place, no two more of them to allocate (2x faster)
            x.add_(z).relu_()
        return self.head[2](x).squeeze(-1)

    def q(self, h: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """h [..., H], action [..., A] (leading dims broadcast) -> Q [...]."""
        return self.q_projected(self.project(h), action)
