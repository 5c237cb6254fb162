"""The DRQN agent network shared by all agents: Linear(64) -> ReLU -> GRU(64) -> Linear(A).

Its input is [observation, last action one-hot, agent id one-hot]. Instead of concatenating the
one-hots (a copy of the whole observation tensor per step) the first layer is split into a
Linear on the observation plus two embedding lookups, which is the same function: a linear map
of a one-hot is a row of its weight matrix. The "no previous action" row (t = 0) is zero, as a
zero one-hot would be. Training unrolls whole episodes with `nn.GRU` (one fused call) rather
than a Python loop over time steps; acting advances one step with `step` (a GRU cell, the same
arithmetic as a one-step unroll, with fewer calls: an env step's forward pass is call-bound).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from . import fused_gru


def packing(lengths: torch.Tensor, T: int, N: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The packed layout of B episodes x N agents whose episodes last `lengths` [B] of T steps:
    sizes [T'] (rows at each step, T' the longest episode) and, for every packed row in order, its
    index into the flattened [B, T, N] grid. Rows run longest episode first (ties in batch order),
    agents of one episode together."""
    lengths = lengths.long().clamp(0, T)
    order = torch.argsort(-lengths, stable=True)  # episodes, longest first
    rows_len = lengths[order].repeat_interleave(N)  # [B*N] in packed row order
    rows = (order * (T * N)).repeat_interleave(N) + torch.arange(N).repeat(len(order))
    steps = int(lengths.max()) if len(lengths) else 0
    t = torch.arange(steps)
    sizes = (rows_len.unsqueeze(0) > t.unsqueeze(1)).sum(1)  # [T']
    live = rows_len.unsqueeze(0) > t.unsqueeze(1)  # [T', B*N]
    index = (rows.unsqueeze(0) + (t * N).unsqueeze(1))[live]  # row-major over [T', B*N]: time-major packing
    return sizes, index


class RNNAgent(nn.Module):
    action_kind = "discrete"  # one Q output per action

    def __init__(
        self,
        obs_dim: int,
        n_actions: int,
        n_agents: int,
        hidden: int = 64,
        *,
        skip_empty_obs: bool = False,
        fused_gru: bool = False,
    ):
        """skip_empty_obs: the input layer multiplies only non-zero observations (algo.skip_empty_obs);
        fused_gru: whole-episode unrolls go through differ/nets/fused_gru.py (algo.fused_gru)."""
        super().__init__()
        self.n_actions, self.n_agents, self.hidden = n_actions, n_agents, hidden
        self.skip_empty_obs, self.fused_gru = skip_empty_obs, fused_gru
        self.fc_obs = nn.Linear(obs_dim, hidden)
        self.last_action = nn.Embedding(n_actions + 1, hidden, padding_idx=n_actions)
        self.agent_id = nn.Embedding(n_agents, hidden)
        self.rnn = nn.GRU(hidden, hidden)
        self.fc_out = nn.Linear(hidden, n_actions)
        # initialise the split first layer exactly like one Linear over the concatenated input
        bound = 1 / math.sqrt(obs_dim + n_actions + n_agents)
        with torch.no_grad():
            for p in (self.fc_obs.weight, self.fc_obs.bias, self.last_action.weight, self.agent_id.weight):
                p.uniform_(-bound, bound)
            self.last_action.weight[n_actions].zero_()

    def init_hidden(self, batch: int) -> torch.Tensor:
        return torch.zeros(1, batch, self.hidden, device=self.fc_obs.weight.device)

    def project_obs(self, obs: torch.Tensor) -> torch.Tensor:
        """fc_obs(obs). With skip_empty_obs, the matmul runs only on the rows whose observation is
        not all zeros (padding after an episode's end, units that died): an all-zero row maps to
        the bias exactly, so the function is the same; the float sums run in another order."""
        if not self.skip_empty_obs:
            return self.fc_obs(obs)
        flat = obs.reshape(-1, obs.shape[-1])
        keep = flat.any(-1).nonzero().squeeze(1)
        out = self.fc_obs.bias.expand(flat.shape[0], self.hidden)
        out = out.index_copy(0, keep, F.linear(flat[keep], self.fc_obs.weight, self.fc_obs.bias))
        return out.view(*obs.shape[:-1], self.hidden)

    def embed(self, obs: torch.Tensor, last_action: torch.Tensor) -> torch.Tensor:
        """obs [..., N, O], last_action [..., N] (n_actions = none) -> GRU input [..., N, H]."""
        ids = torch.arange(self.n_agents, device=obs.device)
        return F.relu(self.project_obs(obs) + self.last_action(last_action) + self.agent_id(ids))

    def forward(
        self,
        obs: torch.Tensor,
        last_action: torch.Tensor,
        h: torch.Tensor | None = None,
        lengths: torch.Tensor | None = None,
    ):
        """Unroll over time. obs [B, T, N, O], last_action [B, T, N] -> Q [B, T, N, A], h_T.

        h: [1, B*N, H] or None (zeros, the start of an episode). lengths [B] (time steps of each
        episode, at most T; algo.skip_padding): only those are computed, the steps after them come
        out as Q = 0 and h_T is None.
        """
        if lengths is not None:
            return self.forward_packed(obs, last_action, lengths), None
        B, T, N = last_action.shape
        x = self.embed(obs, last_action)  # the big matmul runs on the stored layout
        x = x.permute(1, 0, 2, 3).reshape(T, B * N, self.hidden)  # time-major for the GRU
        out, h = fused_gru.unroll(self.rnn, x, h) if self.fused_gru else self.rnn(x, h)
        q = self.fc_out(out).view(T, B, N, self.n_actions).permute(1, 0, 2, 3)
        return q, h

    def forward_packed(self, obs: torch.Tensor, last_action: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """`forward` on the time steps inside each episode only: the (episode, agent) rows are
        packed time-major, longest first (torch's PackedSequence layout), so the input layer, the
        GRU and the output layer never see padding. The same function on those steps; the
        matmuls run on other row counts, so the floats round differently."""
        B, T, N = last_action.shape
        sizes, index = packing(lengths.to("cpu"), T, N)
        index = index.to(obs.device)
        flat = obs.reshape(B * T * N, -1).index_select(0, index)
        la = last_action.reshape(-1).index_select(0, index)
        agent = index % N
        x = F.relu(self.project_obs(flat) + self.last_action(la) + self.agent_id(agent))
        if self.fused_gru:
            out = fused_gru.unroll_packed(self.rnn, x, sizes)
        else:
            out = self.rnn(nn.utils.rnn.PackedSequence(x, sizes))[0].data
        q = self.fc_out(out)
        return q.new_zeros(B * T * N, self.n_actions).index_copy(0, index, q).view(B, T, N, self.n_actions)

    def step(self, obs: torch.Tensor, last_action: torch.Tensor, h: torch.Tensor):
        """One time step, for acting: obs [E, N, O], last_action [E, N], h [E*N, H] -> Q [E, N, A],
        h'. On the CPU, bit-equal to `forward` over a length-1 sequence (same matmuls, same gate
        arithmetic)."""
        E, N = last_action.shape
        x = self.embed(obs, last_action)
        r = self.rnn
        h = torch.gru_cell(x.view(E * N, self.hidden), h, r.weight_ih_l0, r.weight_hh_l0, r.bias_ih_l0, r.bias_hh_l0)
        return self.fc_out(h).view(E, N, self.n_actions), h
