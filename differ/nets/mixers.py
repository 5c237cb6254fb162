"""Mixers: Q_tot = f(Q_1..Q_N, s). One interface, so that the learner and DIFFER's decomposer
work with any mixer unchanged: `forward(agent_qs [B, T, N], state [B, T, S]) -> Q_tot [B, T]`.
Adding a mixer means one class here, one entry in `MIXERS`, and a preset.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class VDNMixer(nn.Module):
    """Q_tot = sum_i Q_i; no parameters, so no mixer optimiser."""

    def __init__(self, n_agents: int, state_dim: int, **_):
        super().__init__()

    def forward(self, agent_qs: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        return agent_qs.sum(-1)


class QMixer(nn.Module):
    """Monotonic mixing network; hypernetworks turn the state into non-negative weights, so
    dQ_tot/dQ_i >= 0 everywhere."""

    def __init__(self, n_agents: int, state_dim: int, embed_dim: int = 32, hypernet_hidden: int = 64, **_):
        super().__init__()
        self.n_agents, self.embed_dim = n_agents, embed_dim
        self.hyper_w1 = nn.Sequential(nn.Linear(state_dim, hypernet_hidden), nn.ReLU(),
                                      nn.Linear(hypernet_hidden, n_agents * embed_dim))
        self.hyper_b1 = nn.Linear(state_dim, embed_dim)
        self.hyper_w2 = nn.Sequential(nn.Linear(state_dim, hypernet_hidden), nn.ReLU(),
                                      nn.Linear(hypernet_hidden, embed_dim))
        self.value = nn.Sequential(nn.Linear(state_dim, embed_dim), nn.ReLU(), nn.Linear(embed_dim, 1))

    def forward(self, agent_qs: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        lead = agent_qs.shape[:-1]
        w1 = self.hyper_w1(state).abs().view(*lead, self.n_agents, self.embed_dim)
        hidden = F.elu(torch.einsum("...n,...ne->...e", agent_qs, w1) + self.hyper_b1(state))
        w2 = self.hyper_w2(state).abs()
        return (hidden * w2).sum(-1) + self.value(state).squeeze(-1)


MIXERS = {"vdn": VDNMixer, "qmix": QMixer}


def build_mixer(name: str, n_agents: int, state_dim: int, algo_cfg) -> nn.Module:
    return MIXERS[name](n_agents, state_dim, embed_dim=algo_cfg.mixing_embed_dim,
                        hypernet_hidden=algo_cfg.hypernet_hidden)
